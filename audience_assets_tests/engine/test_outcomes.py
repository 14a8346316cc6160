"""Judging outcomes, the pure part: labels from the horizon posterior, the marginal ROAS of an executed
SCALE (difference-in-differences against held audiences), an executed PAUSE judged by comparable held
audiences, money, and the scorecard. Tables of synthetic rows with known answers."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest

from audience_assets.engine.config import RulesConfig
from audience_assets.engine.outcomes import LABELS, OutcomeSettings, judge, marginal_roas, scorecard

DAY = date(2026, 11, 12)
ACCOUNT_ROAS = 2.0
AOV = 500.0


def row(adset_id: str, action: str, ratio: float, spend: float = 70_000.0, **extra) -> dict:
    """One (decision, 7-day horizon) row: the ad set earned `ratio` x the account's ROAS over the horizon."""
    revenue = spend * ratio * ACCOUNT_ROAS
    base = {
        "decision_date": DAY, "account_id": "act_1", "adset_id": adset_id, "horizon_days": 7, "audience_type": "INTEREST",
        "bucket": "WINNER", "action": action, "matrix_action": action, "proposed_action": action,
        "matrix_rule": "WINNER+STABLE", "guardrail": None, "gate_reason": None, "eligible": True,
        "normalized_roas": 1.5, "winner_threshold": 1.2, "scale_percentage": 20 if action == "SCALE" else 0,
        "type_scale_pct": 20.0, "spend_window": spend, "window_days": 7, "currency": "INR", "executed": False,
        "learning_restarted": None, "spend": spend, "revenue": revenue, "purchases": revenue / AOV,
        "roas": revenue / spend if spend else None, "account_roas": ACCOUNT_ROAS, "account_aov": AOV,
        "spend_before": spend, "revenue_before": revenue,
    }  # fmt: skip
    return base | extra


def judged(*rows: dict, **settings) -> pl.DataFrame:
    return judge(pl.DataFrame(list(rows), infer_schema_length=None), RulesConfig(), OutcomeSettings(**settings))


def labels(frame: pl.DataFrame) -> dict[str, str]:
    return dict(frame.select("adset_id", "label").iter_rows())


LABEL_CASES = [
    ("scale that kept winning", row("s", "SCALE", 1.8), "good_call"),
    ("scale that fell to half", row("s", "SCALE", 0.5), "false_positive_scale"),
    ("scale on thin data", row("s", "SCALE", 0.5, spend=800.0), "inconclusive"),
    ("pause of a loser", row("p", "PAUSE", 0.5), "good_call"),
    ("pause of a winner", row("p", "PAUSE", 1.8), "bad_pause"),
    ("held winner that won", row("h", "HOLD", 2.0), "missed_winner"),
    ("held average that stayed average", row("h", "HOLD", 0.9, normalized_roas=1.0), "good_call"),
    ("held, not eligible, then won", row("h", "HOLD", 2.0, eligible=False), "inconclusive"),
    ("held, below the winner bucket at decision, then won", row("h", "HOLD", 2.0, normalized_roas=1.0), "inconclusive"),
    ("retest that still wins", row("r", "RETEST", 1.8), "good_call"),
    ("paused ad set with no delivery after", row("p", "PAUSE", 0.0, spend=0.0), "inconclusive"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "case", "expected"), LABEL_CASES, ids=[c[0] for c in LABEL_CASES])
def test_labels(name, case, expected):
    assert judged(case)["label"].to_list() == [expected]


def test_money_against_the_account_average():
    out = judged(row("s", "SCALE", 1.5), row("p", "PAUSE", 0.5), row("h", "HOLD", 2.0)).sort("adset_id")
    values = dict(zip(out["adset_id"], out["value"], strict=True))
    # SCALE: 20 % of 10,000 a day for 7 days earns (3.0 - 2.0) per unit; PAUSE: 70,000 saves (2.0 - 1.0).
    assert values["s"] == pytest.approx(0.2 * 10_000 * 7 * 1.0)
    assert values["p"] == pytest.approx(70_000 * 1.0)
    held = out.filter(pl.col("adset_id") == "h").row(0, named=True)
    assert held["value"] == 0 and held["lost"] == pytest.approx(0.2 * 10_000 * 7 * 2.0)


def _with_controls(treated: dict, growth: float = 1.0, n: int = 6) -> list[dict]:
    """Held audiences of the same account, type and bucket whose spend and revenue grew by `growth`."""
    controls = []
    for i in range(n):
        c = row(f"c{i}", "HOLD", 1.0 + 0.05 * i, spend=50_000 * growth, normalized_roas=1.5 + 0.02 * i)
        c["spend_before"] = 50_000.0
        c["revenue_before"] = c["revenue"] / growth
        controls.append(c)
    return [treated, *controls]


def test_marginal_roas_of_an_executed_scale_nets_out_what_held_audiences_did():
    # Before: 70,000 spend at 3.0 ROAS. After: the budget rose 30 % and the account's held audiences
    # grew 10 % on their own; the increase beyond that earned 1.0 per unit (half the account's ROAS).
    before_spend, before_rev = 70_000.0, 210_000.0
    growth = 1.10
    after_spend = before_spend * 1.30
    extra = after_spend - before_spend * growth
    after_rev = before_rev * growth + 1.0 * extra
    treated = row("s", "SCALE", after_rev / after_spend / ACCOUNT_ROAS, spend=after_spend, executed=True,
                  spend_before=before_spend, revenue_before=before_rev)  # fmt: skip
    out = judged(*_with_controls(treated, growth)).filter(pl.col("adset_id") == "s").row(0, named=True)
    assert out["marginal_roas"] == pytest.approx(1.0, rel=1e-6)
    assert out["marginal_roas_lo"] <= 1.0 <= out["marginal_roas_hi"]
    # Its average ROAS still beats the account, but the money it added did not: a false positive.
    assert out["roas"] > ACCOUNT_ROAS and out["label"] == "false_positive_scale"
    assert out["value"] == pytest.approx(0.2 * (after_spend / 7) * 7 * (1.0 - ACCOUNT_ROAS))


def test_no_marginal_roas_without_an_increase_or_controls():
    treated = row("s", "SCALE", 1.5, executed=True)  # spend did not move
    assert judged(*_with_controls(treated))["marginal_roas"].null_count() == 7
    lone = row("s", "SCALE", 1.5, executed=True, spend_before=35_000.0)
    settings = OutcomeSettings()
    assert marginal_roas(lone, pl.DataFrame([row("c", "HOLD", 1.0)]), settings) is None


@pytest.mark.parametrize(("comparable_ratio", "expected"), [(1.8, "bad_pause"), (0.5, "good_call")])
def test_an_executed_pause_is_judged_by_comparable_held_audiences(comparable_ratio, expected):
    paused = row("p", "PAUSE", 0.0, spend=0.0, executed=True, normalized_roas=1.0)  # no after-data
    comparable = [row(f"c{i}", "HOLD", comparable_ratio, normalized_roas=1.0 + 0.05 * i) for i in range(4)]
    far = row("far", "HOLD", 3.0, normalized_roas=2.5)  # different evidence at decision time: not comparable
    out = judged(paused, *comparable, far).filter(pl.col("adset_id") == "p").row(0, named=True)
    assert out["comparable_audiences"] == 4 and out["label"] == expected


def test_rule_branch_names_the_guardrail_or_the_gate():
    out = judged(
        row("g", "HOLD", 1.0, guardrail="cooldown", matrix_action="SCALE"),
        row("t", "HOLD", 1.0, gate_reason="held", matrix_action="SCALE"),
        row("m", "SCALE", 1.0),
    )
    assert dict(out.select("adset_id", "rule_branch").iter_rows()) == {
        "g": "guardrail:cooldown", "t": "gate:SCALE_held", "m": "WINNER+STABLE",
    }  # fmt: skip


def test_scorecard_counts_rates_and_intervals():
    rows = [row(f"s{i}", "SCALE", 1.8) for i in range(8)] + [row(f"f{i}", "SCALE", 0.4) for i in range(2)]
    rows += [row("x", "SCALE", 1.0, spend=500.0)]
    out = judged(*rows)
    card = scorecard(out, OutcomeSettings()).row(0, named=True)
    assert (card["decisions"], card["good_call"], card["false_positive_scale"], card["inconclusive"]) == (11, 8, 2, 1)
    assert card["hit_rate"] == pytest.approx(0.8) and card["hit_rate_lo"] < 0.8 < card["hit_rate_hi"]
    assert card["net"] == pytest.approx(out["gained"].sum() - out["lost"].sum())
    assert card["net_lo"] < card["net"] < card["net_hi"]
    assert sum(card[k] for k in LABELS) == card["decisions"]
