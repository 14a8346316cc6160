"""Insights: query parsing, rows rendered the way Graph sends them, and async report runs.

Facts are ``InsightDay`` rows; a row is rendered with every number a string, overlapping purchase action
types with identical values, ``value`` = 7d_click + 1d_view (the default attribution setting), and per-window
keys beside ``value`` for the windows requested (zero-valued windows and action types are omitted;
7d_view/28d_view are no longer returned, as since January 2026).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from .accounts import (
    DEFAULT_VALUE_WINDOWS,
    EVENT_ACTION_TYPES,
    VALUED_EVENTS,
    WINDOWS,
    AccountData,
    InsightDay,
    money,
    ratio,
    tz,
)
from .replies import GraphFault, graph_error
from .wire import PageFn, json_param, sdk_fields, sdk_windows, split_fields

TOO_MUCH_DATA_SUBCODE = 1487534


@dataclass
class Query:
    node_kind: str
    node_id: str
    account: AccountData
    level: str
    since: date
    until: date
    time_increment: str
    fields: list[str]
    windows: list[str]
    filtering: list[dict[str, Any]]
    adset_ids: list[str]


@dataclass
class ReportRun:
    """An async insights job (``POST /<node>/insights``)."""

    id: str
    account_id: str
    node_id: str
    params: dict[str, str]
    query: Any
    final_status: str = "Job Completed"
    polls: int = 0
    status: str = "Job Not Started"
    percent: int = 0
    rows: list[dict[str, Any]] | None = None
    time_ref: int = 0
    time_completed: int | None = None
    statuses: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- answering


def sync_insights(
    q: Query, params: Mapping[str, str], path: str, page: PageFn, sync_row_limit: int | None
) -> dict[str, Any]:
    """``GET /<node>/insights``: one page of rows, or Graph's "too much data" refusal."""
    rows = compute_rows(q)
    if sync_row_limit is not None and len(rows) > sync_row_limit:
        raise GraphFault(
            graph_error(
                100,
                TOO_MUCH_DATA_SUBCODE,
                message="Please reduce the amount of data you're asking for, then retry your request",
                user_title="Too much data requested",
            )
        )
    return page(rows, params, path)


def new_report_run(
    run_id: str,
    q: Query,
    params: Mapping[str, str],
    now: datetime,
    fail_async_when: Callable[[dict[str, str]], bool | str] | None,
) -> ReportRun:
    """``POST /<node>/insights``: the job; ``fail_async_when`` decides how it will end."""
    flat = {k: v for k, v in params.items() if k not in ("access_token", "appsecret_proof")}
    final = "Job Completed"
    if fail_async_when is not None:
        verdict = fail_async_when({**flat, "node_id": q.node_id})
        if verdict is True:
            final = "Job Failed"
        elif isinstance(verdict, str) and verdict:
            final = verdict
    return ReportRun(
        id=run_id,
        account_id=q.account.account_id,
        node_id=q.node_id,
        params=flat,
        query=q,
        final_status=final,
        time_ref=int(now.timestamp()),
    )


def report_run_answer(
    rr: ReportRun,
    method: str,
    edge: str | None,
    params: Mapping[str, str],
    path: str,
    *,
    rounds: int,
    now: datetime,
    page: PageFn,
) -> tuple[int, Any]:
    """``GET /<report_run_id>`` (a poll: "Job Running" ``rounds`` times, then the final status) and its results."""
    if method == "GET" and edge is None:
        rr.polls += 1
        rounds = max(0, rounds)
        if rr.polls <= rounds:
            rr.status = "Job Running"
            rr.percent = int(100 * rr.polls / (rounds + 1))
        else:
            rr.status = rr.final_status
            if rr.status == "Job Completed":
                rr.percent = 100
                if rr.rows is None:
                    rr.rows = compute_rows(rr.query)
                    rr.time_completed = int(now.timestamp())
        rr.statuses.append(rr.status)
        body: dict[str, Any] = {
            "id": rr.id,
            "account_id": rr.account_id.removeprefix("act_"),
            "async_status": rr.status,
            "async_percent_completion": rr.percent,
            "date_start": rr.query.since.isoformat(),
            "date_stop": rr.query.until.isoformat(),
            "is_running": rr.status in ("Job Not Started", "Job Started", "Job Running"),
            "time_ref": rr.time_ref,
        }
        if rr.time_completed is not None:
            body["time_completed"] = rr.time_completed
        if rr.status == "Job Failed":
            body["error_code"] = 1
            body["error_message"] = "An unknown error occurred"
        return 200, body
    if method == "GET" and edge == "insights":
        if rr.rows is None:
            raise GraphFault(graph_error(2601))
        return 200, page(rr.rows, params, path)
    raise GraphFault(graph_error(100, message=f"(#100) Unsupported {method.lower()} request on report run (fake)"))


# --------------------------------------------------------------------------- queries and rows


def parse_query(node_kind: str, node_id: str, acct: AccountData, params: Mapping[str, str], now: datetime) -> Query:
    """Validate an insights request the way Graph does and resolve its date range and ad sets."""
    level = params.get("level") or node_kind
    if level not in ("account", "campaign", "adset"):
        raise GraphFault(graph_error(100, message=f"(#100) level={level!r} is not supported by the fake"))
    tr = json_param(params, "time_range")
    if tr is not None:
        try:
            since, until = date.fromisoformat(tr["since"]), date.fromisoformat(tr["until"])
        except (KeyError, TypeError, ValueError):
            raise GraphFault(
                graph_error(100, message=f"(#100) param time_range must be {{'since','until'}} dates: {tr!r}")
            ) from None
    else:
        since, until = preset_range(params.get("date_preset") or "last_30d", acct, now)
    if until < since:
        raise GraphFault(graph_error(100, message="(#100) time_range: since must not be after until"))
    inc = str(params.get("time_increment") or "all_days")
    if not (inc in ("all_days", "monthly") or (inc.isdigit() and 1 <= int(inc) <= 90)):
        raise GraphFault(
            graph_error(100, message=f"(#100) param time_increment must be 1-90, monthly or all_days: {inc!r}")
        )
    fields = split_fields(params.get("fields")) or ["spend", "impressions"]
    valid = sdk_fields("insights")
    for f in fields:
        if valid is not None and f not in valid:
            raise GraphFault(
                graph_error(
                    100,
                    message=(
                        f"(#100) {f} is not valid for fields param. please check "
                        "https://developers.facebook.com/docs/marketing-api/reference/ads-insights/ for all valid values"
                    ),
                )
            )
    windows = [str(w) for w in (json_param(params, "action_attribution_windows") or [])]
    valid_w = sdk_windows()
    for w in windows:
        if valid_w is not None and w not in valid_w:
            raise GraphFault(
                graph_error(100, message=f"(#100) action_attribution_windows[0] must be one of the enum values: {w}")
            )
    filtering = json_param(params, "filtering") or []
    if node_kind == "account":
        adsets = [a["id"] for a in acct.adsets]
    elif node_kind == "campaign":
        adsets = [a["id"] for a in acct.adsets if a["campaign_id"] == node_id]
    else:
        adsets = [node_id]
    adsets = [a for a in adsets if passes(acct, a, filtering)]
    return Query(node_kind, node_id, acct, level, since, until, inc, fields, windows, filtering, adsets)


def preset_range(preset: str, acct: AccountData, now: datetime) -> tuple[date, date]:
    today = now.astimezone(tz(acct.timezone_name)).date()
    if preset == "today":
        return today, today
    if preset == "yesterday":
        return today - timedelta(days=1), today - timedelta(days=1)
    m = re.fullmatch(r"last_(\d+)d", preset)
    if m:
        return today - timedelta(days=int(m.group(1))), today - timedelta(days=1)
    if preset == "maximum":
        first = min((r.day for r in acct.insights), default=today)
        return first, today
    if preset == "this_month":
        return today.replace(day=1), today
    raise GraphFault(graph_error(100, message=f"(#100) date_preset={preset!r} is not supported by the fake"))


def compute_rows(q: Query) -> list[dict[str, Any]]:
    """The insight rows of a query, rendered as Graph sends them (every number a string)."""
    acct = q.account
    wanted = set(q.adset_ids)
    facts = [r for r in acct.insights if r.adset_id in wanted and q.since <= r.day <= q.until and r.impressions > 0]
    groups: dict[tuple[Any, ...], list[InsightDay]] = {}
    for r in facts:
        b0, b1 = bucket(r.day, q.since, q.until, q.time_increment)
        key: tuple[Any, ...]
        if q.level == "adset":
            key = (b0, b1, r.adset_id)
        elif q.level == "campaign":
            key = (b0, b1, acct.adset(r.adset_id)["campaign_id"])
        else:
            key = (b0, b1, acct.account_id)
        groups.setdefault(key, []).append(r)
    rows = []
    for key in sorted(groups):
        rows.append(render(acct, q, groups[key], key[0], key[1], key[2]))
    return rows


def passes(acct: AccountData, adset_id: str, filtering: list[dict[str, Any]]) -> bool:
    adset = acct.adset(adset_id) or {}
    campaign = acct.campaign(adset.get("campaign_id", "")) or {}
    for flt in filtering:
        try:
            fld, op, value = flt["field"], str(flt["operator"]).upper(), flt.get("value")
        except (KeyError, TypeError):
            raise GraphFault(
                graph_error(100, message=f"(#100) filtering entries need field and operator: {flt!r}")
            ) from None
        subject = {
            "adset.id": adset.get("id"),
            "campaign.id": campaign.get("id"),
            "adset.name": adset.get("name"),
            "campaign.name": campaign.get("name"),
            "adset.effective_status": adset.get("effective_status"),
            "campaign.effective_status": campaign.get("effective_status"),
        }
        if fld not in subject:
            raise GraphFault(graph_error(100, message=f"(#100) filtering on {fld!r} is not supported by the fake"))
        actual = subject[fld]
        values = [str(v) for v in value] if isinstance(value, list) else [str(value)]
        ok = {
            "IN": actual in values,
            "NOT_IN": actual not in values,
            "EQUAL": actual == values[0],
            "NOT_EQUAL": actual != values[0],
            "CONTAIN": values[0] in str(actual),
            "NOT_CONTAIN": values[0] not in str(actual),
        }.get(op)
        if ok is None:
            raise GraphFault(graph_error(100, message=f"(#100) filtering operator {op!r} is not supported by the fake"))
        if not ok:
            return False
    return True


def bucket(d: date, since: date, until: date, inc: str) -> tuple[str, str]:
    if inc == "all_days":
        return since.isoformat(), until.isoformat()
    if inc == "monthly":
        first = d.replace(day=1)
        nxt = (first + timedelta(days=32)).replace(day=1)
        return max(first, since).isoformat(), min(nxt - timedelta(days=1), until).isoformat()
    n = int(inc)
    k = (d - since).days // n
    b0 = since + timedelta(days=k * n)
    return b0.isoformat(), min(b0 + timedelta(days=n - 1), until).isoformat()


def _action_entries(
    totals: Mapping[str, Any],
    windows: Mapping[str, Any],
    requested: list[str],
    action_types: Iterable[str],
    fmt: Callable[[Any], str],
) -> list[dict[str, Any]]:
    out = []
    for at in action_types:
        entry: dict[str, Any] = {"action_type": at, "value": fmt(totals)}
        for w in requested:
            if w in WINDOWS and windows.get(w):
                entry[w] = fmt(windows[w])
        out.append(entry)
    return out


def render(acct: AccountData, q: Query, rows: list[InsightDay], d0: str, d1: str, obj_id: str) -> dict[str, Any]:
    cur = acct.currency
    spend = sum((r.spend for r in rows), Decimal(0))
    impressions = sum(r.impressions for r in rows)
    reach = sum(r.reach for r in rows)  # a fake: real reach is deduplicated across days
    clicks = sum(r.clicks for r in rows)
    link = sum(r.inline_link_clicks for r in rows)
    events: dict[str, dict[str, int]] = {}
    values: dict[str, dict[str, Decimal]] = {}
    for r in rows:
        for ev, w in r.events.items():
            agg = events.setdefault(ev, {})
            for k, n in w.items():
                agg[k] = agg.get(k, 0) + int(n)
        for ev, w in r.event_values.items():
            aggv = values.setdefault(ev, {})
            for k, v in w.items():
                aggv[k] = aggv.get(k, Decimal(0)) + Decimal(v)

    def total(d: Mapping[str, Any]) -> Any:
        return sum(d.get(k, 0) for k in DEFAULT_VALUE_WINDOWS)

    def types_for(ev: str) -> tuple[str, ...]:
        return acct.purchase_action_types if ev == "purchase" else EVENT_ACTION_TYPES[ev]

    adset = acct.adset(obj_id) if q.level == "adset" else None
    campaign = (
        acct.campaign(adset["campaign_id"]) if adset else (acct.campaign(obj_id) if q.level == "campaign" else None)
    )
    row: dict[str, Any] = {}
    for f in q.fields:
        if f == "account_id":
            row[f] = acct.numeric_id
        elif f == "account_name":
            row[f] = acct.name
        elif f == "account_currency":
            row[f] = cur
        elif f in ("campaign_id", "campaign_name") and campaign is not None:
            row[f] = campaign["id"] if f == "campaign_id" else campaign["name"]
        elif f in ("adset_id", "adset_name") and adset is not None:
            row[f] = adset["id"] if f == "adset_id" else adset["name"]
        elif f == "objective" and campaign is not None:
            row[f] = campaign.get("objective", "OUTCOME_SALES")
        elif f == "optimization_goal" and adset is not None:
            row[f] = adset.get("optimization_goal", "OFFSITE_CONVERSIONS")
        elif f == "spend":
            row[f] = money(spend, cur)
        elif f in ("impressions", "reach", "clicks", "inline_link_clicks"):
            row[f] = str({"impressions": impressions, "reach": reach, "clicks": clicks, "inline_link_clicks": link}[f])
        elif f == "frequency" and reach:
            row[f] = ratio(impressions / reach)
        elif f == "ctr" and impressions:
            row[f] = ratio(clicks / impressions * 100)
        elif f == "inline_link_click_ctr" and impressions:
            row[f] = ratio(link / impressions * 100)
        elif f == "cpc" and clicks:
            row[f] = ratio(float(spend) / clicks)
        elif f == "cost_per_inline_link_click" and link:
            row[f] = ratio(float(spend) / link)
        elif f == "cpm" and impressions:
            row[f] = ratio(float(spend) / impressions * 1000)
        elif f == "cpp" and reach:
            row[f] = ratio(float(spend) / reach * 1000)
        elif f == "actions":
            entries = []
            for ev in EVENT_ACTION_TYPES:
                w = events.get(ev, {})
                if w and total(w) > 0:
                    entries += _action_entries(total(w), w, q.windows, types_for(ev), str)
            if entries:
                row[f] = entries
        elif f == "action_values":
            entries = []
            for ev in VALUED_EVENTS:
                w = values.get(ev, {})
                if w and total(w) > 0:
                    entries += _action_entries(total(w), w, q.windows, types_for(ev), lambda x: money(x, cur))
            if entries:
                row[f] = entries
        elif f == "cost_per_action_type":
            entries = []
            for ev in EVENT_ACTION_TYPES:
                w = events.get(ev, {})
                if w and total(w) > 0:
                    per = {k: float(spend) / n for k, n in w.items() if n}
                    for at in types_for(ev):
                        e: dict[str, Any] = {"action_type": at, "value": ratio(float(spend) / total(w))}
                        for win in q.windows:
                            if win in per:
                                e[win] = ratio(per[win])
                        entries.append(e)
            if entries:
                row[f] = entries
        elif f in ("purchase_roas", "website_purchase_roas"):
            w = values.get("purchase", {})
            if w and total(w) > 0 and spend > 0:
                at = "omni_purchase" if f == "purchase_roas" else "offsite_conversion.fb_pixel_purchase"
                e = {"action_type": at, "value": ratio(float(total(w)) / float(spend))}
                for win in q.windows:
                    if win in WINDOWS and w.get(win):
                        e[win] = ratio(float(w[win]) / float(spend))
                row[f] = [e]
        # other valid insights fields are not modelled: Graph omits empty fields, so does the fake
    row["date_start"] = d0
    row["date_stop"] = d1
    return row
