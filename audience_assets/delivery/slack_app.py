"""Approvals from Slack: what a click on a digest's Approve / Reject button does. Bolt verifies the
request (signature, timestamp); here only allow-listed Slack users may decide, the click must be for
the plan that is still current, and the decision lands in the same approvals table as the CLI's."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

from audience_assets.delivery.digest import mrkdwn
from audience_assets.engine.execution import ExecutionSettings
from audience_assets.execution import ApprovalError
from audience_assets.execution.approvals import current, decide
from audience_assets.integrations.slack import Click
from audience_assets.warehouse import connect, warehouse_lock

VERDICTS = {"approve": "approved", "reject": "rejected"}


def _updated(blocks: list[dict[str, Any]], approval_id: str, note: str) -> list[dict[str, Any]]:
    """The message with the clicked item's buttons replaced by who decided."""
    out = []
    for b in blocks:
        if b.get("block_id") == f"approval:{approval_id}":
            out.append({"type": "context", "block_id": b["block_id"], "elements": [{"type": "mrkdwn", "text": note}]})
        else:
            out.append(b)
    return out


def click_handler(db: str, approvers: set[str], settings: ExecutionSettings) -> Callable[[Click], tuple[str, Any]]:
    """`on_click` for integrations.slack.build_app: (reply to the user, the message's new blocks or None)."""

    def on_click(click: Click) -> tuple[str, list[dict[str, Any]] | None]:
        if click.user_id not in approvers:
            return f"<@{click.user_id}> is not on SLACK_APPROVERS: nothing was recorded.", None
        verdict = VERDICTS.get(click.action_id)
        try:
            value = json.loads(click.value)
            day = date.fromisoformat(value["decision_date"])
            adset_id, approval_id = str(value["adset_id"]), str(value["approval_id"])
        except (ValueError, KeyError, TypeError):
            return "This button's value is not one of ours: nothing was recorded.", None
        if verdict is None:
            return "Unknown action: nothing was recorded.", None
        who = f"slack:{click.user_name or click.user_id}"
        try:
            with warehouse_lock(db, "audience-engine slack-app", timeout_seconds=20), connect(db) as conn:
                live = current(conn, day)
                ids = dict(zip(live["adset_id"].to_list(), live["approval_id"].to_list(), strict=True))
                if ids.get(adset_id) != approval_id:
                    return "This item's plan was recomputed since the message was posted: nothing was recorded.", None
                decide(conn, day, [adset_id], verdict, by=who, note=f"Slack user {click.user_id}", now=datetime.now(UTC),
                       settings=settings, via="slack")  # fmt: skip
        except ApprovalError as err:
            return f"Not recorded: {err}", None
        stamp = datetime.now(UTC).strftime("%H:%M UTC")
        note = f"{'✅ Approved' if verdict == 'approved' else '✖ Rejected'} by {mrkdwn(click.user_name or click.user_id, 80)} at {stamp}"
        return f"{verdict.capitalize()} {adset_id} for {day}.", _updated(click.blocks, approval_id, note)

    return on_click
