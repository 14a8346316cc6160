"""The delivery commands of `audience-engine`: report (the HTML report), notify (the Slack digest),
slack-app (approvals from Slack) and mcp (a Model Context Protocol server on stdio)."""

from __future__ import annotations

import argparse
from pathlib import Path

from audience_assets.cli_common import add_date, add_max_age, add_warehouse, execution_settings
from audience_assets.delivery import ReportError, newest_decision_date
from audience_assets.terminal import say
from audience_assets.warehouse import connect, require_database, table_exists, warehouse_lock, write_atomically


def cmd_report(args) -> int:
    from audience_assets.delivery.publish import report_html

    out = Path(args.out)
    if out.is_dir():
        raise ReportError(f"--out {out} is a directory: expected a file path such as {out / 'report.html'}")
    require_database(args.db)
    with warehouse_lock(args.db, "audience-engine report", args.lock_timeout), connect(args.db) as conn:
        if not table_exists(conn, "recommendations"):
            raise ReportError(f"no recommendations in {args.db}: run `audience-engine demo` or `recommend` first")
        day = args.date or newest_decision_date(conn)
        html = report_html(conn, day)
    write_atomically(out, html)
    say(f"Report of {day} written to {out} ({len(html.encode()) / 1024:,.0f} KB); open it in a browser.")
    return 0


def cmd_notify(args) -> int:
    import uuid

    from audience_assets.delivery.notify import NOT_CONFIGURED, notify
    from audience_assets.integrations.slack import SlackPoster, settings_from_env

    settings = settings_from_env()
    if not settings.configured:
        say(NOT_CONFIGURED)
        return 0
    require_database(args.db)
    with warehouse_lock(args.db, "audience-engine notify", args.lock_timeout), connect(args.db) as conn:
        day = args.date or newest_decision_date(conn)
        report = args.report or str(Path(args.db).parent / "reports" / f"report_{day}.html")
        rows = notify(conn, day, SlackPoster(settings), report_path=report, run_id=f"notify-{uuid.uuid4().hex[:12]}")
    for r in rows.iter_rows(named=True):
        say(f"{r['account_id']} {day}: {r['status']}" + (f" ({r['error']})" if r["error"] else ""))
    return 1 if (rows["status"] == "failed").any() else 0


def cmd_slack_app(args) -> int:
    import os

    from audience_assets.delivery.slack_app import click_handler
    from audience_assets.integrations.slack import build_app, serve_app, settings_from_env

    settings = settings_from_env()
    secret = os.environ.get("SLACK_SIGNING_SECRET")
    approvers = {u.strip() for u in (os.environ.get("SLACK_APPROVERS") or "").split(",") if u.strip()}
    missing = [n for n, v in (("SLACK_SIGNING_SECRET", secret), ("SLACK_BOT_TOKEN", settings.bot_token)) if not v]
    if missing:
        raise ReportError(f"slack-app needs {' and '.join(missing)} (see the README's Slack setup)")
    if not approvers:
        raise ReportError("slack-app needs SLACK_APPROVERS (Slack user ids allowed to approve, comma separated)")
    require_database(args.db)
    limits = execution_settings(args)
    app = build_app(settings, str(secret), click_handler(args.db, approvers, limits))
    say(
        f"Serving Slack's interactivity requests on http://{args.host}:{args.port}/slack/events ({len(approvers)} approvers)"
    )
    serve_app(app, args.host, args.port)
    return 0


def cmd_mcp(args) -> int:
    from audience_assets.delivery.mcp import serve

    serve(args.db)
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="the HTML report of a decision date",
        description="Write the self-contained HTML report of a decision date (summary, charts, one row per "
        "audience with its sparkline, reasons and explanation; filters; works offline).",
    )
    add_date(p)
    p.add_argument("--out", required=True, help="the HTML file to write")
    add_warehouse(p)
    p.set_defaults(func=cmd_report)
    p = sub.add_parser(
        "notify",
        help="post the Slack digest of a decision date",
        description="Post one Slack digest per account (counts, the SCALE and PAUSE items, risks, the report, what "
        "waits for approval). Configured by SLACK_WEBHOOK_URL, or SLACK_BOT_TOKEN + SLACK_CHANNEL (which adds "
        "Approve / Reject buttons). Not configured: nothing is posted and the command says so.",
    )
    add_date(p)
    p.add_argument("--report", help="the report path or link the digest names (default: reports/ beside --db)")
    add_warehouse(p)
    p.set_defaults(func=cmd_notify)
    p = sub.add_parser(
        "slack-app",
        help="serve Slack's Approve / Reject buttons (interactivity request URL)",
        description="Serve POST /slack/events for Slack's interactivity (slack_bolt, HTTP mode): requests are "
        "verified with SLACK_SIGNING_SECRET (signature and timestamp), clicks are accepted only from "
        "SLACK_APPROVERS, and decisions go to the approvals table (never to Meta).",
    )
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1; behind your proxy)")
    p.add_argument("--port", type=int, default=3000, help="port (default 3000)")
    add_max_age(p)
    add_warehouse(p)
    p.set_defaults(func=cmd_slack_app)
    p = sub.add_parser(
        "mcp",
        help="a Model Context Protocol server on stdio (Claude Desktop, any MCP client)",
        description="Serve the warehouse's recommendations, explanations, account summary and approvals to an MCP "
        "client over stdio. Reads the warehouse; approve/reject record a decision in the approvals table "
        "(never a write to Meta).",
    )
    add_warehouse(p)
    p.set_defaults(func=cmd_mcp)


USER_ERRORS = (ReportError,)
