"""The HTML report of a decision date from the warehouse: what the recommendations step writes after
every graph run and what `audience-engine report` prints to a file."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import duckdb

from audience_assets.delivery import ReportError
from audience_assets.delivery.report import render_report, report_data
from audience_assets.engine.recommend import json_records

REPORT_DAYS = 28
# Rows a page lists per account (actionable first, by rank): 20,000 audiences would make a 30 MB
# page that takes seconds to build and to open; the counts and totals still cover every audience.
REPORT_MAX_ROWS = 1000


def report_html(
    conn: duckdb.DuckDBPyConnection,
    day: date,
    recommendations_file: str | None = None,
    accounts: list[str] | None = None,
) -> str:
    """The self-contained report of one decision date (of some accounts, or every account): its stored
    recommendations and daily metrics."""
    who = {"day": day, "accounts": accounts}
    stored = conn.execute(
        "SELECT * FROM recommendations WHERE decision_date = $day AND ($accounts::VARCHAR[] IS NULL OR list_contains($accounts, account_id)) ORDER BY account_id, rank",
        who,
    ).pl()
    if stored.is_empty():
        whose = f" of {', '.join(accounts)}" if accounts else ""
        raise ReportError(f"no recommendations{whose} for {day} in the warehouse: run the graph for that date first")
    document = {
        "decision_date": day.isoformat(),
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "config_hash": stored["config_hash"][0],
        "recommendations": json_records(stored),
    }
    daily = conn.execute(
        "SELECT account_id, adset_id, date, spend, revenue FROM daily_metrics WHERE date BETWEEN $first AND $last "
        "AND ($accounts::VARCHAR[] IS NULL OR list_contains($accounts, account_id))",
        {"first": day - timedelta(days=REPORT_DAYS), "last": day - timedelta(days=1), "accounts": accounts},
    ).pl()
    looks = dict(
        conn.execute(
            "SELECT adset_id, lookalike_pct FROM audience_metadata WHERE decision_date = $day AND ($accounts::VARCHAR[] IS NULL OR list_contains($accounts, account_id))",
            who,
        ).fetchall()
    )
    data = report_data(
        document, daily, lookalike_pct=looks, days=REPORT_DAYS, recommendations_file=recommendations_file,
        max_rows=REPORT_MAX_ROWS,
    )  # fmt: skip
    return render_report(data)
