"""The delivery commands of `audience-engine`: report (the HTML report), notify (the Slack digest),
slack-app (approvals from Slack) and mcp (a Model Context Protocol server on stdio)."""

from __future__ import annotations

import argparse

from audience_assets.warehouse import database_path


def cmd_mcp(args) -> int:
    from audience_assets.delivery.mcp import serve

    serve(args.db)
    return 0


def _db(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--db",
        default=database_path(),
        help="DuckDB warehouse file (default: $AUDIENCE_ENGINE_DB or data/warehouse.duckdb)",
    )


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "mcp",
        help="a Model Context Protocol server on stdio (Claude Desktop, any MCP client)",
        description="Serve the warehouse's recommendations, explanations, account summary and approvals to an MCP "
        "client over stdio. Reads the warehouse; approve/reject record a decision in the approvals table "
        "(never a write to Meta).",
    )
    _db(p)
    p.set_defaults(func=cmd_mcp)
