"""Questions people ask of the warehouse, answered as JSON-ready dicts: the recommendations of a day, one
audience explained with its history, each account's summary, what waits for approval, and recording an
approval or a rejection. Pure functions over an open DuckDB connection; the MCP server (and any other
front end) opens and closes the connection around them.

Ad-set and campaign names, reasons, explanations and notes are text people (or Claude) wrote: every
string in an answer is passed through `terminal.safe`, so control characters, bidirectional overrides
and newlines come back escaped, and names stay values in their own fields, never part of a sentence.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import duckdb

from audience_assets.engine.execution import ExecutionSettings, from_minor
from audience_assets.engine.schema import Action
from audience_assets.execution.approvals import decide
from audience_assets.terminal import safe
from audience_assets.warehouse import table_exists

ACTIONS = tuple(a.value for a in Action)
MAX_LIMIT = 500
HISTORY_LIMIT = 30  # earlier decisions shown per audience, newest first
OUTCOME_LIMIT = 60
FLOAT_PLACES = 4
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")

LIST_COLUMNS = (
    "rank", "audience_id", "audience_name", "account_id", "campaign_id", "campaign_name", "audience_type",
    "action", "scale_percentage", "confidence", "bucket", "trend", "currency", "current_daily_budget",
    "new_daily_budget", "metric_roas", "metric_normalized_roas", "metric_spend", "metric_purchases",
    "reasons", "risks", "explanation",
)  # fmt: skip
IDENTITY_COLUMNS = (
    "audience_id", "audience_name", "account_id", "campaign_id", "campaign_name", "audience_type", "currency",
)  # fmt: skip
RECOMMENDATION_COLUMNS = (
    "rank", "action", "scale_percentage", "confidence", "eligible", "bucket", "trend", "current_daily_budget",
    "new_daily_budget", "needs_review", "assessment", "explanation_source", "config_hash",
)  # fmt: skip
DECISION_COLUMNS = (
    "filter_reason", "age_days", "winner_threshold", "loser_threshold", "p_winner", "p_loser", "p_in_bucket",
    "trend_evidence", "roas_1d", "roas_3d", "roas_7d", "roas_long", "long_window_days", "matrix_rule",
    "matrix_action", "proposed_action", "gate_reason", "act_probability", "expected_gain", "expected_loss",
    "guardrail", "guardrail_reason", "guardrail_note", "hours_since_budget_change",
)  # fmt: skip
APPROVAL_COLUMNS = (
    "rank", "adset_id AS audience_id", "adset_name AS audience_name", "account_id", "audience_type", "action",
    "scale_percentage", "confidence", "reason", "currency", "budget_from_minor", "budget_to_minor", "status",
    "decided_by", "decided_at", "expires_at", "note", "decided_via",
)  # fmt: skip
VERDICT_COLUMNS = (
    "adset_id", "adset_name", "action", "scale_percentage", "currency", "budget_from_minor", "budget_to_minor",
    "status", "decided_by", "decided_at", "expires_at", "note", "decided_via",
)  # fmt: skip
RENAMED = {"adset_id": "audience_id", "adset_name": "audience_name"}


class QueryError(ValueError):
    """A question the warehouse cannot answer as asked: the message names the argument or table and what to do."""


# ----------------------------------------------------------------------------- arguments


def parse_date(value: str | None, name: str = "decision_date") -> date | None:
    """A YYYY-MM-DD argument as a date (None stays None: the newest date)."""
    if value is None or not str(value).strip():
        return None
    text = str(value).strip()
    try:
        if _ISO_DATE.fullmatch(text):
            return date.fromisoformat(text)
    except ValueError:
        pass
    raise QueryError(f"{name} '{safe(text, inline=True)}' is not a date: expected YYYY-MM-DD, e.g. 2026-11-26")


def parse_action(value: str | None) -> str | None:
    """An action argument, any case, as SCALE / HOLD / PAUSE / RETEST (None stays None: every action)."""
    if value is None or not str(value).strip():
        return None
    action = str(value).strip().upper()
    if action not in ACTIONS:
        raise QueryError(f"action '{safe(value, inline=True)}' is not an action: expected one of {', '.join(ACTIONS)}")
    return action


def check_limit(limit: int) -> int:
    """A row limit from 1 to MAX_LIMIT."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise QueryError(f"limit {limit!r} is out of range: expected a whole number from 1 to {MAX_LIMIT}")
    return limit


def _audience_ids(ids: list[str]) -> list[str]:
    # Escaped first: an id is echoed in refusals, and no real id holds a control character.
    cleaned = list(dict.fromkeys(safe(str(i).strip(), inline=True) for i in ids or [] if str(i).strip()))
    if not cleaned:
        raise QueryError("audience_ids is empty: name at least one audience id (see pending_approvals)")
    return cleaned


# ----------------------------------------------------------------------------- answers as JSON


def jsonable(value: Any) -> Any:
    """A value as JSON: dates and times in ISO 8601 (times in UTC), floats rounded, NaN and infinity as
    null, every string escaped for display (`terminal.safe`)."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return round(value, FLOAT_PLACES) if math.isfinite(value) else None
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else jsonable(float(value))
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return safe(value, inline=True)


def _rows(conn: duckdb.DuckDBPyConnection, sql: str, params: list[Any]) -> list[dict[str, Any]]:
    cursor = conn.execute(sql, params)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _columns(conn: duckdb.DuckDBPyConnection, table: str, wanted: tuple[str, ...]) -> str:
    """The wanted columns the table has (a warehouse written by an older version may lack some), quoted."""
    have = {r[0] for r in conn.execute(f'DESCRIBE "{table}"').fetchall()}
    return ", ".join(c if " AS " in c else f'"{c}"' for c in wanted if c.split(" AS ")[0] in have)


def _require(conn: duckdb.DuckDBPyConnection, table: str) -> None:
    if not table_exists(conn, table):
        raise QueryError(
            f"the warehouse has no {table} table yet: run the daily job first "
            "(`audience-engine demo`, or `audience-engine recommend` on your data)"
        )


def _day(conn: duckdb.DuckDBPyConnection, table: str, wanted: date | None) -> date:
    """The asked decision date if the table holds it, else the newest; a clear error when there is none."""
    dates = [r[0] for r in conn.execute(f'SELECT DISTINCT decision_date FROM "{table}" ORDER BY 1 DESC').fetchall()]
    if not dates:
        raise QueryError(f"the {table} table is empty: run the daily job first")
    if wanted is None:
        return dates[0]
    if wanted not in dates:
        shown = ", ".join(d.isoformat() for d in dates[:10]) + (", ..." if len(dates) > 10 else "")
        raise QueryError(
            f"decision_date {wanted}: nothing in {table} for that date; stored dates, newest first: {shown}"
        )
    return wanted


def _action_counts(conn: duckdb.DuckDBPyConnection, day: date) -> dict[str, int]:
    counts = dict(
        conn.execute(
            "SELECT action, count(*) FROM recommendations WHERE decision_date = ? GROUP BY 1", [day]
        ).fetchall()
    )
    return {a: int(counts.get(a, 0)) for a in ACTIONS}


# ----------------------------------------------------------------------------- the questions


def list_recommendations(
    conn: duckdb.DuckDBPyConnection, decision_date: str | None = None, action: str | None = None, limit: int = 50
) -> dict[str, Any]:
    """A decision date's recommendations in rank order (best composite score first), optionally one action."""
    wanted, only, limit = parse_date(decision_date), parse_action(action), check_limit(limit)
    _require(conn, "recommendations")
    day = _day(conn, "recommendations", wanted)
    where, params = "decision_date = ?", [day]
    if only:
        where, params = where + " AND action = ?", [day, only]
    columns = _columns(conn, "recommendations", LIST_COLUMNS)
    rows = _rows(
        conn,
        f"SELECT {columns} FROM recommendations WHERE {where} ORDER BY rank, audience_id LIMIT ?",
        [*params, limit],
    )
    counts = _action_counts(conn, day)
    matching = counts.get(only, 0) if only else sum(counts.values())
    return jsonable(
        {
            "decision_date": day,
            "action_filter": only,
            "matching": matching,
            "returned": len(rows),
            "counts_by_action": counts,
            "recommendations": rows,
        }
    )


def _history(conn: duckdb.DuckDBPyConnection, audience_id: str, day: date) -> dict[str, Any]:
    """The audience's earlier decisions, and the judged outcomes of its decisions when outcomes are stored."""
    decisions = _rows(
        conn,
        "SELECT decision_date, action, scale_percentage, confidence, bucket, trend FROM decisions "
        "WHERE adset_id = ? AND decision_date < ? ORDER BY decision_date DESC LIMIT ?",
        [audience_id, day, HISTORY_LIMIT],
    )
    history: dict[str, Any] = {"earlier_decisions": decisions}
    if not table_exists(conn, "outcomes"):
        history["outcomes"] = None
        history["outcomes_note"] = "no outcomes table in this warehouse (outcomes are judged after later days load)"
        return history
    history["outcomes"] = _rows(
        conn,
        "SELECT decision_date, horizon_days, action, label, roas_ratio, executed FROM outcomes "
        "WHERE adset_id = ? AND decision_date <= ? ORDER BY decision_date DESC, horizon_days LIMIT ?",
        [audience_id, day, OUTCOME_LIMIT],
    )
    return history


def _approval(conn: duckdb.DuckDBPyConnection, audience_id: str, day: date) -> dict[str, Any] | None:
    if not table_exists(conn, "approvals"):
        return None
    rows = _rows(
        conn,
        "SELECT status, decided_by, decided_at, expires_at, note, decided_via FROM approvals "
        "WHERE adset_id = ? AND decision_date = ? AND status <> 'superseded' ORDER BY created_at DESC LIMIT 1",
        [audience_id, day],
    )
    return rows[0] if rows else None


def _not_found(conn: duckdb.DuckDBPyConnection, audience_id: str, day: date) -> QueryError:
    dates = [
        r[0].isoformat()
        for r in conn.execute(
            "SELECT DISTINCT decision_date FROM recommendations WHERE audience_id = ? ORDER BY 1 DESC LIMIT 10",
            [audience_id],
        ).fetchall()
    ]
    shown = safe(audience_id, inline=True)
    if dates:
        return QueryError(f"audience_id '{shown}': no recommendation on {day}; it has some on {', '.join(dates)}")
    return QueryError(f"audience_id '{shown}': no such audience in the warehouse (list_recommendations shows the ids)")


def explain_audience(
    conn: duckdb.DuckDBPyConnection, audience_id: str, decision_date: str | None = None
) -> dict[str, Any]:
    """One audience on a decision date: its figures, bucket, trend, confidence, the decision's trail, reasons,
    risks and explanation, its approval, and its history (earlier decisions and outcomes)."""
    wanted = parse_date(decision_date)
    audience_id = str(audience_id).strip()
    _require(conn, "recommendations")
    day = _day(conn, "recommendations", wanted)
    recs = _rows(conn, "SELECT * FROM recommendations WHERE decision_date = ? AND audience_id = ?", [day, audience_id])
    if not recs:
        raise _not_found(conn, audience_id, day)
    rec = recs[0]
    decision: dict[str, Any] = {}
    if table_exists(conn, "decisions"):
        found = _rows(
            conn,
            f"SELECT {_columns(conn, 'decisions', DECISION_COLUMNS)} FROM decisions "
            "WHERE decision_date = ? AND adset_id = ?",
            [day, audience_id],
        )
        decision = found[0] if found else {}
    answer = {
        "decision_date": day,
        "audience": {c: rec.get(c) for c in IDENTITY_COLUMNS},
        "recommendation": {c: rec.get(c) for c in RECOMMENDATION_COLUMNS if c in rec},
        "figures": {k.removeprefix("metric_"): v for k, v in rec.items() if k.startswith("metric_")},
        "decision": decision,
        "reasons": rec.get("reasons") or [],
        "risks": rec.get("risks") or [],
        "risk_flags": rec.get("risk_flags") or [],
        "explanation": rec.get("explanation"),
        "approval": _approval(conn, audience_id, day),
        "history": _history(conn, audience_id, day) if table_exists(conn, "decisions") else {},
    }
    return jsonable(answer)


ACCOUNT_SQL = """
SELECT account_id, any_value(currency) AS currency, count(*) AS audiences,
    count(*) FILTER (WHERE eligible) AS audiences_with_enough_data,
    count(*) FILTER (WHERE action = 'SCALE') AS "SCALE", count(*) FILTER (WHERE action = 'HOLD') AS "HOLD",
    count(*) FILTER (WHERE action = 'PAUSE') AS "PAUSE", count(*) FILTER (WHERE action = 'RETEST') AS "RETEST",
    max(metric_window_days) AS window_days, sum(metric_spend) AS spend, sum(metric_revenue) AS revenue,
    sum(metric_purchases) AS purchases, sum(metric_revenue) / nullif(sum(metric_spend), 0) AS roas,
    coalesce(sum(new_daily_budget - current_daily_budget) FILTER (WHERE action = 'SCALE'), 0)
        AS scale_daily_budget_added,
    coalesce(sum(current_daily_budget) FILTER (WHERE action = 'PAUSE'), 0) AS pause_daily_budget_freed
FROM recommendations WHERE decision_date = ? GROUP BY account_id ORDER BY account_id
"""


def account_summary(conn: duckdb.DuckDBPyConnection, decision_date: str | None = None) -> dict[str, Any]:
    """Per account on a decision date: audiences, recommendations per action, spend, revenue and ROAS over the
    window, the daily budget the SCALEs add and the PAUSEs free, in the account's currency."""
    wanted = parse_date(decision_date)
    _require(conn, "recommendations")
    day = _day(conn, "recommendations", wanted)
    accounts = []
    for row in _rows(conn, ACCOUNT_SQL, [day]):
        row["actions"] = {a: int(row.pop(a)) for a in ACTIONS}
        accounts.append(row)
    return jsonable(
        {
            "decision_date": day,
            "accounts": accounts,
            "counts_by_action": _action_counts(conn, day),
            "money_note": "money is per account, in its currency; spend and revenue cover window_days days "
            "before the decision date; budget figures are per day",
        }
    )


def _with_budgets(row: dict[str, Any]) -> dict[str, Any]:
    """An approvals row with its plan's budgets in currency units (the table keeps Meta's minor units)."""
    currency = row.get("currency") or ""
    row["daily_budget_from"] = from_minor(row.pop("budget_from_minor", None), currency)
    row["daily_budget_to"] = from_minor(row.pop("budget_to_minor", None), currency)
    return row


def pending_approvals(
    conn: duckdb.DuckDBPyConnection, decision_date: str | None = None, now: datetime | None = None
) -> dict[str, Any]:
    """A decision date's items waiting on a person (pending) or on execution (approved, not yet applied)."""
    wanted = parse_date(decision_date)
    if not table_exists(conn, "approvals"):
        return {
            "approvals_table": False,
            "message": "this warehouse has no approvals table, so nothing waits for approval "
            "(the daily job creates it: `audience-engine demo` or `recommend`)",
            "items": [],
        }
    if wanted is None and not conn.execute("SELECT count(*) FROM approvals").fetchone()[0]:
        return {"approvals_table": True, "message": "no approvals recorded yet: nothing waits", "items": []}
    day = _day(conn, "approvals", wanted)
    applied = "FALSE"
    if table_exists(conn, "action_log"):
        applied = (
            "EXISTS (SELECT 1 FROM action_log l WHERE l.idempotency_key = a.idempotency_key AND l.mode = 'apply' "
            "AND l.outcome = 'applied' AND l.reverts_action_id IS NULL)"
        )
    now = now or datetime.now(UTC)
    rows = _rows(
        conn,
        f"SELECT {_columns(conn, 'approvals', APPROVAL_COLUMNS)}, (status = 'approved' AND expires_at < ?) AS expired "
        f"FROM approvals a WHERE decision_date = ? AND status IN ('pending', 'approved') AND NOT {applied} "
        "ORDER BY rank, adset_id",
        [now.astimezone(UTC).replace(tzinfo=None), day],
    )
    items = [_with_budgets(r) for r in rows]
    waiting = sum(1 for r in items if r["status"] == "pending")
    return jsonable(
        {
            "approvals_table": True,
            "decision_date": day,
            "pending": waiting,
            "approved_not_executed": len(items) - waiting,
            "items": items,
        }
    )


def record_verdict(
    conn: duckdb.DuckDBPyConnection,
    audience_ids: list[str],
    verdict: str,
    *,
    by: str,
    note: str | None,
    now: datetime,
    decision_date: str | None = None,
    max_decision_age_days: int | None = None,
    via: str = "mcp",
) -> dict[str, Any]:
    """Approve or reject a decision date's pending items (all checked before any is recorded) through
    `execution.approvals.decide`. Records a decision in the approvals table; never writes to Meta."""
    wanted, ids = parse_date(decision_date), _audience_ids(audience_ids)
    if not str(by or "").strip():
        raise QueryError("by is empty: say who decides (a name), it is recorded with the decision")
    if max_decision_age_days is not None and (isinstance(max_decision_age_days, bool) or max_decision_age_days < 0):
        raise QueryError(f"max_decision_age_days {max_decision_age_days!r}: expected a whole number of days, 0 or more")
    if not table_exists(conn, "approvals"):
        raise QueryError(
            "this warehouse has no approvals table, so there is nothing to approve or reject "
            "(the daily job creates it: `audience-engine demo` or `recommend`)"
        )
    day = _day(conn, "approvals", wanted)
    given = {} if max_decision_age_days is None else {"max_decision_age_days": max_decision_age_days}
    rows = decide(conn, day, ids, verdict, by=by, note=note, now=now, settings=ExecutionSettings(**given), via=via)
    recorded = [_with_budgets({RENAMED.get(k, k): r[k] for k in VERDICT_COLUMNS}) for r in rows.iter_rows(named=True)]
    return jsonable(
        {
            "decision_date": day,
            "verdict": verdict,
            "recorded": recorded,
            "written_to_meta": False,
            "next_step": "nothing was sent to Meta: `audience-engine execute` does a dry run of the approved "
            "items and `audience-engine execute --apply` writes them",
        }
    )
