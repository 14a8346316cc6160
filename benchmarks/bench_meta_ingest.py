"""Benchmark: Meta ingestion throughput against the local fake Graph API.

Builds fake ad accounts (audience_assets_tests/fakes/graph_server.py), then pulls them through the
real facebook-business SDK with the project's MetaClient and extract_meta, exactly as the
raw_insights asset does: sync for the lookback window, async report runs for a first backfill.
Reports rows per second and requests per 1,000 ad-set days. The fake answers instantly, so the
figures measure the client (SDK, paging, parsing, canonical purchases), not Meta's latency.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import date, timedelta

from audience_assets.integrations.meta import MetaClient, MetaSettings
from audience_assets.sources.meta import DEFAULT_PURCHASE_PRIORITY, extract_meta
from audience_assets_tests.fakes.graph_server import FakeGraph, build_account


def run(adsets: int, days: int, page_size: int, accounts: int) -> dict:
    end = date(2026, 11, 25)
    data = {
        f"act_{1000 + i}": build_account(
            f"act_{1000 + i}", "INR" if i % 2 == 0 else "JPY", n_adsets=adsets, days=days, end_date=end, seed=i
        )
        for i in range(accounts)
    }
    out = {}
    with FakeGraph(data) as fake:
        for label, lookback, initial in (("backfill (async)", days, days), ("lookback 7 days (sync)", 7, days)):
            client = MetaClient(
                MetaSettings(
                    access_token="bench", graph_url=fake.base_url, page_size=page_size, async_poll_seconds=0.0
                ),
                sleep=lambda s: None,
            )
            stored = {} if label.startswith("backfill") else {a: (end - timedelta(days=days), end) for a in data}
            t0 = time.perf_counter()
            ext = extract_meta(
                client,
                list(data),
                end + timedelta(days=1),
                stored,
                lookback,
                initial,
                DEFAULT_PURCHASE_PRIORITY,
                with_metadata=False,
            )
            seconds = time.perf_counter() - t0
            if ext.failures:
                raise SystemExit(f"ingestion failed: {ext.failures}")
            rows = ext.insights.height if ext.insights is not None else 0
            adset_days = max(rows, 1)
            out[label] = {
                "rows": rows,
                "seconds": round(seconds, 2),
                "rows_per_second": round(rows / seconds, 1),
                "requests": client.requests_made,
                "requests_per_1000_adset_days": round(1000 * client.requests_made / adset_days, 2),
                "failures": ext.failures,
            }
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--adsets", type=int, default=200, help="ad sets per account")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--accounts", type=int, default=2)
    parser.add_argument("--page-size", type=int, default=500)
    args = parser.parse_args()
    print(json.dumps(run(args.adsets, args.days, args.page_size, args.accounts), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
