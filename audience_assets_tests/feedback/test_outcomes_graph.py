"""Outcomes, the scorecard and replay on the sample account, through the real graph: decide on date D
from CSV exports, then rewrite what three audiences did after D (a SCALE that falls to half the
account's ROAS, a SCALE that keeps winning, a held winner that wins), load the days after D with a
later decision date, and judge."""

from __future__ import annotations

from datetime import timedelta

import duckdb
import polars as pl
import pytest

from audience_assets.engine.config import RulesConfig
from audience_assets.engine.outcomes import LABELS, OutcomeSettings
from audience_assets.feedback.replay import replay
from audience_assets.sample.simulator import SAMPLE_END_DATE, simulate_account
from audience_assets_tests.conftest import csv_source, failure_messages, materialise

D = SAMPLE_END_DATE - timedelta(days=13)
LATER = D + timedelta(days=8)  # loads the days D .. D + 7: the 3- and 7-day horizons of D mature


def _rewrite(insights: pl.DataFrame, adset_id: str, ratio: float, account_roas: float) -> pl.DataFrame:
    """From D on, the ad set earns `ratio` x the account's ROAS, with purchases at its own order value."""
    own = insights.filter((pl.col("adset_id") == adset_id) & (pl.col("date_start") < D))
    aov = own["purchase_value"].sum() / max(own["purchases"].sum(), 1)
    after = (pl.col("adset_id") == adset_id) & (pl.col("date_start") >= D)
    revenue = (pl.col("spend") * ratio * account_roas).round(2)
    return insights.with_columns(
        pl.when(after).then(revenue).otherwise(pl.col("purchase_value")).alias("purchase_value"),
        pl.when(after)
        .then((revenue / aov).round(0).clip(lower_bound=1))
        .otherwise(pl.col("purchases"))
        .alias("purchases"),
    )


@pytest.fixture(scope="module")
def judged(tmp_path_factory):
    folder = tmp_path_factory.mktemp("outcomes")
    account = simulate_account()
    insights = account.insights.with_columns(pl.col("date_start").cast(pl.Date))
    audiences = folder / "audiences.csv"
    account.audiences.write_csv(audiences, date_format="%Y-%m-%d", datetime_format="%Y-%m-%dT%H:%M:%S")
    first = folder / "insights_d.csv"
    insights.write_csv(first, date_format="%Y-%m-%d")
    db = folder / "w.duckdb"
    result = materialise(db, D, source=csv_source(first, audiences))
    assert result.success, failure_messages(result)
    with duckdb.connect(str(db)) as conn:
        decided = conn.execute("SELECT * FROM decisions WHERE decision_date = ?", [D]).pl()
    scales = decided.filter(pl.col("action") == "SCALE").sort("score", descending=True)["adset_id"].to_list()
    held = decided.filter(
        (pl.col("action") == "HOLD") & pl.col("eligible") & (pl.col("normalized_roas") >= pl.col("winner_threshold"))
    )["adset_id"].to_list()
    cases = {"falls": scales[0], "keeps": scales[1], "held_winner": held[0]}
    acct_roas = float(decided["account_avg_roas"][0])
    for adset_id, ratio in ((cases["falls"], 0.5), (cases["keeps"], 2.0), (cases["held_winner"], 2.5)):
        insights = _rewrite(insights, adset_id, ratio, acct_roas)
    second = folder / "insights_later.csv"
    insights.write_csv(second, date_format="%Y-%m-%d")
    result = materialise(db, LATER, source=csv_source(second, audiences))
    assert result.success, failure_messages(result)
    with duckdb.connect(str(db)) as conn:
        outcomes = conn.execute("SELECT * FROM outcomes").pl()
        card = conn.execute("SELECT * FROM rule_scorecard").pl()
    return type("Judged", (), {"db": db, "cases": cases, "outcomes": outcomes, "card": card, "truth": account.truth})


def label(judged, case: str, horizon: int = 7) -> dict:
    rows = judged.outcomes.filter(
        (pl.col("decision_date") == D)
        & (pl.col("adset_id") == judged.cases[case])
        & (pl.col("horizon_days") == horizon)
    )
    assert rows.height == 1
    return rows.row(0, named=True)


def test_constructed_cases_get_the_right_label(judged):
    falls, keeps, held = label(judged, "falls"), label(judged, "keeps"), label(judged, "held_winner")
    assert (falls["action"], falls["label"]) == ("SCALE", "false_positive_scale"), falls
    assert falls["roas_ratio"] == pytest.approx(0.5, abs=0.1) and falls["value"] < 0 < falls["lost"]
    assert (keeps["action"], keeps["label"]) == ("SCALE", "good_call") and keeps["value"] > 0
    assert (held["action"], held["label"]) == ("HOLD", "missed_winner") and held["missed_value"] > 0
    assert held["lost"] == pytest.approx(held["missed_value"])


def test_only_matured_horizons_are_judged(judged):
    out = judged.outcomes
    assert set(out["decision_date"]) == {D}  # LATER has no days after it yet
    assert set(out["horizon_days"]) == {3, 7}
    assert out.group_by("horizon_days").len()["len"].to_list() == [out.height // 2] * 2
    # D + 7 is the newest stored day: days D + 1 .. D + 7 are inside its 7-day attribution window, so
    # 6 of the 7-day horizon's days and 2 of the 3-day horizon's are still maturing.
    for horizon, maturing in ((7, 6 / 7), (3, 2 / 3)):
        values = out.filter(pl.col("horizon_days") == horizon)["maturing_fraction"]
        assert values.min() == pytest.approx(maturing) and values.max() == pytest.approx(maturing)


def test_the_scorecard_adds_up_to_the_outcomes(judged):
    out, card = judged.outcomes, judged.card
    assert card["decisions"].sum() == out.height
    for name in LABELS:
        assert card[name].sum() == (out["label"] == name).sum(), name
    assert card["gained"].sum() == pytest.approx(out["gained"].sum())
    assert card["lost"].sum() == pytest.approx(out["lost"].sum())
    assert ((card["net_lo"] <= card["net"] + 1e-6) & (card["net"] <= card["net_hi"] + 1e-6)).all()
    labelled = card.filter(pl.col("labelled") > 0)
    assert ((labelled["hit_rate_lo"] <= labelled["hit_rate"]) & (labelled["hit_rate"] <= labelled["hit_rate_hi"])).all()


def test_labels_agree_with_the_hidden_truth(judged):
    """Untouched audiences: a labelled PAUSE or SCALE agrees with the simulator's true ROAS."""
    touched = set(judged.cases.values())
    rows = judged.outcomes.filter(
        (pl.col("horizon_days") == 7) & pl.col("action").is_in(["SCALE", "PAUSE"]) & ~pl.col("adset_id").is_in(touched)
        & (pl.col("label") != "inconclusive")
    ).join(judged.truth.select("adset_id", "relative_true_roas"), on="adset_id")  # fmt: skip
    right = (
        ((pl.col("action") == "SCALE") & (pl.col("label") == "good_call") & (pl.col("relative_true_roas") > 1))
        | ((pl.col("action") == "PAUSE") & (pl.col("label") == "good_call") & (pl.col("relative_true_roas") < 1))
        | ((pl.col("label") == "bad_pause") & (pl.col("relative_true_roas") > 1))
    )
    assert rows.height >= 20
    assert rows.filter(right).height / rows.height >= 0.9


def _replay(judged, **overrides):
    with duckdb.connect(str(judged.db)) as conn:
        return replay(conn, None, None, config_path=None, overrides=overrides, judge_cfg=RulesConfig(),
                      settings=OutcomeSettings(horizons=(7,)))  # fmt: skip


def test_replay_with_the_stored_rules_changes_nothing(judged):
    result = _replay(judged)
    assert result.dates == [D, LATER] and result.changed.is_empty()
    assert result.baseline_card.equals(result.candidate_card)


def _stored_decisions(db) -> pl.DataFrame:
    with duckdb.connect(str(db)) as conn:
        return conn.execute("SELECT * FROM decisions ORDER BY decision_date, adset_id").pl()


def test_replay_with_a_stricter_rule_changes_what_it_should(judged):
    before = _stored_decisions(judged.db)
    result = _replay(judged, min_confidence_to_act="HIGH")
    expected = before.filter(pl.col("action").is_in(["SCALE", "RETEST"]) & (pl.col("confidence") == "MEDIUM"))
    assert expected.height > 0
    changed = result.changed
    assert sorted(zip(changed["decision_date"], changed["adset_id"], strict=True)) == sorted(
        zip(expected["decision_date"], expected["adset_id"], strict=True)
    )
    assert set(changed["candidate_action"]) == {"HOLD"}
    assert _stored_decisions(judged.db).equals(before)  # the stored decisions are untouched
