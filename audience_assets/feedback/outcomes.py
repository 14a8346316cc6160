"""The `outcomes` and `rule_scorecard` tables: every stored decision judged over each horizon the
warehouse holds, recomputed whole at every run (restated days are re-judged)."""

from __future__ import annotations

import duckdb
import polars as pl

from audience_assets.engine.config import RulesConfig
from audience_assets.engine.outcomes import OutcomeSettings, judge, scorecard
from audience_assets.warehouse import query_model, replace_rows, table_exists, transaction

DECISION_COLUMNS = [
    "decision_date", "account_id", "adset_id", "adset_name", "campaign_id", "currency", "audience_type", "modifier_key", "action",
    "proposed_action", "matrix_action", "matrix_rule", "guardrail", "gate_reason", "bucket", "trend", "confidence", "eligible",
    "normalized_roas", "winner_threshold", "scale_percentage", "type_scale_pct", "spend_window", "window_days",
    "config_hash",
]  # fmt: skip
KEYS = ["decision_date", "account_id", "adset_id"]
OUTCOME_COLUMNS = [
    *DECISION_COLUMNS, "horizon_days", "executed", "learning_restarted", "spend", "revenue", "purchases",
    "days_delivering", "roas", "account_spend", "account_revenue", "account_roas", "roas_ratio",
    "maturing_fraction", "newest_day", "p_above_average", "p_winner", "comparable_audiences", "c_spend",
    "c_revenue", "c_p_above_average", "spend_before", "revenue_before", "marginal_roas", "marginal_roas_lo",
    "marginal_roas_hi", "rule_branch", "label", "value", "gained", "lost", "missed_value",
]  # fmt: skip


def windows(conn: duckdb.DuckDBPyConnection, settings: OutcomeSettings, account: str | None = None) -> pl.DataFrame:
    """The decision-independent horizon figures (sql/feedback/outcome_windows.sql), of one account or all."""
    params = {"horizons": list(settings.horizons), "maturing_days": settings.maturing_days, "account": account}
    return query_model(conn, "feedback/outcome_windows", params)


def executions(conn: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Which decisions were executed (an applied, unreverted forward action) and whether learning restarted."""
    schema = {"decision_date": pl.Date, "adset_id": pl.Utf8, "executed": pl.Boolean, "learning_restarted": pl.Boolean}
    if not table_exists(conn, "action_log"):
        return pl.DataFrame(schema=schema)
    return conn.execute(
        "SELECT l.decision_date, l.adset_id, true AS executed, bool_or(l.learning_restarted) AS learning_restarted "
        "FROM action_log l WHERE l.mode = 'apply' AND l.outcome = 'applied' AND l.reverts_action_id IS NULL "
        "AND NOT EXISTS (SELECT 1 FROM action_log r WHERE r.reverts_action_id = l.action_id AND r.outcome = 'applied') "
        "GROUP BY ALL"
    ).pl()


def judge_decisions(
    horizon: pl.DataFrame, decisions: pl.DataFrame, executed: pl.DataFrame, cfg: RulesConfig, settings: OutcomeSettings
) -> pl.DataFrame:
    """Outcome rows for a set of decisions (stored or replayed) over the same horizon figures."""
    frame = horizon.join(decisions.select(DECISION_COLUMNS), on=KEYS, how="inner")
    frame = frame.join(executed, on=["decision_date", "adset_id"], how="left").with_columns(
        pl.col("executed").fill_null(False)
    )
    if frame.is_empty():
        typed = {"rule_branch": pl.Utf8, "label": pl.Utf8, "comparable_audiences": pl.UInt32, **frame.schema}
        return pl.DataFrame(schema={c: typed.get(c, pl.Float64) for c in OUTCOME_COLUMNS})
    return judge(frame, cfg, settings).select(OUTCOME_COLUMNS).sort(["decision_date", "adset_id", "horizon_days"])


def stored_decisions(conn: duckdb.DuckDBPyConnection, account: str) -> pl.DataFrame:
    return conn.execute(f"SELECT {', '.join(DECISION_COLUMNS)} FROM decisions WHERE account_id = ?", [account]).pl()


def _replace(conn: duckdb.DuckDBPyConnection, table: str, frame: pl.DataFrame) -> None:
    conn.register("_frame", frame)
    try:
        conn.execute(f'CREATE OR REPLACE TABLE "{table}" AS SELECT * FROM _frame')
    finally:
        conn.unregister("_frame")


def refresh(
    conn: duckdb.DuckDBPyConnection, cfg: RulesConfig, settings: OutcomeSettings, account: str
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Recompute an account's `outcomes` from its stored decisions (the other accounts' rows kept) and
    `rule_scorecard` over the whole outcomes table, in one transaction."""
    outcomes = judge_decisions(
        windows(conn, settings, account), stored_decisions(conn, account), executions(conn), cfg, settings
    )

    def body() -> pl.DataFrame:
        replace_rows(conn, "outcomes", outcomes, {"account_id": account})
        card = scorecard(conn.execute("SELECT * FROM outcomes").pl(), settings)
        _replace(conn, "rule_scorecard", card)
        return card

    return outcomes, transaction(conn, body, "outcomes")
