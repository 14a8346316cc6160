"""The synthetic-frame builder (engine_cases) against the real SQL models.

If these fail, the other engine tests are feeding the engine frames that the warehouse
could not produce, so their verdicts would mean little.
"""

from __future__ import annotations

import duckdb
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from audience_assets.engine.config import RulesConfig
from audience_assets.warehouse import query_model
from audience_assets_tests.engine_cases import (
    ACCOUNT_SCHEMA,
    AS_OF,
    CAMPAIGN_SCHEMA,
    HISTORY_SCHEMA,
    METADATA_SCHEMA,
    WINDOW_SCHEMA,
    account,
    aud,
    build,
    config,
    daily_frame,
    decide_one,
    decide_table,
    derive_account_benchmarks,
    derive_campaign_benchmarks,
)

CFG = RulesConfig()
AUDS = [
    aud("steady", spend=20_000, roas=3.6, purchases=40),
    aud("rising", type="BROAD", spend=35_000, roas=2.8, change=0.4, accel=0.6, campaign="c2"),
    aud("falling", type="INTEREST", spend=12_000, roas=2.0, change=-0.5, purchases=9),
    aud("young", lookalike_pct=1.0, spend=6_000, roas=3.0, age=3),
    aud(
        "stalled",
        type="CUSTOM",
        spend=900,
        roas=4.0,
        purchases=1,
        age=40,
        long_spend=48_000,
        long_roas=4.2,
        long_purchases=130,
    ),
    aud("silent", spend=0, roas=0, purchases=0, age=20),
    aud("no_buyers", spend=4_000, roas=0.0, purchases=0, campaign="c2"),
]


@pytest.fixture(scope="module")
def sql_frames() -> dict[str, pl.DataFrame]:
    conn = duckdb.connect()
    daily = daily_frame(AUDS, CFG, AS_OF)
    conn.register("daily_metrics", daily.to_arrow())
    cfg_params = {
        "as_of": AS_OF,
        "window": CFG.decision_window_days,
        "late_days": (CFG.decision_window_days + 1) // 2,
        "long_window": CFG.long_window_days,
        "half_life": CFG.evidence_half_life_days,
    }
    window = query_model(conn, "metrics/window_metrics", cfg_params)
    conn.register("window_metrics", window.to_arrow())
    out = {
        "window": window,
        "account": query_model(conn, "metrics/account_benchmarks", cfg_params),
        "campaign": query_model(conn, "metrics/campaign_benchmarks", cfg_params),
    }
    conn.close()
    return out


def test_window_frame_matches_window_metrics_sql(sql_frames):
    built = build(AUDS, cfg=CFG, ballast_budget=None).window.sort("adset_id")
    sql = sql_frames["window"].sort("adset_id")
    assert dict(sql.schema) == dict(built.schema) == WINDOW_SCHEMA
    assert_frame_equal(built, sql, check_exact=False, rel_tol=1e-9, abs_tol=1e-6)


def test_benchmark_derivations_match_the_sql(sql_frames):
    window = build(AUDS, cfg=CFG, ballast_budget=None).window
    account = derive_account_benchmarks(window)
    campaign = derive_campaign_benchmarks(window)
    assert dict(sql_frames["account"].schema) == dict(account.schema) == ACCOUNT_SCHEMA
    assert dict(sql_frames["campaign"].schema) == dict(campaign.schema) == CAMPAIGN_SCHEMA
    assert_frame_equal(account, sql_frames["account"], check_exact=False, rel_tol=1e-9, abs_tol=1e-6)
    assert_frame_equal(
        campaign, sql_frames["campaign"].sort("account_id", "campaign_id"), check_exact=False, rel_tol=1e-9
    )


def test_other_frames_have_the_pipeline_dtypes():
    frames = build(AUDS, history=[{"decision_date": AS_OF, "account_id": "act_1", "adset_id": "x", "action": "SCALE"}])
    assert dict(frames.metadata.schema) == METADATA_SCHEMA
    assert dict(frames.history.schema) == HISTORY_SCHEMA
    assert dict(frames.account_bench.schema) == ACCOUNT_SCHEMA
    assert frames.window.filter(pl.col("adset_id") == "silent")["first_spend_date"].item() is None


@pytest.mark.parametrize(
    ("kwargs", "column", "expected"),
    [
        ({"spend": 7000, "roas": 3.0}, "roas_window", 3.0),
        ({"spend": 7000, "roas": 3.0}, "spend_3d", 3000.0),
        ({"spend": 7000, "roas": 3.0}, "spend_late", 4000.0),
        ({"spend": 7000, "roas": 3.0}, "purchases_window", 14.0),  # revenue / account AOV 1500
        ({"spend": 7000, "roas": 3.0, "change": 0.5}, "roas_change_check", 0.5),
        ({"spend": 7000, "roas": 3.0, "accel": 1.0}, "spend_acceleration", 1.0),
        ({"spend": 7000, "roas": 3.0, "age": 40, "long_spend": 40000, "long_roas": 4.0}, "roas_long", 4.0),
        ({"spend": 7000, "roas": 3.0, "age": 3}, "active_days", 3),
    ],
    ids=[
        "roas",
        "spend_3d",
        "spend_late",
        "purchases_default",
        "late_vs_early",
        "acceleration",
        "long_roas",
        "young_active_days",
    ],
)
def test_builder_parameters_land_in_the_window_columns(kwargs, column, expected):
    row = build([aud("a", **kwargs)], ballast_budget=None).window.row(0, named=True)
    if column == "roas_change_check":
        value = (row["revenue_late"] / row["spend_late"]) / (row["revenue_early"] / row["spend_early"]) - 1
    else:
        value = row[column]
    assert value == pytest.approx(expected)


EQUIVALENCE_CASES = [
    ("winner", aud("x", spend=30_000, roas=4.0), None),
    ("loser", aud("x", spend=30_000, roas=1.5), None),
    ("cooldown", aud("x", spend=30_000, roas=4.0, last_change_hours=20.0), None),
    ("no_bench", aud("x", spend=30_000, roas=4.0), account(present=False)),
    ("thin_account", aud("x", spend=7_000, roas=3.0), account(roas=2.0, aov=900.0)),
    ("ceiling", aud("x", spend=30_000, roas=4.0, lookalike_pct=1.0, budget=7_000.0), None),
]
COMPARED = [
    "eligible",
    "filter_reason",
    "bucket",
    "trend",
    "roas_change_z",
    "p_in_bucket",
    "confidence",
    "matrix_rule",
    "action",
    "guardrail",
    "scale_percentage",
    "new_daily_budget",
    "target_cpa",
    "account_increase_cap",
    "reasons",
    "risks",
]


def test_decide_table_gives_what_each_case_gives_on_its_own():
    """The batched runner used by the case tables must not let cases influence each other."""
    cfg = config(target_cpa={"act_1": 2000.0})
    table = decide_table(EQUIVALENCE_CASES, cfg)
    for case_id, a, acct in EQUIVALENCE_CASES:
        alone = decide_one(a, acct, cfg=cfg)
        assert {c: table[case_id][c] for c in COMPARED} == {c: alone[c] for c in COMPARED}, case_id
