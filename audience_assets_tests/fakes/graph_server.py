"""A local fake of the Meta Marketing (Graph) API, for tests.

A stdlib ``ThreadingHTTPServer`` on 127.0.0.1 (ephemeral port) that answers the real
``facebook_business`` SDK (26.x):

    acct = build_account("act_1001", "INR", n_adsets=6, days=14, end_date=date(2026, 3, 1), seed=1)
    with FakeGraph({acct.account_id: acct}, page_size_cap=10) as fake, sdk_session(fake) as api:
        rows = list(AdAccount("act_1001").get_insights(fields=[...], params={...}))
        assert fake.requests[-1]["path"] == "/v26.0/act_1001/insights"

``sdk_session`` does what DOMAIN.md prescribes: ``FacebookAdsApi.init(..., crash_log=False)``, then
``api._session.GRAPH = fake.base_url`` (the instance attribute; the class default stays
``https://graph.facebook.com``), and restores the previous default API afterwards.

Matched to facebook_business 26.0.3 (read from the SDK source):
- URLs are ``GRAPH/<version>/<node>/<edge>``; ``FacebookSession`` puts ``access_token`` (and
  ``appsecret_proof`` when an app secret is given) in the requests-Session params, so they travel in
  the query string even on POST; POST parameters travel form-encoded in the body. Dicts, lists and
  bools are JSON-encoded (``time_range={"since":..,"until":..}``, ``summary=true``).
- Edges are read by ``Cursor``: it asks for the next page only when the response has both
  ``paging.cursors.after`` and ``paging.next``, and re-requests the same path with ``after=``
  (it never follows the ``next`` URL itself, though the fake's ``next`` is a working URL).
  ``get_ad_sets``/``get_campaigns``/``get_activities`` add ``summary=true``; insights do not.
- ``get_insights(..., is_async=True)`` POSTs to the same ``/<node>/insights`` edge (no ``is_async``
  parameter is sent) with ``fields`` JSON-encoded as a list; Meta answers ``{"report_run_id"}``,
  ``AdReportRun.api_get()`` GETs ``/<report_run_id>`` and ``get_result()`` GETs
  ``/<report_run_id>/insights`` (a Cursor again).
- Failures: the SDK raises ``FacebookRequestError`` whenever the JSON body has an ``error`` key (any
  HTTP status). Careful: a non-JSON, non-empty body is *success* to the SDK even with HTTP 5xx
  (``FacebookResponse.is_success`` looks at the body only); ``raw_reply`` lets a test send one.

Data: one ``AccountData`` per ad account; ``build_account`` makes deterministic ones. Insight facts are
kept per ad set and day (``InsightDay``) with per-window conversion counts, and rendered the way Meta
sends them: every number a string, overlapping purchase action types with identical values,
``value`` = 7d_click + 1d_view (the default attribution setting), per-window keys beside ``value``
for the windows requested (zero-valued windows and action types are omitted; 7d_view/28d_view are
no longer returned, as since January 2026).

Not verified against live Meta (choices of this fake, parse them defensively): the exact JSON inside
an activity's ``extra_data`` for budget events (here ``{"old_value", "new_value", "currency",
"type": "payment_amount"}`` in minor units), the code 2601 answer for results of an unfinished
report run, and the messages of errors the fake makes up.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import os
import random
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from functools import cache
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from .loopback import LoopbackHandler, LoopbackServer

__all__ = [
    "DEFAULT_END_DATE",
    "PURCHASE_ACTION_TYPES",
    "WINDOWS",
    "ZERO_DECIMAL_CURRENCIES",
    "AccountData",
    "FakeGraph",
    "GraphFault",
    "InsightDay",
    "ReportRun",
    "Reply",
    "ad_account_usage",
    "app_usage",
    "budget_extra_data",
    "build_account",
    "business_use_case_usage",
    "graph_error",
    "insights_throttle",
    "json_reply",
    "minor_unit_offset",
    "raw_reply",
    "sdk_session",
    "throttle_headers",
    "usage_reply",
]

DEFAULT_VERSION = "v26.0"
DEFAULT_END_DATE = date(2026, 3, 1)
DEFAULT_PAGE_LIMIT = 25  # Graph's default page size for edges

# Currencies without minor units at Meta (budgets are whole units): offset 1 instead of 100.
ZERO_DECIMAL_CURRENCIES = frozenset({"JPY", "KRW", "TWD", "CLP", "COP", "HUF", "IDR", "VND", "ISK", "PYG", "CRC"})
_UNITS_PER_USD = {"USD": 1, "EUR": 1, "GBP": 1, "INR": 83, "JPY": 150, "KRW": 1300, "IDR": 15000, "BRL": 5}
_CURRENCY_TIMEZONE = {
    "INR": "Asia/Kolkata",
    "JPY": "Asia/Tokyo",
    "USD": "America/Los_Angeles",
    "EUR": "Europe/Berlin",
    "GBP": "Europe/London",
    "KRW": "Asia/Seoul",
}
_CURRENCY_COUNTRY = {"INR": "IN", "JPY": "JP", "USD": "US", "EUR": "DE", "GBP": "GB", "KRW": "KR"}
_FIXED_OFFSETS = {"Asia/Kolkata": 330, "Asia/Tokyo": 540, "Asia/Seoul": 540, "UTC": 0}

# Attribution windows the fake models; "value" is 7d_click + 1d_view (Meta's default setting).
WINDOWS = ("1d_click", "7d_click", "28d_click", "1d_view", "1d_ev")
DEFAULT_VALUE_WINDOWS = ("7d_click", "1d_view")
PURCHASE_ACTION_TYPES = ("omni_purchase", "purchase", "offsite_conversion.fb_pixel_purchase", "onsite_web_purchase")
# Logical events -> the (overlapping) action types Meta reports them under, all with equal values.
EVENT_ACTION_TYPES: dict[str, tuple[str, ...]] = {
    "link_click": ("link_click",),
    "landing_page_view": ("landing_page_view", "omni_landing_page_view"),
    "add_to_cart": ("add_to_cart", "omni_add_to_cart", "offsite_conversion.fb_pixel_add_to_cart"),
    "initiate_checkout": (
        "initiate_checkout",
        "omni_initiated_checkout",
        "offsite_conversion.fb_pixel_initiate_checkout",
    ),
    "purchase": PURCHASE_ACTION_TYPES,
}
VALUED_EVENTS = ("add_to_cart", "purchase")

# code -> (type, message, HTTP status, is_transient)
_ERRORS: dict[int, tuple[str, str, int, bool]] = {
    1: ("OAuthException", "An unknown error occurred", 500, True),
    2: ("OAuthException", "An unexpected error has occurred. Please retry your request later.", 503, True),
    4: ("OAuthException", "(#4) Application request limit reached", 400, True),
    17: ("OAuthException", "(#17) User request limit reached", 400, True),
    32: ("OAuthException", "(#32) Page request limit reached", 400, True),
    100: ("OAuthException", "(#100) Invalid parameter", 400, False),
    190: ("OAuthException", "Invalid OAuth access token - Cannot parse access token", 400, False),
    200: ("OAuthException", "(#200) Ad account owner has NOT grant ads_management or ads_read permission", 400, False),
    341: ("OAuthException", "(#341) Application limit reached", 400, True),
    613: ("OAuthException", "(#613) Calls to this api have exceeded the rate limit.", 400, True),
    2601: ("OAuthException", "(#2601) Error accessing adreport job.", 400, False),
    2635: ("OAuthException", "(#2635) You are calling a deprecated version of the Ads API.", 400, False),
}
_THROTTLE_MESSAGE = (
    "(#{code}) There have been too many calls from this ad-account. Wait a bit and try again. "
    "For more info, please refer to https://developers.facebook.com/docs/graph-api/overview/rate-limiting."
)

_NODE_TYPES = {
    "account": "AdAccount",
    "campaign": "AdCampaignGroup",
    "adset": "AdCampaign",
    "report_run": "AdReportRun",
    "custom_audience": "CustomAudience",
    "activity": "AdActivity",
}


# --------------------------------------------------------------------------- money and formats


def minor_unit_offset(currency: str) -> int:
    """Meta's budget offset: 1 for zero-decimal currencies (JPY, KRW, ...), else 100."""
    return 1 if currency.upper() in ZERO_DECIMAL_CURRENCIES else 100


def _quantum(currency: str) -> Decimal:
    return Decimal(1) if minor_unit_offset(currency) == 1 else Decimal("0.01")


def _money(x: Decimal | float | int, currency: str) -> str:
    return str(Decimal(str(x)).quantize(_quantum(currency), rounding=ROUND_HALF_UP))


def _ratio(x: float) -> str:
    return f"{x:.6f}"


def _tz(name: str) -> timezone | Any:
    try:
        from zoneinfo import ZoneInfo

        return ZoneInfo(name)
    except Exception:  # no tz database: fixed offsets for the zones the builder uses
        return timezone(timedelta(minutes=_FIXED_OFFSETS.get(name, 0)))


def _graph_time(dt: datetime) -> str:
    """Meta's timestamp format: ``2026-03-01T10:15:30+0530`` (offset without a colon)."""
    return dt.strftime("%Y-%m-%dT%H:%M:%S%z")


def budget_extra_data(old_minor: int, new_minor: int, currency: str) -> str:
    """The ``extra_data`` JSON string of a budget-update activity, as this fake writes it (shape unverified)."""
    return json.dumps(
        {"old_value": int(old_minor), "new_value": int(new_minor), "currency": currency, "type": "payment_amount"},
        separators=(",", ":"),
    )


# --------------------------------------------------------------------------- data


@dataclass
class InsightDay:
    """One ad set's delivery on one day (account time zone); money in major units.

    ``events`` and ``event_values`` map a logical event (``purchase``, ``add_to_cart``, ``link_click``,
    ``landing_page_view``, ``initiate_checkout``) to per-window counts / values keyed by ``WINDOWS``.
    """

    day: date
    adset_id: str
    spend: Decimal
    impressions: int
    reach: int
    clicks: int
    inline_link_clicks: int
    events: dict[str, dict[str, int]] = field(default_factory=dict)
    event_values: dict[str, dict[str, Decimal]] = field(default_factory=dict)

    def total(self, event: str) -> int:
        """The ``value`` Meta reports for ``event``: 7d_click + 1d_view."""
        w = self.events.get(event, {})
        return int(sum(w.get(k, 0) for k in DEFAULT_VALUE_WINDOWS))

    def total_value(self, event: str) -> Decimal:
        w = self.event_values.get(event, {})
        return sum((Decimal(w.get(k, 0)) for k in DEFAULT_VALUE_WINDOWS), Decimal(0))


@dataclass
class AccountData:
    """One ad account: Graph-shaped dicts for objects, ``InsightDay`` facts for insights.

    ``campaigns``/``adsets``/``custom_audiences``/``activities`` hold dicts exactly as Graph returns them
    (ids and budgets as strings, budgets in minor units); the fake selects the requested keys.
    """

    account_id: str
    currency: str
    timezone_name: str
    name: str = ""
    campaigns: list[dict[str, Any]] = field(default_factory=list)
    adsets: list[dict[str, Any]] = field(default_factory=list)
    insights: list[InsightDay] = field(default_factory=list)
    activities: list[dict[str, Any]] = field(default_factory=list)
    custom_audiences: list[dict[str, Any]] = field(default_factory=list)
    purchase_action_types: tuple[str, ...] = PURCHASE_ACTION_TYPES
    account_status: int = 1

    def __post_init__(self) -> None:
        if not self.account_id.startswith("act_"):
            raise ValueError(f"account_id must look like 'act_<digits>', got {self.account_id!r}")

    @property
    def numeric_id(self) -> str:
        return self.account_id.removeprefix("act_")

    def campaign(self, campaign_id: str) -> dict[str, Any] | None:
        return next((c for c in self.campaigns if c["id"] == str(campaign_id)), None)

    def adset(self, adset_id: str) -> dict[str, Any] | None:
        return next((a for a in self.adsets if a["id"] == str(adset_id)), None)

    def insight(self, day: date | str, adset_id: str) -> InsightDay | None:
        d = _as_date(day)
        return next((r for r in self.insights if r.day == d and r.adset_id == str(adset_id)), None)

    def is_cbo(self, adset_id: str) -> bool:
        """True when the ad set's campaign carries the budget (campaign budget optimisation)."""
        adset = self.adset(adset_id)
        camp = self.campaign(adset["campaign_id"]) if adset else None
        return bool(camp and (int(camp.get("daily_budget") or 0) or int(camp.get("lifetime_budget") or 0)))


def _as_date(d: date | str) -> date:
    return d if isinstance(d, date) else date.fromisoformat(str(d))


# --------------------------------------------------------------------------- builder


def _split_windows(total: int, view_share: float) -> dict[str, int]:
    view = min(total, int(round(total * view_share)))
    c7 = total - view
    return {
        "1d_click": int(round(c7 * 0.72)),
        "7d_click": c7,
        "28d_click": c7 + int(round(c7 * 0.12)),
        "1d_view": view,
        "1d_ev": int(round(view * 0.3)),
    }


def _value_windows(counts: Mapping[str, int], unit_value: Decimal, currency: str) -> dict[str, Decimal]:
    q = _quantum(currency)
    return {k: (unit_value * n).quantize(q, rounding=ROUND_HALF_UP) for k, n in counts.items()}


def _nice(x: float, step: int) -> int:
    return max(step, int(round(x / step)) * step)


def build_account(
    account_id: str,
    currency: str,
    n_adsets: int = 6,
    days: int = 14,
    end_date: date | None = None,
    seed: int = 0,
    *,
    timezone_name: str | None = None,
    name: str | None = None,
    country: str | None = None,
    purchase_action_types: tuple[str, ...] = PURCHASE_ACTION_TYPES,
) -> AccountData:
    """A deterministic account with ``n_adsets`` (>= 5) ad sets and ``days`` days of insights ending ``end_date``.

    Ad set ``i`` has kind ``i % 5``: 0 lookalike (custom audience named ``Lookalike (IN, 1%) - Purchasers``,
    whose audience object has ``subtype=LOOKALIKE`` and a ``lookalike_spec``), 1 custom audience (the first
    one on a lifetime budget), 2 interests in ``flexible_spec`` (COST_CAP bid), 3 broad (no
    ``learning_stage_info``), 4 lookalike under the CBO campaign (campaign has ``daily_budget``, ad set
    none). Ad set 5, when present, is PAUSED and stops delivering three days before ``end_date``.
    Activities: one ``update_ad_set_budget`` per ad set with an own daily budget, one
    ``update_campaign_budget`` for the CBO campaign, one ``update_ad_set_run_status`` for the paused one.
    """
    if n_adsets < 5:
        raise ValueError(f"n_adsets must be >= 5 to cover every audience kind, got {n_adsets}")
    if days < 1:
        raise ValueError(f"days must be >= 1, got {days}")
    currency = currency.upper()
    end = end_date or DEFAULT_END_DATE
    start = end - timedelta(days=days - 1)
    tz_name = timezone_name or _CURRENCY_TIMEZONE.get(currency, "UTC")
    tz = _tz(tz_name)
    cc = country or _CURRENCY_COUNTRY.get(currency, "US")
    units = _UNITS_PER_USD.get(currency, 1)
    offset = minor_unit_offset(currency)
    budget_step = 100 if offset == 100 and units > 10 else (1000 if units >= 100 else 5)
    rng = random.Random(f"{seed}:{account_id}:{currency}")
    acct = AccountData(
        account_id=account_id,
        currency=currency,
        timezone_name=tz_name,
        name=name or f"{cc} store {account_id.removeprefix('act_')}",
        purchase_action_types=tuple(purchase_action_types),
    )
    prefix = f"{int(acct.numeric_id) % 1_000_000:06d}"

    def local(d: date, hour: int, minute: int = 0) -> datetime:
        return datetime(d.year, d.month, d.day, hour, minute, tzinfo=tz)

    # Custom audiences: two seeds and one lookalike per lookalike ad set.
    purchasers = {
        "id": f"2384{prefix}00001",
        "name": "Purchasers 180d",
        "subtype": "CUSTOM",
        "approximate_count_lower_bound": 52000,
        "approximate_count_upper_bound": 61200,
    }
    visitors = {
        "id": f"2384{prefix}00002",
        "name": "Website visitors 30d",
        "subtype": "WEBSITE",
        "approximate_count_lower_bound": 180000,
        "approximate_count_upper_bound": 211800,
    }
    acct.custom_audiences += [purchasers, visitors]

    def lookalike(pct: int) -> dict[str, Any]:
        aud_id = f"2384{prefix}{100 + pct:05d}"
        existing = next((a for a in acct.custom_audiences if a["id"] == aud_id), None)
        if existing is None:
            existing = {
                "id": aud_id,
                "name": f"Lookalike ({cc}, {pct}%) - {purchasers['name'].split(' ')[0]}",
                "subtype": "LOOKALIKE",
                "lookalike_spec": {
                    "country": cc,
                    "ratio": pct / 100,
                    "starting_ratio": 0.0,
                    "type": "custom_ratio",
                    "origin": [{"id": purchasers["id"], "name": purchasers["name"], "type": "custom_audience"}],
                },
                "approximate_count_lower_bound": 1_000_000 * pct,
                "approximate_count_upper_bound": 1_176_000 * pct,
            }
            acct.custom_audiences.append(existing)
        return existing

    base_targeting = {
        "age_min": 18,
        "age_max": 65,
        "geo_locations": {"countries": [cc], "location_types": ["home", "recent"]},
    }
    interests_pool = [
        ("6003107902433", "Online shopping"),
        ("6003346592981", "Fashion accessories"),
        ("6003397425735", "Beauty"),
        ("6003020834693", "Fitness and wellness"),
        ("6003384248805", "Home decor"),
    ]

    def usd_budget(usd: float) -> int:
        return _nice(usd * units, budget_step) * offset  # minor units

    camp_created = local(start - timedelta(days=40), 11, 5)
    cbo_budget = usd_budget(300)
    campaigns = [
        {"id": f"1201{prefix}00001", "name": "Prospecting - ABO"},
        {"id": f"1201{prefix}00002", "name": "Retargeting - ABO"},
        {"id": f"1201{prefix}00003", "name": "Scale - Advantage+ campaign budget", "daily_budget": str(cbo_budget)},
    ]
    for c in campaigns:
        c.update(
            {
                "account_id": acct.numeric_id,
                "status": "ACTIVE",
                "effective_status": "ACTIVE",
                "objective": "OUTCOME_SALES",
                "buying_type": "AUCTION",
                "bid_strategy": "LOWEST_COST_WITHOUT_CAP",
                "created_time": _graph_time(camp_created),
            }
        )
    # ABO campaigns carry no budget; Graph then reports neither budget field.
    for c in campaigns[:2]:
        c.pop("bid_strategy")
    acct.campaigns = campaigns
    cbo_adsets = [i for i in range(n_adsets) if i % 5 == 4]

    lookalike_pcts = [1, 3, 2, 5, 10]
    for i in range(n_adsets):
        kind = ("lookalike", "custom", "interest", "broad", "cbo")[i % 5]
        targeting: dict[str, Any] = json.loads(json.dumps(base_targeting))
        if kind in ("lookalike", "cbo"):
            la = lookalike(lookalike_pcts[(i // 5 + (1 if kind == "cbo" else 0)) % len(lookalike_pcts)])
            targeting["custom_audiences"] = [{"id": la["id"], "name": la["name"]}]
            targeting["targeting_automation"] = {"advantage_audience": 0}
        elif kind == "custom":
            targeting["custom_audiences"] = [{"id": visitors["id"], "name": visitors["name"]}]
            targeting["excluded_custom_audiences"] = [{"id": purchasers["id"], "name": purchasers["name"]}]
            targeting["targeting_automation"] = {"advantage_audience": 0}
        elif kind == "interest":
            picks = rng.sample(interests_pool, 2)
            targeting["flexible_spec"] = [{"interests": [{"id": p[0], "name": p[1]} for p in picks]}]
            targeting["targeting_automation"] = {"advantage_audience": 0}
        else:  # broad: no audiences, no interests
            targeting["targeting_automation"] = {"advantage_audience": 1}

        campaign = campaigns[2] if kind == "cbo" else (campaigns[1] if kind == "custom" else campaigns[0])
        created = local(start - timedelta(days=rng.randint(3, 30)), rng.randint(8, 20), rng.randint(0, 59))
        adset: dict[str, Any] = {
            "id": f"1202{prefix}{i + 1:05d}",
            "name": f"{cc} | {kind} | {i + 1:02d}",
            "account_id": acct.numeric_id,
            "campaign_id": campaign["id"],
            "status": "ACTIVE",
            "effective_status": "ACTIVE",
            "created_time": _graph_time(created),
            "optimization_goal": "OFFSITE_CONVERSIONS",
            "billing_event": "IMPRESSIONS",
            "bid_strategy": campaign.get("bid_strategy", "LOWEST_COST_WITHOUT_CAP"),
            "targeting": targeting,
            "promoted_object": {"pixel_id": f"9{prefix}0001", "custom_event_type": "PURCHASE"},
        }
        if kind != "cbo":
            daily = usd_budget(rng.choice([50, 75, 100, 150, 200]))
            if i == 1:  # one ad set on a lifetime budget; Graph reports the unused budget field as "0"
                adset["lifetime_budget"] = str(daily * 30)
                adset["daily_budget"] = "0"
                adset["end_time"] = _graph_time(local(end + timedelta(days=30), 23, 59))
            else:
                adset["daily_budget"] = str(daily)
                adset["lifetime_budget"] = "0"
        if kind == "interest":
            adset["bid_strategy"] = "COST_CAP"
            adset["bid_amount"] = usd_budget(25) // 10
        if kind != "broad":
            status = rng.choice(["SUCCESS", "SUCCESS", "LEARNING", "FAIL"])
            adset["learning_stage_info"] = {
                "status": status,
                "conversions": rng.randint(50, 140) if status == "SUCCESS" else rng.randint(3, 45),
                "last_sig_edit_ts": int((created + timedelta(days=1)).timestamp()),
                "attribution_windows": list(DEFAULT_VALUE_WINDOWS),
            }
        if i == 5:
            adset["status"] = adset["effective_status"] = "PAUSED"
        acct.adsets.append(adset)

    # Daily insight facts.
    n_cbo = max(1, len(cbo_adsets))
    for adset in acct.adsets:
        cpm_usd = rng.uniform(6, 14)
        ctr = rng.uniform(0.008, 0.025)
        link_share = rng.uniform(0.55, 0.8)
        cvr = rng.uniform(0.025, 0.06)
        aov_usd = rng.uniform(25, 90)
        freq = rng.uniform(1.05, 1.5)
        view_share = rng.uniform(0.08, 0.25)
        if int(adset.get("daily_budget") or 0):
            budget_major = int(adset["daily_budget"]) / offset
        elif int(adset.get("lifetime_budget") or 0):
            budget_major = int(adset["lifetime_budget"]) / offset / 30
        else:
            budget_major = cbo_budget / offset / n_cbo
        for k in range(days):
            d = start + timedelta(days=k)
            if adset["status"] == "PAUSED" and d > end - timedelta(days=3):
                continue
            spend = Decimal(str(budget_major * rng.uniform(0.7, 1.1))).quantize(_quantum(currency), ROUND_HALF_UP)
            spend_usd = float(spend) / units
            impressions = max(1, int(spend_usd / cpm_usd * 1000))
            clicks = int(round(impressions * ctr * rng.uniform(0.85, 1.15)))
            link = int(round(clicks * link_share))
            lpv = int(round(link * 0.75))
            atc = int(round(lpv * rng.uniform(0.06, 0.12)))
            ic = int(round(atc * 0.5))
            purchases = int(round(link * cvr * rng.uniform(0.6, 1.4)))
            aov = Decimal(str(aov_usd * units * rng.uniform(0.85, 1.15))).quantize(_quantum(currency), ROUND_HALF_UP)
            events = {
                "link_click": {"1d_click": link, "7d_click": link, "28d_click": link},
                "landing_page_view": {"1d_click": lpv, "7d_click": lpv, "28d_click": lpv},
                "add_to_cart": _split_windows(atc, view_share),
                "initiate_checkout": _split_windows(ic, view_share),
                "purchase": _split_windows(purchases, view_share),
            }
            acct.insights.append(
                InsightDay(
                    day=d,
                    adset_id=adset["id"],
                    spend=spend,
                    impressions=impressions,
                    reach=max(1, int(impressions / freq)),
                    clicks=clicks,
                    inline_link_clicks=link,
                    events=events,
                    event_values={
                        "add_to_cart": _value_windows(events["add_to_cart"], aov, currency),
                        "purchase": _value_windows(events["purchase"], aov, currency),
                    },
                )
            )

    # Activities: the budget history behind today's budgets.
    mid = start + timedelta(days=days // 2)
    for i, adset in enumerate(acct.adsets):
        daily = int(adset.get("daily_budget") or 0)
        if daily:
            old = _nice(daily / 1.2 / offset, budget_step) * offset
            acct.activities.append(
                _activity(
                    "update_ad_set_budget",
                    local(mid, 10 + i % 8, 15),
                    adset,
                    "ADSET",
                    budget_extra_data(old, daily, currency),
                    tz,
                    "Ad set budget updated",
                )
            )
        if adset["status"] == "PAUSED":
            acct.activities.append(
                _activity(
                    "update_ad_set_run_status",
                    local(end - timedelta(days=2), 9, 0),
                    adset,
                    "ADSET",
                    json.dumps({"old_value": "Active", "new_value": "Paused"}, separators=(",", ":")),
                    tz,
                    "Ad set run status updated",
                )
            )
    acct.activities.append(
        _activity(
            "update_campaign_budget",
            local(mid - timedelta(days=1), 16, 40),
            campaigns[2],
            "CAMPAIGN",
            budget_extra_data(_nice(cbo_budget / 1.25 / offset, budget_step) * offset, cbo_budget, currency),
            tz,
            "Campaign budget updated",
        )
    )
    acct.activities.sort(key=lambda a: a["event_time"])
    return acct


def _activity(
    event_type: str,
    when: datetime,
    obj: Mapping[str, Any],
    object_type: str,
    extra_data: str,
    tz: Any,
    translated: str,
) -> dict[str, Any]:
    local_dt = when.astimezone(tz)
    return {
        "event_type": event_type,
        "event_time": _graph_time(when.astimezone(UTC)),
        "object_id": obj["id"],
        "object_name": obj.get("name", ""),
        "object_type": object_type,
        "extra_data": extra_data,
        "actor_id": "100000000000001",
        "actor_name": "Fake Media Buyer",
        "application_id": "",
        "application_name": "",
        "translated_event_type": translated,
        "date_time_in_timezone": local_dt.strftime("%m/%d/%Y at %I:%M %p").replace(" 0", " "),
    }


# --------------------------------------------------------------------------- replies and headers


@dataclass
class Reply:
    """A canned answer for ``FakeGraph.inject``.

    ``body=None`` means "answer normally, but merge ``headers`` (and use ``status`` if not 200)";
    a dict/list body is sent as JSON; ``bytes``/``str`` are sent as they are.
    """

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


class GraphFault(Exception):
    """Raised inside the fake to answer a Graph error."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.body)
        self.reply = reply


def _trace_id() -> str:
    return base64.b64encode(os.urandom(9)).decode().replace("+", "A").replace("/", "B")


def graph_error(
    code: int,
    subcode: int | None = None,
    status: int | None = None,
    transient: bool | None = None,
    message: str | None = None,
    *,
    error_type: str | None = None,
    user_title: str | None = None,
    user_msg: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Reply:
    """An error in Meta's shape: ``{"error": {"message", "type", "code", "error_subcode", "is_transient", "fbtrace_id"}}``.

    Status, type, message and ``is_transient`` default per code (1, 2, 4, 17, 32, 100, 190, 200, 341,
    613, 2601, 80000-80014: 80xxx are transient 400s "too many calls from this ad-account").
    """
    if 80000 <= code <= 80014:
        d_type, d_msg, d_status, d_transient = "OAuthException", _THROTTLE_MESSAGE.format(code=code), 400, True
    else:
        d_type, d_msg, d_status, d_transient = _ERRORS.get(
            code, ("OAuthException", f"(#{code}) Fake error", 400, False)
        )
    err: dict[str, Any] = {
        "message": message or d_msg,
        "type": error_type or d_type,
        "code": code,
    }
    if subcode is not None:
        err["error_subcode"] = subcode
    err["is_transient"] = d_transient if transient is None else transient
    if user_title:
        err["error_user_title"] = user_title
    if user_msg:
        err["error_user_msg"] = user_msg
    err["fbtrace_id"] = _trace_id()
    return Reply(status or d_status, {"error": err}, dict(headers or {}))


def json_reply(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Reply:
    """Any JSON body with any status."""
    return Reply(status, body, dict(headers or {}))


def raw_reply(status: int, body: bytes | str, headers: Mapping[str, str] | None = None) -> Reply:
    """A non-JSON body (an HTML 502 from a proxy, say); ``content-type`` defaults to text/html."""
    hdrs = {"content-type": "text/html; charset=utf-8", **{k.lower(): v for k, v in (headers or {}).items()}}
    return Reply(status, body.encode() if isinstance(body, str) else body, hdrs)


def business_use_case_usage(
    account_id: str,
    pct: float = 10,
    *,
    kind: str = "ads_management",
    regain_minutes: int = 0,
    tier: str = "standard_access",
) -> str:
    """``x-business-use-case-usage``: JSON keyed by the numeric ad account id."""
    entry = {
        "type": kind,
        "call_count": pct,
        "total_cputime": pct,
        "total_time": pct,
        "estimated_time_to_regain_access": regain_minutes,
        "ads_api_access_tier": tier,
    }
    return json.dumps({account_id.removeprefix("act_"): [entry]})


def ad_account_usage(pct: float = 10, *, reset_seconds: int = 0, tier: str = "standard_access") -> str:
    """``x-ad-account-usage``."""
    return json.dumps({"acc_id_util_pct": pct, "reset_time_duration": reset_seconds, "ads_api_access_tier": tier})


def app_usage(pct: float = 10) -> str:
    """``x-app-usage``."""
    return json.dumps({"call_count": pct, "total_cputime": pct, "total_time": pct})


def insights_throttle(app_pct: float = 10, acc_pct: float = 10, *, tier: str = "standard_access") -> str:
    """``x-fb-ads-insights-throttle``."""
    return json.dumps({"app_id_util_pct": app_pct, "acc_id_util_pct": acc_pct, "ads_api_access_tier": tier})


def throttle_headers(
    account_id: str | None,
    pct: float = 10,
    *,
    regain_minutes: int = 0,
    app_pct: float | None = None,
    kind: str = "ads_management",
    insights: bool = True,
    tier: str = "standard_access",
) -> dict[str, str]:
    """All four usage headers at ``pct`` percent (account-scoped ones only when ``account_id`` is given)."""
    app = pct if app_pct is None else app_pct
    out = {"x-app-usage": app_usage(app)}
    if account_id:
        out["x-business-use-case-usage"] = business_use_case_usage(
            account_id, pct, kind=kind, regain_minutes=regain_minutes, tier=tier
        )
        out["x-ad-account-usage"] = ad_account_usage(pct, reset_seconds=regain_minutes * 60, tier=tier)
    if insights:
        out["x-fb-ads-insights-throttle"] = insights_throttle(app, pct, tier=tier)
    return out


def usage_reply(account_id: str, pct: float, *, regain_minutes: int = 0, app_pct: float | None = None) -> Reply:
    """A normal answer carrying high (or any) usage headers, for ``inject``."""
    return Reply(
        200,
        None,
        throttle_headers(account_id, pct, regain_minutes=regain_minutes, app_pct=app_pct, kind="ads_insights"),
    )


# --------------------------------------------------------------------------- report runs


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


# --------------------------------------------------------------------------- the HTTP side


_Handler = LoopbackHandler


@dataclass
class _Injection:
    pattern: re.Pattern[str]
    method: str | None
    replies: deque[Any]


def _flat(qs: str) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(qs, keep_blank_values=True).items()}


def _split_fields(raw: str | None) -> list[str]:
    """``fields`` as the SDK sends it: comma-separated (Cursor) or a JSON list (async POST); braces nest."""
    if raw is None or raw == "":
        return []
    raw = raw.strip()
    if raw.startswith("["):
        try:
            return [str(f) for f in json.loads(raw)]
        except ValueError:
            pass
    out, depth, cur = [], 0, ""
    for ch in raw:
        if ch in "{(":
            depth += 1
        elif ch in "})":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur.strip())
    return out


def _base_field(f: str) -> str:
    return re.split(r"[{.(]", f, maxsplit=1)[0]


def _json_param(params: Mapping[str, str], key: str, default: Any = None) -> Any:
    raw = params.get(key)
    if raw is None or raw == "":
        return default
    try:
        return json.loads(raw)
    except ValueError:
        # A bare word: the SDK sends plain strings unencoded.
        if key in ("action_attribution_windows", "effective_status"):
            return [s for s in raw.split(",") if s]
        raise GraphFault(graph_error(100, message=f"(#100) param {key} must be JSON: {raw!r}")) from None


@cache
def _sdk_fields(kind: str) -> frozenset[str] | None:
    """Valid field names for a node kind, from the SDK's own Field classes (None: accept anything)."""
    try:
        if kind == "insights":
            from facebook_business.adobjects.adsinsights import AdsInsights as cls
        elif kind == "account":
            from facebook_business.adobjects.adaccount import AdAccount as cls
        elif kind == "campaign":
            from facebook_business.adobjects.campaign import Campaign as cls
        elif kind == "adset":
            from facebook_business.adobjects.adset import AdSet as cls
        elif kind == "activity":
            from facebook_business.adobjects.adactivity import AdActivity as cls
        elif kind == "custom_audience":
            from facebook_business.adobjects.customaudience import CustomAudience as cls
        elif kind == "report_run":
            from facebook_business.adobjects.adreportrun import AdReportRun as cls
        else:
            return None
    except ImportError:
        return None
    return frozenset(v for k, v in vars(cls.Field).items() if not k.startswith("_") and isinstance(v, str))


@cache
def _sdk_windows() -> frozenset[str] | None:
    try:
        from facebook_business.adobjects.adsinsights import AdsInsights
    except ImportError:
        return None
    return frozenset(v for k, v in vars(AdsInsights.ActionAttributionWindows).items() if not k.startswith("_"))


@dataclass
class _Query:
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


class FakeGraph(LoopbackServer):
    """The fake Graph API; a context manager (``start()``/``close()`` also work).

    Attributes:
        base_url: ``http://127.0.0.1:<port>``; set it as the SDK session's ``GRAPH`` (see ``sdk_session``).
        accounts: ``{"act_<id>": AccountData}``, live: edit them between calls.
        requests: every request, in order: ``{"method", "path", "query" (flat dict), "form" (flat dict of the
            POST body), "params" (query and form merged), "access_token", "appsecret_proof", "headers",
            "time", "status", "response" (the JSON body sent, or None)}``.
        report_runs: ``{report_run_id: ReportRun}``.
        fail_async_when: ``fn(params) -> bool | str``: called at POST time with the job's flat params plus
            ``node_id``; True -> the job ends "Job Failed", a string -> that status ("Job Skipped").
        errors: exceptions the fake raised while answering (each also answered 500 code 1).
        clock: ``() -> aware datetime``; drives date presets, the activities default window, budget limits.
    """

    def __init__(
        self,
        accounts: Mapping[str, AccountData] | Iterable[AccountData],
        *,
        page_size_cap: int | None = None,
        async_poll_rounds: int = 1,
        version: str = DEFAULT_VERSION,
        fail_async_when: Callable[[dict[str, str]], bool | str] | None = None,
        tokens: Iterable[str] | None = None,
        app_secret: str | None = None,
        usage_pct: float = 10,
        sync_row_limit: int | None = None,
        budget_changes_per_hour: int | None = 4,
        now: datetime | Callable[[], datetime] | None = None,
    ) -> None:
        if isinstance(accounts, Mapping):
            for key, acct in accounts.items():
                if key != acct.account_id:
                    raise ValueError(f"accounts key {key!r} differs from its account_id {acct.account_id!r}")
            self.accounts: dict[str, AccountData] = dict(accounts)
        else:
            self.accounts = {a.account_id: a for a in accounts}
        self.page_size_cap = page_size_cap
        self.async_poll_rounds = async_poll_rounds
        self.version = version
        self.fail_async_when = fail_async_when
        self.tokens = set(tokens) if tokens is not None else None
        self.app_secret = app_secret
        self.usage_pct = usage_pct
        self.sync_row_limit = sync_row_limit
        self.budget_changes_per_hour = budget_changes_per_hour
        if now is None:
            self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)
        elif callable(now):
            self.clock = now
        else:
            fixed = now if now.tzinfo else now.replace(tzinfo=UTC)
            self.clock = lambda: fixed
        self.requests: list[dict[str, Any]] = []
        self.report_runs: dict[str, ReportRun] = {}
        self.errors: list[BaseException] = []
        super().__init__()
        self._injections: list[_Injection] = []
        self._lock = threading.RLock()
        self._ids = itertools.count(1)
        self._nodes: dict[str, tuple[str, str]] = {}
        self._reindex()

    # ---- lifecycle

    thread_name = "fake-graph"

    # ---- test API

    def inject(self, path_regex: str, *replies: Any, method: str | None = "GET") -> None:
        """Queue one-shot replies for requests whose path (``/v26.0/act_1/insights``) matches ``path_regex``.

        Each matching request consumes one reply: a ``Reply`` (``graph_error``, ``usage_reply``,
        ``json_reply``, ``raw_reply``), a dict (sent as a 200 JSON body) or ``fn(request_entry) -> reply``.
        ``method=None`` matches every method. The token check runs first, then injections, then routing.
        """
        with self._lock:
            self._injections.append(
                _Injection(re.compile(path_regex), method.upper() if method else None, deque(replies))
            )

    @property
    def pending_injections(self) -> int:
        with self._lock:
            return sum(len(i.replies) for i in self._injections)

    def restate(self, account_id: str, day: date | str, adset_id: str, **fields: Any) -> InsightDay:
        """Change stored numbers for one ad set-day; the next pull sees them.

        Scalars: ``spend``, ``impressions``, ``reach``, ``clicks``, ``inline_link_clicks``. Events
        (``purchases``/``purchase``, ``add_to_cart``, ``initiate_checkout``, ``landing_page_view``): an int
        sets the reported ``value`` (7d_click + 1d_view), a dict sets windows exactly. Values
        (``purchase_value``, ``add_to_cart_value``): a number scales every window to the new ``value``,
        a dict sets windows exactly. A day without a row gets a new row.
        """
        with self._lock:
            acct = self._account(account_id)
            if acct.adset(adset_id) is None:
                raise KeyError(f"no ad set {adset_id} in {account_id}")
            row = acct.insight(day, adset_id)
            if row is None:
                row = InsightDay(_as_date(day), str(adset_id), Decimal(0), 0, 0, 0, 0)
                acct.insights.append(row)
            for key, value in fields.items():
                if key == "spend":
                    row.spend = Decimal(str(value))
                elif key in ("impressions", "reach", "clicks"):
                    setattr(row, key, int(value))
                elif key == "inline_link_clicks":
                    row.inline_link_clicks = int(value)
                    row.events["link_click"] = {"1d_click": int(value), "7d_click": int(value), "28d_click": int(value)}
                elif key.endswith("_value"):
                    event = key.removesuffix("_value")
                    if isinstance(value, Mapping):
                        row.event_values[event] = {k: Decimal(str(v)) for k, v in value.items()}
                    else:
                        old = row.total_value(event)
                        new = Decimal(str(value))
                        counts = row.events.get(event, {})
                        if old > 0:
                            factor = new / old
                            row.event_values[event] = {
                                k: (Decimal(v) * factor).quantize(_quantum(acct.currency), ROUND_HALF_UP)
                                for k, v in row.event_values[event].items()
                            }
                        else:
                            total = row.total(event) or 1
                            unit = new / total
                            row.event_values[event] = _value_windows(counts or {"7d_click": 1}, unit, acct.currency)
                else:
                    event = "purchase" if key == "purchases" else key
                    if event not in EVENT_ACTION_TYPES:
                        raise KeyError(f"restate: unknown field {key!r}")
                    if isinstance(value, Mapping):
                        row.events[event] = {k: int(v) for k, v in value.items()}
                    else:
                        w = dict(row.events.get(event, {}))
                        n = int(value)
                        view = min(w.get("1d_view", 0), n)
                        c7 = n - view
                        row.events[event] = {
                            "1d_click": min(w.get("1d_click", 0), c7),
                            "7d_click": c7,
                            "28d_click": max(w.get("28d_click", 0), c7),
                            "1d_view": view,
                            "1d_ev": min(w.get("1d_ev", 0), view),
                        }
            return row

    def set_usage(self, pct: float) -> None:
        """Usage percentage carried by every later response's headers (default 10)."""
        self.usage_pct = pct

    def add_account(self, acct: AccountData) -> None:
        with self._lock:
            self.accounts[acct.account_id] = acct
            self._reindex()

    def requests_to(self, path_regex: str, method: str | None = None) -> list[dict[str, Any]]:
        """Recorded requests whose path matches ``path_regex`` (and method, if given)."""
        rx = re.compile(path_regex)
        return [r for r in self.requests if rx.search(r["path"]) and (method is None or r["method"] == method)]

    # ---- internals: indexing

    def _reindex(self) -> None:
        nodes: dict[str, tuple[str, str]] = {}

        def add(node_id: str, kind: str, acct_id: str) -> None:
            if node_id in nodes and nodes[node_id] != (kind, acct_id):
                raise ValueError(f"duplicate Graph id {node_id} ({kind} in {acct_id} and {nodes[node_id]})")
            nodes[node_id] = (kind, acct_id)

        for acct in self.accounts.values():
            add(acct.account_id, "account", acct.account_id)
            for c in acct.campaigns:
                add(str(c["id"]), "campaign", acct.account_id)
            for a in acct.adsets:
                add(str(a["id"]), "adset", acct.account_id)
            for ca in acct.custom_audiences:
                add(str(ca["id"]), "custom_audience", acct.account_id)
        for rr in self.report_runs.values():
            nodes[rr.id] = ("report_run", rr.account_id)
        self._nodes = nodes

    def _account(self, account_id: str) -> AccountData:
        try:
            return self.accounts[account_id]
        except KeyError:
            raise KeyError(f"no account {account_id}") from None

    def _new_id(self, prefix: str) -> str:
        with self._lock:
            return f"{prefix}{next(self._ids):09d}"

    # ---- internals: request handling

    def _handle(self, h: _Handler) -> None:
        url = urlsplit(h.path)
        raw = h.read_body()
        query = _flat(url.query)
        ctype = (h.headers.get("content-type") or "").lower()
        form: dict[str, str] = {}
        if raw and "application/x-www-form-urlencoded" in ctype:
            form = _flat(raw.decode("utf-8", "replace"))
        elif raw and "application/json" in ctype:
            try:
                form = {k: v if isinstance(v, str) else json.dumps(v) for k, v in json.loads(raw).items()}
            except (ValueError, AttributeError):
                form = {}
        params = {**query, **form}
        entry: dict[str, Any] = {
            "method": h.command,
            "path": url.path,
            "query": query,
            "form": form,
            "params": params,
            "access_token": params.get("access_token"),
            "appsecret_proof": params.get("appsecret_proof"),
            "headers": {k.lower(): v for k, v in h.headers.items()},
            "time": time.time(),
            "status": None,
            "response": None,
        }
        with self._lock:
            self.requests.append(entry)

        context_account, insights = self._context(url.path)
        extra_headers: dict[str, str] = {}
        try:
            self._check_token(params)
            injected = self._pop_injection(h.command, url.path, entry)
            if injected is not None and injected.body is not None:
                reply = injected
            else:
                status, body = self._route(h.command, url.path, params)
                reply = Reply(status, body)
                if injected is not None:
                    extra_headers = dict(injected.headers)
                    if injected.status != 200:
                        reply.status = injected.status
        except GraphFault as fault:
            reply = fault.reply
        except Exception as exc:  # a bug in the fake or a test callback: answer, do not hang
            self.errors.append(exc)
            reply = graph_error(1, message=f"fake server error: {exc!r}")

        headers = {
            "content-type": "application/json; charset=UTF-8",
            "facebook-api-version": self.version,
            "x-fb-trace-id": _trace_id(),
            **throttle_headers(
                context_account,
                self.usage_pct,
                kind="ads_insights" if insights else "ads_management",
                insights=insights,
            ),
            **{k.lower(): v for k, v in reply.headers.items()},
            **{k.lower(): v for k, v in extra_headers.items()},
        }
        if isinstance(reply.body, bytes):
            payload = reply.body
        elif isinstance(reply.body, str):
            payload = reply.body.encode()
        else:
            payload = json.dumps(reply.body, separators=(",", ":")).encode()
            entry["response"] = reply.body
        entry["status"] = reply.status
        try:
            h.send_response(reply.status)
            for k, v in headers.items():
                h.send_header(k, v)
            h.send_header("content-length", str(len(payload)))
            h.end_headers()
            h.wfile.write(payload)
            h.wfile.flush()
        except OSError:
            h.close_connection = True

    def _context(self, path: str) -> tuple[str | None, bool]:
        """(account id the request concerns, whether it is an insights call) for usage headers."""
        parts = [p for p in path.split("/") if p]
        if len(parts) < 2:
            return None, False
        with self._lock:
            kind_acct = self._nodes.get(parts[1])
        acct = kind_acct[1] if kind_acct else None
        insights = (len(parts) > 2 and parts[2] == "insights") or bool(kind_acct and kind_acct[0] == "report_run")
        return acct, insights

    def _check_token(self, params: Mapping[str, str]) -> None:
        token = params.get("access_token")
        if not token:
            raise GraphFault(graph_error(190, message="An access token is required to request this resource."))
        if self.tokens is not None and token not in self.tokens:
            raise GraphFault(graph_error(190))
        if self.app_secret is not None:
            proof = params.get("appsecret_proof")
            expected = hmac.new(self.app_secret.encode(), token.encode(), hashlib.sha256).hexdigest()
            if proof is None:
                raise GraphFault(
                    graph_error(100, message="API calls from the server require an appsecret_proof argument")
                )
            if not hmac.compare_digest(proof, expected):
                raise GraphFault(graph_error(100, message="Invalid appsecret_proof provided in the API argument"))

    def _pop_injection(self, method: str, path: str, entry: dict[str, Any]) -> Reply | None:
        with self._lock:
            for inj in self._injections:
                if inj.replies and (inj.method is None or inj.method == method) and inj.pattern.search(path):
                    reply = inj.replies.popleft()
                    break
            else:
                return None
        if callable(reply) and not isinstance(reply, Reply):
            reply = reply(entry)
        if reply is None:
            return None
        if isinstance(reply, Mapping):
            return Reply(200, dict(reply))
        return reply

    def _route(self, method: str, path: str, params: dict[str, str]) -> tuple[int, Any]:
        parts = [p for p in path.split("/") if p]
        if not parts:
            raise GraphFault(graph_error(100, message="(#100) Unknown path components"))
        if not re.fullmatch(r"v\d+\.\d+", parts[0]):
            raise GraphFault(graph_error(100, message=f"(#100) Unknown path components: /{parts[0]}"))
        if parts[0] != self.version:
            raise GraphFault(
                graph_error(
                    2635,
                    message=(
                        f"(#2635) You are calling a deprecated version of the Ads API ({parts[0]}). "
                        f"Please update to the latest version: {self.version}."
                    ),
                )
            )
        if len(parts) < 2 or len(parts) > 3:
            raise GraphFault(graph_error(100, message=f"(#100) Unknown path components: /{'/'.join(parts[1:])}"))
        node_id = parts[1]
        edge = parts[2] if len(parts) == 3 else None
        with self._lock:
            found = self._nodes.get(node_id)
            if found is None:
                raise GraphFault(
                    graph_error(
                        100,
                        33,
                        error_type="GraphMethodException",
                        message=(
                            f"Unsupported {method.lower()} request. Object with ID '{node_id}' does not exist, "
                            "cannot be loaded due to missing permissions, or does not support this operation. "
                            "Please read the Graph API documentation at https://developers.facebook.com/docs/graph-api"
                        ),
                    )
                )
            kind, account_id = found
            acct = self.accounts.get(account_id)
            if kind == "report_run":
                return self._report_run_route(method, node_id, edge, params, path)
            if acct is None:
                raise GraphFault(graph_error(100, 33, error_type="GraphMethodException"))
            if edge == "insights" and kind in ("account", "campaign", "adset"):
                if method == "GET":
                    return 200, self._sync_insights(kind, node_id, acct, params, path)
                if method == "POST":
                    return 200, self._start_report_run(kind, node_id, acct, params)
            elif edge is None and method == "GET":
                return 200, self._read_node(kind, node_id, acct, params)
            elif edge is None and method == "POST" and kind in ("adset", "campaign"):
                return 200, self._update_node(kind, node_id, acct, params)
            elif (
                method == "GET"
                and kind == "account"
                and edge in ("adsets", "campaigns", "activities", "customaudiences")
            ):
                return 200, self._list_edge(edge, acct, None, params, path)
            elif method == "GET" and kind == "campaign" and edge == "adsets":
                return 200, self._list_edge("adsets", acct, node_id, params, path)
            elif method == "POST" and kind == "adset" and edge == "copies":
                return 200, self._copy_adset(node_id, acct, params)
            raise GraphFault(
                graph_error(
                    100,
                    message=f"(#100) Unsupported {method.lower()} request on /{node_id}{'/' + edge if edge else ''} (fake)",
                )
            )

    # ---- field selection

    def _select(
        self, kind: str, obj: Mapping[str, Any], params: Mapping[str, str], default: list[str]
    ) -> dict[str, Any]:
        requested = _split_fields(params.get("fields")) or default
        valid = _sdk_fields(kind)
        out: dict[str, Any] = {}
        for f in requested:
            base = _base_field(f)
            if valid is not None and base not in valid:
                raise GraphFault(
                    graph_error(
                        100,
                        message=f"(#100) Tried accessing nonexisting field ({base}) on node type ({_NODE_TYPES[kind]})",
                    )
                )
            if base in obj and obj[base] is not None:
                out[base] = json.loads(json.dumps(obj[base]))
        if "id" in obj:
            out["id"] = obj["id"]
        return out

    def _read_node(self, kind: str, node_id: str, acct: AccountData, params: Mapping[str, str]) -> dict[str, Any]:
        if kind == "account":
            obj = {
                "id": acct.account_id,
                "account_id": acct.numeric_id,
                "name": acct.name,
                "currency": acct.currency,
                "timezone_name": acct.timezone_name,
                "timezone_offset_hours_utc": _tz(acct.timezone_name).utcoffset(self.clock()).total_seconds() / 3600,
                "account_status": acct.account_status,
            }
        elif kind == "campaign":
            obj = acct.campaign(node_id) or {}
        elif kind == "adset":
            obj = acct.adset(node_id) or {}
        else:
            obj = next((c for c in acct.custom_audiences if c["id"] == node_id), {})
        return self._select(kind, obj, params, ["id"])

    # ---- paging

    def _page(
        self,
        items: list[dict[str, Any]],
        params: Mapping[str, str],
        path: str,
        *,
        summary: bool = False,
    ) -> dict[str, Any]:
        try:
            limit = int(params.get("limit", DEFAULT_PAGE_LIMIT))
        except ValueError:
            raise GraphFault(graph_error(100, message="(#100) param limit must be an integer")) from None
        if limit <= 0:
            raise GraphFault(graph_error(100, message="(#100) param limit must be a positive integer"))
        if self.page_size_cap is not None:
            limit = min(limit, self.page_size_cap)
        start = 0
        if params.get("after"):
            start = _decode_cursor(params["after"]) + 1
        out: dict[str, Any] = {"data": items[start : start + limit]}
        page = out["data"]
        if page:
            paging: dict[str, Any] = {
                "cursors": {"before": _encode_cursor(start), "after": _encode_cursor(start + len(page) - 1)}
            }
            if start + len(page) < len(items):
                nxt = {k: v for k, v in params.items() if k not in ("after", "before")}
                nxt["after"] = paging["cursors"]["after"]
                paging["next"] = f"{self.base_url}{path}?{urlencode(nxt)}"
            if start > 0:
                prev = {k: v for k, v in params.items() if k not in ("after", "before")}
                prev["before"] = paging["cursors"]["before"]
                paging["previous"] = f"{self.base_url}{path}?{urlencode(prev)}"
            out["paging"] = paging
        if summary:
            out["summary"] = {"total_count": len(items)}
        return out

    def _list_edge(
        self,
        edge: str,
        acct: AccountData,
        campaign_id: str | None,
        params: Mapping[str, str],
        path: str,
    ) -> dict[str, Any]:
        wants_summary = params.get("summary", "").lower() in ("true", "1")
        if edge in ("adsets", "campaigns"):
            source = acct.adsets if edge == "adsets" else acct.campaigns
            statuses = _json_param(params, "effective_status")
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
                items.append(self._select("adset" if edge == "adsets" else "campaign", obj, params, ["id"]))
            return self._page(items, params, path, summary=wants_summary)
        if edge == "customaudiences":
            items = [self._select("custom_audience", ca, params, ["id"]) for ca in acct.custom_audiences]
            return self._page(items, params, path, summary=wants_summary)
        # activities: newest first; one week before `until` (or now) unless `since` is given
        until = _parse_time(params.get("until")) if params.get("until") else self.clock()
        since = _parse_time(params["since"]) if params.get("since") else until - timedelta(days=7)
        oid = params.get("oid")
        acts = []
        for a in acct.activities:
            t = datetime.strptime(a["event_time"], "%Y-%m-%dT%H:%M:%S%z")
            if since <= t <= until and (oid is None or a.get("object_id") == oid):
                acts.append((t, a))
        acts.sort(key=lambda ta: ta[0], reverse=True)
        items = [self._select("activity", a, params, ["event_time", "event_type"]) for _, a in acts]
        for item in items:
            item.pop("id", None)
        return self._page(items, params, path)

    # ---- insights

    def _parse_query(self, node_kind: str, node_id: str, acct: AccountData, params: Mapping[str, str]) -> _Query:
        level = params.get("level") or node_kind
        if level not in ("account", "campaign", "adset"):
            raise GraphFault(graph_error(100, message=f"(#100) level={level!r} is not supported by the fake"))
        tr = _json_param(params, "time_range")
        if tr is not None:
            try:
                since, until = date.fromisoformat(tr["since"]), date.fromisoformat(tr["until"])
            except (KeyError, TypeError, ValueError):
                raise GraphFault(
                    graph_error(100, message=f"(#100) param time_range must be {{'since','until'}} dates: {tr!r}")
                ) from None
        else:
            since, until = self._preset(params.get("date_preset") or "last_30d", acct)
        if until < since:
            raise GraphFault(graph_error(100, message="(#100) time_range: since must not be after until"))
        inc = str(params.get("time_increment") or "all_days")
        if not (inc in ("all_days", "monthly") or (inc.isdigit() and 1 <= int(inc) <= 90)):
            raise GraphFault(
                graph_error(100, message=f"(#100) param time_increment must be 1-90, monthly or all_days: {inc!r}")
            )
        fields = _split_fields(params.get("fields")) or ["spend", "impressions"]
        valid = _sdk_fields("insights")
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
        windows = [str(w) for w in (_json_param(params, "action_attribution_windows") or [])]
        valid_w = _sdk_windows()
        for w in windows:
            if valid_w is not None and w not in valid_w:
                raise GraphFault(
                    graph_error(
                        100, message=f"(#100) action_attribution_windows[0] must be one of the enum values: {w}"
                    )
                )
        filtering = _json_param(params, "filtering") or []
        if node_kind == "account":
            adsets = [a["id"] for a in acct.adsets]
        elif node_kind == "campaign":
            adsets = [a["id"] for a in acct.adsets if a["campaign_id"] == node_id]
        else:
            adsets = [node_id]
        adsets = [a for a in adsets if _passes(acct, a, filtering)]
        return _Query(node_kind, node_id, acct, level, since, until, inc, fields, windows, filtering, adsets)

    def _preset(self, preset: str, acct: AccountData) -> tuple[date, date]:
        today = self.clock().astimezone(_tz(acct.timezone_name)).date()
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

    def _compute_rows(self, q: _Query) -> list[dict[str, Any]]:
        acct = q.account
        wanted = set(q.adset_ids)
        facts = [r for r in acct.insights if r.adset_id in wanted and q.since <= r.day <= q.until and r.impressions > 0]
        groups: dict[tuple[Any, ...], list[InsightDay]] = {}
        for r in facts:
            b0, b1 = _bucket(r.day, q.since, q.until, q.time_increment)
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
            rows.append(_render(acct, q, groups[key], key[0], key[1], key[2]))
        return rows

    def _sync_insights(
        self, kind: str, node_id: str, acct: AccountData, params: Mapping[str, str], path: str
    ) -> dict[str, Any]:
        q = self._parse_query(kind, node_id, acct, params)
        rows = self._compute_rows(q)
        if self.sync_row_limit is not None and len(rows) > self.sync_row_limit:
            raise GraphFault(
                graph_error(
                    100,
                    1487534,
                    message="Please reduce the amount of data you're asking for, then retry your request",
                    user_title="Too much data requested",
                )
            )
        return self._page(rows, params, path)

    def _start_report_run(
        self, kind: str, node_id: str, acct: AccountData, params: Mapping[str, str]
    ) -> dict[str, Any]:
        q = self._parse_query(kind, node_id, acct, params)
        flat = {k: v for k, v in params.items() if k not in ("access_token", "appsecret_proof")}
        final = "Job Completed"
        if self.fail_async_when is not None:
            verdict = self.fail_async_when({**flat, "node_id": node_id})
            if verdict is True:
                final = "Job Failed"
            elif isinstance(verdict, str) and verdict:
                final = verdict
        rr = ReportRun(
            id=self._new_id("6090"),
            account_id=acct.account_id,
            node_id=node_id,
            params=flat,
            query=q,
            final_status=final,
            time_ref=int(self.clock().timestamp()),
        )
        self.report_runs[rr.id] = rr
        self._nodes[rr.id] = ("report_run", acct.account_id)
        return {"report_run_id": rr.id}

    def _report_run_route(
        self, method: str, rr_id: str, edge: str | None, params: Mapping[str, str], path: str
    ) -> tuple[int, Any]:
        rr = self.report_runs[rr_id]
        if method == "GET" and edge is None:
            rr.polls += 1
            rounds = max(0, self.async_poll_rounds)
            if rr.polls <= rounds:
                rr.status = "Job Running"
                rr.percent = int(100 * rr.polls / (rounds + 1))
            else:
                rr.status = rr.final_status
                if rr.status == "Job Completed":
                    rr.percent = 100
                    if rr.rows is None:
                        rr.rows = self._compute_rows(rr.query)
                        rr.time_completed = int(self.clock().timestamp())
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
            return 200, self._page(rr.rows, params, path)
        raise GraphFault(graph_error(100, message=f"(#100) Unsupported {method.lower()} request on report run (fake)"))

    # ---- writes

    def _update_node(self, kind: str, node_id: str, acct: AccountData, params: Mapping[str, str]) -> dict[str, Any]:
        obj = acct.adset(node_id) if kind == "adset" else acct.campaign(node_id)
        assert obj is not None
        now = self.clock()
        object_type = "ADSET" if kind == "adset" else "CAMPAIGN"
        label = "Ad set" if kind == "adset" else "Campaign"
        event_prefix = "update_ad_set" if kind == "adset" else "update_campaign"
        budget_keys = [k for k in ("daily_budget", "lifetime_budget") if k in params]
        if budget_keys:
            if kind == "adset" and acct.is_cbo(node_id):
                raise GraphFault(
                    graph_error(
                        100,
                        message="(#100) Invalid parameter",
                        user_title="Budget Can't Be Set on Ad Set",
                        user_msg="This ad set's campaign uses campaign budget optimisation; change the campaign budget.",
                    )
                )
            for k in budget_keys:
                if not re.fullmatch(r"\d+", params[k]):
                    raise GraphFault(graph_error(100, message=f"(#100) param {k} must be a non-negative integer"))
            if self.budget_changes_per_hour is not None:
                hour_ago = now - timedelta(hours=1)
                recent = [
                    a
                    for a in acct.activities
                    if a.get("object_id") == node_id
                    and a["event_type"] == f"{event_prefix}_budget"
                    and datetime.strptime(a["event_time"], "%Y-%m-%dT%H:%M:%S%z") > hour_ago
                ]
                if len(recent) >= self.budget_changes_per_hour:
                    raise GraphFault(
                        graph_error(
                            17,
                            user_title="Too Many Budget Changes",
                            user_msg="You can change a budget a limited number of times per hour.",
                        )
                    )
        tz = _tz(acct.timezone_name)
        for k in budget_keys:
            old = int(obj.get(k) or 0)
            obj[k] = str(int(params[k]))
            acct.activities.append(
                _activity(
                    f"{event_prefix}_budget",
                    now,
                    obj,
                    object_type,
                    budget_extra_data(old, int(params[k]), acct.currency),
                    tz,
                    f"{label} budget updated",
                )
            )
        if "status" in params:
            old_status = obj.get("status", "ACTIVE")
            obj["status"] = params["status"]
            obj["effective_status"] = params["status"]
            acct.activities.append(
                _activity(
                    f"{event_prefix}_run_status",
                    now,
                    obj,
                    object_type,
                    json.dumps(
                        {"old_value": old_status.title(), "new_value": params["status"].title()}, separators=(",", ":")
                    ),
                    tz,
                    f"{label} run status updated",
                )
            )
        for k in ("name", "bid_strategy", "bid_amount"):
            if k in params:
                obj[k] = params[k]
        return {"success": True}

    def _copy_adset(self, node_id: str, acct: AccountData, params: Mapping[str, str]) -> dict[str, Any]:
        src = acct.adset(node_id)
        assert src is not None
        new = json.loads(json.dumps(src))
        with self._lock:
            new_id = f"1203{int(acct.numeric_id) % 1_000_000:06d}{next(self._ids):05d}"
        new["id"] = new_id
        new["name"] = f"{src['name']} - Copy"
        option = params.get("status_option", "PAUSED")
        status = src.get("status", "ACTIVE") if option == "INHERITED_FROM_SOURCE" else option
        new["status"] = new["effective_status"] = status
        if params.get("campaign_id"):
            new["campaign_id"] = params["campaign_id"]
        now = self.clock()
        new["created_time"] = _graph_time(now.astimezone(_tz(acct.timezone_name)))
        new["learning_stage_info"] = {
            "status": "LEARNING",
            "conversions": 0,
            "last_sig_edit_ts": int(now.timestamp()),
            "attribution_windows": list(DEFAULT_VALUE_WINDOWS),
        }
        acct.adsets.append(new)
        self._reindex()
        return {
            "copied_adset_id": new_id,
            "ad_object_ids": [{"ad_object_type": "ad_set", "source_id": node_id, "copied_id": new_id}],
        }


# --------------------------------------------------------------------------- insights rendering


def _passes(acct: AccountData, adset_id: str, filtering: list[dict[str, Any]]) -> bool:
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


def _bucket(d: date, since: date, until: date, inc: str) -> tuple[str, str]:
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


def _render(acct: AccountData, q: _Query, rows: list[InsightDay], d0: str, d1: str, obj_id: str) -> dict[str, Any]:
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
            row[f] = _money(spend, cur)
        elif f in ("impressions", "reach", "clicks", "inline_link_clicks"):
            row[f] = str({"impressions": impressions, "reach": reach, "clicks": clicks, "inline_link_clicks": link}[f])
        elif f == "frequency" and reach:
            row[f] = _ratio(impressions / reach)
        elif f == "ctr" and impressions:
            row[f] = _ratio(clicks / impressions * 100)
        elif f == "inline_link_click_ctr" and impressions:
            row[f] = _ratio(link / impressions * 100)
        elif f == "cpc" and clicks:
            row[f] = _ratio(float(spend) / clicks)
        elif f == "cost_per_inline_link_click" and link:
            row[f] = _ratio(float(spend) / link)
        elif f == "cpm" and impressions:
            row[f] = _ratio(float(spend) / impressions * 1000)
        elif f == "cpp" and reach:
            row[f] = _ratio(float(spend) / reach * 1000)
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
                    entries += _action_entries(total(w), w, q.windows, types_for(ev), lambda x: _money(x, cur))
            if entries:
                row[f] = entries
        elif f == "cost_per_action_type":
            entries = []
            for ev in EVENT_ACTION_TYPES:
                w = events.get(ev, {})
                if w and total(w) > 0:
                    per = {k: float(spend) / n for k, n in w.items() if n}
                    for at in types_for(ev):
                        e: dict[str, Any] = {"action_type": at, "value": _ratio(float(spend) / total(w))}
                        for win in q.windows:
                            if win in per:
                                e[win] = _ratio(per[win])
                        entries.append(e)
            if entries:
                row[f] = entries
        elif f in ("purchase_roas", "website_purchase_roas"):
            w = values.get("purchase", {})
            if w and total(w) > 0 and spend > 0:
                at = "omni_purchase" if f == "purchase_roas" else "offsite_conversion.fb_pixel_purchase"
                e = {"action_type": at, "value": _ratio(float(total(w)) / float(spend))}
                for win in q.windows:
                    if win in WINDOWS and w.get(win):
                        e[win] = _ratio(float(w[win]) / float(spend))
                row[f] = [e]
        # other valid insights fields are not modelled: Graph omits empty fields, so does the fake
    row["date_start"] = d0
    row["date_stop"] = d1
    return row


# --------------------------------------------------------------------------- cursors and times


def _encode_cursor(index: int) -> str:
    return base64.urlsafe_b64encode(f"fake:{index}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        tag, idx = raw.split(":")
        if tag != "fake":
            raise ValueError(raw)
        return int(idx)
    except (ValueError, UnicodeDecodeError):
        raise GraphFault(graph_error(100, message=f"(#100) Invalid cursor: {cursor!r}")) from None


def _parse_time(raw: str) -> datetime:
    """``since``/``until``: a unix timestamp, an ISO datetime, or a date (midnight UTC)."""
    raw = str(raw).strip()
    if re.fullmatch(r"\d{9,11}(\.\d+)?", raw):
        return datetime.fromtimestamp(float(raw), UTC)
    try:
        dt = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        try:
            dt = datetime.strptime(raw, "%Y-%m-%dT%H:%M:%S%z")
        except ValueError:
            raise GraphFault(graph_error(100, message=f"(#100) param since/until is not a time: {raw!r}")) from None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


# --------------------------------------------------------------------------- pointing the SDK at the fake


@contextmanager
def sdk_session(
    fake: FakeGraph,
    *,
    access_token: str | None = "tok",
    app_id: str | None = None,
    app_secret: str | None = None,
    api_version: str | None = None,
    timeout: float = 10,
    set_default: bool = True,
) -> Iterator[Any]:
    """A real ``FacebookAdsApi`` pointed at ``fake``; the previous default API is restored on exit.

    ``set_default=False`` builds ``FacebookAdsApi(FacebookSession(...))`` without touching globals
    (pass ``api=`` to the ad objects then). The session ignores proxy variables (loopback only).
    """
    from facebook_business.api import FacebookAdsApi
    from facebook_business.session import FacebookSession

    saved_api = FacebookAdsApi.get_default_api()
    saved_account = FacebookAdsApi.get_default_account_id()
    version = api_version or fake.version
    if set_default:
        api = FacebookAdsApi.init(
            app_id=app_id,
            app_secret=app_secret,
            access_token=access_token,
            api_version=version,
            timeout=timeout,
            crash_log=False,  # otherwise the SDK installs an excepthook that posts to Meta
        )
    else:
        api = FacebookAdsApi(FacebookSession(app_id, app_secret, access_token, None, timeout), api_version=version)
    session = api._session
    session.GRAPH = fake.base_url  # instance attribute: FacebookSession.GRAPH stays graph.facebook.com
    session.requests.trust_env = False
    try:
        yield api
    finally:
        session.requests.close()
        FacebookAdsApi.set_default_api(saved_api)
        FacebookAdsApi._default_account_id = saved_account
