"""Trend states (spec 7.2) and confidence (Gamma-Poisson posterior) with the confidence gate."""

from __future__ import annotations

import pytest

from audience_assets_tests.engine_cases import aud, config, decide_one, decide_table, rows, run

# ----------------------------------------------------------------------------- trends
# id, audience, expected trend, expected trend_evidence
TREND_CASES = [
    ("halved_roas_few_purchases", dict(spend=20_000, roas=3.0, change=-0.5, purchases=6), "STABLE", "insufficient"),
    ("doubled_roas_few_purchases", dict(spend=20_000, roas=3.0, change=1.0, purchases=7), "STABLE", "insufficient"),
    ("large_supported_drop", dict(spend=80_000, roas=3.0, change=-0.4), "DECLINING", "tested"),
    ("halved_roas_many_purchases", dict(spend=60_000, roas=3.0, change=-0.5), "DECLINING", "tested"),
    ("large_supported_rise", dict(spend=80_000, roas=3.0, change=0.5), "IMPROVING", "tested"),
    ("same_drop_thin_support", dict(spend=20_000, roas=3.0, change=-0.4, purchases=10), "STABLE", "tested"),
    ("same_rise_thin_support", dict(spend=20_000, roas=3.0, change=0.5, purchases=10), "STABLE", "tested"),
    ("flat", dict(spend=80_000, roas=3.0), "STABLE", "tested"),
    # Significant but tiny: a 10 % move is under trend_min_change (15 %) however many purchases.
    ("significant_but_small_drop", dict(spend=2_000_000, roas=3.0, change=-0.10), "STABLE", "tested"),
    ("volatile_daily_purchases", dict(spend=30_000, roas=3.0, dispersion=40.0, active_days=7), "VOLATILE", "tested"),
    ("dispersion_just_under_ratio", dict(spend=30_000, roas=3.0, dispersion=14.9, active_days=7), "STABLE", "tested"),
    (
        "volatile_needs_four_active_days",
        dict(spend=30_000, roas=3.0, dispersion=40.0, active_days=3),
        "STABLE",
        "tested",
    ),
    (
        "volatile_but_few_purchases",
        dict(spend=20_000, roas=3.0, purchases=5, dispersion=40.0, active_days=7),
        "STABLE",
        "insufficient",
    ),
    (
        # Overdispersed days widen the standard error (quasi-Poisson): the same fall is not proven.
        "scatter_hides_a_moderate_decline",
        dict(spend=80_000, roas=3.0, change=-0.4, dispersion=40.0, active_days=7),
        "VOLATILE",
        "tested",
    ),
    (
        "decline_beats_volatility",
        dict(spend=80_000, roas=3.0, change=-0.75, dispersion=12.0, active_days=7),
        "DECLINING",
        "tested",
    ),
    ("accelerating_spend_weaker_fall", dict(spend=30_000, roas=3.0, change=-0.3, accel=1.0), "DECLINING", "tested"),
    ("steady_spend_weaker_fall", dict(spend=30_000, roas=3.0, change=-0.3), "STABLE", "tested"),
    ("accelerating_spend_flat_roas", dict(spend=30_000, roas=3.0, accel=1.0), "STABLE", "tested"),
    ("accelerating_spend_rising_roas", dict(spend=150_000, roas=3.0, change=0.5, accel=1.0), "IMPROVING", "tested"),
]


@pytest.fixture(scope="module")
def trend_rows():
    return decide_table([(c[0], aud(c[0], **c[1]), None) for c in TREND_CASES])


@pytest.mark.parametrize(
    ("case", "trend", "evidence"), [(c[0], *c[2:]) for c in TREND_CASES], ids=[c[0] for c in TREND_CASES]
)
def test_trend_state(trend_rows, case, trend, evidence):
    row = trend_rows[case]
    assert (row["trend"], row["trend_evidence"]) == (trend, evidence), (row["roas_change_z"], row["roas_change"])


def test_trend_figures_are_those_of_the_window_halves():
    row = decide_one(aud("a", spend=80_000, roas=3.0, change=-0.4))
    assert row["roas_change"] == pytest.approx(-0.4)
    assert row["roas_change_z"] < -2.0
    assert any(
        r.startswith("Declining: ROAS -40% over the last 4 days versus the 3 before (z -") for r in row["reasons"]
    )


def test_same_relative_change_is_a_trend_only_with_enough_purchases():
    thin = decide_one(aud("a", spend=20_000, roas=3.0, change=-0.4, purchases=10))
    thick = decide_one(aud("a", spend=80_000, roas=3.0, change=-0.4))
    assert thin["roas_change"] == pytest.approx(thick["roas_change"])
    assert abs(thin["roas_change_z"]) < abs(thick["roas_change_z"])
    assert (thin["trend"], thick["trend"]) == ("STABLE", "DECLINING")


def test_insufficient_trend_is_explained_with_the_purchase_count():
    row = decide_one(aud("a", spend=20_000, roas=3.0, change=-0.5, purchases=6))
    assert (
        "No trend claimed: 6 purchases over 7 days are too few to tell a change from noise (needs 8)" in row["reasons"]
    )
    assert "Thin data: only 6 purchases over 7 days" in row["risks"]


def test_volatile_is_explained_with_the_dispersion():
    row = decide_one(aud("a", spend=30_000, roas=3.0, dispersion=40.0, active_days=7))
    assert row["dispersion_ratio"] == pytest.approx(40.0 / 6)
    assert row["dispersion_p"] < 0.01
    assert any(r.startswith("Volatile: daily purchases vary 6.7x more than spend explains") for r in row["reasons"])
    assert any(r.startswith("Volatility:") for r in row["risks"])


def test_accelerating_spend_is_flagged_as_a_saturation_risk():
    row = decide_one(aud("a", spend=30_000, roas=3.0, change=-0.3, accel=1.0))
    assert row["spend_acceleration"] == pytest.approx(1.0)
    assert "Saturation: daily spend up 100% in the most recent days while ROAS moved -30%" in row["risks"]


@pytest.mark.parametrize(
    ("overrides", "evidence"),
    [({}, "insufficient"), ({"trend_min_purchases": 6}, "tested"), ({"trend_min_purchases": 7}, "insufficient")],
    ids=["default_needs_8", "configured_needs_6", "configured_needs_7"],
)
def test_trend_min_purchases_follows_the_config(overrides, evidence):
    row = decide_one(aud("a", spend=20_000, roas=3.0, change=-0.5, purchases=6), cfg=config(**overrides))
    assert row["trend_evidence"] == evidence


# ----------------------------------------------------------------------------- confidence
SPENDS = [3_000, 6_000, 12_000, 24_000, 48_000, 96_000]


def _ladder(roas: float) -> list[dict]:
    decided = rows(run([aud(f"s{s}", spend=s, roas=roas) for s in SPENDS])[0])
    return [decided[f"s{s}"] for s in SPENDS]


def test_more_purchases_at_the_same_roas_give_more_confidence_for_a_winner():
    ladder = _ladder(3.6)  # 1.44x the account
    assert all(r["bucket"] == "WINNER" for r in ladder)
    p = [r["p_in_bucket"] for r in ladder]
    assert p == sorted(p) and len(set(p)) == len(p), p
    assert [r["purchases_window"] for r in ladder] == sorted(r["purchases_window"] for r in ladder)
    levels = [r["confidence"] for r in ladder]
    assert levels[0] == "LOW" and levels[-1] == "HIGH", levels
    order = {"LOW": 0, "MEDIUM": 1, "HIGH": 2}
    assert [order[x] for x in levels] == sorted(order[x] for x in levels)


def test_more_purchases_at_the_same_roas_give_more_confidence_for_a_loser():
    ladder = _ladder(1.5)  # 0.6x the account
    assert all(r["bucket"] == "LOSER" for r in ladder)
    p = [r["p_in_bucket"] for r in ladder]
    assert p == sorted(p) and len(set(p)) == len(p), p
    assert ladder[-1]["confidence"] == "HIGH"


@pytest.mark.parametrize(
    ("roas", "bucket"),
    [(3.0, "WINNER"), (3.25, "WINNER"), (3.6, "WINNER"), (4.5, "WINNER"), (6.0, "WINNER")],
)
def test_confidence_rises_with_distance_from_the_threshold(roas, bucket):
    base = decide_one(aud("a", spend=20_000, roas=3.0))
    row = decide_one(aud("a", spend=20_000, roas=roas))
    assert row["bucket"] == bucket
    assert row["p_in_bucket"] >= base["p_in_bucket"]
    assert 0.0 <= row["p_in_bucket"] <= 1.0


def test_posterior_figures_are_consistent():
    row = decide_one(aud("a", spend=20_000, roas=3.0))  # exactly 1.2x: about even odds of being a winner
    assert 0.35 < row["p_winner"] < 0.6
    assert row["p_in_bucket"] == row["p_winner"]
    assert row["confidence"] == "LOW"
    # Shrinkage toward the account average (prior strength 5): posterior mean between 1 and 1.2.
    assert 1.0 < row["posterior_roas_ratio"] < 1.2
    assert row["p_winner"] + row["p_loser"] <= 1.0


@pytest.mark.parametrize(
    ("p_thresholds", "expected"),
    [
        ({}, "MEDIUM"),
        ({"confidence_high": 0.83}, "HIGH"),
        ({"confidence_medium": 0.85, "confidence_high": 0.95}, "LOW"),
    ],
    ids=["default", "lower_high_bar", "higher_bars"],
)
def test_confidence_levels_follow_the_config(p_thresholds, expected):
    """A SCALE's confidence is the probability that scaling is right (the marginal ROAS above
    break-even), labelled at the configured bars."""
    row = decide_one(aud("a", spend=20_000, roas=3.6, purchases=40), cfg=config(**p_thresholds))
    assert row["matrix_action"] == "SCALE"
    assert 0.83 < row["act_probability"] < 0.85
    assert row["confidence"] == expected


def test_a_holds_confidence_is_the_probability_of_its_bucket():
    row = decide_one(aud("a", spend=20_000, roas=2.6, purchases=40), cfg=config(confidence_medium=0.5))
    assert row["action"] == "HOLD" and row["act_probability"] is None
    expected = "HIGH" if row["p_in_bucket"] >= 0.9 else "MEDIUM" if row["p_in_bucket"] >= 0.5 else "LOW"
    assert row["confidence"] == expected


# id, audience, config, matrix action, final action, gate reason
GATE_CASES = [
    (
        "weak_winner_held",
        dict(spend=10_000, roas=3.1),
        dict(min_confidence_to_act="MEDIUM"),
        "SCALE",
        "HOLD",
        "SCALE held back: confidence LOW is below the MEDIUM needed to act",
    ),
    (
        "weak_winner_acts_at_low",
        dict(spend=10_000, roas=3.1),
        dict(min_confidence_to_act="LOW"),
        "SCALE",
        "SCALE",
        None,
    ),
    (
        "likely_loser_not_worth_the_risk",
        dict(spend=10_000, roas=2.1),
        dict(),
        "PAUSE",
        "HOLD",
        "PAUSE held back: the expected gain (15.9% of its daily spend) does not outweigh 7x the expected loss (3.5%)",
    ),
    (
        "likely_loser_paused_at_a_lower_loss_weight",
        dict(spend=10_000, roas=2.1),
        dict(pause_loss_weight=4.0),
        "PAUSE",
        "PAUSE",
        None,
    ),
    ("clear_loser_paused", dict(spend=10_000, roas=1.8), dict(), "PAUSE", "PAUSE", None),
    (
        "clear_loser_held_at_high",
        dict(spend=10_000, roas=1.8),
        dict(min_confidence_to_pause="HIGH"),
        "PAUSE",
        "HOLD",
        "PAUSE held back: confidence MEDIUM is below the HIGH needed to act",
    ),
    (
        "volatile_average_below_break_even_held",
        dict(spend=100_000, roas=2.3, dispersion=60.0, active_days=7),
        dict(),
        "PAUSE",
        "HOLD",
        "PAUSE held back: confidence LOW is below the MEDIUM needed to act",
    ),
    (
        "medium_winner_held_at_high",
        dict(spend=20_000, roas=3.6, purchases=40),
        dict(min_confidence_to_act="HIGH"),
        "SCALE",
        "HOLD",
        "SCALE held back: confidence MEDIUM is below the HIGH needed to act",
    ),
    (
        "medium_winner_acts_at_medium",
        dict(spend=20_000, roas=3.6, purchases=40),
        dict(min_confidence_to_act="MEDIUM"),
        "SCALE",
        "SCALE",
        None,
    ),
    ("hold_is_never_gated", dict(spend=10_000, roas=2.6), dict(min_confidence_to_act="HIGH"), "HOLD", "HOLD", None),
]


@pytest.mark.parametrize(
    ("kwargs", "cfg", "matrix_action", "action", "gate"), [c[1:] for c in GATE_CASES], ids=[c[0] for c in GATE_CASES]
)
def test_confidence_gate(kwargs, cfg, matrix_action, action, gate):
    row = decide_one(aud("a", **kwargs), cfg=config(target_cpa={"act_1": 1000.0}, **cfg))
    assert row["matrix_action"] == matrix_action
    assert row["action"] == action
    assert row["gate_reason"] == gate
    if gate:
        assert gate in row["reasons"]
        assert row["scale_percentage"] == 0


def test_the_gate_figures_are_the_posterior_expectations():
    """act_probability, expected_gain and expected_loss are closed forms of the Gamma posterior:
    checked here against a Monte Carlo draw of the same posterior."""
    import numpy as np

    row = decide_one(aud("a", spend=10_000, roas=2.1), cfg=config(target_cpa={"act_1": 1000.0}))
    theta = np.random.default_rng(7).gamma(row["posterior_shape"], 1 / row["posterior_rate"], 400_000)
    assert row["act_probability"] == pytest.approx((theta < 1).mean(), abs=0.005)
    assert row["expected_gain"] == pytest.approx(np.maximum(1 - theta, 0).mean(), rel=0.02)
    assert row["expected_loss"] == pytest.approx(np.maximum(theta - 1, 0).mean(), rel=0.02)
    scale = decide_one(aud("b", spend=20_000, roas=3.6, purchases=40))
    factor = scale["marginal_roas_factor"]
    theta = np.random.default_rng(8).gamma(scale["posterior_shape"], 1 / scale["posterior_rate"], 400_000)
    assert scale["act_probability"] == pytest.approx((theta * factor > 1).mean(), abs=0.005)
    assert scale["expected_gain"] == pytest.approx(np.maximum(theta * factor - 1, 0).mean(), rel=0.02)


def test_a_large_change_that_is_not_significant_says_why_it_is_no_trend():
    """Not "Stable: ROAS +50% (z=1.3)", which reads as a contradiction: say the test was not passed."""
    row = decide_one(aud("a", spend=20_000, roas=3.0, change=0.5, purchases=10))
    assert row["trend"] == "STABLE" and row["trend_evidence"] == "tested"
    text = next(r for r in row["reasons"] if r.startswith("No trend"))
    assert text.startswith("No trend: ROAS +50% over the last 4 days versus the 3 before, but not significant: |z| ")
    assert " < 2.0 with 10 purchases" in text
    assert not any(r.startswith("Stable:") for r in row["reasons"])


def test_a_small_significant_change_is_named_as_under_the_minimum():
    row = decide_one(aud("a", spend=2_000_000, roas=3.0, change=-0.10))
    text = next(r for r in row["reasons"] if r.startswith("No trend"))
    assert (
        text == "No trend: ROAS -10% over the last 4 days versus the 3 before, within the 15% that counts as a change"
    )


def test_a_trend_states_the_test_it_passed():
    row = decide_one(aud("a", spend=80_000, roas=3.0, change=0.5))
    text = next(r for r in row["reasons"] if r.startswith("Improving"))
    assert ">= 2.0 with" in text and "purchases" in text
