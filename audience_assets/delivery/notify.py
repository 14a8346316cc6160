"""The Slack digest on the warehouse: one message per account of a decision date, each attempt logged
in `notifications` (posted, failed with the error, or not configured). A failed post is retried by
the SDK and logged; it never raises, so it can never fail a run or lose the recommendations."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

import duckdb
import polars as pl

from audience_assets.delivery.digest import button_value, digest_blocks
from audience_assets.execution.approvals import current
from audience_assets.warehouse import ensure_table_ddl, replace_partition, table_exists

if TYPE_CHECKING:  # the SDK loads only when Slack is configured
    from audience_assets.integrations.slack import SlackPoster

NOTIFICATIONS_DDL = """CREATE TABLE IF NOT EXISTS notifications (decision_date DATE, account_id VARCHAR,
    mode VARCHAR, channel VARCHAR, ts VARCHAR, status VARCHAR, error VARCHAR, items INTEGER,
    posted_at TIMESTAMP, run_id VARCHAR)"""
NOT_CONFIGURED = "Slack is not configured (set SLACK_WEBHOOK_URL, or SLACK_BOT_TOKEN and SLACK_CHANNEL): nothing posted"


def _approvals(conn: duckdb.DuckDBPyConnection, day: date) -> dict[str, dict[str, Any]]:
    if not table_exists(conn, "approvals"):
        return {}
    out = {}
    for r in current(conn, day).iter_rows(named=True):
        value = button_value(approval_id=r["approval_id"], decision_date=day.isoformat(), adset_id=r["adset_id"])
        out[r["adset_id"]] = {"approval_id": r["approval_id"], "status": r["status"], "button_value": value}
    return out


def notify(
    conn: duckdb.DuckDBPyConnection,
    day: date,
    poster: SlackPoster | None,
    *,
    report_path: str | None,
    run_id: str,
    account: str | None = None,
) -> pl.DataFrame:
    """Post the digest of every account of the decision date (or of one); return the logged rows."""
    ensure_table_ddl(conn, NOTIFICATIONS_DDL)
    configured = poster is not None and poster.mode is not None
    columns = "*" if configured else "account_id, action"  # not configured: only what the log row needs
    recs = conn.execute(
        f"SELECT {columns} FROM recommendations WHERE decision_date = $day "
        "AND ($account::VARCHAR IS NULL OR account_id = $account) ORDER BY account_id, rank",
        {"day": day, "account": account},
    ).pl()
    approvals = _approvals(conn, day) if configured else {}
    rows = []
    for (account,), group in recs.group_by("account_id", maintain_order=True):
        items = int(group["action"].is_in(["SCALE", "PAUSE", "RETEST"]).sum())
        row = {"decision_date": day, "account_id": account, "items": items, "run_id": run_id,
               "posted_at": datetime.now(UTC).replace(tzinfo=None)}  # fmt: skip
        if not configured or poster is None:
            rows.append(row | {"mode": None, "status": "not_configured", "error": NOT_CONFIGURED})
            continue
        text, blocks = digest_blocks(
            group, day, approvals=approvals, report_path=report_path, interactive=poster.mode == "bot"
        )
        result = poster.post(text, blocks)
        rows.append(row | {"mode": poster.mode, "channel": result.channel, "ts": result.ts,
                           "status": "posted" if result.ok else "failed", "error": result.error})  # fmt: skip
    frame = pl.DataFrame(rows, schema_overrides={"channel": pl.Utf8, "ts": pl.Utf8, "mode": pl.Utf8, "error": pl.Utf8})
    if frame.height:  # one transaction: this run's rows of the day, replaced whole
        replace_partition(conn, "notifications", frame, {"decision_date": day, "run_id": run_id})
    return frame
