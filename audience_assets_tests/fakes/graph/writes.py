"""Writes: ad set and campaign updates (``POST /<id>/``), ad set copies (``POST /<id>/copies``), outside edits.

Every write is validated first (``plan_update``/``plan_copy``) and applied second (``apply_changes``), so
``execution_options=["validate_only"]`` runs exactly the validations of the real write and changes nothing.
An applied change updates the object, its ``updated_time`` and (for status) ``effective_status``, records an
``AdActivity``, and may reset the learning phase (``WriteRules.significant_budget_change_pct``).

Error shapes: CBO (budget on both campaign and ad set) is code 100 subcode 1885621 (DOMAIN.md, meta-ads-mcp
PR 71); a budget under the minimum is code 100 subcode 1885272 with ``error_user_title`` "Your Budget Is Too
Low" (seen in third-party fixtures, unverified); the fifth budget change of an ad set within an hour is code 17
"User request limit reached" (Meta's rate-limiting page) with subcode ``WriteRules.budget_limit_subcode``
(1885172 by default: NOT confirmed from any Meta source). Other messages are the fake's own.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from .accounts import (
    BILLING_EVENT_MINIMUM,
    DEFAULT_VALUE_WINDOWS,
    AccountData,
    activity,
    budget_extra_data,
    format_budget,
    graph_time,
    minimum_budget_entry,
    parse_graph_time,
    status_extra_data,
    tz,
)
from .replies import GraphFault, graph_error
from .wire import json_param

STATUSES = ("ACTIVE", "PAUSED", "DELETED", "ARCHIVED")
STATUS_OPTIONS = ("ACTIVE", "PAUSED", "INHERITED_FROM_SOURCE")
EXECUTION_OPTIONS = ("validate_only", "include_recommendations")
BID_STRATEGIES = ("LOWEST_COST_WITHOUT_CAP", "LOWEST_COST_WITH_BID_CAP", "COST_CAP", "LOWEST_COST_WITH_MIN_ROAS")
CAPPED_BID_STRATEGIES = ("LOWEST_COST_WITH_BID_CAP", "COST_CAP")
BUDGET_KEYS = ("daily_budget", "lifetime_budget")
CBO_CONFLICT_SUBCODE = 1885621
BUDGET_TOO_LOW_SUBCODE = 1885272
BUDGET_CHANGE_LIMIT_SUBCODE = 1885172  # unconfirmed: see the module docstring


@dataclass(frozen=True)
class Actor:
    """Who an activity says made a change (``actor_*``, ``application_*`` of ``AdActivity``)."""

    actor_id: str
    actor_name: str
    application_id: str = ""
    application_name: str = ""

    def record(self) -> dict[str, str]:
        return {
            "actor_id": self.actor_id,
            "actor_name": self.actor_name,
            "application_id": self.application_id,
            "application_name": self.application_name,
        }


@dataclass(frozen=True)
class WriteRules:
    """The knobs of Meta's write rules the fake models (see ``FakeGraph``)."""

    budget_changes_per_hour: int | None = 4
    significant_budget_change_pct: float = 20.0
    budget_limit_subcode: int | None = BUDGET_CHANGE_LIMIT_SUBCODE
    minimum_budgets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class Change:
    key: str
    old: Any
    new: Any


def _bad_param(key: str, message: str, **kw: Any) -> GraphFault:
    return GraphFault(graph_error(100, message=message, error_data={"blame_field_specs": [[key]]}, **kw))


def execution_options(params: Mapping[str, str]) -> list[str]:
    """``execution_options`` (a JSON list on the wire); unknown values are refused like Graph's enums."""
    opts = json_param(params, "execution_options") or []
    if isinstance(opts, str):
        opts = [opts]
    for opt in opts:
        if opt not in EXECUTION_OPTIONS:
            raise _bad_param(
                "execution_options",
                f"(#100) Param execution_options[0] must be one of {{{', '.join(EXECUTION_OPTIONS)}}}",
            )
    return [str(o) for o in opts]


# --------------------------------------------------------------------------- rules


def effective_status(acct: AccountData, kind: str, obj: Mapping[str, Any]) -> str:
    """An object's own status unless it is ACTIVE; an active ad set under a paused campaign is CAMPAIGN_PAUSED."""
    own = obj.get("status", "ACTIVE")
    if own != "ACTIVE":
        return own
    if kind == "adset":
        status = (acct.campaign(obj.get("campaign_id", "")) or {}).get("status", "ACTIVE")
        if status == "PAUSED":
            return "CAMPAIGN_PAUSED"
        if status in ("ARCHIVED", "DELETED"):
            return status
    return "ACTIVE"


def minimum_daily_budget(acct: AccountData, adset: Mapping[str, Any], rules: WriteRules) -> int:
    """The smallest daily budget (minor units) Meta accepts for an ad set: by account currency and billing
    event, and at least five times a capped bid."""
    entry = rules.minimum_budgets.get(acct.currency) or minimum_budget_entry(acct.currency)
    key = BILLING_EVENT_MINIMUM.get(
        str(adset.get("billing_event") or "IMPRESSIONS").upper(), "min_daily_budget_high_freq"
    )
    floor = int(entry[key])
    if adset.get("bid_strategy") in CAPPED_BID_STRATEGIES and adset.get("bid_amount"):
        floor = max(floor, 5 * int(adset["bid_amount"]))
    return floor


def _minimum(acct: AccountData, kind: str, obj: Mapping[str, Any], rules: WriteRules) -> int:
    if kind == "adset":
        return minimum_daily_budget(acct, obj, rules)
    live = [a for a in acct.adsets_of(obj["id"]) if a.get("status") not in ("DELETED", "ARCHIVED")]
    return sum(minimum_daily_budget(acct, a, rules) for a in live) or minimum_daily_budget(acct, {}, rules)


def _days_left(obj: Mapping[str, Any], now: datetime) -> int:
    if not obj.get("end_time"):
        return 1
    start = max(now, parse_graph_time(obj["start_time"])) if obj.get("start_time") else now
    return max(1, math.ceil((parse_graph_time(obj["end_time"]) - start) / timedelta(days=1)))


def _too_low(kind: str, key: str, minimum: int, currency: str) -> GraphFault:
    noun = "ad set" if kind == "adset" else "campaign"
    return GraphFault(
        graph_error(
            100,
            BUDGET_TOO_LOW_SUBCODE,
            message="Invalid parameter",
            user_title="Your Budget Is Too Low",
            user_msg=f"Your {noun} budget must be at least {format_budget(minimum, currency)}.",
            error_data={"blame_field_specs": [[key]]},
        )
    )


def _recent_budget_changes(acct: AccountData, kind: str, object_id: str, now: datetime) -> int:
    event = "update_ad_set_budget" if kind == "adset" else "update_campaign_budget"
    hour_ago = now - timedelta(hours=1)
    return sum(
        1
        for a in acct.activities
        if a.get("object_id") == object_id and a["event_type"] == event and parse_graph_time(a["event_time"]) > hour_ago
    )


def is_significant_budget_change(old: int, new: int, pct: float) -> bool:
    return old <= 0 or abs(new - old) / old * 100 > pct


# --------------------------------------------------------------------------- validation


def plan_update(
    acct: AccountData, kind: str, obj: Mapping[str, Any], params: Mapping[str, str], rules: WriteRules, now: datetime
) -> list[Change]:
    """Every check the real update runs, in order; the changes it would make (values that differ)."""
    if obj.get("status") == "DELETED":
        raise GraphFault(graph_error(100, message=f"(#100) Cannot edit a deleted object: {obj['id']}"))
    changes: list[Change] = []
    if "status" in params:
        if params["status"] not in STATUSES:
            raise _bad_param("status", f"(#100) Param status must be one of {{{', '.join(STATUSES)}}}")
        if params["status"] != obj.get("status", "ACTIVE"):
            changes.append(Change("status", obj.get("status", "ACTIVE"), params["status"]))
    if "bid_strategy" in params:
        if params["bid_strategy"] not in BID_STRATEGIES:
            raise _bad_param(
                "bid_strategy", f"(#100) Param bid_strategy must be one of {{{', '.join(BID_STRATEGIES)}}}"
            )
        if params["bid_strategy"] != obj.get("bid_strategy"):
            changes.append(Change("bid_strategy", obj.get("bid_strategy"), params["bid_strategy"]))
    for key in ("bid_amount", *BUDGET_KEYS):
        if key in params and not re.fullmatch(r"\d+", params[key]):
            raise _bad_param(key, f"(#100) param {key} must be a non-negative integer")
    if "bid_amount" in params and int(params["bid_amount"]) != int(obj.get("bid_amount") or 0):
        changes.append(Change("bid_amount", obj.get("bid_amount"), int(params["bid_amount"])))
    if "name" in params and params["name"] != obj.get("name"):
        if not params["name"].strip():
            raise _bad_param("name", "(#100) Param name must be a non-empty string")
        changes.append(Change("name", obj.get("name"), params["name"]))
    budget_keys = [k for k in BUDGET_KEYS if k in params]
    if budget_keys or any(c.key in ("bid_amount", "bid_strategy") for c in changes):
        changes += _plan_budget(acct, kind, obj, params, budget_keys, changes, rules, now)
    return changes


def _plan_budget(
    acct: AccountData,
    kind: str,
    obj: Mapping[str, Any],
    params: Mapping[str, str],
    budget_keys: list[str],
    changes: list[Change],
    rules: WriteRules,
    now: datetime,
) -> list[Change]:
    if budget_keys and kind == "adset" and acct.is_cbo(obj["id"]):
        raise GraphFault(
            graph_error(
                100,
                CBO_CONFLICT_SUBCODE,
                message="(#100) Invalid parameter",
                user_title="Budget Can't Be Set on Ad Set",
                user_msg="This ad set's campaign uses campaign budget optimisation; change the campaign budget.",
                error_data={"blame_field_specs": [[budget_keys[0]]]},
            )
        )
    if kind == "adset" and acct.is_cbo(obj["id"]):
        return []  # a bid change under CBO: the campaign's budget is not this write's business
    current = {k: int(obj.get(k) or 0) for k in BUDGET_KEYS}
    after = {**current, **{k: int(params[k]) for k in budget_keys}}
    if after["daily_budget"] > 0 and after["lifetime_budget"] > 0:
        key = budget_keys[-1] if budget_keys else "daily_budget"
        raise _bad_param(
            key,
            "(#100) An object has either a daily_budget or a lifetime_budget, not both; "
            "the budget type of a published object can't be changed",
            user_title="Daily and Lifetime Budgets Can't Be Combined",
        )
    if kind == "campaign" and budget_keys and (after["daily_budget"] or after["lifetime_budget"]):
        if any(
            int(a.get("daily_budget") or 0) or int(a.get("lifetime_budget") or 0) for a in acct.adsets_of(obj["id"])
        ):
            raise GraphFault(
                graph_error(
                    100,
                    CBO_CONFLICT_SUBCODE,
                    message="(#100) Invalid parameter",
                    user_title="Budget Already Set on Ad Sets",
                    user_msg="Remove the ad set budgets before giving this campaign a budget.",
                    error_data={"blame_field_specs": [[budget_keys[0]]]},
                )
            )
    had_budget = current["daily_budget"] > 0 or current["lifetime_budget"] > 0
    if kind == "adset" or had_budget:
        after_obj = {**obj, **{c.key: c.new for c in changes}}
        minimum = _minimum(acct, kind, after_obj, rules)
        if after["lifetime_budget"] > 0:
            need = minimum * _days_left(obj, now)
            if after["lifetime_budget"] < need:
                raise _too_low(kind, "lifetime_budget", need, acct.currency)
        elif after["daily_budget"] < minimum:
            raise _too_low(kind, "daily_budget", minimum, acct.currency)
    budget_changes = [Change(k, current[k], after[k]) for k in budget_keys if after[k] != current[k]]
    if budget_changes and rules.budget_changes_per_hour is not None:
        if _recent_budget_changes(acct, kind, obj["id"], now) >= rules.budget_changes_per_hour:
            raise GraphFault(
                graph_error(
                    17,
                    rules.budget_limit_subcode,
                    user_title="Too Many Budget Changes",
                    user_msg="You can change a budget a limited number of times per hour. Try again later.",
                    error_data={"blame_field_specs": [[budget_changes[0].key]]},
                )
            )
    return budget_changes


def plan_copy(acct: AccountData, src: Mapping[str, Any], params: Mapping[str, str]) -> dict[str, Any]:
    """Every check a copy runs; the copy's settings (status, campaign, name)."""
    if src.get("status") == "DELETED":
        raise GraphFault(graph_error(100, message=f"(#100) Cannot copy a deleted object: {src['id']}"))
    option = params.get("status_option", "PAUSED")
    if option not in STATUS_OPTIONS:
        raise _bad_param("status_option", f"(#100) Param status_option must be one of {{{', '.join(STATUS_OPTIONS)}}}")
    campaign_id = params.get("campaign_id") or src["campaign_id"]
    if acct.campaign(campaign_id) is None:
        raise _bad_param("campaign_id", f"(#100) Param campaign_id is not a campaign of this account: {campaign_id}")
    rename = json_param(params, "rename_options") or {}
    if not isinstance(rename, dict):
        raise _bad_param("rename_options", "(#100) Param rename_options must be an object")
    name = src["name"]
    if rename.get("rename_strategy") != "NO_RENAME":
        name = f"{rename.get('rename_prefix', '')}{name}{rename.get('rename_suffix', ' - Copy')}"
    status = src.get("status", "ACTIVE") if option == "INHERITED_FROM_SOURCE" else option
    return {"status": status, "campaign_id": campaign_id, "name": name}


# --------------------------------------------------------------------------- applying


def reset_learning(adset: dict[str, Any], now: datetime) -> None:
    info = adset.get("learning_stage_info") or {}
    adset["learning_stage_info"] = {
        "status": "LEARNING",
        "conversions": 0,
        "last_sig_edit_ts": int(now.timestamp()),
        "attribution_windows": list(info.get("attribution_windows") or DEFAULT_VALUE_WINDOWS),
    }


def apply_changes(
    acct: AccountData,
    kind: str,
    obj: dict[str, Any],
    changes: list[Change],
    *,
    now: datetime,
    actor: Actor,
    rules: WriteRules,
) -> None:
    """Make the changes, record one activity each, bump ``updated_time``, follow statuses and learning."""
    if not changes:
        return
    zone = tz(acct.timezone_name)
    object_type, label, prefix = (
        ("ADSET", "Ad set", "update_ad_set") if kind == "adset" else ("CAMPAIGN", "Campaign", "update_campaign")
    )
    significant = False

    def record(event: str, extra: str, text: str) -> None:
        acct.activities.append(activity(event, now, obj, object_type, extra, zone, text, actor.record()))

    for ch in changes:
        if ch.key in BUDGET_KEYS:
            obj[ch.key] = str(ch.new)
            record(f"{prefix}_budget", budget_extra_data(ch.old, ch.new, acct.currency), f"{label} budget updated")
            significant |= is_significant_budget_change(ch.old, ch.new, rules.significant_budget_change_pct)
        elif ch.key == "status":
            obj["status"] = ch.new
            record(f"{prefix}_run_status", status_extra_data(ch.old, ch.new), f"{label} run status updated")
            significant |= ch.old == "PAUSED" and ch.new == "ACTIVE"
        elif ch.key == "name":
            obj["name"] = ch.new
            extra = json.dumps({"old_value": ch.old, "new_value": ch.new}, separators=(",", ":"))
            record(f"{prefix}_name", extra, f"{label} name updated")
        else:  # bid_strategy, bid_amount
            obj[ch.key] = ch.new
            if kind == "adset":
                extra = json.dumps({"old_value": ch.old, "new_value": ch.new}, separators=(",", ":"))
                event = "update_ad_set_bid_strategy" if ch.key == "bid_strategy" else "update_ad_set_bidding"
                record(event, extra, f"{label} bid updated")
            significant |= ch.key == "bid_strategy"
    stamp = now.astimezone(zone)
    if not obj.get("updated_time") or parse_graph_time(obj["updated_time"]) < stamp:
        obj["updated_time"] = graph_time(stamp)
    affected = [obj] if kind == "adset" else acct.adsets_of(obj["id"])
    if any(c.key == "status" for c in changes):
        obj["effective_status"] = effective_status(acct, kind, obj)
        if kind == "campaign":
            for adset in affected:
                adset["effective_status"] = effective_status(acct, "adset", adset)
    if significant:
        for adset in affected:
            if adset.get("status") != "DELETED":
                reset_learning(adset, now)


def copy_adset(
    acct: AccountData, src: Mapping[str, Any], settings: Mapping[str, Any], *, new_id: str, now: datetime, actor: Actor
) -> dict[str, Any]:
    """Append the copy (a new ad set in LEARNING, ``settings`` from ``plan_copy``) and record ``create_ad_set``."""
    new = json.loads(json.dumps(src))
    zone = tz(acct.timezone_name)
    new.update({"id": new_id, "name": settings["name"], "campaign_id": settings["campaign_id"]})
    new["status"] = settings["status"]
    new["effective_status"] = effective_status(acct, "adset", new)
    new["created_time"] = new["updated_time"] = graph_time(now.astimezone(zone))
    if _campaign_has_budget(acct, settings["campaign_id"]):  # copied into a CBO campaign: no own budget
        new.pop("daily_budget", None)
        new.pop("lifetime_budget", None)
    reset_learning(new, now)
    acct.adsets.append(new)
    extra = json.dumps({"copied_from": src["id"]}, separators=(",", ":"))
    acct.activities.append(activity("create_ad_set", now, new, "ADSET", extra, zone, "Ad set created", actor.record()))
    return {
        "copied_adset_id": new_id,
        "ad_object_ids": [{"ad_object_type": "ad_set", "source_id": src["id"], "copied_id": new_id}],
    }


def _campaign_has_budget(acct: AccountData, campaign_id: str) -> bool:
    camp = acct.campaign(campaign_id) or {}
    return bool(int(camp.get("daily_budget") or 0) or int(camp.get("lifetime_budget") or 0))
