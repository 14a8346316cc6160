"""Reading nodes and edges: field selection (with ``campaign{...}`` expansion), object edges, activities,
minimum budgets.

Graph answers only the fields asked for (plus ``id``), omits empty ones, and refuses a field its node type
does not have. An expanded reference (``campaign{daily_budget,status}`` on an ad set) is nested as the
referenced object, with its own ``id``: ``{"campaign": {"daily_budget": "...", "status": "ACTIVE", "id": "..."}}``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from .accounts import AccountData, parse_graph_time, tz
from .wire import PageFn, base_field, expansion, json_param, parse_time, sdk_fields, split_fields, unknown_field

# Derived fields: Graph computes these, the stored dicts need not carry them.
_STATUS_FIELDS = ("configured_status", "updated_time")


def node_view(kind: str, obj: Mapping[str, Any]) -> Mapping[str, Any]:
    """An ad set or campaign as Graph shows it: ``configured_status`` is the status set on the object itself,
    and ``updated_time`` is ``created_time`` until the object is first edited."""
    if kind not in ("adset", "campaign") or all(k in obj for k in _STATUS_FIELDS):
        return obj
    view = dict(obj)
    if "status" in obj:
        view.setdefault("configured_status", obj["status"])
    if obj.get("created_time"):
        view.setdefault("updated_time", obj["created_time"])
    return view


def _reference(acct: AccountData, kind: str, obj: Mapping[str, Any], name: str) -> tuple[str, Mapping[str, Any]] | None:
    """The node an object field points at: an ad set's ``campaign``."""
    if kind == "adset" and name == "campaign":
        camp = acct.campaign(obj.get("campaign_id", ""))
        return ("campaign", camp) if camp is not None else None
    return None


def select(
    kind: str,
    obj: Mapping[str, Any],
    requested: list[str],
    acct: AccountData | None = None,
) -> dict[str, Any]:
    """The requested fields of ``obj`` (plus ``id``), each a deep copy; nonexisting fields are refused."""
    valid = sdk_fields(kind)
    view = node_view(kind, obj)
    out: dict[str, Any] = {}
    for f in requested:
        base = base_field(f)
        if valid is not None and base not in valid:
            raise unknown_field(kind, base)
        ref = _reference(acct, kind, view, base) if acct is not None else None
        if ref is not None:
            ref_kind, ref_obj = ref
            sub = expansion(f)
            out[base] = select(ref_kind, ref_obj, sub or [], acct) if sub else {"id": ref_obj["id"]}
        elif base in view and view[base] is not None:
            out[base] = json.loads(json.dumps(view[base]))
    if "id" in obj:
        out["id"] = obj["id"]
    return out


def select_params(
    kind: str, obj: Mapping[str, Any], params: Mapping[str, str], default: list[str], acct: AccountData | None = None
) -> dict[str, Any]:
    return select(kind, obj, split_fields(params.get("fields")) or default, acct)


def read_node(kind: str, node_id: str, acct: AccountData, params: Mapping[str, str], now: datetime) -> dict[str, Any]:
    """``GET /<node_id>``."""
    if kind == "account":
        obj: Mapping[str, Any] = {
            "id": acct.account_id,
            "account_id": acct.numeric_id,
            "name": acct.name,
            "currency": acct.currency,
            "timezone_name": acct.timezone_name,
            "timezone_offset_hours_utc": tz(acct.timezone_name).utcoffset(now).total_seconds() / 3600,
            "account_status": acct.account_status,
        }
    elif kind == "campaign":
        obj = acct.campaign(node_id) or {}
    elif kind == "adset":
        obj = acct.adset(node_id) or {}
    else:
        obj = next((c for c in acct.custom_audiences if c["id"] == node_id), {})
    return select_params(kind, obj, params, ["id"], acct)


def list_edge(
    edge: str,
    acct: AccountData,
    params: Mapping[str, str],
    path: str,
    page: PageFn,
    now: datetime,
    *,
    campaign_id: str | None = None,
    object_id: str | None = None,
    minimum_budgets: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """``GET /act_<id>/{adsets,campaigns,activities,customaudiences,minimum_budgets}`` and
    ``GET /<campaign_id>/adsets``, ``GET /<adset_id>/activities``."""
    wants_summary = params.get("summary", "").lower() in ("true", "1")
    if edge in ("adsets", "campaigns"):
        source = acct.adsets if edge == "adsets" else acct.campaigns
        kind = "adset" if edge == "adsets" else "campaign"
        statuses = json_param(params, "effective_status")
        items = []
        for obj in source:
            if campaign_id is not None and obj.get("campaign_id") != campaign_id:
                continue
            eff = obj.get("effective_status", "ACTIVE")
            if statuses is not None:
                if eff not in statuses:
                    continue
            elif eff in ("DELETED", "ARCHIVED"):  # Graph hides these unless asked for
                continue
            items.append(select_params(kind, obj, params, ["id"], acct))
        return page(items, params, path, summary=wants_summary)
    if edge == "customaudiences":
        items = [select_params("custom_audience", ca, params, ["id"]) for ca in acct.custom_audiences]
        return page(items, params, path, summary=wants_summary)
    if edge == "minimum_budgets":
        entries = list((minimum_budgets or {}).values())
        bid = params.get("bid_amount")
        if bid:
            # With a manual bid, a budget must also cover five times the bid (Meta's help pages).
            floor = 5 * int(float(bid))
            entries = [{k: (max(v, floor) if k.startswith("min_") else v) for k, v in e.items()} for e in entries]
        fields = split_fields(params.get("fields")) or [
            "currency",
            "min_daily_budget_high_freq",
            "min_daily_budget_imp",
            "min_daily_budget_low_freq",
            "min_daily_budget_video_views",
        ]
        items = [select("minimum_budget", e, fields) for e in entries]
        return page(items, params, path)
    # activities: newest first; one week before `until` (or now) unless `since` is given
    until = parse_time(params["until"]) if params.get("until") else now
    since = parse_time(params["since"]) if params.get("since") else until - timedelta(days=7)
    oid = object_id or params.get("oid")
    acts = []
    for a in acct.activities:
        t = parse_graph_time(a["event_time"])
        if since <= t <= until and (oid is None or a.get("object_id") == oid):
            acts.append((t, a))
    acts.sort(key=lambda ta: ta[0], reverse=True)
    items = [select_params("activity", a, params, ["event_time", "event_type"]) for _, a in acts]
    for item in items:
        item.pop("id", None)
    return page(items, params, path)
