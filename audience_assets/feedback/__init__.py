"""The feedback loop on the warehouse: outcomes of stored decisions, the rule scorecard, the rules each
decision used (so a replay can start from them), and replay of a rule change. The judging itself is
pure, in `engine.outcomes`."""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb

from audience_assets.engine.config import RulesConfig
from audience_assets.warehouse import ensure_table_ddl, retry_conflicts

RULE_CONFIGS_DDL = (
    "CREATE TABLE IF NOT EXISTS rule_configs (config_hash VARCHAR, config_json VARCHAR, first_used_at TIMESTAMP)"
)


class ReplayError(ValueError):
    """A replay that cannot run as asked; the message says why and what to do."""


def record_config(conn: duckdb.DuckDBPyConnection, cfg: RulesConfig) -> None:
    """Keep the full rules behind a config hash (once per hash): replay starts from exactly these."""
    ensure_table_ddl(conn, RULE_CONFIGS_DDL)
    digest = cfg.config_hash()
    now = datetime.now(UTC).replace(tzinfo=None)
    # One statement (a conflict with a concurrent run is retried); two runs on a lake that store the
    # same new hash at once may both insert it, which is harmless: the rows are identical.
    insert = (
        "INSERT INTO rule_configs SELECT ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM rule_configs WHERE config_hash = ?)"
    )
    retry_conflicts(lambda: conn.execute(insert, [digest, cfg.model_dump_json(), now, digest]), "rule_configs")


def stored_config(conn: duckdb.DuckDBPyConnection, digest: str) -> RulesConfig | None:
    ensure_table_ddl(conn, RULE_CONFIGS_DDL)
    row = conn.execute("SELECT config_json FROM rule_configs WHERE config_hash = ?", [digest]).fetchone()
    return RulesConfig.model_validate_json(row[0]) if row else None
