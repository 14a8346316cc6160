"""Helpers for the Claude analysis layer tests: runs with a `claude` resource, responders for the fake.

A run here is the real `audience_engine_job` of the real Definitions, in-process, with the
`claude` resource configured per run through run_config (the conftest helpers build the rest).
Responders answer the fake Anthropic server from the data document each request carries.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest

from audience_assets_tests.conftest import (
    JOB,
    REPO_ROOT,
    SAMPLE_DECISION_DATE,
    SMALL,
    DayRuns,
    failure_messages,
    query,
    run_config,
    run_day,
)
from audience_assets_tests.fakes.anthropic_server import FakeAnthropic, json_reply

D = SAMPLE_DECISION_DATE
SAMPLE = {"kind": "sample", "sample_adsets": SMALL}
# A key that would be unmistakable anywhere it leaked.
API_KEY = "sk-test-LEAKCANARY-7f3a9c"
BATCH = 10
PROMPT_FILE = REPO_ROOT / "prompts" / "audience_analysis" / "v1.md"
MESSAGES = "/v1/messages"

Responder = Callable[[dict[str, Any]], Any]


# --------------------------------------------------------------------------- running the graph


def claude_config(fake: FakeAnthropic | None = None, **overrides: Any) -> dict[str, Any]:
    """The `claude` resource config: pointed at the fake, or (fake=None) with no API key at all."""
    if fake is None:
        cfg: dict[str, Any] = {"api_key": None, "base_url": None}
    else:
        cfg = {
            "api_key": API_KEY,
            "base_url": fake.base_url,
            "max_retries": 1,
            "timeout_seconds": 2,
            "batch_size": BATCH,
            "mode": "sync",
        }
    cfg.update(overrides)
    return cfg


def run_job(
    db: Path,
    *,
    claude: dict[str, Any] | None,
    source: dict[str, Any] | None = None,
    overrides: dict[str, Any] | None = None,
    tags: dict[str, str] | None = None,
    day: date = D,
    out_dir: Path | None = None,
) -> DayRuns:
    """Materialise the whole job for one decision date (every account); claude=None leaves the
    resource as defined."""
    cfg = run_config(db, source=source or SAMPLE, overrides=overrides, out_dir=out_dir)
    if claude is not None:
        cfg["resources"]["claude"] = {"config": claude}
    return run_day(JOB, day, cfg, tags=tags)


def run_ok(db: Path, **kw: Any) -> DayRuns:
    result = run_job(db, **kw)
    assert result.success, failure_messages(result)
    return result


_BASELINES: dict[str, Path] = {}


def baseline_db(
    tmp_path_factory: pytest.TempPathFactory,
    source: dict[str, Any] | None = None,
    overrides: dict[str, Any] | None = None,
) -> Path:
    """A warehouse materialised WITHOUT an API key (template only), once per session per input."""
    key = json.dumps([source or SAMPLE, overrides or {}], sort_keys=True)
    if key not in _BASELINES:
        db = tmp_path_factory.mktemp("analysis_baseline") / "w.duckdb"
        run_ok(db, claude=claude_config(None), source=source, overrides=overrides)
        _BASELINES[key] = db
    return _BASELINES[key]


# --------------------------------------------------------------------------- reading results


def recommendations(db: Path, day: date = D) -> pl.DataFrame:
    return query(db, "SELECT * FROM recommendations WHERE decision_date = ? ORDER BY audience_id", [day])


def analysis_rows(db: Path, day: date = D) -> pl.DataFrame:
    return query(db, "SELECT * FROM analysis WHERE decision_date = ? ORDER BY adset_id", [day])


def calls_for(db: Path, run_id: str) -> pl.DataFrame:
    return query(db, "SELECT * FROM llm_calls WHERE run_id = ? ORDER BY batch_index", [run_id])


def actions(db: Path, day: date = D) -> dict[str, tuple[str, int, float | None]]:
    """audience_id -> (action, scale_percentage, new_daily_budget) of the delivered recommendations."""
    return {
        r["audience_id"]: (r["action"], r["scale_percentage"], r["new_daily_budget"])
        for r in recommendations(db, day).iter_rows(named=True)
    }


def by_id(frame: pl.DataFrame, key: str = "adset_id") -> dict[str, dict[str, Any]]:
    return {r[key]: r for r in frame.iter_rows(named=True)}


def message_posts(fake: FakeAnthropic) -> list[dict[str, Any]]:
    """Every POST /v1/messages the fake received (retries included), with its status."""
    return [r for r in fake.requests if r["method"] == "POST" and r["path"] == MESSAGES]


def request_doc(params: dict[str, Any]) -> dict[str, Any]:
    """The data document of a Messages request: {"currency", "audiences": [...]}."""
    return json.loads(params["messages"][0]["content"][0]["text"])


def request_bodies(fake: FakeAnthropic) -> list[dict[str, Any]]:
    """The Messages params of every request sent: sync POSTs (retries included) and batch entries."""
    bodies = []
    for r in fake.requests:
        if r["method"] != "POST" or not isinstance(r["json"], dict):
            continue
        if r["path"] == MESSAGES:
            bodies.append(r["json"])
        elif r["path"] == MESSAGES + "/batches":
            bodies += [x["params"] for x in r["json"]["requests"]]
    return bodies


def batch_refs(fake: FakeAnthropic) -> list[list[str]]:
    """The refs of each distinct request payload, in the order first sent (one entry per batch)."""
    seen: dict[str, list[str]] = {}
    for body in request_bodies(fake):
        text = body["messages"][0]["content"][0]["text"]
        if text not in seen:
            seen[text] = [a["ref"] for a in json.loads(text)["audiences"]]
    return list(seen.values())


def text_hits(db: Path, needle: str) -> list[tuple[str, str]]:
    """(table, column) of every column of every table whose text form contains needle."""
    hits = []
    with duckdb.connect(str(db), read_only=True) as conn:
        columns = conn.execute(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'main'"
        ).fetchall()
        tables: dict[str, list[str]] = {}
        for table, column in columns:
            tables.setdefault(table, []).append(column)
        for table, cols in tables.items():
            counts = ", ".join(f'count(*) FILTER (WHERE CAST("{c}" AS VARCHAR) LIKE $1)' for c in cols)
            row = conn.execute(f'SELECT {counts} FROM "{table}"', [f"%{needle}%"]).fetchone()
            hits += [(table, c) for c, n in zip(cols, row, strict=True) if n]
    return hits


# --------------------------------------------------------------------------- responders


def explanation_for(record: dict[str, Any]) -> str:
    """A faithful explanation: every figure is the input's, rounded for display."""
    m = record["metrics"]
    if m["roas"] is None or m["account_avg_roas"] is None:
        return f"Claude ({record['ref']}): too little data to judge the {record['action']} decision."
    return (
        f"Claude ({record['ref']}): ROAS {m['roas']:.2f} against the account average of "
        f"{m['account_avg_roas']:.2f} supports {record['action']}."
    )


def faithful_answer(record: dict[str, Any]) -> dict[str, Any]:
    m = record["metrics"]
    cited = []
    if m["roas"] is not None and m["account_avg_roas"] is not None:
        cited = [{"name": "roas", "value": m["roas"]}, {"name": "account_avg_roas", "value": m["account_avg_roas"]}]
    return {
        "ref": record["ref"],
        "assessment": "agree" if cited else "insufficient_data",
        "explanation": explanation_for(record),
        "risk_flags": [],
        "alternatives": [],
        "cited_metrics": cited,
    }


def batch_index(doc: dict[str, Any]) -> int:
    """Which batch of the (single-account) run a request is: refs a1..a10 are 0, a11..a20 are 1, ..."""
    return (int(doc["audiences"][0]["ref"][1:]) - 1) // BATCH


def responder(per_batch: Callable[[int, dict[str, Any], list[dict[str, Any]]], Any] | None = None) -> Responder:
    """Answers every ref faithfully; per_batch(index, doc, answers) may return another reply instead."""

    def respond(params: dict[str, Any]) -> Any:
        doc = request_doc(params)
        answers = [faithful_answer(r) for r in doc["audiences"]]
        if per_batch is not None:
            reply = per_batch(batch_index(doc), doc, answers)
            if reply is not None:
                return reply
        return json_reply({"audiences": answers})

    return respond


def records_by_ref(fake: FakeAnthropic) -> dict[str, dict[str, Any]]:
    """ref -> the record Claude was shown (sync or batch requests; one account, so refs are unique)."""
    return {record["ref"]: record for body in request_bodies(fake) for record in request_doc(body)["audiences"]}
