"""Rules configured per run through run_config, and the blocking guardrail check."""

from __future__ import annotations

import dagster as dg
import polars as pl

import audience_assets.engine.pipeline as pipeline
from audience_assets.engine.config import RulesConfig, load_config
from audience_assets_tests.conftest import (
    SAMPLE_DECISION_DATE,
    SMALL,
    check_evaluations,
    failed_steps,
    failure_messages,
    materialisation_metadata,
    materialise,
    materialised_keys,
    query,
    rows_for,
    table_exists,
)

D = SAMPLE_DECISION_DATE
SMALL_SAMPLE = {"kind": "sample", "sample_adsets": SMALL}


def test_override_makes_every_audience_ineligible_and_changes_the_hash(tmp_path):
    db = tmp_path / "w.duckdb"
    result = materialise(db, D, source=SMALL_SAMPLE, overrides='{"min_spend": 1000000}')
    assert result.success, failure_messages(result)
    expected = load_config(None, {"min_spend": 1000000}).config_hash()
    assert expected != RulesConfig().config_hash()

    decisions = query(db, "SELECT * FROM decisions WHERE decision_date = ?", [D])
    assert decisions.height == SMALL
    assert decisions["config_hash"].unique().to_list() == [expected]
    assert materialisation_metadata(result, "decisions")["config_hash"] == expected
    assert not decisions["eligible"].any()
    eligibility = query(db, "SELECT eligible, filter_reason FROM eligibility WHERE decision_date = ?", [D])
    assert eligibility.height == SMALL and not eligibility["eligible"].any()
    assert eligibility["filter_reason"].str.contains("spend").all()
    # Nothing ineligible acts: no SCALE and no PAUSE.
    assert set(decisions["action"].to_list()) <= {"HOLD", "RETEST"}
    assert materialisation_metadata(result, "recommendations")["summary/eligible"] == 0


def test_invalid_override_fails_the_run_naming_the_field(tmp_path):
    db = tmp_path / "w.duckdb"
    result = materialise(db, D, source=SMALL_SAMPLE, overrides='{"winner_roas": -1}')
    assert not result.success
    messages = failure_messages(result)
    assert messages
    assert any("winner_roas" in m and "ConfigError" in m for m in messages), messages
    assert "raw_insights" in failed_steps(result)
    assert not materialised_keys(result)
    assert not table_exists(db, "raw_insights")


def test_override_that_is_not_json_fails_the_run(tmp_path):
    db = tmp_path / "w.duckdb"
    result = materialise(db, D, source=SMALL_SAMPLE, overrides="{min_spend: 5}")
    assert not result.success
    assert any("overrides_json is not valid JSON" in m for m in failure_messages(result))
    assert not materialised_keys(result)


def test_blocking_guardrail_check_stops_recommendations(tmp_path, monkeypatch):
    real = pipeline.apply_guardrails

    def unsafe(frame: pl.DataFrame, cfg: RulesConfig) -> pl.DataFrame:
        out = real(frame, cfg)
        # Let an unsafe action through on the first few audiences: an 80% scale.
        idx = pl.int_range(pl.len()) < 3
        return out.with_columns(
            pl.when(idx).then(pl.lit("SCALE")).otherwise(pl.col("action")).alias("action"),
            pl.when(idx)
            .then(80)
            .otherwise(pl.col("scale_percentage"))
            .cast(out.schema["scale_percentage"])
            .alias("scale_percentage"),
        )

    monkeypatch.setattr(pipeline, "apply_guardrails", unsafe)
    db, out = tmp_path / "w.duckdb", tmp_path / "out"
    result = materialise(db, D, source=SMALL_SAMPLE, out_dir=out)

    evals = check_evaluations(result)
    guard = evals[("decisions", "guardrails")]
    assert not guard.passed
    assert guard.severity == dg.AssetCheckSeverity.ERROR
    assert guard.metadata["violations"].value >= 3
    assert "scale_band" in guard.metadata["detail"].value

    keys = materialised_keys(result)
    assert "decisions" in keys
    assert "recommendations" not in keys
    assert rows_for(db, "recommendations", D) == 0
    assert not (out / f"recommendations_{D.isoformat()}_act_1001.json").exists()
    # The unsafe decisions are stored (for inspection) but went no further.
    assert (
        query(db, "SELECT count(*) AS n FROM decisions WHERE decision_date = ? AND scale_percentage = 80", [D])["n"][0]
        == 3
    )


def test_blocked_rerun_leaves_no_stale_recommendations(tmp_path, monkeypatch):
    """A good run at D, then a rerun at D that the guardrail check blocks: the recommendations of D
    must not keep serving the earlier run's output next to decisions they no longer match."""
    db, out = tmp_path / "w.duckdb", tmp_path / "out"
    good = materialise(db, D, source=SMALL_SAMPLE, out_dir=out)
    assert good.success, failure_messages(good)
    assert rows_for(db, "recommendations", D) == SMALL

    real = pipeline.apply_guardrails

    def unsafe(frame: pl.DataFrame, cfg: RulesConfig) -> pl.DataFrame:
        res = real(frame, cfg)
        first = pl.int_range(pl.len()) < 3
        return res.with_columns(
            pl.when(first).then(pl.lit("SCALE")).otherwise(pl.col("action")).alias("action"),
            pl.when(first)
            .then(80)
            .otherwise(pl.col("scale_percentage"))
            .cast(res.schema["scale_percentage"])
            .alias("scale_percentage"),
        )

    monkeypatch.setattr(pipeline, "apply_guardrails", unsafe)
    blocked = materialise(db, D, source=SMALL_SAMPLE, out_dir=out)
    assert not check_evaluations(blocked)[("decisions", "guardrails")].passed
    assert "recommendations" not in materialised_keys(blocked)

    mismatched = query(
        db,
        "SELECT d.adset_id, d.action, r.action AS recommended FROM decisions d JOIN recommendations r "
        "ON r.decision_date = d.decision_date AND r.audience_id = d.adset_id "
        "WHERE d.decision_date = ? AND d.action IS DISTINCT FROM r.action",
        [D],
    )
    assert rows_for(db, "recommendations", D) == 0 or mismatched.height == 0, (
        f"{rows_for(db, 'recommendations', D)} stale recommendations remain for {D}; "
        f"{mismatched.height} disagree with the stored decisions"
    )
    assert not (out / f"recommendations_{D.isoformat()}_act_1001.json").exists(), (
        "stale recommendations JSON still served"
    )
