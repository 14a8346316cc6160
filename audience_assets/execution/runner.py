"""Execute approved changes on Meta, once each, and undo one on request; every attempt is a row of
`action_log`.

Per approved item: the approval is checked offline (seal, plan, age, expiry, newer decisions, already
applied), then Meta's live state is read and checked (budget edited, status, cooldown, learning, the
hourly limit, the account's daily cap, CBO or lifetime budgets), then the write is sent (or only
validated by Meta in a dry run) and read back. A write in apply mode is logged as `started` before it
is sent, so a crash between the call and the log leaves a row the next run reconciles against Meta's
live state (an absolute target makes that checkable) instead of writing again.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import duckdb
import polars as pl

from audience_assets.engine.execution import (
    AUTH_CODES,
    RATE_LIMIT_CODES,
    BudgetEvent,
    ExecutionSettings,
    LiveAdSet,
    WriteContext,
    decision_too_old,
    plan_digest,
    reconciled,
    refusals,
    to_minor,
)
from audience_assets.execution import ExecutionError
from audience_assets.execution.approvals import aware, ensure_tables, naive, newest_decision_date, plan_of, row_seal
from audience_assets.integrations.meta import MetaError
from audience_assets.integrations.meta_writer import MetaWriteError, MetaWriter, graph_time

WRITES_ENV = "AUDIENCE_ENGINE_WRITES"
DECISION_INPUTS = [
    "bucket", "trend", "matrix_rule", "confidence", "roas_7d", "normalized_roas", "spend_window",
    "purchases_window", "act_probability", "expected_gain", "expected_loss", "current_daily_budget",
    "new_daily_budget", "cooldown_hours", "account_increase_cap", "learning_stage", "decided_at",
]  # fmt: skip


def writes_blocked(settings: ExecutionSettings) -> str | None:
    """Why writes are switched off right now, or None: the kill switch, read before every write."""
    if os.environ.get(WRITES_ENV, "").strip().lower() in ("off", "0", "false", "no"):
        return f"writes are switched off ({WRITES_ENV}=off): nothing was sent"
    if not settings.writes_enabled:
        return "writes are switched off (writes_enabled = false): nothing was sent"
    return None


@dataclass
class Breaker:
    """Stops a run's writes after repeated Meta errors: at once for auth or permission, after
    `limit` rate-limit errors otherwise."""

    limit: int
    rate_errors: int = 0
    opened: str | None = None

    def record(self, err: MetaError) -> None:
        code = err.code
        if code in AUTH_CODES:
            self.opened = f"Meta error {code} (token or permission): every later write would fail too"
        elif code in RATE_LIMIT_CODES:
            self.rate_errors += 1
            if self.rate_errors >= self.limit:
                self.opened = f"{self.rate_errors} rate-limit errors from Meta (last code {code})"


@dataclass
class Run:
    conn: duckdb.DuckDBPyConnection
    writer: MetaWriter | None
    settings: ExecutionSettings
    apply: bool
    run_id: str
    clock: Callable[[], datetime]
    say: Callable[[str], None]
    breaker: Breaker = field(init=False)
    stored: set[str] = field(default_factory=set)  # action ids already in action_log (started rows)

    def __post_init__(self) -> None:
        self.breaker = Breaker(self.settings.breaker_errors)

    @property
    def mode(self) -> str:
        return "apply" if self.apply else "dry_run"


def _dump(value: Any) -> str | None:
    return None if value is None else json.dumps(value, default=str, sort_keys=True)


def _insert(conn: duckdb.DuckDBPyConnection, row: dict[str, Any]) -> None:
    cols = list(row)
    conn.execute(
        f"INSERT INTO action_log ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})", [row[c] for c in cols]
    )


def _update(conn: duckdb.DuckDBPyConnection, action_id: str, row: dict[str, Any]) -> None:
    cols = [c for c in row if c != "action_id"]
    conn.execute(
        f"UPDATE action_log SET {', '.join(f'{c} = ?' for c in cols)} WHERE action_id = ?",
        [row[c] for c in cols] + [action_id],
    )


def _items(conn: duckdb.DuckDBPyConnection, day: date) -> pl.DataFrame:
    """The day's approved items with their decision rows (context for the checks and the log)."""
    inputs = ", ".join(f"d.{c} AS d_{c}" for c in DECISION_INPUTS)
    return conn.execute(
        f"SELECT a.*, {inputs}, (SELECT max(n.decision_date) FROM decisions n WHERE n.adset_id = a.adset_id) "
        "AS newest_decision FROM approvals a LEFT JOIN decisions d ON d.decision_date = a.decision_date "
        "AND d.adset_id = a.adset_id WHERE a.decision_date = ? AND a.status = 'approved' ORDER BY a.rank",
        [day],
    ).pl()


def _base(run: Run, item: dict[str, Any]) -> dict[str, Any]:
    inputs = {c: item[f"d_{c}"] for c in DECISION_INPUTS}
    return {
        "action_id": uuid.uuid4().hex[:16],
        "run_id": run.run_id,
        "mode": run.mode,
        "decision_inputs": _dump(inputs),
        "started_at": naive(run.clock()),
        **{
            k: item[k]
            for k in (
                "idempotency_key",
                "approval_id",
                "decision_date",
                "account_id",
                "campaign_id",
                "adset_id",
                "adset_name",
                "action",
                "currency",
                "budget_from_minor",
                "budget_to_minor",
                "config_hash",
            )
        },  # fmt: skip
        "approved_by": item["decided_by"],
        "approved_at": item["decided_at"],
        "approval_seal": item["seal"],
    }


def _offline_refusal(run: Run, item: dict[str, Any]) -> str | None:
    """Reasons found without Meta: the approval itself, its age, newer decisions, earlier writes."""
    now = run.clock()
    if plan_digest(plan_of(item)) != item["plan_digest"] or row_seal(item) != item["seal"]:
        return "the approval row does not match its seal: it was altered after it was given; approve again"
    old = decision_too_old(item["decision_date"], now.date(), run.settings)
    if old:
        return old
    if item["expires_at"] is None or aware(item["expires_at"]) < now:
        return f"the approval expired at {item['expires_at']} UTC (approval_ttl_hours {run.settings.approval_ttl_hours:g}); approve again"
    if item["newest_decision"] is not None and item["newest_decision"] > item["decision_date"]:
        return f"a newer decision ({item['newest_decision']}) exists for this ad set: only the newest can be executed"
    done = run.conn.execute(
        "SELECT action_id, finished_at FROM action_log WHERE idempotency_key = ? AND mode = 'apply' "
        "AND outcome = 'applied' AND reverts_action_id IS NULL",
        [item["idempotency_key"]],
    ).fetchone()
    if done:
        return f"already applied by action {done[0]} at {done[1]} UTC: not written again"
    blocked = writes_blocked(run.settings) if run.apply else None
    if blocked:
        return blocked
    if run.breaker.opened:
        return f"not attempted: the circuit breaker opened after {run.breaker.opened}"
    return None


def _request(item: dict[str, Any], suffix: str) -> dict[str, Any]:
    """What is sent to Meta for an item (no token): path and parameters."""
    if item["action"] == "SCALE":
        return {"path": item["adset_id"], "params": {"daily_budget": str(item["budget_to_minor"])}}
    if item["action"] == "PAUSE":
        return {"path": item["adset_id"], "params": {"status": "PAUSED"}}
    return {"path": f"{item['adset_id']}/copies", "params": {"status_option": "PAUSED", "rename_suffix": suffix}}


def retest_suffix(key: str) -> str:
    """The name suffix that marks a duplicate as this approval's (how a re-run finds it)."""
    return f" [retest {key[:10]}]"


def _context(run: Run, item: dict[str, Any]) -> WriteContext:
    applied = run.conn.execute(
        "SELECT coalesce(sum(budget_to_minor - budget_from_minor), 0) FROM action_log WHERE account_id = ? "
        "AND mode = 'apply' AND outcome = 'applied' AND action = 'SCALE' AND reverts_action_id IS NULL "
        "AND CAST(started_at AS DATE) = ?",
        [item["account_id"], run.clock().astimezone(UTC).date()],
    ).fetchone()[0]
    cap = item["d_account_increase_cap"]
    decided = item["d_decided_at"]
    return WriteContext(
        now=run.clock(),
        decided_at=aware(decided) if isinstance(decided, datetime) else None,
        decision_learning=item["d_learning_stage"],
        cooldown_hours=float(item["d_cooldown_hours"] or 72.0),
        account_cap_minor=to_minor(cap, item["currency"], floor=True) if cap is not None else None,
        applied_today_minor=int(applied),
    )


def _events(run: Run, item: dict[str, Any], ctx: WriteContext) -> list[BudgetEvent]:
    assert run.writer is not None
    since = ctx.now - timedelta(hours=max(ctx.cooldown_hours, 1.0))
    rows = run.writer.events(item["adset_id"], since)
    return [
        BudgetEvent(
            at=graph_time(r["event_time"]), actor=r.get("actor_name") or "", application=r.get("application_name") or ""
        )
        for r in rows
    ]


def _read(run: Run, adset_id: str) -> tuple[LiveAdSet, dict[str, Any]]:
    assert run.writer is not None
    got = run.writer.adset(adset_id)
    return LiveAdSet(**got["state"]), got["raw"]


def _send(run: Run, item: dict[str, Any], validate_only: bool) -> Any:
    assert run.writer is not None
    if item["action"] == "SCALE":
        return run.writer.set_daily_budget(item["adset_id"], item["budget_to_minor"], validate_only)
    if item["action"] == "PAUSE":
        return run.writer.set_status(item["adset_id"], "PAUSED", validate_only)
    return run.writer.duplicate(item["adset_id"], retest_suffix(item["idempotency_key"]), validate_only)


def _existing_copy(run: Run, item: dict[str, Any], live: LiveAdSet) -> str | None:
    """The id of a duplicate an earlier (interrupted) run already made for this approval."""
    assert run.writer is not None
    if item["action"] != "RETEST" or not live.campaign_id:
        return None
    found = run.writer.copies_named(live.campaign_id, retest_suffix(item["idempotency_key"]))
    return str(found[0]["id"]) if found else None


def _interrupted(run: Run, item: dict[str, Any]) -> str | None:
    row = run.conn.execute(
        "SELECT action_id FROM action_log WHERE idempotency_key = ? AND mode = 'apply' AND outcome = 'started' "
        "AND reverts_action_id IS NULL ORDER BY started_at DESC LIMIT 1",
        [item["idempotency_key"]],
    ).fetchone()
    return row[0] if row else None


def _finish(run: Run, row: dict[str, Any], outcome: str, reason: str | None = None, **extra: Any) -> dict[str, Any]:
    row.update(extra)
    row.update(outcome=outcome, reason=reason, finished_at=naive(run.clock()))
    return row


def _one(run: Run, item: dict[str, Any]) -> dict[str, Any]:
    """One approved item, from the offline checks to the read-back; returns its action_log row."""
    row = _base(run, item)
    row["request"] = _dump(_request(item, retest_suffix(item["idempotency_key"])))
    refused = _offline_refusal(run, item)
    if refused:
        return _finish(run, row, "skipped", refused)
    if run.writer is None:
        return _finish(run, row, "planned", "Meta not contacted (no META_ACCESS_TOKEN): this is what would be sent")
    try:
        live, raw = _read(run, item["adset_id"])
        row["state_before"] = _dump(raw)
        copy_id = _existing_copy(run, item, live)
        earlier = _interrupted(run, item) if run.apply else None
        if copy_id or reconciled(plan_of(item), live):
            return _reconcile(run, row, earlier, copy_id)
        ctx = _context(run, item)
        reasons = refusals(
            plan_of(item), live, _events(run, item, ctx) if item["action"] == "SCALE" else [], ctx, run.settings
        )
    except MetaError as err:
        run.breaker.record(err)
        return _finish(run, row, "failed", f"reading the live ad set failed: {err}", error_code=err.code)
    if reasons:
        return _finish(run, row, "skipped", "; ".join(reasons))
    if not run.apply:
        return _validate(run, row, item)
    return _write(run, row, item, live, earlier)


def _reconcile(run: Run, row: dict[str, Any], earlier: str | None, copy_id: str | None) -> dict[str, Any]:
    if earlier and run.apply:
        row["action_id"] = earlier  # the interrupted attempt's row is completed, not repeated
        run.stored.add(earlier)
        return _finish(
            run, row, "applied",
            "reconciled: Meta already held the approved state after an interrupted run; nothing written again",
            new_adset_id=copy_id, state_after=row["state_before"],
        )  # fmt: skip
    what = f"a duplicate ({copy_id}) already exists" if copy_id else "Meta already holds the approved state"
    return _finish(run, row, "skipped", f"{what} (changed outside this run): nothing written")


def _validate(run: Run, row: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
    """A dry run: Meta validates the exact write (execution_options=validate_only) and applies nothing."""
    try:
        result = _send(run, item, validate_only=True)
    except MetaWriteError as err:
        run.breaker.record(err)
        return _finish(
            run,
            row,
            "failed",
            f"Meta rejected the write in validation: {err}",
            error_code=err.code,
            request_id=err.trace_id,
        )
    return _finish(run, row, "validated", "dry run: Meta validated the write (validate_only); nothing applied",
                   response=_dump(result.body), request_id=result.trace_id)  # fmt: skip


def _write(run: Run, row: dict[str, Any], item: dict[str, Any], live: LiveAdSet, earlier: str | None) -> dict[str, Any]:
    """Log `started`, send, read back, complete the row: Meta's state after the write is the judge."""
    blocked = writes_blocked(run.settings)
    if blocked:
        return _finish(run, row, "skipped", blocked)
    if earlier:
        row["action_id"] = earlier
        _update(run.conn, earlier, {**row, "outcome": "started"})
    else:
        _insert(run.conn, {**row, "outcome": "started"})
    run.stored.add(row["action_id"])
    sent_at = run.clock()
    error: MetaWriteError | None = None
    result = None
    try:
        result = _send(run, item, validate_only=False)
    except MetaWriteError as err:
        error = err
        run.breaker.record(err)
    return _verify(run, row, item, live, result, error, sent_at)


def _verify(
    run: Run, row, item, live: LiveAdSet, result, error: MetaWriteError | None, sent_at: datetime
) -> dict[str, Any]:
    new_id = str(result.body.get("copied_adset_id") or "") if result is not None else ""
    if result is not None:
        row.update(response=_dump(result.body), request_id=result.trace_id)
    try:
        after, raw = _read(run, new_id or item["adset_id"])
    except MetaError as err:
        reason = f"{'the write failed: ' + str(error) + '; ' if error else ''}reading it back failed: {err}"
        return _finish(run, row, "failed", reason, error_code=error.code if error else None)
    row["state_after"] = _dump(raw)
    edited = after.last_significant_edit_at
    row["learning_restarted"] = bool(
        after.learning_status == "LEARNING" and edited is not None and edited >= sent_at.replace(microsecond=0)
    )
    if item["action"] == "RETEST":
        held = bool(new_id) and after.status == "PAUSED"
    else:
        held = reconciled(plan_of(item), after)
    if held:
        note = f"verified: Meta holds the new state{' (duplicate ' + new_id + ', paused)' if new_id else ''}"
        if error is not None:
            note += f"; the call itself reported: {error}"
        return _finish(run, row, "applied", note, new_adset_id=new_id or None)
    if error is not None:
        return _finish(
            run, row, "failed", f"Meta refused the write: {error}", error_code=error.code, request_id=error.trace_id
        )
    wanted = f"daily_budget {item['budget_to_minor']}" if item["action"] == "SCALE" else "status PAUSED"
    return _finish(
        run, row, "failed",
        f"Meta answered success but does not hold the change (wanted {wanted}; holds daily_budget "
        f"{after.daily_budget}, status {after.status}): not applied",
    )  # fmt: skip


def execute(
    conn: duckdb.DuckDBPyConnection,
    writer: MetaWriter | None,
    *,
    day: date | None,
    apply: bool,
    settings: ExecutionSettings,
    run_id: str,
    clock: Callable[[], datetime] | None = None,
    say: Callable[[str], None] | None = None,
) -> pl.DataFrame:
    """Run every approved item of a decision date; returns this run's action_log rows."""
    ensure_tables(conn)
    day = day or newest_decision_date(conn)
    if day is None:
        raise ExecutionError("no approvals in the warehouse: run `audience-engine recommend` (or demo) first")
    if apply and writer is None:
        raise ExecutionError("--apply needs META_ACCESS_TOKEN (a token with ads_management): nothing was sent")
    run = Run(conn, writer, settings, apply, run_id, clock or (lambda: datetime.now(UTC)), say or (lambda _m: None))
    for item in _items(conn, day).iter_rows(named=True):
        row = _one(run, item)
        if row["action_id"] in run.stored:
            _update(conn, row["action_id"], row)
        else:
            _insert(conn, row)
        run.say(f"{row['adset_id']} {row['action']}: {row['outcome']}{' - ' + row['reason'] if row['reason'] else ''}")
    return conn.execute("SELECT * FROM action_log WHERE run_id = ? ORDER BY started_at", [run_id]).pl()


def _revert_target(conn: duckdb.DuckDBPyConnection, action_id: str) -> dict[str, Any]:
    found = conn.execute("SELECT * FROM action_log WHERE action_id = ?", [action_id]).pl()
    if found.is_empty():
        raise ExecutionError(f"no action {action_id} in action_log (see `audience-engine actions`)")
    target = found.row(0, named=True)
    if target["reverts_action_id"] is not None:
        raise ExecutionError(f"action {action_id} is itself a revert; revert the original instead")
    if target["mode"] != "apply" or target["outcome"] != "applied":
        raise ExecutionError(
            f"action {action_id} was not applied ({target['mode']}, {target['outcome']}): nothing to undo"
        )
    done = conn.execute(
        "SELECT action_id FROM action_log WHERE reverts_action_id = ? AND mode = 'apply' AND outcome = 'applied'",
        [action_id],
    ).fetchone()
    if done:
        raise ExecutionError(f"action {action_id} was already reverted by {done[0]}")
    return target


def _undo(target: dict[str, Any], live: LiveAdSet) -> tuple[str | None, dict[str, Any]]:
    """(why the live state has moved on, or None; the write that restores the recorded previous state)."""
    if target["action"] == "SCALE":
        if live.daily_budget != target["budget_to_minor"]:
            return f"the live daily budget is {live.daily_budget}, not the {target['budget_to_minor']} written", {}
        return None, {"daily_budget": target["budget_from_minor"]}
    if live.status != "PAUSED":
        return f"the ad set is {live.status}, no longer PAUSED as written", {}
    return None, {"status": "ACTIVE" if target["action"] == "PAUSE" else "DELETED"}


def revert(
    conn: duckdb.DuckDBPyConnection,
    writer: MetaWriter,
    action_id: str,
    *,
    apply: bool,
    settings: ExecutionSettings,
    run_id: str,
    clock: Callable[[], datetime] | None = None,
) -> dict[str, Any]:
    """Restore the previous absolute budget or status of an applied action (a RETEST's duplicate is
    deleted), approval-free but logged; refused if the live state has moved on since the write."""
    ensure_tables(conn)
    target = _revert_target(conn, action_id)
    now = clock or (lambda: datetime.now(UTC))
    run = Run(conn, writer, settings, apply, run_id, now, lambda _m: None)
    object_id = target["new_adset_id"] if target["action"] == "RETEST" else target["adset_id"]
    row = {
        **{k: target[k] for k in ("idempotency_key", "approval_id", "decision_date", "account_id", "campaign_id",
                                  "adset_name", "currency", "config_hash")},
        "action_id": uuid.uuid4().hex[:16], "run_id": run_id, "mode": run.mode, "adset_id": object_id,
        "action": f"REVERT_{target['action']}", "reverts_action_id": action_id, "started_at": naive(now()),
        "budget_from_minor": target["budget_to_minor"], "budget_to_minor": target["budget_from_minor"],
    }  # fmt: skip
    blocked = writes_blocked(settings) if apply else None
    try:
        live, raw = _read(run, object_id)
    except MetaError as err:
        row = _finish(run, row, "failed", f"reading the live ad set failed: {err}")
    else:
        moved, params = _undo(target, live)
        row.update(state_before=_dump(raw), request=_dump({"path": object_id, "params": params}))
        if blocked or moved:
            row = _finish(run, row, "skipped", blocked or f"refused: {moved} (the live state has moved on)")
        else:
            if apply:  # logged before it is sent, like every write
                _insert(conn, {**row, "outcome": "started"})
            row = _revert_write(run, row, object_id, params)
            if apply:
                _update(conn, row["action_id"], row)
                return row
    _insert(conn, row)
    return row


def _revert_write(run: Run, row: dict[str, Any], object_id: str, params: dict[str, Any]) -> dict[str, Any]:
    assert run.writer is not None
    try:
        if "daily_budget" in params:
            result = run.writer.set_daily_budget(object_id, int(params["daily_budget"]), not run.apply)
        else:
            result = run.writer.set_status(object_id, params["status"], not run.apply)
    except MetaWriteError as err:
        return _finish(run, row, "failed", f"Meta refused the revert: {err}", error_code=err.code)
    row.update(response=_dump(result.body), request_id=result.trace_id)
    if not run.apply:
        return _finish(run, row, "validated", "dry run: Meta validated the revert; nothing applied")
    after, raw = _read(run, object_id)
    row["state_after"] = _dump(raw)
    ok = after.daily_budget == params["daily_budget"] if "daily_budget" in params else after.status == params["status"]
    if ok:
        return _finish(run, row, "applied", "reverted: Meta holds the previous state again")
    return _finish(run, row, "failed", "Meta answered success but does not hold the previous state")
