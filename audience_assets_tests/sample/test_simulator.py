"""Tests of the seeded Meta ad-account simulator."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from audience_assets.sample.simulator import (
    SAMPLE_END_DATE,
    SampleAccount,
    simulate_account,
    write_sample_csvs,
)

INSIGHTS_SCHEMA = {
    "date_start": pl.Date,
    "account_id": pl.Utf8,
    "campaign_id": pl.Utf8,
    "campaign_name": pl.Utf8,
    "adset_id": pl.Utf8,
    "adset_name": pl.Utf8,
    "spend": pl.Float64,
    "impressions": pl.Int64,
    "clicks": pl.Int64,
    "purchases": pl.Int64,
    "purchase_value": pl.Float64,
    "account_currency": pl.Utf8,
}
AUDIENCES_SCHEMA = {
    "adset_id": pl.Utf8,
    "audience_type": pl.Utf8,
    "lookalike_pct": pl.Float64,
    "source_quality": pl.Utf8,
    "launched_on": pl.Date,
    "daily_budget": pl.Float64,
    "last_budget_change_at": pl.Datetime("us"),
}


@pytest.fixture(scope="module")
def account() -> SampleAccount:
    return simulate_account()


@pytest.fixture(scope="module")
def big() -> SampleAccount:
    return simulate_account(n_adsets=20_000, days=30)


def _last_days(insights: pl.DataFrame, n: int, end: date = SAMPLE_END_DATE) -> pl.DataFrame:
    return insights.filter(pl.col("date_start") > end - timedelta(days=n))


def test_same_seed_gives_identical_frames(account: SampleAccount) -> None:
    again = simulate_account(seed=7)
    assert_frame_equal(account.insights, again.insights)
    assert_frame_equal(account.audiences, again.audiences)
    assert_frame_equal(account.truth, again.truth)


def test_different_seed_gives_different_data(account: SampleAccount) -> None:
    other = simulate_account(seed=8)
    assert not account.insights.equals(other.insights)
    assert not account.audiences.equals(other.audiences)


def test_schemas_are_exact(account: SampleAccount) -> None:
    assert dict(account.insights.schema) == INSIGHTS_SCHEMA
    assert dict(account.audiences.schema) == AUDIENCES_SCHEMA
    assert {"adset_id", "true_roas", "fatigue", "archetype"} <= set(account.truth.columns)
    assert account.truth.schema["true_roas"] == pl.Float64
    assert account.truth.schema["fatigue"] == pl.Boolean
    assert account.truth.schema["archetype"] == pl.Utf8


def test_one_row_per_adset_and_sorted(account: SampleAccount) -> None:
    ins = account.insights
    assert ins.equals(ins.sort(["adset_id", "date_start"]))
    assert ins.select(pl.struct("adset_id", "date_start").is_unique().all()).item()
    assert account.audiences["adset_id"].is_unique().all()
    assert account.audiences["adset_id"].to_list() == account.truth["adset_id"].to_list()
    assert set(ins["adset_id"].unique()) == set(account.audiences["adset_id"])
    assert ins["date_start"].max() == SAMPLE_END_DATE
    assert ins["date_start"].min() >= SAMPLE_END_DATE - timedelta(days=74)
    assert ins["adset_id"].str.contains(r"^\d{15}$").all()
    assert ins["campaign_id"].str.contains(r"^\d{15}$").all()
    assert (ins["account_id"] == "act_1001").all()
    assert (ins["account_currency"] == "INR").all()


def test_no_rows_before_launch(account: SampleAccount) -> None:
    joined = account.insights.join(account.audiences, on="adset_id")
    assert (joined["date_start"] >= joined["launched_on"]).all()


def test_numbers_are_sane(account: SampleAccount) -> None:
    ins = account.insights
    for col in ("spend", "impressions", "clicks", "purchases", "purchase_value"):
        assert ins[col].min() >= 0, col
    assert (ins["clicks"] <= ins["impressions"]).all()
    assert ins.filter(pl.col("purchases") == 0)["purchase_value"].eq(0).all()
    assert ins.filter(pl.col("purchases") > 0)["purchase_value"].gt(0).all()
    # Money is rounded to paise.
    for col in ("spend", "purchase_value"):
        assert ((ins[col] * 100).round() - ins[col] * 100).abs().max() < 1e-6, col
    spent = ins.filter(pl.col("spend") > 0)
    ctr = spent["clicks"].sum() / spent["impressions"].sum()
    cpm = spent["spend"].sum() / spent["impressions"].sum() * 1000
    assert 0.006 < ctr < 0.025
    assert 120 < cpm < 350
    roas = ins["purchase_value"].sum() / ins["spend"].sum()
    assert 1.8 < roas < 3.3


def test_spend_tracks_budget(account: SampleAccount) -> None:
    ratio = (
        account.insights.join(account.audiences, on="adset_id")
        .join(account.truth.select("adset_id", "archetype"), on="adset_id")
        .filter(pl.col("archetype") == "steady")
        .with_columns(r=pl.col("spend") / pl.col("daily_budget"))["r"]
    )
    assert ratio.max() <= 1.75 + 1e-9
    assert 0.7 <= ratio.median() <= 1.0


def test_audience_metadata(account: SampleAccount) -> None:
    aud = account.audiences
    assert set(aud["audience_type"]) == {"BROAD", "INTEREST", "LOOKALIKE", "CUSTOM"}
    lla = aud.filter(pl.col("audience_type") == "LOOKALIKE")
    assert aud.filter(pl.col("audience_type") != "LOOKALIKE")["lookalike_pct"].null_count() == (aud.height - lla.height)
    assert lla["lookalike_pct"].null_count() == 0
    assert lla["lookalike_pct"].is_between(1, 10).all()
    assert (lla["lookalike_pct"] == 1).sum() >= 1
    sourced = aud.filter(pl.col("audience_type").is_in(["LOOKALIKE", "CUSTOM"]))
    assert set(sourced["source_quality"]) <= {"PURCHASERS", "ATC", "VC"}
    assert sourced["source_quality"].null_count() == 0
    unsourced = aud.filter(pl.col("audience_type").is_in(["BROAD", "INTEREST"]))
    assert unsourced["source_quality"].null_count() == unsourced.height
    assert (aud["daily_budget"] == aud["daily_budget"].round()).all()
    assert aud["daily_budget"].min() >= 100


def test_several_campaigns(account: SampleAccount) -> None:
    per_campaign = account.insights.group_by("campaign_id").agg(pl.col("adset_id").n_unique())
    assert per_campaign.height >= 3
    assert (per_campaign["adset_id"] >= 1).all()
    assert account.insights.group_by("campaign_id").agg(pl.col("campaign_name").n_unique())["campaign_name"].eq(1).all()


def test_recent_budget_changes_for_cooldown(account: SampleAccount) -> None:
    changed = account.audiences["last_budget_change_at"].drop_nulls()
    horizon = datetime.combine(SAMPLE_END_DATE + timedelta(days=1), datetime.min.time())
    assert 0.05 * account.audiences.height <= changed.len() <= 0.2 * account.audiences.height
    assert changed.min() >= horizon - timedelta(days=4)
    assert changed.max() <= horizon


def test_edge_cases_present(account: SampleAccount) -> None:
    aud = account.audiences
    assert aud.filter(pl.col("launched_on") >= SAMPLE_END_DATE - timedelta(days=1)).height >= 1
    spend7 = (
        _last_days(account.insights, 7)
        .group_by("adset_id")
        .agg(pl.col("spend").sum())
        .join(aud, on="adset_id")
        .filter(pl.col("launched_on") <= SAMPLE_END_DATE - timedelta(days=7))
    )
    assert spend7.filter(pl.col("spend") < 3000).height >= 1
    assert account.truth["fatigue"].sum() >= 1
    for archetype in ("improving", "volatile", "stalled", "ramp", "tiny", "new"):
        assert (account.truth["archetype"] == archetype).sum() >= 1, archetype


def test_true_roas_spread(account: SampleAccount) -> None:
    rel = account.truth["true_roas"] / account.truth["true_roas"].mean()
    assert 2.2 < account.truth["true_roas"].mean() < 2.8
    assert 0.15 <= (rel > 1.2).mean() <= 0.4
    assert 0.15 <= (rel < 0.9).mean() <= 0.4


def _window_roas(account: SampleAccount, archetype: str, lo: int, hi: int) -> float:
    """Pooled ROAS of an archetype over days [end - hi + 1, end - lo]."""
    ids = account.truth.filter(pl.col("archetype") == archetype)["adset_id"]
    rows = account.insights.filter(
        pl.col("adset_id").is_in(ids.implode())
        & pl.col("date_start").is_between(
            SAMPLE_END_DATE - timedelta(days=hi - 1), SAMPLE_END_DATE - timedelta(days=lo)
        )
    )
    return rows["purchase_value"].sum() / rows["spend"].sum()


def test_fatigue_shows_in_the_data(account: SampleAccount) -> None:
    assert _window_roas(account, "fatigue", 0, 5) < 0.85 * _window_roas(account, "fatigue", 20, 50)


def test_stalled_delivery_collapses(account: SampleAccount) -> None:
    ids = account.truth.filter(pl.col("archetype") == "stalled")["adset_id"].implode()
    rows = account.insights.filter(pl.col("adset_id").is_in(ids))
    recent = _last_days(rows, 3)["spend"].sum()
    before = rows.filter(
        pl.col("date_start").is_between(SAMPLE_END_DATE - timedelta(days=16), SAMPLE_END_DATE - timedelta(days=7))
    )["spend"].sum()
    assert recent / 3 < 0.05 * before / 10  # daily spend fell below 5% of what it was
    launched = account.audiences.filter(pl.col("adset_id").is_in(ids))["launched_on"]
    assert (launched < SAMPLE_END_DATE - timedelta(days=30)).all()


def test_big_account_row_count(big: SampleAccount) -> None:
    start = SAMPLE_END_DATE - timedelta(days=29)
    aud = big.audiences.with_columns(
        expected=pl.min_horizontal(
            pl.lit(30, pl.Int64), (pl.lit(SAMPLE_END_DATE) - pl.col("launched_on")).dt.total_days() + 1
        )
    )
    counts = big.insights.group_by("adset_id").len().join(aud, on="adset_id", how="right")
    assert counts["len"].null_count() == 0
    assert (counts["len"] == counts["expected"]).all()
    assert big.insights.height == aud["expected"].sum()
    assert big.audiences.height == 20_000
    pre = counts.filter(pl.col("launched_on") <= start)
    assert pre.height > 10_000
    assert (pre["len"] == 30).all()
    assert big.insights["date_start"].min() == start


def test_small_accounts_work() -> None:
    tiny = simulate_account(n_adsets=1, days=1)
    assert tiny.audiences.height == 1
    assert tiny.insights.height == 1
    assert dict(tiny.insights.schema) == INSIGHTS_SCHEMA
    custom = simulate_account(n_adsets=10, days=5, n_campaigns=3, account_id="act_9", end_date=date(2026, 1, 31))
    assert custom.insights["campaign_id"].n_unique() == 3
    assert custom.insights["date_start"].max() == date(2026, 1, 31)
    assert (custom.insights["account_id"] == "act_9").all()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_adsets": 0},
        {"n_adsets": -5},
        {"days": 0},
        {"days": -1},
        {"n_adsets": "10"},
        {"days": 2.5},
        {"n_campaigns": 0},
        {"n_adsets": 5, "n_campaigns": 6},
        {"account_id": ""},
        {"end_date": "2026-11-25"},
    ],
)
def test_bad_arguments_raise(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        simulate_account(**kwargs)  # type: ignore[arg-type]


def test_write_sample_csvs(tmp_path: Path) -> None:
    insights_path, audiences_path = write_sample_csvs(tmp_path / "out", n_adsets=30, days=14)
    assert insights_path == tmp_path / "out" / "insights.csv"
    assert audiences_path == tmp_path / "out" / "audiences.csv"
    expected = simulate_account(n_adsets=30, days=14)
    ins = pl.read_csv(insights_path, try_parse_dates=True, schema_overrides=INSIGHTS_SCHEMA)
    assert_frame_equal(ins, expected.insights)
    aud = pl.read_csv(audiences_path, schema_overrides={"adset_id": pl.Utf8})
    assert aud.height == 30
    first_line = audiences_path.read_text().splitlines()[1]
    assert any(part[:4].isdigit() and part[4] == "-" for part in first_line.split(","))
    stamps = aud["last_budget_change_at"].drop_nulls()
    parsed = stamps.str.to_datetime("%Y-%m-%dT%H:%M:%S", time_unit="us")
    assert_frame_equal(
        parsed.to_frame(),
        expected.audiences["last_budget_change_at"].drop_nulls().to_frame(),
    )
