"""Benchmark: N audiences x D days through `audience-engine recommend`, end to end.

Generates CSV exports with the sample simulator, then runs the real CLI in a child process
on a fresh warehouse and reports wall time and the child's peak memory (max RSS).
Usage: python benchmarks/bench_recommend.py --audiences 20000 --days 30
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from audience_assets.sample.simulator import write_sample_csvs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--audiences", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--keep", help="keep the work folder here instead of a temporary one")
    args = parser.parse_args()

    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="audience_bench_"))
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    insights, audiences = write_sample_csvs(
        work, seed=args.seed, n_adsets=args.audiences, days=args.days, prelaunched_share=1.0
    )
    gen_s = time.perf_counter() - t0
    rows = sum(1 for _ in insights.open()) - 1
    size_mb = insights.stat().st_size / 1e6
    print(
        f"generated {args.audiences:,} audiences x {args.days} days: {rows:,} rows, {size_mb:.1f} MB CSV in {gen_s:.1f}s",
        file=sys.stderr,
    )

    cli = Path(sys.executable).with_name("audience-engine")
    cmd = [
        str(cli),
        "recommend",
        "--insights",
        str(insights),
        "--audiences",
        str(audiences),
        "--db",
        str(work / "warehouse.duckdb"),
        "--out",
        str(work / "recs.json"),
        "--quiet",
    ]
    env = {**os.environ, "DAGSTER_HOME": str(work / "dagster_home")}
    (work / "dagster_home").mkdir(exist_ok=True)
    t1 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t1
    if proc.returncode != 0:
        print(proc.stderr, file=sys.stderr)
        return proc.returncode
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    recs = json.loads((work / "recs.json").read_text())
    result = {
        "audiences": args.audiences,
        "days": args.days,
        "insight_rows": rows,
        "recommendations": len(recs["recommendations"]),
        "summary": recs["summary"],
        "wall_seconds": round(wall, 2),
        "peak_rss_mb": round(peak_mb, 1),
        "cpus": os.cpu_count(),
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
