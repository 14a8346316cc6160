"""Noise filter (spec 5), RETEST of stalled proven audiences, and rows with nothing to divide by."""

from __future__ import annotations

import math

import polars as pl
import pytest

from audience_assets.engine.recommend import to_models
from audience_assets_tests.engine_cases import account, aud, config, decide_one, decide_table, rows, run

NO_META = "no audience metadata: the audience type is unknown"
NO_BENCH = "account has no revenue in the window, so there is no ROAS benchmark"

# id, audience, account, expected filter reasons (in order; empty = eligible).
# Age 10 unless the case is about age: old strong audiences under min_spend are RETEST candidates.
NOISE_CASES = [
    ("strong_and_eligible", dict(age=10, spend=20_000, roas=3.6, purchases=40), None, []),
    (
        "spend_under_min",
        dict(age=10, spend=2_999, roas=3.6, purchases=10),
        None,
        ["spend ₹2,999 over 7 days is under the ₹3,000 minimum"],
    ),
    ("spend_exactly_min", dict(age=10, spend=3_000, roas=3.6, purchases=10), None, []),
    (
        "purchases_under_min",
        dict(age=10, spend=20_000, roas=3.6, purchases=1),
        None,
        ["1 purchases over 7 days, under the minimum of 2"],
    ),
    ("purchases_exactly_min", dict(age=10, spend=20_000, roas=3.6, purchases=2), None, []),
    (
        "age_under_min",
        dict(spend=20_000, roas=3.6, purchases=40, age=1),
        None,
        ["launched 1 days ago, under the minimum age of 2 days"],
    ),
    ("age_exactly_min", dict(spend=20_000, roas=3.6, purchases=40, age=2), None, []),
    (
        "launched_today",
        dict(spend=0, roas=0, purchases=0, age=0),
        None,
        [
            "spend ₹0 over 7 days is under the ₹3,000 minimum",
            "0 purchases over 7 days, under the minimum of 2",
            "launched 0 days ago, under the minimum age of 2 days",
        ],
    ),
    ("no_metadata_row", dict(age=10, spend=20_000, roas=3.6, purchases=40, metadata=False), None, [NO_META]),
    ("metadata_without_type", dict(type=None, spend=20_000, roas=3.6, purchases=40), None, [NO_META]),
    ("no_account_benchmark_row", dict(age=10, spend=20_000, roas=3.6, purchases=40), dict(present=False), [NO_BENCH]),
    ("account_roas_zero", dict(age=10, spend=20_000, roas=3.6, purchases=40), dict(roas=0.0), [NO_BENCH]),
    ("account_roas_null", dict(age=10, spend=20_000, roas=3.6, purchases=40), dict(roas=None), [NO_BENCH]),
    (
        "all_three_noise_rules",
        dict(spend=1_200, roas=2.0, purchases=1, age=1),
        None,
        [
            "spend ₹1,200 over 7 days is under the ₹3,000 minimum",
            "1 purchases over 7 days, under the minimum of 2",
            "launched 1 days ago, under the minimum age of 2 days",
        ],
    ),
    (
        "everything_missing",
        dict(age=10, spend=1_000, roas=2.0, purchases=1, metadata=False),
        dict(present=False),
        [
            NO_META,
            NO_BENCH,
            "spend ₹1,000 over 7 days is under the ₹3,000 minimum",
            "1 purchases over 7 days, under the minimum of 2",
        ],
    ),
]


@pytest.fixture(scope="module")
def noise_rows():
    return decide_table([(c[0], aud(c[0], **c[1]), account(**(c[2] or {}))) for c in NOISE_CASES])


@pytest.mark.parametrize(("case", "reasons"), [(c[0], c[3]) for c in NOISE_CASES], ids=[c[0] for c in NOISE_CASES])
def test_noise_filter(noise_rows, case, reasons):
    row = noise_rows[case]
    assert row["eligible"] is (not reasons)
    if reasons:
        assert row["filter_reason"] == "; ".join(reasons)
        assert row["action"] == "HOLD"
        assert row["matrix_rule"] == "NOT_ELIGIBLE"
        assert row["confidence"] == "LOW"
        assert row["scale_percentage"] == 0
        assert row["reasons"][0] == f"Not enough data to decide: {row['filter_reason']}"
    else:
        assert row["filter_reason"] is None
        assert row["matrix_rule"] != "NOT_ELIGIBLE"


def test_unknown_audience_type_string_is_not_eligible():
    """A type outside BROAD/INTEREST/LOOKALIKE/CUSTOM has no rules of its own: it must not be
    decided on with the defaults as if it were known."""
    row = decide_one(aud("a", type="ADVANTAGE_PLUS", spend=30_000, roas=4.0))
    assert row["eligible"] is False
    assert row["action"] == "HOLD"
    assert "audience type" in (row["filter_reason"] or "")


@pytest.mark.parametrize(
    ("overrides", "kwargs", "eligible"),
    [
        ({"min_spend": 10_000}, dict(spend=10_000, roas=3.6), True),
        ({"min_spend": 10_000}, dict(spend=9_999, roas=3.6), False),
        ({"min_purchases": 5}, dict(spend=20_000, roas=3.6, purchases=5), True),
        ({"min_purchases": 5}, dict(spend=20_000, roas=3.6, purchases=4), False),
        ({"min_age_days": 7}, dict(spend=20_000, roas=3.6, age=7), True),
        ({"min_age_days": 7}, dict(spend=20_000, roas=3.6, age=6), False),
    ],
    ids=["spend_at", "spend_under", "purchases_at", "purchases_under", "age_at", "age_under"],
)
def test_noise_thresholds_follow_the_config(overrides, kwargs, eligible):
    row = decide_one(aud("a", **kwargs), cfg=config(**overrides))
    assert row["eligible"] is eligible, row["filter_reason"]


def test_filter_reason_names_the_configured_threshold():
    row = decide_one(aud("a", spend=9_500, roas=3.6), cfg=config(min_spend=10_000, min_age_days=45))
    assert row["filter_reason"] == (
        "spend ₹9,500 over 7 days is under the ₹10,000 minimum; launched 30 days ago, under the minimum age of 45 days"
    )


def test_age_falls_back_to_first_spend_date():
    # Metadata without launched_on: the age is counted from the first day with spend (28 days here).
    row = decide_one(aud("a", age=None, spend=20_000, roas=3.6))
    assert row["age_days"] == 28
    assert row["eligible"] is True


def test_ineligible_rows_never_scale_or_pause_however_good():
    auds = [
        aud("young_star", spend=50_000, roas=6.0, age=1),
        aud("no_meta_star", spend=50_000, roas=6.0, metadata=False),
        aud("tiny_loser", spend=2_000, roas=0.3, purchases=2),
    ]
    decided = rows(run(auds, cfg=config(target_cpa={"act_1": 100.0}))[0])
    for adset in ("young_star", "no_meta_star", "tiny_loser"):
        assert decided[adset]["action"] == "HOLD", adset


# ----------------------------------------------------------------------------- RETEST
STALLED = dict(spend=1_000, roas=4.0, purchases=1, age=40, long_spend=60_000, long_roas=4.0, long_purchases=150)

# id, audience, expected action, expected matrix rule
RETEST_CASES = [
    ("stalled_proven_winner", dict(STALLED), "RETEST", "STALLED_WINNER"),
    ("stalled_at_min_age", dict(STALLED, age=14), "RETEST", "STALLED_WINNER"),
    ("stalled_but_young", dict(STALLED, age=13), "HOLD", "NOT_ELIGIBLE"),
    ("stalled_but_weak_long_roas", dict(STALLED, long_roas=2.6), "HOLD", "NOT_ELIGIBLE"),
    ("stalled_with_few_long_purchases", dict(STALLED, long_purchases=9), "HOLD", "NOT_ELIGIBLE"),
    # Ten purchases qualify as a stalled winner, but are too few for the confidence RETEST needs.
    ("stalled_with_min_long_purchases", dict(STALLED, long_purchases=10), "HOLD", "STALLED_WINNER"),
    # Filtered for purchases, not for spend: delivery has not stalled, so no RETEST.
    ("ineligible_on_purchases_only", dict(STALLED, spend=5_000, purchases=1), "HOLD", "NOT_ELIGIBLE"),
    # Eligible audiences go through the matrix, never RETEST.
    ("eligible_strong_history", dict(STALLED, spend=20_000, roas=3.6, purchases=40), "SCALE", "WINNER+STABLE"),
]


@pytest.fixture(scope="module")
def retest_rows():
    return decide_table([(c[0], aud(c[0], **c[1]), None) for c in RETEST_CASES])


@pytest.mark.parametrize(
    ("case", "action", "rule"), [(c[0], *c[2:]) for c in RETEST_CASES], ids=[c[0] for c in RETEST_CASES]
)
def test_retest(retest_rows, case, action, rule):
    row = retest_rows[case]
    assert (row["matrix_rule"], row["action"]) == (rule, action), row["gate_reason"]
    if action == "RETEST":
        assert row["confidence"] in ("HIGH", "MEDIUM")
        assert row["scale_percentage"] == 0
        assert any(
            r.startswith("Delivery stalled: spend ₹1,000 over 7 days, but over 28 days ROAS was 1.60x")
            for r in row["reasons"]
        ), row["reasons"]
        assert "Duplicate the ad set and relaunch it to restart delivery" in row["reasons"]


def test_retest_uses_the_broad_winner_threshold():
    # Long-window ROAS 1.16x the account: a winner on BROAD's 1.1 threshold, not on the default 1.2.
    stalled = dict(STALLED, long_spend=400_000, long_roas=2.9, long_purchases=700)
    assert decide_one(aud("a", type="BROAD", **stalled))["action"] == "RETEST"
    assert decide_one(aud("a", type="INTEREST", **stalled))["action"] == "HOLD"


def test_retest_with_thin_long_window_evidence_is_held_by_the_confidence_gate():
    row = decide_one(aud("a", **dict(STALLED, long_spend=8_000, long_roas=3.5, long_purchases=10)))
    assert row["matrix_action"] == "RETEST"
    assert row["confidence"] == "LOW"
    assert row["action"] == "HOLD"
    assert row["gate_reason"] == "RETEST held back: confidence LOW is below the MEDIUM needed to act"


# ----------------------------------------------------------------------------- nothing to divide by
RATIO_COLUMNS = [
    "roas_window",
    "cpa_window",
    "cvr_window",
    "normalized_roas",
    "normalized_cvr",
    "roas_change",
    "roas_1d",
]


@pytest.mark.parametrize(
    ("kwargs", "nulls"),
    [
        (
            dict(spend=0, roas=0, purchases=0),
            ["roas_window", "cpa_window", "cvr_window", "normalized_roas", "normalized_cvr", "roas_change", "roas_1d"],
        ),
        (dict(spend=5_000, roas=0.0, purchases=0), ["cpa_window", "roas_change"]),
        (dict(spend=5_000, roas=2.0, purchases=3, accel=-1.0), ["roas_change", "roas_1d", "roas_change_z"]),
    ],
    ids=["zero_spend", "spend_without_purchases", "no_spend_in_the_late_days"],
)
def test_zero_rows_give_null_ratios_not_inf(kwargs, nulls):
    decisions, recs = run([aud("z", **kwargs), aud("w", spend=30_000, roas=4.0)])
    row = rows(decisions)["z"]
    for col in nulls:
        assert row[col] is None, col
    for col, value in row.items():
        if isinstance(value, float):
            assert math.isfinite(value), (col, value)
    assert row["action"] == "HOLD"
    assert len(to_models(recs)) == recs.height


def test_account_without_revenue_gives_null_normalised_ratios():
    """A whole account with spend but no purchases: account ROAS is 0 (as account_benchmarks.sql
    computes it), every audience ROAS is 0, and 0 / 0 must be NULL, not NaN."""
    decisions, recs = run(
        [aud("a", spend=5_000, roas=0.0, purchases=0), aud("b", spend=8_000, roas=0.0, purchases=0)],
        account(derived=True),
        ballast_budget=None,
    )
    assert decisions["account_avg_roas"].to_list() == [0.0, 0.0]
    assert decisions.select(pl.col("eligible").any()).item() is False
    for col in ("normalized_roas", "normalized_roas_campaign", "normalized_cvr"):
        values = decisions[col]
        assert values.is_nan().fill_null(False).sum() == 0, (col, values.to_list())
        assert values.null_count() == decisions.height, (col, values.to_list())
    assert len(to_models(recs)) == 2


def test_min_spend_zero_does_not_leave_an_action_undecided():
    """min_spend = 0 and min_purchases = 0 are valid settings; a zero-spend audience then passes
    the noise filter but has no ROAS. It must still get an action, and the run must serialise."""
    cfg = config(min_spend=0, min_purchases=0)
    decisions, recs = run([aud("z", spend=0, roas=0, purchases=0), aud("w", spend=30_000, roas=4.0)], cfg=cfg)
    row = rows(decisions)["z"]
    assert row["action"] in ("HOLD", "SCALE", "PAUSE", "RETEST")
    assert row["action"] == "HOLD"
    assert len(to_models(recs)) == recs.height
