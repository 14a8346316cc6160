"""Replay: recompute the stored decision dates with candidate rules on the stored inputs, without
touching the stored decisions, and score both on the same outcomes.

Each date starts from the rules that made it (`rule_configs`, by config hash) with the candidate's
file or overrides on top, and from the stored window metrics, benchmarks and metadata; the
candidate's own earlier decisions feed its cooldowns, as they would have. With no change the
candidate equals the stored decisions row for row, so `changed_decisions` is empty.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import duckdb
import polars as pl

from audience_assets.engine.config import ConfigError, RulesConfig, apply_overrides, load_config
from audience_assets.engine.outcomes import OutcomeSettings, scorecard
from audience_assets.engine.pipeline import run_engine
from audience_assets.engine.prepare import target_cpa_columns
from audience_assets.feedback import ReplayError, stored_config
from audience_assets.feedback.outcomes import executions, judge_decisions, windows
from audience_assets.warehouse import table_exists

# Settings the SQL window models read: a replay keeps the stored windows, so it cannot change them.
SQL_SETTINGS = ("decision_window_days", "long_window_days", "evidence_half_life_days")
HISTORY = ["decision_date", "account_id", "adset_id", "action", "decided_at"]


@dataclass
class ReplayResult:
    dates: list[date]
    baseline: pl.DataFrame  # outcome rows of the stored decisions
    candidate: pl.DataFrame  # outcome rows of the replayed decisions
    changed: pl.DataFrame
    baseline_card: pl.DataFrame
    candidate_card: pl.DataFrame


def candidate_rules(stored: RulesConfig, config_path: str | None, overrides: dict[str, Any]) -> RulesConfig:
    """The stored rules (or a rules file) with the overrides on top; the window settings must not move."""
    base = load_config(config_path) if config_path else stored
    cand = apply_overrides(base, overrides, "--set")
    moved = [k for k in SQL_SETTINGS if getattr(cand, k) != getattr(stored, k)]
    if moved:
        raise ReplayError(
            f"replay keeps the stored window metrics, so it cannot change {', '.join(moved)}: "
            "re-materialise the decision dates with the new setting instead"
        )
    return cand


def _day_inputs(conn: duckdb.DuckDBPyConnection, day: date) -> dict[str, Any]:
    def part(table: str) -> pl.DataFrame:
        return conn.execute(f'SELECT * FROM "{table}" WHERE decision_date = ?', [day]).pl()

    decided_at = conn.execute(
        "SELECT any_value(decided_at) FROM audience_scores WHERE decision_date = ?", [day]
    ).fetchone()[0]
    return {
        "window": part("window_metrics"),
        "account_bench": part("account_benchmarks"),
        "campaign_bench": part("campaign_benchmarks"),
        "metadata": part("audience_metadata"),
        "decided_at": decided_at,
    }


def _stored_rules(conn: duckdb.DuckDBPyConnection, day: date, stored: pl.DataFrame) -> RulesConfig:
    hashes = stored["config_hash"].unique().to_list()
    if len(hashes) != 1:
        raise ReplayError(f"decision date {day} mixes rule configurations {hashes}")
    cfg = stored_config(conn, hashes[0])
    if cfg is None:
        raise ReplayError(
            f"the rules behind config hash {hashes[0]} (decision date {day}) were not recorded; "
            "re-materialise that date, or start from a rules file with --config"
        )
    return cfg


def replay_decisions(
    conn: duckdb.DuckDBPyConnection, dates: list[date], config_path: str | None, overrides: dict[str, Any]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(stored decisions, candidate decisions) over the dates, the candidate's history carried forward."""
    history = conn.execute(f"SELECT {', '.join(HISTORY)} FROM decisions WHERE decision_date < ?", [dates[0]]).pl()
    stored_all, candidate_all = [], []
    for day in dates:
        stored = conn.execute("SELECT * FROM decisions WHERE decision_date = ?", [day]).pl()
        cand_cfg = candidate_rules(_stored_rules(conn, day, stored), config_path, overrides)
        inputs = _day_inputs(conn, day)
        bench = inputs["account_bench"].with_columns(*target_cpa_columns(cand_cfg))
        decided, _ = run_engine(
            inputs["window"], bench, inputs["campaign_bench"], inputs["metadata"], history, cand_cfg, day,
            inputs["decided_at"],
        )  # fmt: skip
        history = pl.concat([history, decided.select(HISTORY)], how="vertical_relaxed")
        stored_all.append(stored.drop("run_id"))
        candidate_all.append(decided.select(stored.drop("run_id").columns))
    return pl.concat(stored_all, how="vertical_relaxed"), pl.concat(candidate_all, how="vertical_relaxed")


def replay(
    conn: duckdb.DuckDBPyConnection,
    date_from: date | None,
    date_to: date | None,
    *,
    config_path: str | None,
    overrides: dict[str, Any],
    judge_cfg: RulesConfig,
    settings: OutcomeSettings,
) -> ReplayResult:
    """Replay every stored decision date in the range and score stored and candidate decisions alike."""
    if not table_exists(conn, "decisions"):
        raise ReplayError("no decisions in this warehouse: point --db at one the graph has run on")
    dates = [
        r[0]
        for r in conn.execute(
            "SELECT DISTINCT decision_date FROM decisions WHERE decision_date BETWEEN coalesce(?, DATE '0001-01-01') "
            "AND coalesce(?, DATE '9999-12-31') ORDER BY 1",
            [date_from, date_to],
        ).fetchall()
    ]
    if not dates:
        raise ReplayError(f"no stored decisions between {date_from or 'the start'} and {date_to or 'the end'}")
    try:
        baseline, candidate = replay_decisions(conn, dates, config_path, overrides)
    except ConfigError as err:
        raise ReplayError(str(err)) from None
    horizon = windows(conn, settings)
    executed = executions(conn)
    keys = ["decision_date", "adset_id"]
    same = (
        baseline.select(*keys, "action")
        .join(candidate.select(*keys, "action"), on=keys)
        .filter(pl.col("action") == pl.col("action_right"))
    )
    candidate_executed = executed.join(same.select(keys), on=keys, how="semi")
    base_out = judge_decisions(horizon, baseline, executed, judge_cfg, settings)
    cand_out = judge_decisions(horizon, candidate, candidate_executed, judge_cfg, settings)
    changed = (
        baseline.select(*keys, "account_id", "adset_name", "action", "scale_percentage")
        .join(candidate.select(*keys, "action", "scale_percentage"), on=keys, suffix="_candidate")
        .filter(
            (pl.col("action") != pl.col("action_candidate"))
            | (pl.col("scale_percentage") != pl.col("scale_percentage_candidate"))
        )
        .rename({"action": "stored_action", "action_candidate": "candidate_action"})
        .sort(keys)
    )
    return ReplayResult(
        dates, base_out, cand_out, changed, scorecard(base_out, settings), scorecard(cand_out, settings)
    )
