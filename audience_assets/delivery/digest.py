"""The Slack digest of one account's decision date as Block Kit: counts per action, the SCALE and
PAUSE items with figures and one-line reasons, the risks, where the report is, and what waits for
approval (with Approve / Reject buttons when a bot token lets Slack call us back).

Within Slack's limits: at most 50 blocks and 3,000 characters of text per section; what does not fit
is summarised as "and N more". Names are user-written: control characters are shown escaped and
Slack's markup characters (&, <, >) are escaped, so a name can neither ping a channel nor add a link.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import date
from typing import Any

import polars as pl

from audience_assets.engine.fmt import currency_symbol
from audience_assets.engine.recommend import decisive_reason
from audience_assets.terminal import safe

MAX_BLOCKS = 50
MAX_TEXT = 2900  # under Slack's 3,000 per section, with room for "and N more"
MAX_ITEMS = 12  # per action: each item is a section (+ a buttons block when interactive)
ACTION_ORDER = ("SCALE", "PAUSE", "RETEST")


def button_value(**fields: str) -> str:
    """What a button carries back to us: the plan it approves (Slack allows 2,000 characters)."""
    return json.dumps(fields, separators=(",", ":"), sort_keys=True)


def mrkdwn(text: object, limit: int = 300) -> str:
    """User text made safe for Slack: controls escaped, markup characters escaped, length capped."""
    s = safe(text, inline=True).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return s if len(s) <= limit else s[: limit - 1] + "…"


def _money(value: float | None, currency: str) -> str:
    if value is None:
        return "-"
    places = 0 if currency.upper() in ("JPY", "KRW") or value >= 1000 else 2
    return f"{currency_symbol(currency)}{value:,.{places}f}"


def _item(r: dict[str, Any], currency: str) -> str:
    name = mrkdwn(r["audience_name"], 120)
    step = f" +{r['scale_percentage']}%" if r["action"] == "SCALE" else ""
    budget = ""
    if r["action"] == "SCALE":
        budget = f" · {_money(r['current_daily_budget'], currency)} → {_money(r['new_daily_budget'], currency)}/day"
    roas = r["metric_roas"]
    ratio = r["metric_normalized_roas"]
    figures = f"ROAS {roas:.2f} ({ratio:.2f}x account)" if roas is not None and ratio is not None else "ROAS -"
    spend = _money(r["metric_spend"], currency)
    reason = mrkdwn(decisive_reason(list(r["reasons"] or [])), 200)
    return (
        f"*{r['action']}{step}* {name} (`{r['audience_id']}`)\n"
        f"{figures} · spend {spend} over {r['metric_window_days']} days · {r['confidence']}{budget}\n_{reason}_"
    )


def _buttons(approval_id: str, value: str) -> dict[str, Any]:
    return {
        "type": "actions",
        "block_id": f"approval:{approval_id}",
        "elements": [
            {"type": "button", "action_id": "approve", "style": "primary", "value": value,
             "text": {"type": "plain_text", "text": "Approve"}},
            {"type": "button", "action_id": "reject", "style": "danger", "value": value,
             "text": {"type": "plain_text", "text": "Reject"}},
        ],
    }  # fmt: skip


def _risks(rows: pl.DataFrame) -> str | None:
    acting = rows.filter(pl.col("action").is_in(list(ACTION_ORDER)))
    counts = Counter(r for risks in acting["risks"].to_list() for r in (risks or []))
    if not counts:
        return None
    lines = [f"• {mrkdwn(text, 200)} ({n})" for text, n in counts.most_common(5)]
    return "*Risks on the actionable items*\n" + "\n".join(lines)


def digest_blocks(
    rows: pl.DataFrame,
    day: date,
    *,
    approvals: dict[str, dict[str, Any]] | None = None,
    report_path: str | None = None,
    interactive: bool = False,
) -> tuple[str, list[dict[str, Any]]]:
    """(fallback text, blocks) for one account's recommendations of a decision date."""
    approvals = approvals or {}
    account = str(rows["account_id"][0])
    currency = str(rows["currency"][0] or "")
    counts = {a: int((rows["action"] == a).sum()) for a in ("SCALE", "PAUSE", "RETEST", "HOLD")}
    scales = rows.filter(pl.col("action") == "SCALE")
    moved = float((scales["new_daily_budget"] - scales["current_daily_budget"]).sum() or 0.0)
    summary = " · ".join(f"{a} {n}" for a, n in counts.items())
    text = f"Audience recommendations for {account} on {day}: {summary}"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": f"Audience recommendations · {day}"[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": (
            f"*{mrkdwn(account, 60)}* · {summary}\nBudget added by the SCALEs: {_money(moved, currency)} a day")}},
    ]  # fmt: skip
    for action in ACTION_ORDER:
        items = rows.filter(pl.col("action") == action).sort("rank")
        if items.is_empty():
            continue
        blocks.append({"type": "divider"})
        shown = items.head(MAX_ITEMS)
        for r in shown.iter_rows(named=True):
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _item(r, currency)[:MAX_TEXT]}})
            approval = approvals.get(r["audience_id"])
            if interactive and approval is not None and approval["status"] == "pending":
                blocks.append(_buttons(approval["approval_id"], approval["button_value"]))
        if items.height > shown.height:
            more = f"…and {items.height - shown.height} more {action} items: see the report."
            blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": more}]})
    return text, _footer(blocks, rows, approvals, report_path, day)


def _footer(blocks: list[dict[str, Any]], rows: pl.DataFrame, approvals: dict[str, dict[str, Any]],
            report_path: str | None, day: date) -> list[dict[str, Any]]:  # fmt: skip
    risks = _risks(rows)
    tail: list[dict[str, Any]] = [{"type": "divider"}]
    if risks:
        tail.append({"type": "section", "text": {"type": "mrkdwn", "text": risks[:MAX_TEXT]}})
    waiting = [a for a in approvals.values() if a["status"] == "pending"]
    notes = []
    if waiting:
        notes.append(f"{len(waiting)} items wait for approval: `audience-engine pending --date {day}`, then "
                     f"`audience-engine approve ID... --by NAME`; nothing changes in Meta until `execute --apply`.")  # fmt: skip
    if report_path:
        notes.append(f"Report: {mrkdwn(report_path, 500)}")
    if notes:
        tail.append({"type": "context", "elements": [{"type": "mrkdwn", "text": n} for n in notes]})
    room = MAX_BLOCKS - len(tail)
    if len(blocks) > room:  # drop whole items from the end, keep the header and the counts
        dropped = len(blocks) - room + 1
        blocks = blocks[: room - 1] + [{"type": "context", "elements": [
            {"type": "mrkdwn", "text": f"…and more ({dropped} blocks over Slack's limit): see the report."}]}]  # fmt: skip
    return blocks + tail
