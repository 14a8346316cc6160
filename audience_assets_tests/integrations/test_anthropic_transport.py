"""How the analysis layer talks to the API: retries on 429/529, timeouts, and the Message Batches API.

Every failure stays inside its batch: those audiences get the template explanation with the
reason, the run succeeds and the recommendations (with unchanged actions) are delivered.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from audience_assets_tests.analysis_helpers import (
    MESSAGES,
    actions,
    analysis_rows,
    baseline_db,
    batch_refs,
    calls_for,
    claude_config,
    explanation_for,
    message_posts,
    records_by_ref,
    responder,
    run_ok,
)
from audience_assets_tests.conftest import check_evaluations, materialised_keys
from audience_assets_tests.fakes.anthropic_server import (
    FakeAnthropic,
    batch_error,
    delay_reply,
    error_reply,
    json_reply,
)


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    return baseline_db(tmp_path_factory)


def by_ref(db: Path) -> dict[str, dict]:
    return {r["ref"]: r for r in analysis_rows(db).iter_rows(named=True) if r["ref"] is not None}


def assert_delivered_unchanged(db: Path, result, base: Path) -> None:
    assert result.success
    assert "recommendations" in materialised_keys(result)
    assert check_evaluations(result)[("recommendations", "guardrails")].passed
    assert actions(db) == actions(base)


# --------------------------------------------------------------------------- 6. 429 / 529


def test_rate_limit_and_overload_are_retried_and_the_answer_is_used(tmp_path, base):
    db = tmp_path / "w.duckdb"
    with FakeAnthropic(responder()) as fake:
        fake.queue(
            error_reply(429, headers={"retry-after-ms": "20", "retry-after": "30"}),
            error_reply(529, headers={"retry-after-ms": "20"}),
        )
        result = run_ok(db, claude=claude_config(fake, max_retries=2))
    posts = message_posts(fake)
    assert [p["status"] for p in posts[:3]] == [429, 529, 200]
    # The SDK retried the same request (its retry counter header says so) after the hinted wait.
    assert [p["headers"].get("x-stainless-retry-count") for p in posts[:3]] == ["0", "1", "2"]
    assert posts[0]["json"] == posts[1]["json"] == posts[2]["json"]
    assert posts[1]["time"] - posts[0]["time"] >= 0.015
    assert all(p["status"] == 200 for p in posts[3:])
    rows = analysis_rows(db).filter(pl.col("analysed"))
    assert set(rows["explanation_source"]) == {"claude"}
    shown = records_by_ref(fake)
    assert all(r["explanation"] == explanation_for(shown[r["ref"]]) for r in rows.iter_rows(named=True))
    calls = calls_for(db, result.run_id)
    assert set(calls["validation"]) == {"ok"}
    # The logged request id is the one of the answer that was used, not of a failed attempt.
    assert calls.filter(pl.col("batch_index") == 0)["request_id"].item() == posts[2]["request_id"]
    assert_delivered_unchanged(db, result, base)


def test_overload_beyond_max_retries_falls_back_and_the_run_still_delivers(tmp_path, base):
    db = tmp_path / "w.duckdb"
    with FakeAnthropic(responder()) as fake:
        fake.queue(error_reply(529), error_reply(529))
        result = run_ok(db, claude=claude_config(fake, max_retries=1))
    posts = message_posts(fake)
    assert [p["status"] for p in posts[:2]] == [529, 529]
    first_batch = batch_refs(fake)[0]
    rows = by_ref(db)
    for ref in first_batch:
        assert rows[ref]["explanation_source"] == "template"
        assert rows[ref]["fallback_reason"].startswith("http 529"), rows[ref]["fallback_reason"]
    later = [r for ref, r in rows.items() if ref not in first_batch]
    assert later and all(r["explanation_source"] == "claude" for r in later)
    calls = calls_for(db, result.run_id)
    failed = calls.filter(pl.col("batch_index") == 0).row(0, named=True)
    assert failed["fallback_reason"].startswith("http 529") and failed["validation"] == "failed"
    assert failed["input_tokens"] == 0 and failed["output_tokens"] == 0
    assert_delivered_unchanged(db, result, base)


def test_every_call_failing_still_delivers_template_recommendations(tmp_path, base):
    db = tmp_path / "w.duckdb"
    with FakeAnthropic(lambda params: error_reply(500, message="down")) as fake:
        result = run_ok(db, claude=claude_config(fake, max_retries=0))
    rows = analysis_rows(db)
    assert set(rows["explanation_source"]) == {"template"}
    assert set(rows.filter(pl.col("analysed"))["fallback_reason"]) == {"http 500: InternalServerError"}
    assert len(message_posts(fake)) == len(batch_refs(fake))  # no retries with max_retries 0
    assert_delivered_unchanged(db, result, base)


# --------------------------------------------------------------------------- 7. timeout


def test_a_timeout_falls_back_with_timeout(tmp_path, base):
    db = tmp_path / "w.duckdb"
    with FakeAnthropic(responder()) as fake:
        fake.queue(delay_reply(2.0, json_reply({"audiences": []})))
        result = run_ok(db, claude=claude_config(fake, max_retries=0, timeout_seconds=0.4))
    first_batch = batch_refs(fake)[0]
    rows = by_ref(db)
    for ref in first_batch:
        assert rows[ref]["explanation_source"] == "template" and rows[ref]["fallback_reason"] == "timeout"
    assert all(r["explanation_source"] == "claude" for ref, r in rows.items() if ref not in first_batch)
    call = calls_for(db, result.run_id).filter(pl.col("batch_index") == 0).row(0, named=True)
    assert call["fallback_reason"] == "timeout" and call["stop_reason"] is None
    assert 350 <= call["latency_ms"] < 2000
    # max_retries 0: the timed-out request was not sent again.
    assert len(message_posts(fake)) == len(batch_refs(fake))
    assert_delivered_unchanged(db, result, base)


# --------------------------------------------------------------------------- 8. Message Batches


def _batch_paths(fake: FakeAnthropic) -> list[tuple[str, str]]:
    return [(r["method"], r["path"]) for r in fake.requests]


def _errored_second(params):
    refs = [a["ref"] for a in json.loads(params["messages"][0]["content"][0]["text"])["audiences"]]
    if refs[0] == "a11":  # the second batch of ten
        return batch_error("overloaded_error")
    return responder()(params)


@pytest.mark.parametrize(
    ("mode", "tags"),
    [("batch", None), ("auto", {"dagster/schedule_name": "audience_engine_daily"})],
    ids=["batch", "auto-scheduled"],
)
def test_batch_mode_uses_the_message_batches_api(tmp_path, base, mode, tags):
    db = tmp_path / "w.duckdb"
    with FakeAnthropic(_errored_second, poll_rounds=2) as fake:
        result = run_ok(db, claude=claude_config(fake, mode=mode, batch_poll_seconds=0.01), tags=tags)
    paths = _batch_paths(fake)
    assert ("POST", MESSAGES) not in paths
    creates = [r for r in fake.requests if (r["method"], r["path"]) == ("POST", MESSAGES + "/batches")]
    assert len(creates) == 1
    batch_id = fake.requests[paths.index(("POST", MESSAGES + "/batches")) + 1]["path"].rsplit("/", 1)[-1]
    retrieves = [p for p in paths if p == ("GET", f"{MESSAGES}/batches/{batch_id}")]
    assert len(retrieves) >= 3  # two polls in progress, then ended (+ the results call's own retrieve)
    assert paths[-1] == ("GET", f"{MESSAGES}/batches/{batch_id}/results")
    entries = creates[0]["json"]["requests"]
    refs = batch_refs(fake)
    assert len(entries) == len(refs) == 4
    calls = calls_for(db, result.run_id)
    assert set(calls["mode"]) == {"batch"}
    assert set(calls["cache_key"]) == {e["custom_id"] for e in entries}
    succeeded = calls.filter(pl.col("batch_index") != 1)
    assert set(succeeded["request_id"]) == {batch_id}
    rows = by_ref(db)
    shown = records_by_ref(fake)
    for index, batch in enumerate(refs):
        for ref in batch:
            if index == 1:
                assert rows[ref]["explanation_source"] == "template"
                assert rows[ref]["fallback_reason"] == "batch result errored"
            else:
                assert rows[ref]["explanation_source"] == "claude"
                assert rows[ref]["explanation"] == explanation_for(shown[ref])
    errored = calls.filter(pl.col("batch_index") == 1).row(0, named=True)
    assert errored["fallback_reason"] == "batch result errored" and errored["validation"] == "failed"
    ok = calls.filter(pl.col("batch_index") == 0).row(0, named=True)
    assert ok["input_tokens"] > 0 and ok["output_tokens"] > 0 and ok["stop_reason"] == "end_turn"
    assert_delivered_unchanged(db, result, base)


def test_auto_mode_of_a_manual_run_uses_the_synchronous_api(tmp_path, base):
    db = tmp_path / "w.duckdb"
    with FakeAnthropic(responder()) as fake:
        result = run_ok(db, claude=claude_config(fake, mode="auto", batch_poll_seconds=0.01))
    assert {(r["method"], r["path"]) for r in fake.requests} == {("POST", MESSAGES)}
    assert set(calls_for(db, result.run_id)["mode"]) == {"sync"}
    assert_delivered_unchanged(db, result, base)


def test_a_batch_that_never_ends_is_cancelled_and_falls_back(tmp_path, base):
    db = tmp_path / "w.duckdb"
    with FakeAnthropic(responder(), poll_rounds=10_000) as fake:
        result = run_ok(
            db, claude=claude_config(fake, mode="batch", batch_poll_seconds=0.01, batch_max_wait_seconds=0.3)
        )
    assert any(r["method"] == "POST" and r["path"].endswith("/cancel") for r in fake.requests)
    analysed = analysis_rows(db).filter(pl.col("analysed"))
    assert set(analysed["explanation_source"]) == {"template"}
    assert set(analysed["fallback_reason"]) == {"batch timed out"}
    assert_delivered_unchanged(db, result, base)
