"""The feedback loop on the warehouse: outcomes of stored decisions, the rule scorecard, the rules each
decision used (so a replay can start from them), and replay of a rule change. The judging itself is
pure, in `engine.outcomes`."""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb

from audience_assets.engine.config import RulesConfig

RULE_CONFIGS_DDL = (
    "CREATE TABLE IF NOT EXISTS rule_configs (config_hash VARCHAR, config_json VARCHAR, first_used_at TIMESTAMP)"
)


class ReplayError(ValueError):
    """A replay that cannot run as asked; the message says why and what to do."""


def record_config(conn: duckdb.DuckDBPyConnection, cfg: RulesConfig) -> None:
    """Keep the full rules behind a config hash (once per hash): replay starts from exactly these."""
    conn.execute(RULE_CONFIGS_DDL)
    digest = cfg.config_hash()
    if conn.execute("SELECT count(*) FROM rule_configs WHERE config_hash = ?", [digest]).fetchone()[0]:
        return
    now = datetime.now(UTC).replace(tzinfo=None)
    conn.execute("INSERT INTO rule_configs VALUES (?, ?, ?)", [digest, cfg.model_dump_json(), now])


def stored_config(conn: duckdb.DuckDBPyConnection, digest: str) -> RulesConfig | None:
    conn.execute(RULE_CONFIGS_DDL)
    row = conn.execute("SELECT config_json FROM rule_configs WHERE config_hash = ?", [digest]).fetchone()
    return RulesConfig.model_validate_json(row[0]) if row else None
