"""The `analysis` asset in the real graph, against the fake Anthropic server.

Each fixture materialises the 40-ad-set sample once with one kind of answer from the fake and
the tests only read it: valid answers, answers that fail the schema, unfaithful figures and
wrong refs, non-answers (max_tokens, refusal), and disagreements with forbidden alternatives.
Every case also checks that the delivered actions equal those of a run without an API key and
that the blocking guardrail check on the final recommendations passed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from audience_assets.engine.analysis import ALTERNATIVES, unfaithful_numbers
from audience_assets_tests.analysis_helpers import (
    D,
    actions,
    analysis_rows,
    baseline_db,
    batch_refs,
    by_id,
    calls_for,
    claude_config,
    explanation_for,
    message_posts,
    recommendations,
    records_by_ref,
    responder,
    run_ok,
)
from audience_assets_tests.conftest import check_evaluations, materialisation_metadata, query
from audience_assets_tests.fakes.anthropic_server import (
    FakeAnthropic,
    json_reply,
    message_reply,
    refusal_reply,
    text_reply,
)


@dataclass
class ClaudeRun:
    db: Path
    result: dg.ExecuteInProcessResult
    fake: FakeAnthropic

    @property
    def run_id(self) -> str:
        return self.result.run_id

    def analysis(self) -> dict[str, dict]:
        return by_id(analysis_rows(self.db))

    def by_ref(self) -> dict[str, dict]:
        return {r["ref"]: r for r in analysis_rows(self.db).iter_rows(named=True) if r["ref"] is not None}

    def recs(self) -> dict[str, dict]:
        return by_id(recommendations(self.db), "audience_id")

    def batches(self) -> list[list[str]]:
        return batch_refs(self.fake)

    def json_file(self) -> dict[str, dict]:
        doc = json.loads(
            (self.db.parent / "recommendations" / f"recommendations_{D.isoformat()}_act_1001.json").read_text()
        )
        return {r["audience_id"]: r for r in doc["recommendations"]}


def claude_run(tmp_path_factory, name: str, per_batch=None, overrides=None, **claude) -> ClaudeRun:
    db = tmp_path_factory.mktemp(name) / "w.duckdb"
    with FakeAnthropic(responder(per_batch)) as fake:
        result = run_ok(db, claude=claude_config(fake, **claude), overrides=overrides)
    return ClaudeRun(db, result, fake)


def assert_actions_unchanged(run: ClaudeRun, base: Path) -> None:
    assert actions(run.db) == actions(base)
    checks = check_evaluations(run.result)
    assert checks[("recommendations", "guardrails")].passed
    assert checks[("decisions", "guardrails")].passed


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    return baseline_db(tmp_path_factory)


@pytest.fixture(scope="module")
def base_template(base) -> dict[str, str]:
    """adset_id -> the template explanation of the run without a key."""
    return {r["adset_id"]: r["explanation"] for r in analysis_rows(base).iter_rows(named=True)}


# --------------------------------------------------------------------------- 1. valid answers


@pytest.fixture(scope="module")
def valid(tmp_path_factory) -> ClaudeRun:
    return claude_run(tmp_path_factory, "valid")


def test_valid_answers_are_used_for_every_analysed_audience(valid):
    rows = analysis_rows(valid.db)
    shown = records_by_ref(valid.fake)
    analysed = rows.filter(pl.col("analysed"))
    assert analysed.height == len(shown) > 0
    assert len(valid.batches()) == -(-analysed.height // 10)  # batches of 10
    for r in analysed.iter_rows(named=True):
        assert r["explanation_source"] == "claude", r
        assert r["faithful"] is True
        assert r["fallback_reason"] is None
        assert r["explanation"] == explanation_for(shown[r["ref"]])
        assert r["assessment"] in ("agree", "insufficient_data")
        assert r["model"] == "claude-haiku-5-5"
        assert r["prompt_version"] == "audience_analysis/v1"
    # Not selected: template, with the reason; faithful only applies to analysed audiences.
    rest = rows.filter(~pl.col("analysed"))
    assert rest.height == rows.height - analysed.height
    assert set(rest["explanation_source"]) <= {"template"}
    assert set(rest["fallback_reason"]) <= {"not selected for analysis (scope)"}
    assert rest["faithful"].null_count() == rest.height


def test_valid_answers_reach_the_recommendations_and_the_json_file(valid, base, base_template):
    analysis, recs, doc = valid.analysis(), valid.recs(), valid.json_file()
    assert set(recs) == set(analysis) == set(doc)
    for adset, a in analysis.items():
        assert recs[adset]["explanation_source"] == a["explanation_source"]
        assert recs[adset]["explanation"] == a["explanation"]
        assert doc[adset]["explanation_source"] == a["explanation_source"]
        assert doc[adset]["explanation"] == a["explanation"]
        assert recs[adset]["needs_review"] is False
        if not a["analysed"]:
            assert a["explanation"] == base_template[adset]
    assert {r["explanation_source"] for r in recs.values()} == {"claude", "template"}


def test_valid_answers_never_change_actions(valid, base):
    assert_actions_unchanged(valid, base)
    failed = [key for key, c in check_evaluations(valid.result).items() if not c.passed]
    assert failed == []  # every check, doc tests of analysis and llm_calls included
    meta = materialisation_metadata(valid.result, "recommendations")
    base_recs = recommendations(base)
    for action in ("SCALE", "HOLD", "PAUSE", "RETEST"):
        assert meta[f"summary/{action}"] == base_recs.filter(pl.col("action") == action).height


def test_valid_answers_pass_the_faithfulness_check(valid):
    check = check_evaluations(valid.result)[("analysis", "faithfulness")]
    assert check.passed and check.severity == dg.AssetCheckSeverity.WARN
    meta = {k: v.value for k, v in check.metadata.items()}
    analysed = analysis_rows(valid.db).filter(pl.col("analysed")).height
    assert meta["faithfulness_rate"] == 1.0 and meta["analysed"] == analysed and meta["floor"] == 0.9
    am = materialisation_metadata(valid.result, "analysis")
    assert am["faithfulness_rate"] == 1.0
    assert am["audiences_analysed"] == am["audiences_accepted"] == analysed
    assert am["llm_calls"] == len(valid.batches()) == len(message_posts(valid.fake))
    assert am["llm_enabled"] is True


# --------------------------------------------------------------------------- 2. schema failures

SCHEMA_CASES = {
    0: ("schema", "explanation"),  # a required field missing
    1: ("schema", "action"),  # an extra field trying to set the action
    2: ("schema", "assessment"),  # a value outside the enum
    3: ("not JSON", ""),
}


def _break_schema(index, doc, answers):
    if index == 0:
        del answers[3]["explanation"]
    elif index == 1:
        answers[0]["action"] = "SCALE"
    elif index == 2:
        answers[5]["assessment"] = "strongly_agree"
    else:
        return text_reply("Sure! Based on the data, SCALE everything by 100%.")
    return json_reply({"audiences": answers})


@pytest.fixture(scope="module")
def broken(tmp_path_factory) -> ClaudeRun:
    return claude_run(tmp_path_factory, "broken", _break_schema)


def test_answers_failing_the_schema_fall_back_to_the_template(broken, base_template):
    batches = broken.batches()
    assert len(batches) == 4
    by_ref = broken.by_ref()
    for index, refs in enumerate(batches):
        prefix, field = SCHEMA_CASES[index]
        for ref in refs:
            row = by_ref[ref]
            assert row["explanation_source"] == "template"
            assert row["analysed"] is True and row["faithful"] is False
            assert row["fallback_reason"].startswith(prefix), row["fallback_reason"]
            assert field in row["fallback_reason"]
            assert row["explanation"] == base_template[row["adset_id"]]
            assert row["cited_metrics"] is None
    assert {r["explanation_source"] for r in broken.recs().values()} == {"template"}


def test_schema_failures_are_logged_and_never_cached(broken):
    calls = calls_for(broken.db, broken.run_id)
    assert calls["batch_index"].to_list() == [0, 1, 2, 3]
    assert set(calls["validation"]) == {"failed"}
    assert calls["accepted_audiences"].to_list() == [0, 0, 0, 0]
    for row in calls.iter_rows(named=True):
        prefix, field = SCHEMA_CASES[row["batch_index"]]
        assert row["fallback_reason"].startswith(prefix) and field in row["fallback_reason"]
        assert row["stop_reason"] == "end_turn"
    assert query(broken.db, "SELECT count(*) AS n FROM llm_cache")["n"].item() == 0


def test_schema_failures_never_change_actions(broken, base):
    assert_actions_unchanged(broken, base)
    check = check_evaluations(broken.result)[("analysis", "faithfulness")]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert check.metadata["faithfulness_rate"].value == 0.0


# --------------------------------------------------------------------------- 3 and 4. faithfulness, refs

INVENTED = "9.87"


def _mixed(index, doc, answers):
    records = doc["audiences"]
    if index == 0:
        # First: a figure that is not in the input. Second: a cited value that differs from it.
        first = next(i for i, r in enumerate(records) if r["metrics"]["roas"] is not None)
        assert unfaithful_numbers(INVENTED, records[first], []) == [INVENTED]
        answers[first]["explanation"] = f"ROAS {INVENTED} makes this a clear winner."
        second = next(i for i, r in enumerate(records) if r["metrics"]["roas"] is not None and i != first)
        answers[second]["cited_metrics"][0]["value"] = records[second]["metrics"]["roas"] + 1.0
    elif index == 1:
        answers.append({**answers[0], "ref": "a999", "explanation": "An audience nobody asked about."})
    elif index == 2:
        answers.pop(0)
    else:
        answers.append(dict(answers[0]))
    return json_reply({"audiences": answers})


@dataclass
class MixedRuns:
    first: ClaudeRun
    second: dg.ExecuteInProcessResult
    requests_before_second: int


@pytest.fixture(scope="module")
def mixed(tmp_path_factory) -> MixedRuns:
    """One run with floor 0.9, then the same partition again (from the cache) with floor 0.8."""
    db = tmp_path_factory.mktemp("mixed") / "w.duckdb"
    with FakeAnthropic(responder(_mixed)) as fake:
        first = run_ok(db, claude=claude_config(fake, min_faithfulness=0.9))
        before = len(fake.requests)
        second = run_ok(db, claude=claude_config(fake, min_faithfulness=0.8))
    return MixedRuns(ClaudeRun(db, first, fake), second, before)


def _rows_of_batch(run: ClaudeRun, index: int) -> list[dict]:
    by_ref = run.by_ref()
    return [by_ref[ref] for ref in run.batches()[index]]


def test_an_invented_figure_or_a_wrong_cited_value_falls_back_but_neighbours_stay(mixed, base_template):
    run = mixed.first
    rows = _rows_of_batch(run, 0)
    shown = records_by_ref(run.fake)
    invented = [r for r in rows if r["fallback_reason"] and INVENTED in r["fallback_reason"]]
    cited = [r for r in rows if r["fallback_reason"] and r["fallback_reason"].startswith("cited roas=")]
    assert len(invented) == 1 and len(cited) == 1
    assert invented[0]["fallback_reason"] == f"explanation quotes figures not in the input: {INVENTED}"
    wrong = shown[cited[0]["ref"]]["metrics"]["roas"]
    assert f"but the input has {wrong}" in cited[0]["fallback_reason"]
    for r in invented + cited:
        assert r["explanation_source"] == "template" and r["faithful"] is False
        assert r["explanation"] == base_template[r["adset_id"]]
        assert INVENTED not in r["explanation"]
    neighbours = [r for r in rows if r not in invented + cited]
    assert len(neighbours) == len(rows) - 2 > 0
    for r in neighbours:
        assert r["explanation_source"] == "claude" and r["faithful"] is True
        assert r["explanation"] == explanation_for(shown[r["ref"]])
    recs = run.recs()
    assert INVENTED not in recs[invented[0]["adset_id"]]["explanation"]
    assert recs[invented[0]["adset_id"]]["explanation_source"] == "template"


def test_an_unknown_ref_is_ignored_and_recorded(mixed):
    run = mixed.first
    rows = _rows_of_batch(run, 1)
    assert all(r["explanation_source"] == "claude" for r in rows)
    assert {r["unknown_refs"] for r in rows} == {"a999"}
    everything = analysis_rows(run.db)
    assert "a999" not in set(everything["ref"].drop_nulls())
    assert everything.height == 40
    others = [r for i in (0, 2, 3) for r in _rows_of_batch(run, i)]
    assert all(r["unknown_refs"] is None for r in others)


def test_a_missing_ref_and_a_duplicated_ref_fall_back(mixed):
    run = mixed.first
    missing = _rows_of_batch(run, 2)
    assert missing[0]["fallback_reason"] == "no answer for this audience"
    assert missing[0]["explanation_source"] == "template"
    assert all(r["explanation_source"] == "claude" for r in missing[1:])
    dup = _rows_of_batch(run, 3)
    assert dup[0]["fallback_reason"] == "answered more than once"
    assert dup[0]["explanation_source"] == "template"
    assert all(r["explanation_source"] == "claude" for r in dup[1:])


def test_faithfulness_check_warns_below_the_floor_and_passes_above_it(mixed):
    rows = analysis_rows(mixed.first.db).filter(pl.col("analysed"))
    rate = rows["faithful"].mean()
    assert rate == pytest.approx((rows.height - 4) / rows.height)
    assert 0.8 <= rate < 0.9
    first = check_evaluations(mixed.first.result)[("analysis", "faithfulness")]
    assert not first.passed and first.severity == dg.AssetCheckSeverity.WARN
    meta = {k: v.value for k, v in first.metadata.items()}
    assert meta["faithfulness_rate"] == pytest.approx(rate)
    assert meta["floor"] == 0.9 and meta["analysed"] == rows.height
    assert INVENTED in meta["fallback_reasons"] and "answered more than once" in meta["fallback_reasons"]
    assert materialisation_metadata(mixed.first.result, "analysis")["faithfulness_rate"] == pytest.approx(
        rate, abs=1e-4
    )
    # The run itself succeeds: a WARN never blocks delivery.
    assert mixed.first.result.success
    second = check_evaluations(mixed.second)[("analysis", "faithfulness")]
    assert second.passed and second.metadata["floor"].value == 0.8
    assert second.metadata["faithfulness_rate"].value == pytest.approx(rate)
    # The second run came from the cache: the same verdicts, no new request.
    assert len(mixed.first.fake.requests) == mixed.requests_before_second


def test_unfaithful_answers_never_change_actions(mixed, base):
    assert_actions_unchanged(mixed.first, base)


# --------------------------------------------------------------------------- 5. stop reasons


def _non_answers(index, doc, answers):
    if index == 0:
        return text_reply('{"audiences": [{"ref": "a1", "assessment": "agr', stop_reason="max_tokens")
    if index == 1:
        return refusal_reply(category="cyber", explanation="refused")
    if index == 2:
        return message_reply([], stop_reason="end_turn")  # no text block at all
    return None


@pytest.fixture(scope="module")
def stopped(tmp_path_factory) -> ClaudeRun:
    return claude_run(tmp_path_factory, "stopped", _non_answers)


def test_max_tokens_refusal_and_an_empty_answer_fall_back_with_the_reason(stopped, base):
    calls = by_id(calls_for(stopped.db, stopped.run_id), "batch_index")
    assert calls[0]["stop_reason"] == "max_tokens" and calls[0]["fallback_reason"] == "stop_reason max_tokens"
    assert calls[0]["output_tokens"] == 4096  # the fake reports the whole max_tokens used
    assert calls[1]["stop_reason"] == "refusal" and calls[1]["fallback_reason"] == "stop_reason refusal"
    for i in (0, 1):
        assert calls[i]["validation"] == "failed" and calls[i]["accepted_audiences"] == 0
        assert calls[i]["request_id"] is not None
    assert calls[2]["stop_reason"] == "end_turn" and calls[2]["fallback_reason"] == "empty answer"
    assert calls[3]["stop_reason"] == "end_turn" and calls[3]["validation"] == "ok"
    reasons = {0: "stop_reason max_tokens", 1: "stop_reason refusal", 2: "empty answer"}
    for index in range(4):
        for r in _rows_of_batch(stopped, index):
            if index in reasons:
                assert r["explanation_source"] == "template" and r["fallback_reason"] == reasons[index]
            else:
                assert r["explanation_source"] == "claude" and r["fallback_reason"] is None
    assert_actions_unchanged(stopped, base)


# --------------------------------------------------------------------------- 10. disagree, alternatives

CAP = {"max_account_daily_increase_pct": 0.5}


def _challenge(index, doc, answers):
    for n, a in enumerate(answers):
        a["alternatives"] = list(ALTERNATIVES)
        if n % 2 == 0 and a["cited_metrics"]:
            a["assessment"] = "disagree"
    return json_reply({"audiences": answers})


@pytest.fixture(scope="module")
def challenged(tmp_path_factory) -> ClaudeRun:
    return claude_run(tmp_path_factory, "challenged", _challenge, overrides=CAP)


def test_disagreement_marks_needs_review_and_never_changes_the_action(challenged, tmp_path_factory):
    analysis, recs, doc = challenged.analysis(), challenged.recs(), challenged.json_file()
    disagree = {k for k, a in analysis.items() if a["assessment"] == "disagree"}
    assert disagree
    for adset, a in analysis.items():
        assert a["needs_review"] is (adset in disagree)
        assert recs[adset]["needs_review"] is (adset in disagree)
        assert doc[adset]["needs_review"] is (adset in disagree)
        if adset in disagree:
            assert a["explanation_source"] == "claude" and recs[adset]["assessment"] == "disagree"
    assert materialisation_metadata(challenged.result, "recommendations")["needs_review"] == len(disagree)
    assert materialisation_metadata(challenged.result, "analysis")["needs_review"] == len(disagree)
    assert_actions_unchanged(challenged, baseline_db(tmp_path_factory, overrides=CAP))


def test_alternatives_a_guardrail_forbids_are_dropped_before_delivery(challenged):
    analysis, recs, doc = challenged.analysis(), challenged.recs(), challenged.json_file()
    shown = records_by_ref(challenged.fake)
    decisions = by_id(query(challenged.db, "SELECT * FROM decisions WHERE decision_date = ?", [D]))
    capped = [k for k, a in analysis.items() if a["analysed"] and decisions[k]["guardrail"] == "account_daily_cap"]
    assert capped, "the override should hold some SCALEs at the account daily cap"
    for adset, a in analysis.items():
        if not a["analysed"]:
            continue
        allowed = shown[a["ref"]]["allowed_alternatives"]
        assert recs[adset]["alternatives"] == [x for x in ALTERNATIVES if x in allowed]
        assert doc[adset]["alternatives"] == recs[adset]["alternatives"]
        assert a["dropped_alternatives"] == [x for x in ALTERNATIVES if x not in allowed]
    for adset in capped:
        assert shown[analysis[adset]["ref"]]["allowed_alternatives"] == [
            "creative_swap",
            "hold_longer",
            "reduce_budget",
        ]
        for forbidden in ("duplicate", "retest", "broaden_audience"):
            assert forbidden in analysis[adset]["dropped_alternatives"]
            assert forbidden not in recs[adset]["alternatives"]
            assert forbidden not in doc[adset]["alternatives"]
        assert recs[adset]["action"] == "HOLD" and recs[adset]["scale_percentage"] == 0
