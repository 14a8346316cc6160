"""Safety cases found in review: same-day budget changes, paused ad sets, unknown budgets,
overdispersed days, CBO without a listed campaign, and headers that name a column twice."""

from dataclasses import replace
from datetime import datetime, timedelta

import polars as pl
import pytest

from audience_assets.engine.config import RulesConfig
from audience_assets.engine.pipeline import run_engine
from audience_assets.sources import InputError
from audience_assets.sources.files import read_csv_text
from audience_assets.sources.meta import audiences_frame
from audience_assets_tests.engine_cases import AS_OF, aud, build, rows

WIN = dict(spend=30_000, roas=4.0)


def _decide(frames, decided_at=None, cfg=None):
    decisions, _ = run_engine(
        frames.window,
        frames.account_bench,
        frames.campaign_bench,
        frames.metadata,
        frames.history,
        cfg or RulesConfig(),
        frames.as_of,
        decided_at,
    )
    return rows(decisions)


@pytest.mark.parametrize(
    ("changed_hours_into_the_day", "decided_hours_into_the_day", "expected"),
    [(3, 6, "HOLD"), (-80, 6, "SCALE"), (9, 6, "SCALE")],
    ids=["changed_this_morning", "changed_four_days_ago", "changed_after_the_decision"],
)
def test_a_budget_change_earlier_on_the_decision_date_counts_for_the_cooldown(
    changed_hours_into_the_day, decided_hours_into_the_day, expected
):
    start = datetime.combine(AS_OF, datetime.min.time())
    frames = build([aud("a", **WIN)])
    metadata = frames.metadata.with_columns(
        pl.when(pl.col("adset_id") == "a")
        .then(pl.lit(start + timedelta(hours=changed_hours_into_the_day)))
        .otherwise(pl.col("last_budget_change_at"))
        .cast(pl.Datetime("us"))
        .alias("last_budget_change_at")
    )
    row = _decide(replace(frames, metadata=metadata), start + timedelta(hours=decided_hours_into_the_day))["a"]
    assert row["action"] == expected, row["guardrail_reason"]
    if expected == "HOLD":
        assert row["guardrail"] == "cooldown" and row["hours_since_budget_change"] == pytest.approx(3.0)


def test_a_replay_never_sees_changes_after_its_decision_date():
    start = datetime.combine(AS_OF, datetime.min.time())
    frames = build([aud("a", **WIN)])
    metadata = frames.metadata.with_columns(
        pl.lit(start + timedelta(days=3)).cast(pl.Datetime("us")).alias("last_budget_change_at")
    )
    row = _decide(replace(frames, metadata=metadata), decided_at=start + timedelta(days=10))["a"]
    assert row["hours_since_budget_change"] is None and row["action"] == "SCALE"


@pytest.mark.parametrize("status", ["PAUSED", "CAMPAIGN_PAUSED", "ADSET_PAUSED", "ARCHIVED"])
def test_an_ad_set_that_is_not_delivering_is_never_scaled_paused_or_retested(status):
    frames = build([aud("a", **WIN)])
    metadata = frames.metadata.with_columns(
        pl.when(pl.col("adset_id") == "a").then(pl.lit(status)).otherwise(pl.lit("ACTIVE")).alias("effective_status")
    )
    row = _decide(replace(frames, metadata=metadata))["a"]
    assert row["eligible"] is False and row["action"] == "HOLD"
    assert f"not delivering (Meta status {status})" in row["filter_reason"]


def test_an_unknown_budget_holds_a_scale_instead_of_inventing_one():
    row = _decide(build([aud("a", budget=None, **WIN)]))["a"]
    assert row["proposed_action"] == "SCALE" and row["action"] == "HOLD" and row["guardrail"] == "no_budget"
    assert row["new_daily_budget"] is None


def test_days_scattered_beyond_poisson_do_not_make_a_decline():
    # A winner whose early days hold one huge day: the scatter is real, the "fall" is not proven.
    row = _decide(build([aud("a", spend=80_000, roas=3.0, change=-0.4, dispersion=40.0, active_days=7)]))["a"]
    assert row["trend"] == "VOLATILE" and row["action"] != "PAUSE"
    steady = _decide(build([aud("a", spend=80_000, roas=3.0, change=-0.4, dispersion=6.0, active_days=7)]))["a"]
    assert steady["p_in_bucket"] > row["p_in_bucket"]  # scatter also lowers the confidence


def test_an_ad_set_without_its_own_budget_is_cbo_even_if_its_campaign_is_not_listed():
    adsets = [
        {"id": "1", "name": "x", "campaign_id": "c9", "targeting": {}, "created_time": "2026-10-01T00:00:00+0000"}
    ]
    frame = audiences_frame(adsets, [], {"currency": "INR", "timezone_name": "Asia/Kolkata"}, [])
    assert frame["is_cbo"].to_list() == [True] and frame["daily_budget"].to_list() == [None]


@pytest.mark.parametrize("header", ["date_start,spend,Spend", "date_start,spend,spend"])
def test_a_header_naming_a_column_twice_is_rejected(tmp_path, header):
    path = tmp_path / "insights.csv"
    path.write_text(header + "\n2026-11-01,1,2\n")
    with pytest.raises(InputError, match="spend appear more than once"):
        read_csv_text(path)
