"""What a person sees besides the terminal: the HTML report, the Slack digest, the MCP tools."""

from __future__ import annotations

from datetime import date
from typing import Any


class ReportError(ValueError):
    """No report can be made (nothing decided on that date, no warehouse); the message says what to do."""


def newest_decision_date(conn: Any) -> date | None:
    """The newest decision date with recommendations (`conn`: a DuckDB connection)."""
    row = conn.execute("SELECT max(decision_date) FROM recommendations").fetchone()
    return row[0] if row else None
