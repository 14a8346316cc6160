"""The `approvals` table: every actionable recommendation starts pending; a person approves or rejects it.

An approval binds the exact plan (action, the budget it was computed from, the target, the config hash)
through the plan's digest, and is sealed with who decided, when, and until when it holds.
"""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, timedelta
from typing import Any

import duckdb
import polars as pl

from audience_assets.engine.execution import (
    WRITTEN_ACTIONS,
    ExecutionSettings,
    Plan,
    decision_too_old,
    idempotency_key,
    plan_digest,
    seal,
    to_minor,
)
from audience_assets.engine.recommend import decisive_reason
from audience_assets.execution import ApprovalError
from audience_assets.warehouse import ensure_table_ddl, transaction

APPROVAL_KEY_ENV = "AUDIENCE_ENGINE_APPROVAL_KEY"

APPROVALS_DDL = """CREATE TABLE IF NOT EXISTS approvals (
    approval_id VARCHAR, plan_digest VARCHAR, idempotency_key VARCHAR, decision_date DATE, account_id VARCHAR,
    campaign_id VARCHAR, adset_id VARCHAR, adset_name VARCHAR, audience_type VARCHAR, rank INTEGER,
    action VARCHAR, scale_percentage INTEGER, confidence VARCHAR, p_action_right DOUBLE, reason VARCHAR,
    currency VARCHAR, budget_from_minor BIGINT, budget_to_minor BIGINT, config_hash VARCHAR,
    recommendation_run_id VARCHAR, status VARCHAR, decided_by VARCHAR, decided_at TIMESTAMP,
    expires_at TIMESTAMP, note VARCHAR, decided_via VARCHAR, seal VARCHAR, created_at TIMESTAMP)"""

ACTION_LOG_DDL = """CREATE TABLE IF NOT EXISTS action_log (
    action_id VARCHAR, run_id VARCHAR, idempotency_key VARCHAR, approval_id VARCHAR, decision_date DATE,
    account_id VARCHAR, campaign_id VARCHAR, adset_id VARCHAR, adset_name VARCHAR, action VARCHAR,
    mode VARCHAR, currency VARCHAR, budget_from_minor BIGINT, budget_to_minor BIGINT, approved_by VARCHAR,
    approved_at TIMESTAMP, approval_seal VARCHAR, config_hash VARCHAR, decision_inputs VARCHAR,
    request VARCHAR, response VARCHAR, request_id VARCHAR, state_before VARCHAR, state_after VARCHAR,
    outcome VARCHAR, reason VARCHAR, error_code INTEGER, new_adset_id VARCHAR, learning_restarted BOOLEAN,
    reverts_action_id VARCHAR, started_at TIMESTAMP, finished_at TIMESTAMP)"""


def ensure_tables(conn: duckdb.DuckDBPyConnection) -> None:
    ensure_table_ddl(conn, APPROVALS_DDL)
    ensure_table_ddl(conn, ACTION_LOG_DDL)


def naive(t: datetime | None) -> datetime | None:
    """An aware time as the warehouse stores it (UTC, no zone)."""
    return None if t is None else t.astimezone(UTC).replace(tzinfo=None)


def aware(t: datetime | None) -> datetime | None:
    return None if t is None else t.replace(tzinfo=UTC)


def approval_key() -> bytes | None:
    key = os.environ.get(APPROVAL_KEY_ENV)
    return key.encode() if key else None


def plan_of(row: dict[str, Any]) -> Plan:
    """The plan of an approvals row (or of a recommendation row already converted to minor units)."""
    return Plan(
        decision_date=row["decision_date"],
        account_id=row["account_id"],
        adset_id=row["adset_id"],
        action=row["action"],
        currency=row["currency"] or "",
        budget_from_minor=row["budget_from_minor"],
        budget_to_minor=row["budget_to_minor"],
        config_hash=row["config_hash"] or "",
    )


def row_seal(row: dict[str, Any]) -> str:
    return seal(
        row["plan_digest"],
        row["status"],
        row["decided_by"],
        aware(row["decided_at"]),
        aware(row["expires_at"]),
        approval_key(),
    )


def _planned(recs: pl.DataFrame) -> list[dict[str, Any]]:
    """Approval rows for a day's actionable recommendations, each bound to its plan's digest."""
    out = []
    for r in recs.iter_rows(named=True):
        currency = r["currency"] or ""
        row = {
            "decision_date": r["decision_date"],
            "account_id": r["account_id"],
            "campaign_id": r["campaign_id"],
            "adset_id": r["audience_id"],
            "adset_name": r["audience_name"],
            "audience_type": r["audience_type"],
            "rank": r["rank"],
            "action": r["action"],
            "scale_percentage": r["scale_percentage"],
            "confidence": r["confidence"],
            "p_action_right": r["metric_p_action_right"],
            "reason": decisive_reason(list(r["reasons"] or [])),
            "currency": currency,
            "budget_from_minor": None if r["action"] == "RETEST" else to_minor(r["current_daily_budget"], currency),
            "budget_to_minor": to_minor(r["new_daily_budget"], currency, floor=True)
            if r["action"] == "SCALE"
            else None,
            "config_hash": r["config_hash"],
            "recommendation_run_id": r["run_id"],
        }
        digest = plan_digest(plan_of(row))
        row |= {"approval_id": digest[:16], "plan_digest": digest, "idempotency_key": idempotency_key(digest)}
        out.append(row)
    return out


def executed_keys(conn: duckdb.DuckDBPyConnection) -> set[str]:
    """Idempotency keys with an applied (or interrupted) write."""
    rows = conn.execute(
        "SELECT DISTINCT idempotency_key FROM action_log WHERE mode = 'apply' AND outcome IN ('applied', 'started') "
        "AND reverts_action_id IS NULL"
    ).fetchall()
    return {r[0] for r in rows}


def sync_pending(
    conn: duckdb.DuckDBPyConnection, day: date, now: datetime, account: str | None = None
) -> dict[str, int]:
    """Bring the day's approvals (of one account, or all) in line with its recommendations, in one transaction.

    New plans start pending; a plan the latest run no longer proposes is superseded (an approval binds
    its exact plan, so a recomputed decision needs a new one); decided rows are never deleted."""
    ensure_tables(conn)
    who = {"day": day, "account": account}
    recs = conn.execute(
        "SELECT * FROM recommendations WHERE decision_date = $day AND list_contains($actions, action) "
        "AND ($account::VARCHAR IS NULL OR account_id = $account) ORDER BY account_id, rank",
        who | {"actions": list(WRITTEN_ACTIONS)},
    ).pl()
    planned = _planned(recs)
    wanted = {r["approval_id"] for r in planned}
    done = executed_keys(conn)

    def body() -> tuple[int, int]:
        have = {
            r[0]: r[1]
            for r in conn.execute(
                "SELECT approval_id, status FROM approvals WHERE decision_date = $day "
                "AND ($account::VARCHAR IS NULL OR account_id = $account)",
                who,
            ).fetchall()
        }
        stale = [a for a, s in have.items() if a not in wanted and s in ("pending", "approved")]
        stale_keys = conn.execute(
            "SELECT approval_id FROM approvals WHERE list_contains(?, approval_id) AND list_contains(?, idempotency_key)",
            [stale, sorted(done)],
        ).fetchall()
        stale = [a for a in stale if a not in {r[0] for r in stale_keys}]
        if stale:
            conn.execute(
                "UPDATE approvals SET status = 'superseded', note = 'the decision was recomputed with another plan' "
                "WHERE list_contains(?, approval_id)",
                [stale],
            )
        fresh = [r for r in planned if r["approval_id"] not in have]
        revived = [r["approval_id"] for r in planned if have.get(r["approval_id"]) == "superseded"]
        _insert(conn, fresh, now)
        if revived:
            conn.execute(
                "UPDATE approvals SET status = 'pending', decided_by = NULL, decided_at = NULL, expires_at = NULL, "
                "note = NULL, decided_via = NULL WHERE list_contains(?, approval_id)",
                [revived],
            )
            _reseal(conn, revived)
        return len(fresh), len(stale)

    fresh, stale = transaction(conn, body, "approvals")
    return {"new": fresh, "superseded": stale, "actionable": len(planned)}


def _insert(conn: duckdb.DuckDBPyConnection, rows: list[dict[str, Any]], now: datetime) -> None:
    if not rows:
        return
    frame = pl.DataFrame(rows).with_columns(
        pl.lit("pending").alias("status"),
        pl.lit(None, pl.Utf8).alias("decided_by"),
        pl.lit(None, pl.Datetime).alias("decided_at"),
        pl.lit(None, pl.Datetime).alias("expires_at"),
        pl.lit(None, pl.Utf8).alias("note"),
        pl.lit(None, pl.Utf8).alias("decided_via"),
        pl.lit(naive(now)).alias("created_at"),
    )
    frame = frame.with_columns(
        pl.struct("plan_digest", "status", "decided_by", "decided_at", "expires_at")
        .map_elements(row_seal, return_dtype=pl.Utf8)
        .alias("seal")
    )
    conn.register("_approvals", frame)
    try:
        conn.execute("INSERT INTO approvals BY NAME SELECT * FROM _approvals")
    finally:
        conn.unregister("_approvals")


def _reseal(conn: duckdb.DuckDBPyConnection, ids: list[str]) -> None:
    rows = conn.execute(
        "SELECT approval_id, plan_digest, status, decided_by, decided_at, expires_at FROM approvals "
        "WHERE list_contains(?, approval_id)",
        [ids],
    ).pl()
    seals = rows.select("approval_id", pl.Series("seal", [row_seal(r) for r in rows.iter_rows(named=True)], pl.Utf8))
    conn.register("_seals", seals)
    try:  # one statement for all of them (--all-high may decide hundreds)
        conn.execute("UPDATE approvals SET seal = s.seal FROM _seals s WHERE approvals.approval_id = s.approval_id")
    finally:
        conn.unregister("_seals")


def newest_decision_date(conn: duckdb.DuckDBPyConnection) -> date | None:
    ensure_tables(conn)
    row = conn.execute("SELECT max(decision_date) FROM approvals").fetchone()
    return row[0] if row else None


def current(
    conn: duckdb.DuckDBPyConnection,
    day: date,
    statuses: tuple[str, ...] = ("pending", "approved"),
    account: str | None = None,
) -> pl.DataFrame:
    """The day's live approvals (not superseded; of one account, or all), best ranked first, with
    whether each was applied."""
    ensure_tables(conn)
    return conn.execute(
        "SELECT a.*, EXISTS (SELECT 1 FROM action_log l WHERE l.idempotency_key = a.idempotency_key "
        "AND l.mode = 'apply' AND l.outcome = 'applied' AND l.reverts_action_id IS NULL) AS applied "
        "FROM approvals a WHERE decision_date = $day AND list_contains($statuses, status) "
        "AND ($account::VARCHAR IS NULL OR a.account_id = $account) ORDER BY a.account_id, rank",
        {"day": day, "statuses": list(statuses), "account": account},
    ).pl()


def _explain_missing(conn: duckdb.DuckDBPyConnection, day: date, adset_id: str) -> str:
    row = conn.execute(
        "SELECT action FROM recommendations WHERE decision_date = ? AND audience_id = ? LIMIT 1", [day, adset_id]
    ).fetchone()
    if row is None:
        return f"{adset_id}: no recommendation for this audience on {day}"
    return f"{adset_id}: the decision of {day} is {row[0]}: nothing to approve"


def decide(
    conn: duckdb.DuckDBPyConnection,
    day: date,
    adset_ids: list[str],
    verdict: str,
    *,
    by: str,
    note: str | None,
    now: datetime,
    settings: ExecutionSettings,
    via: str = "cli",
) -> pl.DataFrame:
    """Approve or reject the day's pending items for these ad sets; every id is checked before any is written."""
    if verdict not in ("approved", "rejected"):
        raise ApprovalError(f"verdict {verdict!r}: expected approved or rejected")
    if not by.strip():
        raise ApprovalError("who decided is required (--by NAME)")
    rows = current(conn, day)
    by_id = {r["adset_id"]: r for r in rows.iter_rows(named=True)}
    problems = []
    for adset_id in adset_ids:
        row = by_id.get(adset_id)
        if row is None:
            problems.append(_explain_missing(conn, day, adset_id))
        elif row["applied"]:
            problems.append(f"{adset_id}: already applied; undo it with `audience-engine revert`")
    old = decision_too_old(day, now.date(), settings)
    if old and verdict == "approved":
        problems.append(old)
    if problems:
        raise ApprovalError("; ".join(problems))
    expires = now + timedelta(hours=settings.approval_ttl_hours) if verdict == "approved" else None
    ids = [by_id[a]["approval_id"] for a in dict.fromkeys(adset_ids)]

    def body() -> None:
        conn.execute(
            "UPDATE approvals SET status = ?, decided_by = ?, decided_at = ?, expires_at = ?, note = ?, "
            "decided_via = ? WHERE list_contains(?, approval_id)",
            [verdict, by.strip(), naive(now), naive(expires), note, via, ids],
        )
        _reseal(conn, ids)

    transaction(conn, body, "approvals")
    return current(conn, day, ("approved", "rejected")).filter(pl.col("approval_id").is_in(ids))


def high_confidence_pending(conn: duckdb.DuckDBPyConnection, day: date) -> list[str]:
    """Ad sets whose pending item has HIGH confidence: what `approve --all-high` approves."""
    rows = current(conn, day, ("pending",))
    return rows.filter(pl.col("confidence") == "HIGH")["adset_id"].to_list()
