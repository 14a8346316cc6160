"""Benchmark: what the Claude analysis layer sends and receives per analysed audience.

Runs the real graph on the embedded sample account with the analysis layer pointed at the local
fake Messages API (audience_assets_tests/fakes), which answers every audience with a short,
faithful explanation. Reports requests, characters and tokens per analysed audience. The fake
counts tokens as characters / 4 (no tokenizer is available offline), so treat the token figures
as estimates of the real API's; the character counts are exact.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import dagster as dg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "audience_assets_tests"))

from fakes.anthropic_server import FakeAnthropic, json_reply  # noqa: E402

from audience_assets.definitions import defs  # noqa: E402
from audience_assets.defs.automation import MAIN_JOB  # noqa: E402
from audience_assets.defs.common import ACCOUNTS, partition_key  # noqa: E402
from audience_assets.sample.simulator import SAMPLE_ACCOUNT  # noqa: E402


def responder(request: dict) -> object:
    data = json.loads(request["messages"][0]["content"][0]["text"])
    answers = []
    for a in data["audiences"]:
        m = a["metrics"]
        roas = m.get("roas")
        text = (
            f"ROAS {roas:.2f} is {m['normalized_roas']:.2f}x the account average over {m['window_days']} days; "
            f"the rules chose {a['action']} and the figures support it."
            if roas is not None and m.get("normalized_roas") is not None
            else f"The rules chose {a['action']}."
        )
        answers.append(
            {
                "ref": a["ref"],
                "assessment": "agree",
                "explanation": text,
                "risk_flags": [],
                "alternatives": [],
                "cited_metrics": [{"name": "roas", "value": roas}] if roas is not None else [],
            }
        )
    return json_reply({"audiences": answers})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--audiences", type=int, default=120)
    parser.add_argument("--batch-size", type=int, default=20)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="audience_bench_llm_"))
    with FakeAnthropic(responder=responder) as fake:
        run_config = {
            "resources": {
                "duckdb": {"config": {"database": str(work / "w.duckdb")}},
                "source": {"config": {"kind": "sample", "sample_adsets": args.audiences}},
                "output": {"config": {"directory": str(work / "out"), "reports_directory": str(work / "out")}},
                "claude": {
                    "config": {
                        "api_key": "bench-key",
                        "base_url": fake.base_url,
                        "batch_size": args.batch_size,
                        "mode": "sync",
                    }
                },
            },
            "loggers": {"console": {"config": {"log_level": "CRITICAL"}}},
        }
        with dg.DagsterInstance.ephemeral() as instance:
            instance.add_dynamic_partitions(ACCOUNTS.name, [SAMPLE_ACCOUNT])
            result = defs.resolve_job_def(MAIN_JOB).execute_in_process(
                partition_key=partition_key("2026-11-26", SAMPLE_ACCOUNT), run_config=run_config, instance=instance
            )
        assert result.success
        bodies = list(fake.message_requests)
    import duckdb

    con = duckdb.connect(str(work / "w.duckdb"), read_only=True)
    calls = con.execute(
        """SELECT sum(audiences), sum(input_tokens), sum(output_tokens), sum(cache_creation_input_tokens),
                  sum(cache_read_input_tokens), count(*) FROM llm_calls"""
    ).fetchone()
    accepted = con.execute("SELECT count(*) FROM analysis WHERE explanation_source = 'claude'").fetchone()[0]
    audiences, tin, tout, ccreate, cread, ncalls = calls
    system_chars = len(bodies[0]["system"][0]["text"]) if bodies else 0
    data_chars = sum(len(b["messages"][0]["content"][0]["text"]) for b in bodies)
    print(
        json.dumps(
            {
                "audiences_in_account": args.audiences,
                "audiences_analysed": int(audiences),
                "accepted_from_claude": int(accepted),
                "requests": int(ncalls),
                "batch_size": args.batch_size,
                "system_prompt_chars": system_chars,
                "data_chars_per_audience": round(data_chars / audiences, 1),
                "input_tokens_per_audience": round(tin / audiences, 1),
                "output_tokens_per_audience": round(tout / audiences, 1),
                "cache_creation_tokens": int(ccreate),
                "cache_read_tokens": int(cread),
                "token_counts": "fake server estimate: characters / 4",
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
