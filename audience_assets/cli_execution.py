"""The approval and execution commands of `audience-engine`: pending, approve, reject, execute, actions,
revert. Approvals are recorded straight in the warehouse; execute runs the Dagster job
execute_approved (so its blocking check guards every run); revert is the logged, approval-free undo."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import uuid
import warnings
from datetime import UTC, date, datetime
from typing import Any

import polars as pl

from audience_assets.cli_common import add_date, add_max_age, add_warehouse, execution_settings
from audience_assets.engine.execution import ExecutionSettings, from_minor
from audience_assets.engine.fmt import currency_symbol
from audience_assets.execution import ApprovalError, ExecutionError
from audience_assets.execution.approvals import (
    current,
    decide,
    high_confidence_pending,
    newest_decision_date,
)
from audience_assets.terminal import Column, render_table, say, terminal_width
from audience_assets.warehouse import WarehouseError, connect, require_database, table_exists, warehouse_lock

EXIT_FAILED = 1
EXIT_CHECK = 3

PENDING_TABLE = (
    Column("id", "id"),
    Column("audience", "audience", flex=3, min_width=30, cut_middle=True),
    Column("action", "action"),
    Column("budget", "daily budget", right=True, drop=2),
    Column("conf", "conf", drop=3),
    Column("status", "status"),
    Column("why", "why", flex=2, min_width=20),
)
LOG_TABLE = (
    Column("action_id", "action id"),
    Column("audience", "audience", flex=2, min_width=24, cut_middle=True),
    Column("action", "action"),
    Column("change", "change", drop=2),
    Column("mode", "mode", drop=3),
    Column("outcome", "outcome"),
    Column("reason", "reason", flex=3, min_width=30),
)


def _money(minor: int | None, currency: str) -> str:
    if minor is None:
        return "-"
    value = from_minor(minor, currency) or 0.0
    places = 0 if value == int(value) else 2
    return f"{currency_symbol(currency)}{value:,.{places}f}"


def _budget(row: dict[str, Any]) -> str:
    cur = row["currency"] or ""
    if row["action"] == "SCALE" or str(row["action"]).startswith("REVERT_SCALE"):
        return f"{_money(row['budget_from_minor'], cur)} -> {_money(row['budget_to_minor'], cur)}"
    if row["action"] in ("PAUSE", "REVERT_PAUSE"):
        return f"{_money(row['budget_from_minor'], cur)} (status)"
    return "-"


def _day(conn, args) -> date:
    day = args.date or newest_decision_date(conn)
    if day is None:
        raise ApprovalError(f"no approvals in {args.db}: run `audience-engine demo` or `recommend` first")
    return day


def cmd_pending(args) -> int:
    require_database(args.db)
    with warehouse_lock(args.db, "audience-engine pending", args.lock_timeout), connect(args.db) as conn:
        day = _day(conn, args)
        rows = current(conn, day).filter(~pl.col("applied"))
    table = [
        {
            "id": r["adset_id"],
            "audience": r["adset_name"],
            "action": r["action"] + (f" +{r['scale_percentage']}%" if r["scale_percentage"] else ""),
            "budget": _budget(r),
            "conf": r["confidence"],
            "status": r["status"],
            "why": r["reason"],
        }
        for r in rows.iter_rows(named=True)
    ]
    if table:
        say(render_table(table, PENDING_TABLE, terminal_width()))
    waiting = sum(1 for r in table if r["status"] == "pending")
    approved = len(table) - waiting
    say(
        f"\nDecision date {day}: {waiting} pending, {approved} approved and not yet executed. "
        "Approve with `audience-engine approve ID... --by NAME`; `audience-engine execute` is a dry run."
    )
    return 0


def cmd_decide(args) -> int:
    require_database(args.db)
    verdict = "approved" if args.command == "approve" else "rejected"
    ids = list(dict.fromkeys(args.audience_ids))
    with warehouse_lock(args.db, f"audience-engine {args.command}", args.lock_timeout), connect(args.db) as conn:
        day = _day(conn, args)
        if getattr(args, "all_high", False):
            ids += [i for i in high_confidence_pending(conn, day) if i not in ids]
        if not ids:
            hint = " (--all-high found no pending HIGH-confidence item)" if getattr(args, "all_high", False) else ""
            raise ApprovalError(f"name the audience ids to {args.command}{hint}; see `audience-engine pending`")
        rows = decide(
            conn,
            day,
            ids,
            verdict,
            by=args.by,
            note=args.note,
            now=datetime.now(UTC),
            settings=execution_settings(args),
        )
    for r in rows.iter_rows(named=True):
        until = f" until {r['expires_at']:%Y-%m-%d %H:%M} UTC" if r["expires_at"] else ""
        say(f"{verdict} {r['adset_id']} {r['action']} {_budget(r)} by {r['decided_by']}{until}")
    say(f"{rows.height} item(s) of {day} {verdict}.")
    return 0


def _job_failure(result) -> tuple[str, int]:
    for check in result.get_asset_check_evaluations():
        if not check.passed and check.severity.value == "ERROR":
            return (
                "the action log failed its blocking check (approved_and_within_guardrails): see the Dagster UI",
                EXIT_CHECK,
            )
    for event in result.all_events:
        if event.event_type_value in ("STEP_FAILURE", "RUN_FAILURE"):
            err = getattr(event.event_specific_data, "error", None)
            data = getattr(event.event_specific_data, "user_failure_data", None)
            if data is not None and data.description:
                return data.description, 2
            if err is not None:
                return f"{err.cls_name}: {err.message.strip()}", EXIT_FAILED
    return "the execution run failed", EXIT_FAILED


def run_execute_job(db: str, day: date | None, apply: bool, settings: ExecutionSettings):
    """The execute_approved job of the real Definitions, in the shared Dagster instance."""
    warnings.filterwarnings("ignore")
    import dagster as dg

    from audience_assets.definitions import defs
    from audience_assets.defs.execution.assets import EXECUTE_JOB
    from audience_assets.instance import ensure_home

    run_config = {
        "resources": {
            "duckdb": {"config": {"database": db}},
            "execution": {"config": settings.model_dump(exclude={"budget_changes_per_hour"})},
        },
        "ops": {"action_log": {"config": {"date": day.isoformat() if day else None, "apply": apply}}},
        "loggers": {"console": {"config": {"log_level": "CRITICAL"}}},
    }
    ensure_home()
    with dg.DagsterInstance.get() as instance:
        return defs.resolve_job_def(EXECUTE_JOB).execute_in_process(
            run_config=run_config, instance=instance, raise_on_error=False,
            tags={"audience_engine/launched_by": "cli"},
        )  # fmt: skip


def _log_rows(db: str, where: str, params: list[Any]) -> list[dict[str, Any]]:
    with connect(db) as conn:
        if not table_exists(conn, "action_log"):
            return []
        return conn.execute(f"SELECT * FROM action_log WHERE {where} ORDER BY started_at", params).pl().to_dicts()


def print_log(rows: list[dict[str, Any]]) -> None:
    table = [
        {
            "action_id": r["action_id"],
            "audience": r["adset_name"] or r["adset_id"],
            "action": r["action"],
            "change": _budget(r),
            "mode": r["mode"],
            "outcome": r["outcome"],
            "reason": r["reason"] or "",
        }
        for r in rows
    ]
    if table:
        say(render_table(table, LOG_TABLE, terminal_width()))


def _print_requests(rows: list[dict[str, Any]], apply: bool) -> None:
    """Exactly what was (or would be) sent for each item that got that far: method, path, parameters."""
    sent = [r for r in rows if r["request"] and r["outcome"] in ("planned", "validated", "applied", "failed")]
    if sent:
        offline = all(r["outcome"] == "planned" for r in sent)
        header = (
            "Would send (Meta not contacted: no META_ACCESS_TOKEN)"
            if offline
            else "Would send (checked by Meta with validate_only)"
        )
        say("\nSent to Meta:" if apply else f"\n{header}:")
    for r in sent:
        request = json.loads(r["request"])
        params = " ".join(f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in request["params"].items())
        say(f"  {r['action_id']}  POST /{request['path']} {params}")


def cmd_execute(args) -> int:
    require_database(args.db)
    if not args.apply:
        say(
            "DRY RUN: nothing is written to Meta; Meta validates each write (validate_only). Add --apply to write.",
            err=True,
        )
    with warehouse_lock(
        args.db, "audience-engine execute", args.lock_timeout, on_wait=lambda m: say(m + " ...", err=True)
    ):
        result = run_execute_job(args.db, args.date, args.apply, execution_settings(args))
        rows = _log_rows(args.db, "run_id = ?", [result.run_id])
    print_log(rows)
    _print_requests(rows, args.apply)
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["outcome"]] = counts.get(r["outcome"], 0) + 1
    say(f"\n{len(rows)} approved item(s): " + (", ".join(f"{v} {k}" for k, v in sorted(counts.items())) or "none"))
    if not result.success:
        message, code = _job_failure(result)
        say(f"error: {message}", err=True)
        return code
    for check in result.get_asset_check_evaluations():
        if not check.passed and check.severity.value == "ERROR":
            say("error: the action log failed its blocking check approved_and_within_guardrails", err=True)
            return EXIT_CHECK
    return EXIT_FAILED if counts.get("failed") else 0


def cmd_actions(args) -> int:
    require_database(args.db)
    where, params = ("decision_date = ?", [args.date]) if args.date else ("true", [])
    with warehouse_lock(args.db, "audience-engine actions", args.lock_timeout):
        rows = _log_rows(args.db, where, params)
    if args.json:
        print(json.dumps(rows, default=str, indent=1))
        return 0
    print_log(rows)
    say(f"\n{len(rows)} action(s) logged{' for ' + str(args.date) if args.date else ''}.")
    return 0


def cmd_revert(args) -> int:
    require_database(args.db)
    from audience_assets.execution.runner import revert
    from audience_assets.integrations.meta import MetaSettings
    from audience_assets.integrations.meta_writer import MetaWriter

    token = os.environ.get("META_ACCESS_TOKEN")
    if not token:
        raise ExecutionError("revert reads the live ad set and needs META_ACCESS_TOKEN (ads_management)")
    settings = MetaSettings(
        access_token=token,
        graph_url=os.environ.get("META_GRAPH_URL") or None,
        app_secret=os.environ.get("META_APP_SECRET") or None,
    )
    run_id = f"revert-{uuid.uuid4().hex[:12]}"
    with warehouse_lock(args.db, "audience-engine revert", args.lock_timeout), connect(args.db) as conn:
        row = revert(
            conn, MetaWriter(settings), args.action_id, apply=args.apply, settings=ExecutionSettings(), run_id=run_id
        )
    print_log([row])
    return EXIT_FAILED if row["outcome"] == "failed" else (2 if row["outcome"] == "skipped" else 0)


def _common(p: argparse.ArgumentParser, with_date: bool = True) -> None:
    if with_date:
        add_date(p)
    add_warehouse(p)


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register the approval and execution subcommands."""
    p = sub.add_parser(
        "pending",
        help="what waits for approval",
        description="List the actionable items of a decision date that wait for a person: pending, or approved and not yet executed.",
    )
    _common(p)
    p.set_defaults(func=cmd_pending)
    for name, verb in (("approve", "Approve"), ("reject", "Reject")):
        p = sub.add_parser(
            name,
            help=f"{name} pending items",
            description=f"{verb} pending items by audience (ad set) id; records who, when and why.",
        )
        p.add_argument("audience_ids", nargs="*", metavar="AUDIENCE_ID")
        p.add_argument(
            "--by",
            default=os.environ.get("AUDIENCE_ENGINE_USER") or getpass.getuser(),
            help="who decides (default: $AUDIENCE_ENGINE_USER or your login)",
        )
        p.add_argument("--note", help="why, recorded with the decision")
        if name == "approve":
            p.add_argument(
                "--all-high",
                action="store_true",
                help="also approve every pending HIGH-confidence item (never a default)",
            )
            add_max_age(p)
        else:
            p.set_defaults(max_decision_age_days=None)
        _common(p)
        p.set_defaults(func=cmd_decide)
    p = sub.add_parser(
        "execute",
        help="write approved changes to Meta (dry run by default)",
        description="Execute the approved items of a decision date through the execute_approved job. Without --apply it is a dry run: Meta validates each write (validate_only) and nothing changes.",
    )
    p.add_argument("--apply", action="store_true", help="make the real writes (a token with ads_management is needed)")
    add_max_age(p)
    _common(p)
    p.set_defaults(func=cmd_execute)
    p = sub.add_parser(
        "actions",
        help="the action log",
        description="Print the action log: every attempted write, its mode, outcome and reason.",
    )
    p.add_argument("--json", action="store_true", help="print the rows as JSON")
    _common(p)
    p.set_defaults(func=cmd_actions)
    p = sub.add_parser(
        "revert",
        help="undo an applied action",
        description="Restore the recorded previous absolute budget or status of an applied action (a RETEST's duplicate is deleted); refused if the live state has moved on. Dry run unless --apply.",
    )
    p.add_argument("action_id", metavar="ACTION_ID")
    p.add_argument("--apply", action="store_true", help="make the real write")
    _common(p, with_date=False)
    p.set_defaults(func=cmd_revert)


USER_ERRORS = (ApprovalError, ExecutionError, WarehouseError)
