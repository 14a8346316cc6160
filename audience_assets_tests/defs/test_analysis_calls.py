"""What the analysis layer records and what it spends: the llm_calls log, the key, the cache, the budget."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from audience_assets.engine.analysis import response_schema
from audience_assets_tests.analysis_helpers import (
    API_KEY,
    PROMPT_FILE,
    analysis_rows,
    batch_refs,
    calls_for,
    claude_config,
    message_posts,
    request_doc,
    responder,
    run_ok,
    text_hits,
)
from audience_assets_tests.conftest import materialisation_metadata, query
from audience_assets_tests.fakes.anthropic_server import FakeAnthropic, json_reply

PROMPT_SHA = hashlib.sha256(PROMPT_FILE.read_bytes()).hexdigest()
USAGE_OVERRIDE = {"input_tokens": 4321, "output_tokens": 123}


@dataclass
class Logged:
    db: Path
    result: dg.ExecuteInProcessResult
    fake: FakeAnthropic


def _usage_on_second(index, doc, answers):
    return json_reply({"audiences": answers}, usage=USAGE_OVERRIDE) if index == 1 else None


@pytest.fixture(scope="module")
def logged(tmp_path_factory) -> Logged:
    db = tmp_path_factory.mktemp("logged") / "w.duckdb"
    with FakeAnthropic(responder(_usage_on_second)) as fake:
        result = run_ok(db, claude=claude_config(fake))
    return Logged(db, result, fake)


# --------------------------------------------------------------------------- 13. llm_calls


def test_requests_carry_the_versioned_prompt_marked_for_caching_and_the_schema(logged):
    posts = message_posts(logged.fake)
    assert len(posts) == 4
    for p in posts:
        body = p["json"]
        assert body["model"] == "claude-haiku-5-5"
        assert body["system"] == [
            {"type": "text", "text": PROMPT_FILE.read_text(), "cache_control": {"type": "ephemeral"}}
        ]
        assert body["output_config"]["format"] == {"type": "json_schema", "schema": response_schema()}
        assert body["max_tokens"] == 4096
        assert len(request_doc(body)["audiences"]) <= 10
    assert set(logged.fake.api_keys) == {API_KEY}  # the key was really used...


def test_llm_calls_rows_record_prompt_model_request_id_usage_latency_and_stop_reason(logged):
    calls = calls_for(logged.db, logged.result.run_id)
    posts = message_posts(logged.fake)
    refs = batch_refs(logged.fake)
    assert calls.height == 4
    assert calls["batch_index"].to_list() == [0, 1, 2, 3]
    assert calls["audiences"].to_list() == [len(r) for r in refs]
    assert set(calls["decision_date"]) == {analysis_rows(logged.db)["decision_date"][0]}
    assert set(calls["prompt_version"]) == {"audience_analysis/v1"}
    assert set(calls["prompt_sha256"]) == {PROMPT_SHA}
    assert set(calls["model"]) == {"claude-haiku-5-5"}
    assert calls["request_id"].to_list() == [p["request_id"] for p in posts]
    assert set(calls["stop_reason"]) == {"end_turn"}
    assert set(calls["mode"]) == {"sync"} and not calls["cached"].any()
    assert set(calls["validation"]) == {"ok"} and calls["fallback_reason"].null_count() == 4
    assert calls["accepted_audiences"].to_list() == calls["audiences"].to_list()
    assert (calls["latency_ms"] >= 0).all() and calls["latency_ms"].dtype == pl.Int64
    # Prompt caching, as the fake simulates it: the first call writes the system prompt, the rest read it.
    cached_tokens = len(PROMPT_FILE.read_text()) // 4
    assert calls["cache_creation_input_tokens"].to_list() == [cached_tokens, 0, 0, 0]
    assert calls["cache_read_input_tokens"].to_list() == [0, cached_tokens, cached_tokens, cached_tokens]
    assert (calls["input_tokens"] > 0).all() and (calls["output_tokens"] > 0).all()
    second = calls.row(1, named=True)
    assert (second["input_tokens"], second["output_tokens"]) == (4321, 123)
    # The asset's metadata adds them up.
    meta = materialisation_metadata(logged.result, "analysis")
    assert meta["input_tokens"] == calls["input_tokens"].sum()
    assert meta["output_tokens"] == calls["output_tokens"].sum()
    assert meta["prompt_version"] == "audience_analysis/v1" and meta["prompt_sha256"] == PROMPT_SHA
    assert meta["model"] == "claude-haiku-5-5"
    assert meta["calls_logged"] == 4
    assert meta["input_tokens_per_audience"] == round(meta["input_tokens"] / meta["audiences_analysed"], 1)
    rows = analysis_rows(logged.db)
    assert set(rows["prompt_sha256"]) == {PROMPT_SHA} and set(rows["prompt_version"]) == {"audience_analysis/v1"}


def test_the_api_key_is_stored_nowhere(logged):
    tables = set(query(logged.db, "SELECT table_name FROM information_schema.tables")["table_name"])
    assert {"llm_calls", "llm_cache", "analysis", "recommendations"} <= tables
    # The scan itself works: the model name is found where it is stored.
    assert ("llm_calls", "model") in text_hits(logged.db, "claude-haiku-5-5")
    for needle in (API_KEY, "sk-test", "LEAKCANARY"):
        assert text_hits(logged.db, needle) == [], needle
    for event in logged.result.get_asset_materialization_events():
        text = repr(event.materialization.metadata)
        assert "sk-test" not in text and "LEAKCANARY" not in text, event.asset_key
    for check in logged.result.get_asset_check_evaluations():
        assert "LEAKCANARY" not in repr(check.metadata)
    for event in logged.result.all_events:
        assert "LEAKCANARY" not in (event.message or ""), event.event_type_value
    written = [p for p in (logged.db.parent / "recommendations").rglob("*") if p.is_file()]
    assert any(p.suffix == ".html" for p in written)  # the report is checked too
    for path in written:
        assert "LEAKCANARY" not in path.read_text()


# --------------------------------------------------------------------------- 12. cache


@dataclass
class Cached:
    db: Path
    fake: FakeAnthropic
    first: dg.ExecuteInProcessResult
    again: dg.ExecuteInProcessResult
    other_model: dg.ExecuteInProcessResult
    posts: list[int]  # POST /v1/messages seen after each run
    explanations: list[dict[str, str]]  # adset -> explanation after each run


@pytest.fixture(scope="module")
def cached(tmp_path_factory) -> Cached:
    db = tmp_path_factory.mktemp("cached") / "w.duckdb"
    posts, explanations, results = [], [], []
    with FakeAnthropic(responder()) as fake:
        for model in ("claude-haiku-5-5", "claude-haiku-5-5", "claude-other-model"):
            results.append(run_ok(db, claude=claude_config(fake, model=model)))
            posts.append(len(message_posts(fake)))
            rows = analysis_rows(db)
            explanations.append(dict(zip(rows["adset_id"], rows["explanation"], strict=True)))
    return Cached(db, fake, *results, posts=posts, explanations=explanations)


def test_rematerialising_the_same_partition_is_answered_from_the_cache(cached):
    assert cached.posts[0] == 4
    assert cached.posts[1] == cached.posts[0]  # no new request
    assert cached.explanations[1] == cached.explanations[0]
    calls = calls_for(cached.db, cached.again.run_id)
    assert calls.height == 4
    assert set(calls["mode"]) == {"cache"} and calls["cached"].all()
    assert set(calls["validation"]) == {"ok"}
    assert calls["request_id"].null_count() == 4
    assert calls["input_tokens"].sum() == 0 and calls["output_tokens"].sum() == 0
    meta = materialisation_metadata(cached.again, "analysis")
    assert meta["cache_hits"] == 4 and meta["llm_calls"] == 0
    rows = analysis_rows(cached.db)
    assert rows.filter(pl.col("analysed"))["explanation_source"].unique().to_list() == ["claude"]
    # Keys of the cached calls are those written by the first run.
    first = calls_for(cached.db, cached.first.run_id)
    assert calls["cache_key"].to_list() == first["cache_key"].to_list()


def test_changing_the_model_misses_the_cache(cached):
    assert cached.posts[2] == cached.posts[1] + 4
    new = message_posts(cached.fake)[cached.posts[1] :]
    assert {p["json"]["model"] for p in new} == {"claude-other-model"}
    calls = calls_for(cached.db, cached.other_model.run_id)
    assert set(calls["mode"]) == {"sync"} and not calls["cached"].any()
    assert set(calls["model"]) == {"claude-other-model"}
    first = calls_for(cached.db, cached.first.run_id)
    assert not set(calls["cache_key"]) & set(first["cache_key"])
    cache = query(cached.db, "SELECT model, count(*) AS n FROM llm_cache GROUP BY model ORDER BY model")
    assert cache.rows() == [("claude-haiku-5-5", 4), ("claude-other-model", 4)]
    assert set(analysis_rows(cached.db)["model"]) == {"claude-other-model"}


# --------------------------------------------------------------------------- 14. token budget


def test_run_token_budget_sends_only_what_fits_and_falls_back_for_the_rest(tmp_path, logged):
    # The budget is estimated as (system + data characters) / 4 + max_tokens per request: allow
    # exactly the first batch of the same sample (its request is known from the logged run).
    first = message_posts(logged.fake)[0]["json"]
    estimate = (len(first["system"][0]["text"]) + len(first["messages"][0]["content"][0]["text"])) // 4 + 4096
    db = tmp_path / "w.duckdb"
    with FakeAnthropic(responder()) as fake:
        result = run_ok(db, claude=claude_config(fake, run_token_budget=estimate + 50))
    posts = message_posts(fake)
    assert len(posts) == 1
    assert posts[0]["json"]["messages"] == first["messages"]
    calls = calls_for(db, result.run_id)
    assert calls.height == 4
    assert calls.row(0, named=True)["fallback_reason"] is None
    over = calls.filter(pl.col("batch_index") > 0)
    assert set(over["fallback_reason"]) == {"run token budget exhausted"}
    assert over["request_id"].null_count() == 3 and over["input_tokens"].sum() == 0
    sent = set(batch_refs(fake)[0])
    for r in analysis_rows(db).filter(pl.col("analysed")).iter_rows(named=True):
        if r["ref"] in sent:
            assert r["explanation_source"] == "claude"
        else:
            assert r["explanation_source"] == "template" and "token budget" in r["fallback_reason"]
    assert materialisation_metadata(result, "analysis")["llm_calls"] == 1
    assert result.success
