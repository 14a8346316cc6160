"""Benchmark: N accounts x M ad sets x D days through `audience-engine recommend`, serial on one
DuckDB file against parallel on a DuckLake lake (SQLite catalog; PostgreSQL too when Debian's
server binaries are installed).

Generates one insights/audiences CSV pair holding every account (the sample simulator, one seed
per account), then runs the real CLI in a child process on a fresh warehouse and a fresh Dagster
instance for each backend. The CLI decides one account-day per run: one after another on the file
(one writer), `--concurrency` at once on a lake. Reported: wall time, throughput (audience-days
decided per second: ad sets x days of history / wall), the peak memory of the whole process tree
(sampled every 0.2 s) and how the time grows with accounts.

    python benchmarks/bench_accounts.py                          # 4 x 400 and 8 x 500, 30 days
    python benchmarks/bench_accounts.py --sizes 50x400 200x500   # the issue's sizes (long)
    python benchmarks/bench_accounts.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import polars as pl

from audience_assets.sample.simulator import simulate_account

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "audience_assets_tests"))

from fakes.postgres_server import PostgresServer  # noqa: E402

DAYS = 30


def write_accounts(directory: Path, accounts: int, adsets: int, days: int) -> tuple[Path, Path]:
    """One CSV pair holding `accounts` simulated accounts (ad set ids prefixed by the account)."""
    insights, audiences = [], []
    for i in range(accounts):
        account = f"act_{7000 + i}"
        acct = simulate_account(seed=100 + i, n_adsets=adsets, days=days, account_id=account)
        prefix = pl.lit(str(7000 + i))
        insights.append(acct.insights.with_columns((prefix + pl.col("adset_id")).alias("adset_id")))
        audiences.append(acct.audiences.with_columns((prefix + pl.col("adset_id")).alias("adset_id")))
    directory.mkdir(parents=True, exist_ok=True)
    ins, aud = directory / "insights.csv", directory / "audiences.csv"
    pl.concat(insights).write_csv(ins, date_format="%Y-%m-%d")
    pl.concat(audiences).write_csv(aud, date_format="%Y-%m-%d", datetime_format="%Y-%m-%dT%H:%M:%S")
    return ins, aud


def _tree_rss_mb(root: int) -> float:
    """Resident memory of a process and all its descendants (MB), from /proc."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            ppid, pages = int(fields[1]), int(fields[21])
        except (OSError, IndexError, ValueError):
            continue  # the process ended while we looked
        children.setdefault(ppid, []).append(int(entry))
        rss[int(entry)] = pages
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total * os.sysconf("SC_PAGE_SIZE") / 2**20


def measured(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall time and the peak memory of the whole process tree (MB)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = [0.0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.2):
            peak[0] = max(peak[0], _tree_rss_mb(proc.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _out, err = proc.communicate()
    wall = time.perf_counter() - t0
    done.set()
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:3])} failed:\n{err.decode()[-3000:]}")
    return wall, peak[0]


def recommend(work: Path, ins: Path, aud: Path, warehouse: str, *extra: str) -> tuple[float, float]:
    cli = Path(sys.executable).with_name("audience-engine")
    cmd = [str(cli), "recommend", "--insights", str(ins), "--audiences", str(aud), "--warehouse", warehouse]
    cmd += ["--out", str(work / "recs.json"), "--quiet", *extra]
    env = {**os.environ, "DAGSTER_HOME": str(work / "dagster_home")}
    env.pop("AUDIENCE_ENGINE_WAREHOUSE", None)
    return measured(cmd, env)


def one_size(work: Path, accounts: int, adsets: int, days: int, concurrency: int, postgres: bool) -> list[dict]:
    ins, aud = write_accounts(work / "csv", accounts, adsets, days)
    audience_days = accounts * adsets * days
    rows = []

    def record(backend: str, wall: float, peak: float) -> None:
        rows.append({
            "accounts": accounts, "adsets_per_account": adsets, "days": days, "backend": backend,
            "wall_s": round(wall, 1), "audience_days_per_s": round(audience_days / wall),
            "s_per_account": round(wall / accounts, 2), "peak_mb": round(peak),
        })  # fmt: skip

    file_dir = work / "file"
    file_dir.mkdir()
    record("DuckDB file, serial", *recommend(file_dir, ins, aud, str(file_dir / "w.duckdb")))
    lake_dir = work / "lake"
    lake_dir.mkdir()
    lake = f"ducklake:sqlite:{lake_dir / 'catalog.sqlite'}"
    record(
        f"DuckLake SQLite, {concurrency} at once",
        *recommend(lake_dir, ins, aud, lake, "--concurrency", str(concurrency)),
    )
    if postgres and PostgresServer.available():
        pg_dir = work / "pg"
        pg_dir.mkdir()
        with PostgresServer() as pg:
            env_data = {"AUDIENCE_ENGINE_LAKE_DATA": str(pg_dir / "lake_data")}
            os.environ.update(env_data)
            try:
                lake = f"ducklake:postgres:{pg.conninfo()}"
                record(
                    f"DuckLake PostgreSQL, {concurrency} at once",
                    *recommend(pg_dir, ins, aud, lake, "--concurrency", str(concurrency)),
                )
            finally:
                os.environ.pop("AUDIENCE_ENGINE_LAKE_DATA", None)
    base = rows[0]["wall_s"]
    for r in rows:
        r["speed_up_vs_file"] = round(base / r["wall_s"], 2)
    return rows


def markdown(rows: list[dict]) -> str:
    head = "| accounts x ad sets x days | backend | wall | audience-days/s | s per account | speed-up | peak memory |"
    out = [head, "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        out.append(
            f"| {r['accounts']} x {r['adsets_per_account']} x {r['days']} | {r['backend']} | {r['wall_s']:.1f} s "
            f"| {r['audience_days_per_s']:,} | {r['s_per_account']:.2f} | {r['speed_up_vs_file']:.2f}x "
            f"| {r['peak_mb']:,} MB |"
        )
    return "\n".join(out)


def _size(text: str) -> tuple[int, int]:
    try:
        accounts, adsets = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected ACCOUNTSxADSETS, e.g. 50x400") from None
    if accounts < 1 or adsets < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: accounts and ad sets must be 1 or more")
    return accounts, adsets


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", type=_size, default=[(4, 400), (8, 500)], metavar="NxM")
    parser.add_argument("--days", type=int, default=DAYS)
    parser.add_argument("--concurrency", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--no-postgres", action="store_true", help="skip PostgreSQL even when it is installed")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    rows = []
    for accounts, adsets in args.sizes:
        with tempfile.TemporaryDirectory(prefix="audience_bench_accounts_") as tmp:
            print(f"{accounts} accounts x {adsets} ad sets x {args.days} days ...", file=sys.stderr, flush=True)
            rows += one_size(Path(tmp), accounts, adsets, args.days, args.concurrency, not args.no_postgres)
    print(markdown(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
