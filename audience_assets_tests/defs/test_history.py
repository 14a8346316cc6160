"""Runs over several decision dates: replay, idempotent reloads, restatements and cooldowns."""

from __future__ import annotations

from datetime import timedelta

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from audience_assets.engine.config import RulesConfig
from audience_assets.sample.simulator import SAMPLE_END_DATE, write_sample_csvs
from audience_assets_tests.conftest import (
    SAMPLE_DECISION_DATE,
    SMALL,
    csv_source,
    failure_messages,
    materialisation_metadata,
    materialise,
    query,
    scalar,
)

D = SAMPLE_DECISION_DATE
# The replayed date lies beyond the 72 h cooldown of D (a replay's SCALE is dated at the end of its
# day), so re-running D after the replay must give D's decisions again.
REPLAY_DAYS_BACK = 4
SMALL_SAMPLE = {"kind": "sample", "sample_adsets": SMALL}
DECISION_KEYS = ["adset_id", "action", "scale_percentage", "confidence", "guardrail", "eligible", "bucket", "trend"]


# ---- replay ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def replayed(tmp_path_factory):
    """Decision date D, then D - REPLAY_DAYS_BACK, then D again, into one warehouse."""
    db = tmp_path_factory.mktemp("replay") / "w.duckdb"
    first = materialise(db, D, source=SMALL_SAMPLE)
    assert first.success, failure_messages(first)
    snapshot_d = query(db, "SELECT * FROM decisions WHERE decision_date = ? ORDER BY adset_id", [D])
    earlier = materialise(db, D - timedelta(days=REPLAY_DAYS_BACK), source=SMALL_SAMPLE)
    assert earlier.success, failure_messages(earlier)
    again = materialise(db, D, source=SMALL_SAMPLE)
    assert again.success, failure_messages(again)
    return db, snapshot_d, earlier


def test_replay_keeps_decisions_of_both_dates(replayed):
    db, _, _ = replayed
    d3 = D - timedelta(days=REPLAY_DAYS_BACK)
    counts = dict(query(db, "SELECT decision_date, count(*) FROM decisions GROUP BY 1").iter_rows())
    # At the replayed date only the audiences with a stored day before it exist (young ones launched later).
    live_before_d3 = scalar(db, "SELECT count(DISTINCT adset_id) FROM raw_insights WHERE date < ?", [d3])
    assert 0 < live_before_d3 <= SMALL
    assert counts == {D: SMALL, d3: live_before_d3}
    for table in ("window_metrics", "audience_scores", "recommendations"):
        dates = set(query(db, f"SELECT DISTINCT decision_date FROM {table}")["decision_date"].to_list())
        assert dates == {D, D - timedelta(days=REPLAY_DAYS_BACK)}, table


def test_replay_of_an_earlier_date_uses_only_days_before_it(replayed):
    db, _, earlier = replayed
    d3 = D - timedelta(days=REPLAY_DAYS_BACK)
    wm = query(db, "SELECT * FROM window_metrics WHERE decision_date = ? ORDER BY adset_id", [d3])
    assert wm.height == scalar(db, "SELECT count(DISTINCT adset_id) FROM raw_insights WHERE date < ?", [d3])
    # No audience launched on or after the replayed date shows up in its window.
    late = query(db, "SELECT adset_id FROM raw_insights GROUP BY adset_id HAVING min(date) >= ?", [d3])[
        "adset_id"
    ].to_list()
    assert not set(late) & set(wm["adset_id"].to_list())
    assert wm["last_spend_date"].max() < d3
    assert wm["last_spend_date"].max() == d3 - timedelta(days=1)
    # The warehouse does hold the later days (from the run at D) ...
    assert scalar(db, "SELECT max(date) FROM raw_insights") == D - timedelta(days=1)
    # ... but spend_1d of the replayed date is the stored spend of the day before it, audience by audience.
    stored = query(
        db,
        "SELECT adset_id, spend FROM stg_insights WHERE date = ? ORDER BY adset_id",
        [d3 - timedelta(days=1)],
    )
    joined = (
        wm.select("adset_id", "spend_1d")
        .join(stored, on="adset_id", how="left")
        .with_columns(pl.col("spend").fill_null(0.0))
    )
    assert joined.filter(pl.col("spend") > 0).height > 0
    assert joined["spend_1d"].to_list() == pytest.approx(joined["spend"].to_list())
    # spend_7d covers the 7 days before the replayed date exactly.
    week = query(
        db,
        "SELECT adset_id, sum(spend) AS s FROM stg_insights WHERE date >= ? AND date < ? GROUP BY adset_id",
        [d3 - timedelta(days=7), d3],
    )
    j = wm.select("adset_id", "spend_7d").join(week, on="adset_id", how="inner")
    assert j["spend_7d"].to_list() == pytest.approx(j["s"].to_list())
    # The earlier run's raw load reported its last loaded day before the replayed date too.
    assert materialisation_metadata(earlier, "raw_insights")["last_day_loaded"] == str(d3 - timedelta(days=1))


def test_rerunning_a_date_is_idempotent(replayed):
    db, snapshot_d, _ = replayed
    now = query(db, "SELECT * FROM decisions WHERE decision_date = ? ORDER BY adset_id", [D])
    assert now.height == snapshot_d.height == SMALL
    assert_frame_equal(now.select(DECISION_KEYS), snapshot_d.select(DECISION_KEYS))
    assert now["reasons"].to_list() == snapshot_d["reasons"].to_list()
    assert now["score"].to_list() == pytest.approx(snapshot_d["score"].to_list(), nan_ok=True)


# ---- idempotent reloads ------------------------------------------------------------


def test_same_partition_twice_sample_reloads_only_the_lookback(tmp_path):
    db = tmp_path / "w.duckdb"
    first = materialise(db, D, source=SMALL_SAMPLE)
    assert first.success, failure_messages(first)
    rows_first = scalar(db, "SELECT count(*) FROM raw_insights")
    raw_first = query(
        db, "SELECT account_id, adset_id, date, spend, purchases, purchase_value FROM raw_insights ORDER BY ALL"
    )
    second = materialise(db, D, source=SMALL_SAMPLE)
    assert second.success, failure_messages(second)

    assert scalar(db, "SELECT count(*) FROM raw_insights") == rows_first
    dupes = scalar(
        db,
        "SELECT count(*) FROM (SELECT account_id, adset_id, date FROM raw_insights GROUP BY ALL HAVING count(*) > 1)",
    )
    assert dupes == 0
    raw_second = query(
        db, "SELECT account_id, adset_id, date, spend, purchases, purchase_value FROM raw_insights ORDER BY ALL"
    )
    assert_frame_equal(raw_first, raw_second)

    m1 = materialisation_metadata(first, "raw_insights")
    m2 = materialisation_metadata(second, "raw_insights")
    assert m1["load"] == "full history"
    assert m1["days_restated"] == 0
    assert m1["rows_inserted"] == rows_first
    lookback = RulesConfig().lookback_days
    assert m2["load"].startswith("lookback") and str(lookback) in m2["load"]
    assert m2["days_loaded"] == lookback
    assert m2["days_restated"] == lookback
    assert m2["first_day_loaded"] == str(D - timedelta(days=lookback))
    assert m2["last_day_loaded"] == str(D - timedelta(days=1))
    in_window = scalar(db, "SELECT count(*) FROM raw_insights WHERE date >= ?", [D - timedelta(days=lookback)])
    assert m2["rows_inserted"] == in_window < rows_first
    # Same data re-pulled: nothing restated in money.
    assert m2["restated_spend_delta"] == 0
    assert m2["restated_revenue_delta"] == 0
    # Rows outside the lookback window keep their first load; the window carries the second load's id.
    loads = dict(
        query(
            db,
            "SELECT date >= ? AS recent, string_agg(DISTINCT load_id) FROM raw_insights GROUP BY 1",
            [D - timedelta(days=lookback)],
        ).iter_rows()
    )
    assert loads == {False: m1["load_id"], True: m2["load_id"]}
    # Downstream partition replaced, not appended.
    assert scalar(db, "SELECT count(*) FROM decisions WHERE decision_date = ?", [D]) == SMALL


def test_csv_restatement_replaces_the_changed_days(tmp_path):
    ins, aud = write_sample_csvs(tmp_path / "v1", n_adsets=SMALL, days=30)
    db = tmp_path / "w.duckdb"
    first = materialise(db, D, source=csv_source(ins, aud))
    assert first.success, failure_messages(first)
    before = query(
        db, "SELECT adset_id, date, purchases, purchase_value, spend FROM raw_insights ORDER BY adset_id, date"
    )

    frame = pl.read_csv(ins, infer_schema=False)
    last_two = {str(SAMPLE_END_DATE), str(SAMPLE_END_DATE - timedelta(days=1))}
    changed = pl.col("date_start").is_in(list(last_two))
    v2 = frame.with_columns(
        pl.when(changed)
        .then(pl.col("purchases").cast(pl.Int64) + 3)
        .otherwise(pl.col("purchases").cast(pl.Int64))
        .alias("purchases"),
        pl.when(changed)
        .then((pl.col("purchase_value").cast(pl.Float64) + 1000.0).round(2))
        .otherwise(pl.col("purchase_value").cast(pl.Float64))
        .alias("purchase_value"),
    )
    ins2 = tmp_path / "v2" / "insights.csv"
    ins2.parent.mkdir()
    v2.write_csv(ins2)
    n_changed = v2.filter(changed).height
    assert n_changed > 0

    second = materialise(db, D, source=csv_source(ins2, aud))
    assert second.success, failure_messages(second)
    after = query(
        db, "SELECT adset_id, date, purchases, purchase_value, spend FROM raw_insights ORDER BY adset_id, date"
    )
    assert after.height == before.height
    assert (
        scalar(
            db,
            "SELECT count(*) FROM (SELECT account_id, adset_id, date FROM raw_insights GROUP BY ALL HAVING count(*) > 1)",
        )
        == 0
    )

    cutoff = SAMPLE_END_DATE - timedelta(days=1)
    old_b, old_a = before.filter(pl.col("date") < cutoff), after.filter(pl.col("date") < cutoff)
    assert_frame_equal(old_a, old_b)
    new_b, new_a = before.filter(pl.col("date") >= cutoff), after.filter(pl.col("date") >= cutoff)
    assert new_a.height == new_b.height == n_changed
    assert (new_a["purchases"] - new_b["purchases"]).to_list() == [3.0] * n_changed
    assert (new_a["purchase_value"] - new_b["purchase_value"]).to_list() == pytest.approx([1000.0] * n_changed)
    assert_frame_equal(new_a.select("adset_id", "date", "spend"), new_b.select("adset_id", "date", "spend"))

    m1 = materialisation_metadata(first, "raw_insights")
    m2 = materialisation_metadata(second, "raw_insights")
    assert m1["days_restated"] == 0 and m1["load"] == "full history"
    # A CSV replaces every day it covers: all 30 (account, day) pairs were already stored.
    assert m2["days_loaded"] == 30
    assert m2["days_restated"] == 30
    assert m2["restated_revenue_delta"] == pytest.approx(1000.0 * n_changed)
    assert m2["restated_purchases_delta"] == pytest.approx(3.0 * n_changed)
    assert m2["restated_spend_delta"] == 0
    # The restated days flow through: daily_metrics and the window see the new revenue.
    rev = scalar(db, "SELECT sum(revenue) FROM daily_metrics WHERE date >= ?", [cutoff])
    assert rev == pytest.approx(float(new_b["purchase_value"].sum()) + 1000.0 * n_changed)


# ---- cooldown from the engine's own history -----------------------------------------


def test_scaled_audiences_are_held_by_cooldown_the_next_day(tmp_path):
    # One CSV: the run at `day` uses the days before it, the run at `nxt` one day more.
    # (Dates stay at or before the sample's decision date: later partitions may not exist yet.)
    day, nxt = D - timedelta(days=1), D
    ins, aud = write_sample_csvs(tmp_path / "csv", n_adsets=SMALL, days=76)
    db = tmp_path / "w.duckdb"
    src = csv_source(ins, aud)
    first = materialise(db, day, source=src)
    assert first.success, failure_messages(first)
    scaled = query(db, "SELECT adset_id FROM decisions WHERE decision_date = ? AND action = 'SCALE'", [day])[
        "adset_id"
    ].to_list()
    assert scaled, "the first run should scale some audiences"

    second = materialise(db, nxt, source=src)
    assert second.success, failure_messages(second)
    rows = query(
        db,
        "SELECT adset_id, proposed_action, action, scale_percentage, guardrail, hours_since_budget_change "
        "FROM decisions WHERE decision_date = ? AND adset_id IN (SELECT unnest(?))",
        [nxt, scaled],
    )
    assert rows.height == len(scaled)
    # None of them scales again a day later, and every one the matrix would scale is held by cooldown.
    assert rows.filter(pl.col("action") == "SCALE").height == 0
    assert set(rows["scale_percentage"].to_list()) == {0}
    wanted = rows.filter(pl.col("proposed_action") == "SCALE")
    assert wanted.height > 0, "expected some audiences still proposed for SCALE at D+1"
    assert set(wanted["guardrail"].to_list()) == {"cooldown"}
    assert wanted["hours_since_budget_change"].max() <= 24.0
    # Both dates are kept.
    assert set(query(db, "SELECT DISTINCT decision_date FROM decisions")["decision_date"].to_list()) == {day, nxt}
