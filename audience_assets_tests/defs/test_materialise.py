"""The whole asset graph of the real Definitions materialised for the sample account, and its docs."""

from __future__ import annotations

import json

import dagster as dg
import pytest

from audience_assets.definitions import defs
from audience_assets.defs.docs import all_docs
from audience_assets.engine.config import RulesConfig
from audience_assets.engine.schema import RecommendationFile
from audience_assets_tests.conftest import (
    JOB,
    check_evaluations,
    materialisation_metadata,
    materialised_keys,
    query,
    raw_materialisation_metadata,
    relations,
    rows_for,
    scalar,
)

PARTITIONED = (
    "audience_metadata",
    "window_metrics",
    "account_benchmarks",
    "campaign_benchmarks",
    "audience_scores",
    "eligibility",
    "buckets",
    "trend_states",
    "decisions",
    "recommendations",
)
VIEWS = ("stg_insights", "daily_metrics")
# Rule stages stored once, in decisions (the whole trail); each earlier stage is a view of its columns.
STAGE_VIEWS = ("eligibility", "buckets", "trend_states")
# Outcomes need days after a decision (audience_assets_tests/feedback tests them on a history).
JUDGED_LATER = ("outcomes", "rule_scorecard")


def job_asset_keys() -> set[str]:
    job = defs.resolve_job_def(JOB)
    return {k.to_user_string() for k in job.asset_layer.executable_asset_keys}


def test_every_asset_of_the_job_is_materialised(sample_warehouse):
    result = sample_warehouse.result
    assert result.success
    keys = job_asset_keys()
    assert keys >= {"raw_insights", *PARTITIONED, *VIEWS}
    assert materialised_keys(result) == keys


def test_every_table_and_view_exists_with_rows(sample_warehouse):
    db, day = sample_warehouse.db, sample_warehouse.day
    rel = relations(db)
    for name in job_asset_keys():
        assert name in rel, f"{name} missing from the warehouse"
        if name in JUDGED_LATER:  # one decision date and no days after it: nothing to judge yet
            continue
        assert scalar(db, f'SELECT count(*) FROM "{name}"') > 0, f"{name} is empty"
    for view in VIEWS:
        assert rel[view] == "VIEW"
    assert rel["raw_insights"] == "BASE TABLE"
    for table in PARTITIONED:
        assert rel[table] == ("VIEW" if table in STAGE_VIEWS else "BASE TABLE"), table
        assert rows_for(db, table, day) > 0, f"{table} has no rows for {day}"
    # One row per audience in every per-audience table: 120 ad sets in the default sample.
    for table in (
        "audience_metadata",
        "window_metrics",
        "audience_scores",
        "eligibility",
        "buckets",
        "trend_states",
        "decisions",
        "recommendations",
    ):
        assert rows_for(db, table, day) == 120, table


def test_row_count_metadata_matches_the_tables(sample_warehouse):
    db, day, result = sample_warehouse.db, sample_warehouse.day, sample_warehouse.result
    assert materialisation_metadata(result, "raw_insights")["dagster/row_count"] == scalar(
        db, "SELECT count(*) FROM raw_insights"
    )
    for view in VIEWS:
        # Views over the whole history are not counted (the cost would grow with it): the rows on
        # the days this run loaded are.
        meta = materialisation_metadata(result, view)
        assert "dagster/row_count" not in meta
        assert meta["rows_on_days_loaded"] == scalar(db, f"SELECT count(*) FROM {view}")
    for table in PARTITIONED:
        assert materialisation_metadata(result, table)["dagster/row_count"] == rows_for(db, table, day), table


def test_every_check_ran_and_passed(sample_warehouse):
    evals = check_evaluations(sample_warehouse.result)
    every = {(k.asset_key.to_user_string(), k.name) for k in defs.resolve_asset_graph().asset_check_keys}
    expected = {(a, name) for a, name in every if a != "action_log"}  # the execute_approved job's, not this job's
    assert set(evals) == expected
    assert ("decisions", "guardrails") in evals
    assert {a for a, name in evals if name == "doc_tests"} >= {"raw_insights", *PARTITIONED}
    failed = {k: (e.severity, e.description, e.metadata) for k, e in evals.items() if not e.passed}
    assert not failed
    guardrails = evals[("decisions", "guardrails")]
    assert guardrails.severity == dg.AssetCheckSeverity.ERROR
    assert guardrails.metadata["violations"].value == 0
    assert guardrails.metadata["rows_checked"].value == 120


def test_guardrail_check_is_blocking():
    spec = defs.resolve_asset_graph().get_check_spec(dg.AssetCheckKey(dg.AssetKey("decisions"), "guardrails"))
    assert spec.blocking


def test_decisions_hold_the_config_hash_of_the_run_rules(sample_warehouse):
    db, day, result = sample_warehouse.db, sample_warehouse.day, sample_warehouse.result
    expected = RulesConfig().config_hash()
    hashes = query(db, "SELECT DISTINCT config_hash FROM decisions WHERE decision_date = ?", [day])[
        "config_hash"
    ].to_list()
    assert hashes == [expected]
    assert materialisation_metadata(result, "decisions")["config_hash"] == expected


def test_recommendations_json_is_written_and_valid(sample_warehouse):
    db, day, result = sample_warehouse.db, sample_warehouse.day, sample_warehouse.result
    path = sample_warehouse.out_dir / f"recommendations_{day.isoformat()}_act_1001.json"
    assert path.is_file()
    assert materialisation_metadata(result, "recommendations")["json_path"] == str(path)
    assert not list(sample_warehouse.out_dir.glob("*.tmp")), "temporary file left behind"
    doc = RecommendationFile.model_validate_json(path.read_text())
    assert doc.decision_date == day
    assert doc.config_hash == RulesConfig().config_hash()
    assert len(doc.recommendations) == 120
    assert [r.rank for r in doc.recommendations] == list(range(1, 121))
    assert doc.summary["audiences"] == 120
    assert sum(doc.summary[a] for a in ("SCALE", "HOLD", "PAUSE", "RETEST")) == 120
    assert doc.summary["eligible"] == sum(r.eligible for r in doc.recommendations)
    # The file agrees with the decisions table, audience by audience.
    table = query(db, "SELECT adset_id, action, confidence FROM decisions WHERE decision_date = ?", [day])
    from_table = {a: (act, conf) for a, act, conf in table.iter_rows()}
    from_file = {r.audience_id: (r.action.value, r.confidence.value) for r in doc.recommendations}
    assert from_file == from_table
    # And the recommendations table holds the same audiences.
    recs = query(db, "SELECT audience_id FROM recommendations WHERE decision_date = ?", [day])["audience_id"].to_list()
    assert sorted(recs) == sorted(from_file)
    # The JSON is plain JSON too (no NaN/Infinity tokens).
    json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))


def test_sample_has_every_action_kind(sample_warehouse):
    """The default sample exercises the decision matrix: all four actions appear."""
    actions = set(query(sample_warehouse.db, "SELECT DISTINCT action FROM decisions")["action"].to_list())
    assert actions == {"SCALE", "HOLD", "PAUSE", "RETEST"}


# ---- docs coverage -------------------------------------------------------------------


def _warehouse_columns(db) -> dict[str, list[str]]:
    frame = query(
        db,
        "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'main' ORDER BY table_name, ordinal_position",
    )
    out: dict[str, list[str]] = {}
    for t, c in frame.iter_rows():
        out.setdefault(t, []).append(c)
    return out


def test_every_table_and_column_in_the_warehouse_is_documented(sample_warehouse):
    docs = all_docs()
    cols = _warehouse_columns(sample_warehouse.db)
    undocumented_tables = sorted(set(cols) - set(docs))
    undocumented_columns = sorted(
        f"{t}.{c}" for t, cs in cols.items() if t in docs for c in cs if c not in docs[t].columns
    )
    assert not undocumented_tables, f"tables/views without docs: {undocumented_tables}"
    assert not undocumented_columns, f"columns without docs: {undocumented_columns}"


def test_every_documented_table_and_column_exists(sample_warehouse):
    docs = all_docs()
    cols = _warehouse_columns(sample_warehouse.db)
    missing_tables = sorted(set(docs) - set(cols))
    missing_columns = sorted(
        f"{t}.{c}" for t, doc in docs.items() if t in cols for c in doc.columns if c not in cols[t]
    )
    assert not missing_tables, f"documented but not in the warehouse: {missing_tables}"
    assert not missing_columns, f"documented but not in the warehouse: {missing_columns}"


def test_every_documented_description_is_real_text():
    for name, doc in all_docs().items():
        assert len(doc.description) > 20 and doc.description.lower() != "placeholder", name
        for col in doc.columns.values():
            assert col.description.strip(), f"{name}.{col.name}"


def test_every_asset_has_a_description():
    docs = all_docs()
    for spec in defs.resolve_all_asset_specs():
        name = spec.key.to_user_string()
        assert spec.description and spec.description.strip(), name
        assert spec.description == docs[name].description, name


def test_every_materialisation_carries_column_schema_and_row_count(sample_warehouse):
    docs = all_docs()
    cols = _warehouse_columns(sample_warehouse.db)
    for name in job_asset_keys():
        meta = raw_materialisation_metadata(sample_warehouse.result, name)
        count = "rows_on_days_loaded" if name in VIEWS else "dagster/row_count"
        assert count in meta, name
        assert meta[count].value > 0 or name in JUDGED_LATER, name
        schema = meta["dagster/column_schema"].value
        assert isinstance(schema, dg.TableSchema), name
        assert [c.name for c in schema.columns] == cols[name], name
        for c in schema.columns:
            assert c.type, f"{name}.{c.name} has no type"
            assert c.name in docs[name].columns, f"{name}.{c.name} is not documented"
            assert c.description == docs[name].columns[c.name].description, f"{name}.{c.name}"
            assert c.description, f"{name}.{c.name} has no description in the column schema"
