"""Benchmark: N audiences x D days through `audience-engine recommend`, end to end, against a floor.

Generates CSV exports with the sample simulator, then runs the real CLI in a child process on a
fresh warehouse (every asset and check of the graph, the shared Dagster instance, the JSON) and
reports its wall time and peak memory (the child's own max RSS). The floor is what DuckDB alone
needs to read the same CSV and aggregate it once, in a fresh Python process; the ratio says how
much the product costs on top of that.

    python benchmarks/bench_recommend.py                       # 20,000 x 30
    python benchmarks/bench_recommend.py --audiences 20000 50000 100000
    python benchmarks/bench_recommend.py --incremental         # a daily run on 30 vs 90 days of history
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import polars as pl

from audience_assets.sample.simulator import SAMPLE_END_DATE, write_sample_csvs

FLOOR_SQL = "SELECT adset_id, sum(spend), sum(purchases), sum(purchase_value) FROM read_csv(?) GROUP BY adset_id"


def measured(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall time and the child's own peak RSS (MB), through /usr/bin/time-like wait4 accounting."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _pid, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    err = proc.stderr.read().decode() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd[:3])} failed:\n{err[-3000:]}")
    return wall, usage.ru_maxrss / 1024


def floor_seconds(csv: Path, repeat: int = 3) -> float:
    """DuckDB reading the CSV and aggregating it once, in a fresh process (best of `repeat`)."""
    code = f"import duckdb; duckdb.sql({FLOOR_SQL!r}.replace('?', repr({str(csv)!r}))).fetchall()"
    return min(measured([sys.executable, "-c", code], dict(os.environ))[0] for _ in range(repeat))


def recommend(work: Path, insights: Path, audiences: Path, db: Path, *extra: str) -> tuple[float, float]:
    cli = Path(sys.executable).with_name("audience-engine")
    cmd = [str(cli), "recommend", "--insights", str(insights), "--audiences", str(audiences)]
    cmd += ["--db", str(db), "--out", str(work / "recs.json"), "--quiet", *extra]
    env = {**os.environ, "DAGSTER_HOME": str(work / "dagster_home")}
    return measured(cmd, env)


def one_size(work: Path, audiences: int, days: int, seed: int) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    ins, aud = write_sample_csvs(work, seed=seed, n_adsets=audiences, days=days, prelaunched_share=1.0)
    rows = pl.scan_csv(ins).select(pl.len()).collect().item()
    print(
        f"generated {audiences:,} x {days} days: {rows:,} rows, {ins.stat().st_size / 1e6:.0f} MB in "
        f"{time.perf_counter() - t0:.1f}s",
        file=sys.stderr,
    )
    floor = floor_seconds(ins)
    wall, rss = recommend(work, ins, aud, work / "warehouse.duckdb")
    recs = json.loads((work / "recs.json").read_text())
    return {
        "audiences": audiences,
        "days": days,
        "insight_rows": rows,
        "csv_mb": round(ins.stat().st_size / 1e6, 1),
        "recommendations": len(recs["recommendations"]),
        "wall_seconds": round(wall, 2),
        "peak_rss_mb": round(rss, 1),
        "floor_seconds": round(floor, 3),
        "ratio_to_floor": round(wall / floor, 1),
    }


def _slice(src: Path, dst: Path, first, last) -> Path:
    frame = pl.read_csv(src, infer_schema=False).filter(pl.col("date_start").str.to_date().is_between(first, last))
    frame.write_csv(dst)
    return dst


def incremental(work: Path, audiences: int, seed: int) -> dict:
    """A daily run (the last 7 days re-exported, one new day) on warehouses holding 30 and 90 days."""
    work.mkdir(parents=True, exist_ok=True)
    ins, aud = write_sample_csvs(work, seed=seed, n_adsets=audiences, days=91, prelaunched_share=1.0)
    last = SAMPLE_END_DATE
    daily = _slice(ins, work / "daily.csv", last - timedelta(days=6), last)
    out = {"audiences": audiences}
    for history in (30, 90):
        db = work / f"history_{history}.duckdb"
        backfill = _slice(
            ins, work / f"backfill_{history}.csv", last - timedelta(days=history), last - timedelta(days=1)
        )
        wall, _ = recommend(work, backfill, aud, db, "--as-of", last.isoformat())
        print(f"backfilled {history} days in {wall:.1f}s", file=sys.stderr)
        runs = [recommend(work, daily, aud, db, "--as-of", (last + timedelta(days=1)).isoformat()) for _ in range(2)]
        out[f"daily_run_on_{history}_days_seconds"] = round(min(w for w, _ in runs), 2)
        out[f"daily_run_on_{history}_days_peak_mb"] = round(max(r for _, r in runs), 1)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--audiences", type=int, nargs="+", default=[20_000])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--incremental", action="store_true", help="daily run on 30 vs 90 days of stored history")
    parser.add_argument("--keep", help="keep the work folder here instead of a temporary one")
    args = parser.parse_args()
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="audience_bench_"))
    results = []
    if args.incremental:
        results.append(incremental(root / "incremental", args.audiences[0], args.seed))
    else:
        for n in args.audiences:
            results.append(one_size(root / f"{n}x{args.days}", n, args.days, args.seed))
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
