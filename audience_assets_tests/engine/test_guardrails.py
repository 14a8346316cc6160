"""Guardrails (spec 10): scale band, cooldowns, budget ceiling, account daily cap, pause minimum,
no budget; and the independent verifier `verify_guardrails`."""

from __future__ import annotations

from dataclasses import replace

import polars as pl
import pytest

from audience_assets.engine.guardrails import verify_guardrails
from audience_assets_tests.engine_cases import (
    AS_OF,
    account,
    aud,
    build,
    config,
    decide_one,
    decide_table,
    prior,
    rows,
    run,
    run_frames,
)

WIN = dict(
    spend=30_000, roas=5.0
)  # a HIGH-confidence (for every type) WINNER+STABLE: SCALE unless a guardrail stops it


# ----------------------------------------------------------------------------- scale band
@pytest.mark.parametrize(
    ("audience_type", "lookalike_pct", "overrides", "pct"),
    [
        ("LOOKALIKE", 5.0, {}, 20),
        ("LOOKALIKE", 1.0, {}, 25),  # faster scale
        ("BROAD", None, {}, 20),
        ("INTEREST", None, {}, 20),
        ("CUSTOM", None, {}, 20),
        ("LOOKALIKE", 5.0, {"scale_step_pct": 30}, 30),
        ("LOOKALIKE", 1.0, {"scale_step_pct": 30}, 25),  # the 1 % lookalike's own cap
        ("BROAD", None, {"scale_step_pct": 30}, 30),
        ("CUSTOM", None, {"scale_step_pct": 30}, 20),  # custom audiences: lower scale cap
        ("LOOKALIKE", 5.0, {"scale_step_pct": 25, "max_scale_pct": 25}, 25),
    ],
    ids=[
        "lla5",
        "lla1",
        "broad",
        "interest",
        "custom",
        "lla5_step30",
        "lla1_step30",
        "broad_step30",
        "custom_step30",
        "lla5_step25",
    ],
)
def test_scale_step_within_band_and_type_cap(audience_type, lookalike_pct, overrides, pct):
    cfg = config(**overrides)
    row = decide_one(aud("a", type=audience_type, lookalike_pct=lookalike_pct, **WIN), cfg=cfg)
    assert row["action"] == "SCALE", row["guardrail_reason"]
    assert row["scale_percentage"] == pct
    assert cfg.min_scale_pct <= row["scale_percentage"] <= cfg.max_scale_pct
    assert row["new_daily_budget"] == pytest.approx(3000 * (1 + pct / 100))
    assert f"Raise the daily budget {pct}%: ₹3,000 -> ₹{3000 * (100 + pct) // 100:,}" in row["reasons"]


def test_custom_audience_carries_its_creative_risk_note():
    row = decide_one(aud("a", type="CUSTOM", **WIN))
    assert any(r.startswith("Custom audience: results depend strongly on the creative") for r in row["risks"])
    other = decide_one(aud("a", type="LOOKALIKE", **WIN))
    assert not any(r.startswith("Custom audience") for r in other["risks"])


@pytest.mark.parametrize(
    ("budget", "expected"),
    [(3_000.0, 3_600.0), (2_500.5, 3_000.6), (1_234.56, 1_481.47), (10_000.0, 12_000.0)],
)
def test_new_daily_budget_is_current_times_one_plus_step(budget, expected):
    row = decide_one(aud("a", budget=budget, **WIN))
    assert row["action"] == "SCALE"
    assert row["new_daily_budget"] == pytest.approx(expected, abs=0.005)


def test_non_scale_rows_keep_their_budget():
    row = decide_one(aud("a", spend=30_000, roas=1.5, budget=2_345.678), cfg=config(target_cpa={"act_1": 2000.0}))
    assert row["action"] == "PAUSE"
    assert (row["scale_percentage"], row["new_daily_budget"]) == (0, pytest.approx(2_345.68))


# ----------------------------------------------------------------------------- cooldown
# id, audience type kwargs, hours since the metadata budget change, expected action
COOLDOWN_CASES = [
    ("lla5_changed_24h_ago", dict(lookalike_pct=5.0), 24.0, "HOLD"),
    ("lla5_changed_71h_ago", dict(lookalike_pct=5.0), 71.0, "HOLD"),
    ("lla5_changed_72h_ago", dict(lookalike_pct=5.0), 72.0, "SCALE"),
    ("lla5_changed_73h_ago", dict(lookalike_pct=5.0), 73.0, "SCALE"),
    ("lla5_never_changed", dict(lookalike_pct=5.0), None, "SCALE"),
    ("lla1_changed_47h_ago", dict(lookalike_pct=1.0), 47.0, "HOLD"),
    ("lla1_changed_48h_ago", dict(lookalike_pct=1.0), 48.0, "SCALE"),
    ("lla1_changed_50h_ago", dict(lookalike_pct=1.0), 50.0, "SCALE"),
    ("broad_changed_50h_ago", dict(type="BROAD"), 50.0, "HOLD"),
    ("custom_changed_71h_ago", dict(type="CUSTOM"), 71.0, "HOLD"),
    ("changed_after_the_decision_time", dict(lookalike_pct=5.0), -5.0, "SCALE"),
]


@pytest.fixture(scope="module")
def cooldown_rows():
    return decide_table([(c[0], aud(c[0], last_change_hours=c[2], **c[1], **WIN), None) for c in COOLDOWN_CASES])


@pytest.mark.parametrize(
    ("case", "hours", "action"), [(c[0], *c[2:]) for c in COOLDOWN_CASES], ids=[c[0] for c in COOLDOWN_CASES]
)
def test_cooldown_from_metadata(cooldown_rows, case, hours, action):
    row = cooldown_rows[case]
    assert row["action"] == action
    if action == "HOLD":
        assert row["guardrail"] == "cooldown"
        assert row["proposed_action"] == "SCALE"
        assert row["guardrail_reason"] == (
            f"SCALE held: budget last changed {hours:.0f} h before this decision, "
            f"inside the {row['cooldown_hours']:.0f} h cooldown"
        )
        assert row["guardrail_reason"] in row["reasons"]
    else:
        assert row["guardrail"] is None
    if hours is not None and hours < 0:
        assert row["hours_since_budget_change"] is None  # a change after the decision is ignored


@pytest.mark.parametrize(
    ("history", "action"),
    [
        ([prior("a", 1)], "HOLD"),
        ([prior("a", 2)], "HOLD"),
        ([prior("a", 3)], "SCALE"),  # exactly 72 h
        ([prior("a", 4)], "SCALE"),
        ([prior("a", 1, action="HOLD")], "SCALE"),
        ([prior("a", 1, action="PAUSE")], "SCALE"),
        ([prior("a", 0)], "SCALE"),  # same decision date: not earlier, so not history (a re-run)
        ([prior("other", 1)], "SCALE"),
        ([prior("a", 1, account_id="act_9")], "SCALE"),
        ([prior("a", 6), prior("a", 1, action="HOLD"), prior("a", 2)], "HOLD"),
    ],
    ids=[
        "scale_1d_ago",
        "scale_2d_ago",
        "scale_3d_ago",
        "scale_4d_ago",
        "hold_1d_ago",
        "pause_1d_ago",
        "scale_same_day",
        "other_adset",
        "other_account",
        "latest_scale_counts",
    ],
)
def test_cooldown_from_the_engines_own_history(history, action):
    decisions, _ = run([aud("a", **WIN)], history=history)
    row = rows(decisions)["a"]
    assert row["action"] == action
    assert row["guardrail"] == ("cooldown" if action == "HOLD" else None)


@pytest.mark.parametrize(
    ("hours", "history", "since"),
    [(100.0, [prior("a", 1)], 24.0), (10.0, [prior("a", 4)], 10.0), (-30.0, [prior("a", 2)], 48.0)],
    ids=["history_more_recent", "metadata_more_recent", "future_metadata_ignored"],
)
def test_cooldown_uses_the_most_recent_change(hours, history, since):
    row = rows(run([aud("a", last_change_hours=hours, **WIN)], history=history)[0])["a"]
    assert row["hours_since_budget_change"] == pytest.approx(since)
    assert (row["action"], row["guardrail"]) == ("HOLD", "cooldown")


def test_lookalike_1pct_scaled_two_days_ago_may_scale_again():
    row = rows(run([aud("a", lookalike_pct=1.0, **WIN)], history=[prior("a", 2)])[0])["a"]
    assert (row["action"], row["scale_percentage"]) == ("SCALE", 25)


# ----------------------------------------------------------------------------- budget ceiling
# Account median window spend 20,000 over 7 days: 1 % lookalike ceiling 3 x 2,857.14 = 8,571.43 a day,
# custom ceiling 2 x 2,857.14 = 5,714.29 a day; other types have none.
CEILING_CASES = [
    (dict(lookalike_pct=1.0), 6_000.0, "SCALE", 25),
    (dict(lookalike_pct=1.0), 7_000.0, "SCALE", 22),  # clamped: 7,000 x 1.22 = 8,540 <= 8,571.43
    (dict(lookalike_pct=1.0), 7_200.0, "HOLD", 0),  # room for 19 % only: under the 20 % minimum
    (dict(lookalike_pct=1.0), 8_571.43, "HOLD", 0),  # at the ceiling
    (dict(lookalike_pct=1.0), 12_000.0, "HOLD", 0),  # above it
    (dict(type="CUSTOM"), 4_000.0, "SCALE", 20),
    (dict(type="CUSTOM"), 5_000.0, "HOLD", 0),  # room for 14 %
    (dict(lookalike_pct=5.0), 50_000.0, "SCALE", 20),  # no ceiling
    (dict(type="BROAD"), 50_000.0, "SCALE", 20),
]
CEILING_IDS = [
    "lla1_room",
    "lla1_clamped",
    "lla1_too_little_room",
    "lla1_at_ceiling",
    "lla1_above",
    "custom_room",
    "custom_too_little_room",
    "lla5_no_ceiling",
    "broad_no_ceiling",
]


@pytest.fixture(scope="module")
def ceiling_rows():
    cases = [(i, aud(i, budget=c[1], **c[0], **WIN), None) for i, c in zip(CEILING_IDS, CEILING_CASES, strict=True)]
    return decide_table(cases, ballast_budget=1_000_000.0)


@pytest.mark.parametrize(
    ("case", "budget", "action", "pct"),
    [(i, *c[1:]) for i, c in zip(CEILING_IDS, CEILING_CASES, strict=True)],
    ids=CEILING_IDS,
)
def test_budget_ceiling(ceiling_rows, case, budget, action, pct):
    row = ceiling_rows[case]
    assert (row["action"], row["scale_percentage"]) == (action, pct), row["guardrail_reason"]
    if action == "HOLD":
        assert row["guardrail"] == "budget_ceiling"
        assert row["guardrail_reason"].startswith(f"SCALE held: daily budget ₹{budget:,.0f} is at the")
    else:
        assert row["guardrail"] is None
        if row["budget_ceiling"] is not None:
            assert row["new_daily_budget"] <= row["budget_ceiling"]


# ----------------------------------------------------------------------------- account daily cap
THREE_WINNERS = [
    aud("w_best", spend=30_000, roas=5.0),
    aud("w_mid", spend=30_000, roas=4.5),
    aud("w_low", spend=30_000, roas=4.0),
]


@pytest.mark.parametrize(
    ("cap_pct", "scaled"),
    [
        (20.0, {"w_best", "w_mid", "w_low"}),  # cap 1,800: 3 x 600 fits
        (15.0, {"w_best", "w_mid"}),  # cap 1,350
        (10.0, {"w_best"}),  # cap 900
        (19.9, {"w_best", "w_mid"}),  # cap 1,791
        (0.0, set()),
    ],
    ids=["cap_20pct", "cap_15pct_default", "cap_10pct", "cap_just_under_three", "cap_zero"],
)
def test_account_daily_cap(cap_pct, scaled):
    decisions, _ = run(THREE_WINNERS, cfg=config(max_account_daily_increase_pct=cap_pct), ballast_budget=None)
    decided = rows(decisions)
    assert {k for k, r in decided.items() if r["action"] == "SCALE"} == scaled
    cap = 9_000 * cap_pct / 100
    increase = sum(r["new_daily_budget"] - r["current_daily_budget"] for r in decided.values())
    assert increase <= cap + 0.01
    for adset, r in decided.items():
        assert r["proposed_action"] == "SCALE"
        if adset not in scaled:
            assert (r["action"], r["guardrail"]) == ("HOLD", "account_daily_cap")
            assert r["guardrail_reason"].startswith(
                f"SCALE held: the account's budget increases today already reach the cap of ₹{cap:,.0f}"
            )


def test_account_daily_cap_is_per_account():
    auds = [aud("a1", **WIN), aud("b1", account="act_2", **WIN)]
    decisions, _ = run(auds, [account(), account("act_2")], cfg=config(max_account_daily_increase_pct=10.0))
    decided = rows(decisions)
    # Each account: ballast 100,000 + 3,000 -> cap 10,300; one 600 increase each.
    assert decided["a1"]["action"] == decided["b1"]["action"] == "SCALE"
    assert decided["a1"]["account_increase_cap"] == pytest.approx(10_300.0)


def test_account_daily_cap_lets_a_smaller_later_increase_fill_the_room():
    """Cap 935 (11 % of 8,500). Best: +600 fits. Middle: +800 would exceed, refused. Last: +300
    still fits beside the 600 actually granted: a refused increase must not block a later one."""
    auds = [
        aud("best", spend=60_000, roas=5.0, budget=3_000),
        aud("middle", spend=30_000, roas=4.0, budget=4_000),
        aud("last", spend=20_000, roas=4.0, budget=1_500),
    ]
    decided = rows(run(auds, cfg=config(max_account_daily_increase_pct=11.0), ballast_budget=None)[0])
    assert decided["best"]["score"] > decided["middle"]["score"] > decided["last"]["score"]
    assert decided["best"]["action"] == "SCALE"
    assert decided["middle"]["guardrail"] == "account_daily_cap"
    assert decided["last"]["action"] == "SCALE", decided["last"]["guardrail_reason"]


def test_account_daily_cap_does_not_depend_on_input_row_order():
    """Equal scores: which audience the cap lets through must be decided by the data (e.g. the
    adset_id, as the recommendation ranking does), not by the order rows arrive in."""
    auds = [aud(x, **WIN) for x in ("a", "b", "c")]
    cfg = config(max_account_daily_increase_pct=10.0)  # cap 900: one of three +600 increases
    frames = build(auds, cfg=cfg, ballast_budget=None)
    winners = set()
    for order in ([0, 1, 2], [2, 1, 0], [1, 0, 2], [2, 0, 1]):
        decisions, _ = run_frames(replace(frames, window=frames.window[order]), cfg)
        assert decisions["score"].n_unique() == 1
        winners.add(tuple(decisions.filter(pl.col("action") == "SCALE")["adset_id"]))
    assert len(winners) == 1, winners


# ----------------------------------------------------------------------------- pause minimum, no budget
@pytest.mark.parametrize(
    ("kwargs", "min_to_pause", "action"),
    [
        (dict(spend=30_000, roas=1.5), None, "PAUSE"),  # default: min_spend (3,000)
        (dict(spend=30_000, roas=1.5), 50_000.0, "HOLD"),
        (dict(spend=30_000, roas=1.5), 30_000.0, "PAUSE"),  # at the minimum is allowed
        (dict(spend=100_000, roas=2.4, change=-0.4), 150_000.0, "HOLD"),  # AVERAGE+DECLINING
    ],
    ids=["default", "under_min", "at_min", "average_declining_under_min"],
)
def test_no_pause_under_min_spend(kwargs, min_to_pause, action):
    cfg = config(min_spend_to_pause=min_to_pause, target_cpa={"act_1": 2000.0})
    row = decide_one(aud("a", **kwargs), cfg=cfg)
    assert row["proposed_action"] == "PAUSE"
    assert row["action"] == action
    if action == "HOLD":
        assert row["guardrail"] == "pause_min_spend"
        assert row["guardrail_reason"] == (
            f"PAUSE held: spend ₹{kwargs['spend']:,} is under the ₹{min_to_pause:,.0f} minimum for a pause"
        )


@pytest.mark.parametrize(
    ("kwargs", "guardrail"),
    [
        (dict(budget=None, accel=-1.0), "no_budget"),  # no daily budget and no spend in the last 3 days
        (dict(budget=0.0), "no_budget"),
        (dict(budget=None), "no_budget"),  # recent spend is no substitute for a known budget
    ],
    ids=["no_budget_no_recent_spend", "zero_budget", "budget_unknown_with_spend"],
)
def test_no_budget(kwargs, guardrail):
    row = decide_one(aud("a", **WIN, **kwargs))
    assert row["proposed_action"] == "SCALE"
    assert row["guardrail"] == guardrail
    if guardrail:
        assert row["action"] == "HOLD"
        assert row["guardrail_reason"].startswith("SCALE held: the ad set's daily budget is unknown")


def test_an_unknown_budget_is_never_estimated_and_holds_a_scale():
    row = decide_one(aud("a", budget=None, **WIN))
    assert row["budget_source"] == "unknown"
    assert row["current_daily_budget"] is None
    assert row["proposed_action"] == "SCALE"
    assert row["action"] == "HOLD" and row["guardrail"] == "no_budget"
    assert row["scale_percentage"] == 0 and row["new_daily_budget"] is None
    known = decide_one(aud("a", **WIN))
    assert known["budget_source"] == "metadata" and known["action"] == "SCALE"


# ----------------------------------------------------------------------------- verify_guardrails
VERIFY_CFG = config(target_cpa={"act_1": 2000.0}, min_spend_to_pause=40_000.0)
MIXED = [
    aud("scale_lla5", **WIN),
    aud("scale_lla1", lookalike_pct=1.0, **WIN),
    aud("scale_clamped", lookalike_pct=1.0, budget=7_000.0, **WIN),
    aud("ceiling", type="CUSTOM", budget=5_000.0, **WIN),
    aud("cooldown", last_change_hours=20.0, **WIN),
    aud("history_cooldown", **WIN),
    aud("no_budget", budget=None, accel=-1.0, **WIN),
    aud("estimated", budget=None, **WIN),
    aud("pause", spend=60_000, roas=1.5),
    aud("pause_held", spend=30_000, roas=1.5),
    aud("gated", spend=10_000, roas=3.1),
    aud("hold_low_spend_loser", spend=5_000, roas=1.5, purchases=3),
    aud("volatile", dispersion=40.0, active_days=7, **WIN),
    aud("retest", spend=1_000, roas=4.0, purchases=1, age=40, long_spend=60_000, long_roas=4.0, long_purchases=150),
    aud("ineligible", spend=2_000, roas=3.0, purchases=1),
    aud("no_meta", metadata=False, **WIN),
    aud("zero", spend=0, roas=0, purchases=0),
]


@pytest.fixture(scope="module")
def mixed_decisions() -> pl.DataFrame:
    decisions, _ = run(MIXED, history=[prior("history_cooldown", 1)], cfg=VERIFY_CFG)
    return decisions


def test_mixed_set_exercises_every_guardrail(mixed_decisions):
    decided = rows(mixed_decisions)
    assert {r["guardrail"] for r in decided.values()} >= {"cooldown", "budget_ceiling", "no_budget", "pause_min_spend"}
    assert {r["action"] for r in decided.values()} == {"SCALE", "HOLD", "PAUSE", "RETEST"}


def test_verify_finds_nothing_in_engine_output(mixed_decisions):
    violations = verify_guardrails(mixed_decisions, VERIFY_CFG)
    assert violations.height == 0, violations.to_dicts()
    assert violations.columns == ["decision_date", "account_id", "adset_id", "rule", "detail"]


def _tamper(frame: pl.DataFrame, adset: str, **values) -> pl.DataFrame:
    hit = pl.col("adset_id") == adset
    return frame.with_columns(
        [pl.when(hit).then(pl.lit(v, dtype=frame.schema[k])).otherwise(pl.col(k)).alias(k) for k, v in values.items()]
    )


# id, adset, changed columns, expected rules for that adset
TAMPER_CASES = [
    (
        "scale_50pct",
        "scale_lla5",
        dict(scale_percentage=50, new_daily_budget=4_500.0),
        {"scale_band", "spec_scale_band"},
    ),
    (
        "scale_50pct_stale_budget",
        "scale_lla5",
        dict(scale_percentage=50),
        {"scale_band", "spec_scale_band", "new_budget"},
    ),
    (
        "scale_10pct",
        "scale_lla5",
        dict(scale_percentage=10, new_daily_budget=3_300.0),
        {"scale_band", "spec_scale_band"},
    ),
    ("lla1_30pct", "scale_lla1", dict(scale_percentage=30, new_daily_budget=3_900.0), {"scale_band"}),
    (
        "scale_inside_cooldown",
        "cooldown",
        dict(action="SCALE", scale_percentage=20, new_daily_budget=3_600.0),
        {"cooldown"},
    ),
    (
        "scale_inside_history_cooldown",
        "history_cooldown",
        dict(action="SCALE", scale_percentage=20, new_daily_budget=3_600.0),
        {"cooldown"},
    ),
    (
        "scale_past_ceiling",
        "ceiling",
        dict(action="SCALE", scale_percentage=20, new_daily_budget=6_000.0),
        {"new_budget"},
    ),
    ("pause_under_min_spend", "pause_held", dict(action="PAUSE"), {"pause_min_spend"}),
    (
        "scale_ineligible",
        "ineligible",
        dict(action="SCALE", scale_percentage=20, new_daily_budget=3_600.0),
        # the verifier recomputes the odds and the expected value from the stored posterior
        {"not_eligible", "confidence", "act_probability", "expected_value"},
    ),
    (
        "pause_ineligible",
        "ineligible",
        dict(action="PAUSE", spend_window=50_000.0),
        {"not_eligible", "confidence", "act_probability", "expected_value"},
    ),
    ("hold_with_20pct", "hold_low_spend_loser", dict(scale_percentage=20), {"scale_pct_without_scale"}),
    (
        "scale_at_low_confidence",
        "gated",
        dict(action="SCALE", scale_percentage=20, new_daily_budget=3_600.0),
        {"confidence", "act_probability"},
    ),
    ("retest_at_low_confidence", "retest", dict(confidence="LOW"), {"confidence"}),
    ("unknown_action", "volatile", dict(action="BOOST"), {"unknown_action"}),
    (
        "scale_without_budget",
        "no_budget",
        dict(action="SCALE", scale_percentage=20, current_daily_budget=None),
        {"new_budget"},
    ),
]


@pytest.mark.parametrize(
    ("adset", "values", "expected"), [c[1:] for c in TAMPER_CASES], ids=[c[0] for c in TAMPER_CASES]
)
def test_verify_names_the_broken_rule(mixed_decisions, adset, values, expected):
    assert adset in set(mixed_decisions["adset_id"])
    violations = verify_guardrails(_tamper(mixed_decisions, adset, **values), VERIFY_CFG)
    assert set(violations["adset_id"]) == {adset}, violations.to_dicts()
    assert set(violations["rule"]) == expected


def test_verify_catches_an_account_increase_above_the_cap():
    cfg = config()  # 15 %: cap 1,350 over three 3,000 budgets; the engine scales two
    decisions, _ = run(THREE_WINNERS, cfg=cfg, ballast_budget=None)
    assert verify_guardrails(decisions, cfg).height == 0
    forced = _tamper(decisions, "w_low", action="SCALE", scale_percentage=20, new_daily_budget=3_600.0, guardrail=None)
    violations = verify_guardrails(forced, cfg)
    assert set(violations["rule"]) == {"account_daily_cap"}
    assert set(violations["adset_id"]) == {"w_best", "w_mid", "w_low"}


def test_verify_uses_the_decision_date_and_account():
    decisions, _ = run(THREE_WINNERS, ballast_budget=None)
    forced = _tamper(decisions, "w_low", scale_percentage=50)
    violations = verify_guardrails(forced, config())
    assert set(violations["decision_date"]) == {AS_OF}
    assert set(violations["account_id"]) == {"act_1"}
