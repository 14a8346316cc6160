"""One engine path: `run_engine` over a materialised partition's inputs gives the stored decisions,
row for row, so the table-driven engine tests exercise exactly what production runs."""

from __future__ import annotations

from datetime import timedelta

import polars as pl
from polars.testing import assert_frame_equal

from audience_assets.engine.config import RulesConfig
from audience_assets.engine.pipeline import RULE_TABLES, run_engine
from audience_assets.engine.prepare import KEYS
from audience_assets_tests.conftest import SAMPLE_DECISION_DATE, failure_messages, materialise, query


def _inputs(db, day):
    def part(table: str) -> pl.DataFrame:
        return query(db, f"SELECT * FROM {table} WHERE decision_date = ?", [day])

    history = query(
        db,
        "SELECT decision_date, account_id, adset_id, action, decided_at FROM decisions WHERE decision_date < ?",
        [day],
    )
    decided_at = part("audience_scores")["decided_at"].unique()
    assert decided_at.len() == 1
    return (
        part("window_metrics"),
        part("account_benchmarks"),
        part("campaign_benchmarks"),
        part("audience_metadata"),
        history,
        decided_at[0],
    )


def test_run_engine_reproduces_the_stored_decisions_row_for_row(tmp_path):
    db = tmp_path / "w.duckdb"
    source = {"kind": "sample", "sample_adsets": 60}
    # Two decision dates, so the second one decides with the engine's own history (cooldowns).
    for day in (SAMPLE_DECISION_DATE - timedelta(days=2), SAMPLE_DECISION_DATE):
        result = materialise(db, day, source=source)
        assert result.success, failure_messages(result)
    day = SAMPLE_DECISION_DATE
    window, acct, camp, meta, history, decided_at = _inputs(db, day)
    assert history.height and (history["action"] == "SCALE").any()
    decisions, _ = run_engine(window, acct, camp, meta, history, RulesConfig(), day, decided_at)
    stored = query(db, "SELECT * FROM decisions WHERE decision_date = ? ORDER BY account_id, adset_id", [day])
    assert stored["run_id"].n_unique() == 1
    stored = stored.drop("run_id")
    assert set(decisions.columns) == set(stored.columns), set(decisions.columns) ^ set(stored.columns)
    assert_frame_equal(decisions.select(stored.columns).sort(KEYS), stored.sort(KEYS))
    assert (decisions["action"] != "HOLD").sum() > 0


def test_every_rule_stage_has_a_table_in_the_graph():
    from audience_assets.definitions import defs

    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert set(RULE_TABLES) <= keys and "audience_scores" in keys
