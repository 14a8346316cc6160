"""The benchmark scripts keep working (tiny sizes; no timings are asserted)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))


def test_meta_ingest_benchmark_loads_every_row():
    import bench_meta_ingest

    out = bench_meta_ingest.run(adsets=10, days=12, page_size=25, accounts=2)
    backfill, lookback = out["backfill (async)"], out["lookback 7 days (sync)"]
    assert backfill["rows"] > lookback["rows"] > 0
    assert backfill["failures"] == {} and lookback["failures"] == {}
    assert backfill["requests"] > 0


def test_recommend_benchmark_runs_end_to_end(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks/bench_recommend.py"),
            "--audiences",
            "60",
            "--days",
            "12",
            "--keep",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    [result] = json.loads(proc.stdout)
    assert result["recommendations"] == 60 and result["peak_rss_mb"] > 0
    # The ratio is taken before the two figures are rounded for the report.
    assert result["floor_seconds"] > 0
    assert result["ratio_to_floor"] == pytest.approx(result["wall_seconds"] / result["floor_seconds"], rel=0.02)


def test_recommend_benchmark_incremental_mode(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks/bench_recommend.py"),
            "--audiences",
            "40",
            "--incremental",
            "--keep",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    [result] = json.loads(proc.stdout)
    assert result["daily_run_on_30_days_seconds"] > 0 and result["daily_run_on_90_days_seconds"] > 0


def test_accounts_benchmark_runs_serial_file_and_parallel_lake(tmp_path):
    out = tmp_path / "rows.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks/bench_accounts.py"), "--sizes", "2x20", "--days", "20",
         "--concurrency", "2", "--no-postgres", "--json", str(out)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    file_row, lake_row = json.loads(out.read_text())
    assert file_row["backend"] == "DuckDB file, serial" and lake_row["backend"].startswith("DuckLake SQLite")
    for row in (file_row, lake_row):
        assert row["accounts"] == 2 and row["wall_s"] > 0 and row["peak_mb"] > 0
        assert row["audience_days_per_s"] == pytest.approx(2 * 20 * 20 / row["wall_s"], rel=0.1)
    assert "| 2 x 20 x 20 | DuckDB file, serial |" in proc.stdout
