"""The fake's data: ad accounts, daily insight facts, money in minor units, activity records, minimum budgets.

Everything here is plain data and pure functions; the HTTP side lives in ``server.py``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

DEFAULT_END_DATE = date(2026, 3, 1)

# Currencies without minor units at Meta (budgets are whole units): offset 1 instead of 100.
ZERO_DECIMAL_CURRENCIES = frozenset({"JPY", "KRW", "TWD", "CLP", "COP", "HUF", "IDR", "VND", "ISK", "PYG", "CRC"})
UNITS_PER_USD = {"USD": 1, "EUR": 1, "GBP": 1, "INR": 83, "JPY": 150, "KRW": 1300, "IDR": 15000, "BRL": 5}
CURRENCY_TIMEZONE = {
    "INR": "Asia/Kolkata",
    "JPY": "Asia/Tokyo",
    "USD": "America/Los_Angeles",
    "EUR": "Europe/Berlin",
    "GBP": "Europe/London",
    "KRW": "Asia/Seoul",
}
CURRENCY_COUNTRY = {"INR": "IN", "JPY": "JP", "USD": "US", "EUR": "DE", "GBP": "GB", "KRW": "KR"}
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

# The actor the builder's own history is written by.
BUILDER_ACTOR = {
    "actor_id": "100000000000001",
    "actor_name": "Fake Media Buyer",
    "application_id": "",
    "application_name": "",
}


# --------------------------------------------------------------------------- money and formats


def minor_unit_offset(currency: str) -> int:
    """Meta's budget offset: 1 for zero-decimal currencies (JPY, KRW, ...), else 100."""
    return 1 if currency.upper() in ZERO_DECIMAL_CURRENCIES else 100


def quantum(currency: str) -> Decimal:
    return Decimal(1) if minor_unit_offset(currency) == 1 else Decimal("0.01")


def money(x: Decimal | float | int, currency: str) -> str:
    return str(Decimal(str(x)).quantize(quantum(currency), rounding=ROUND_HALF_UP))


def ratio(x: float) -> str:
    return f"{x:.6f}"


def tz(name: str) -> timezone | Any:
    try:
        from zoneinfo import ZoneInfo

        return ZoneInfo(name)
    except Exception:  # no tz database: fixed offsets for the zones the builder uses
        return timezone(timedelta(minutes=_FIXED_OFFSETS.get(name, 0)))


def graph_time(dt: datetime) -> str:
    """Meta's timestamp format: ``2026-03-01T10:15:30+0530`` (offset without a colon)."""
    return dt.strftime("%Y-%m-%dT%H:%M:%S%z")


def parse_graph_time(raw: str) -> datetime:
    return datetime.strptime(raw, "%Y-%m-%dT%H:%M:%S%z")


def as_date(d: date | str) -> date:
    return d if isinstance(d, date) else date.fromisoformat(str(d))


def budget_extra_data(old_minor: int, new_minor: int, currency: str) -> str:
    """The ``extra_data`` JSON string of a budget-update activity, as this fake writes it (shape unverified)."""
    return json.dumps(
        {"old_value": int(old_minor), "new_value": int(new_minor), "currency": currency, "type": "payment_amount"},
        separators=(",", ":"),
    )


def status_extra_data(old_status: str, new_status: str) -> str:
    """``extra_data`` of a run-status activity: ``{"old_value": "Active", "new_value": "Paused"}``."""
    return json.dumps({"old_value": old_status.title(), "new_value": new_status.title()}, separators=(",", ":"))


def format_budget(minor: int, currency: str) -> str:
    """``INR42.00`` / ``JPY150``: how Meta's error messages quote an amount."""
    offset = minor_unit_offset(currency)
    major = Decimal(minor) / offset
    return f"{currency}{major:,.2f}" if offset == 100 else f"{currency}{int(major):,}"


# --------------------------------------------------------------------------- minimum budgets

# Meta's published rule (Business Help Center, "About minimum budgets"), in USD per day: ad sets in these
# currencies need $1 (billed on impressions), $5 (clicks, likes, video views, post engagement) or $40
# (low-frequency events such as offer claims and app installs); every other currency half of that.
_FULL_MINIMUM_CURRENCIES = frozenset(
    {"USD", "AUD", "CAD", "SGD", "JPY", "NZD", "TWD", "EUR", "CHF", "SEK", "HKD", "GBP", "ILS", "NOK", "KRW", "DKK"}
)
_MINIMUM_USD = {"imp": 1.0, "video_views": 5.0, "high_freq": 5.0, "low_freq": 40.0}
# Rough rates for the currencies the builder does not size budgets in (minimums only).
_MORE_UNITS_PER_USD = {
    "AUD": 1.5,
    "CAD": 1.35,
    "SGD": 1.35,
    "NZD": 1.65,
    "TWD": 32,
    "CHF": 0.9,
    "SEK": 10.5,
    "HKD": 7.8,
    "ILS": 3.7,
    "NOK": 10.7,
    "DKK": 6.9,
    "MXN": 17,
    "CLP": 950,
    "COP": 4000,
    "HUF": 360,
    "VND": 25000,
    "ISK": 138,
    "PYG": 7300,
    "CRC": 510,
}
BILLING_EVENT_MINIMUM = {
    "IMPRESSIONS": "min_daily_budget_imp",
    "VIDEO_VIEWS": "min_daily_budget_video_views",
    "THRUPLAY": "min_daily_budget_video_views",
    "APP_INSTALLS": "min_daily_budget_low_freq",
    "OFFER_CLAIMS": "min_daily_budget_low_freq",
    "PURCHASE": "min_daily_budget_low_freq",
}  # anything else (LINK_CLICKS, POST_ENGAGEMENT, PAGE_LIKES, ...): min_daily_budget_high_freq


def minimum_budget_entry(currency: str) -> dict[str, Any]:
    """One ``MinimumBudget`` node: ``{"currency", "min_daily_budget_imp", ...}`` in minor units (ints)."""
    currency = currency.upper()
    rate = {**_MORE_UNITS_PER_USD, **UNITS_PER_USD}.get(currency, 1)
    share = 1.0 if currency in _FULL_MINIMUM_CURRENCIES else 0.5
    entry: dict[str, Any] = {"currency": currency}
    for kind in ("high_freq", "imp", "low_freq", "video_views"):
        major = math.ceil(round(_MINIMUM_USD[kind] * share * rate, 6))  # whole currency units
        entry[f"min_daily_budget_{kind}"] = major * minor_unit_offset(currency)
    return entry


def default_minimum_budgets(extra_currencies: Any = ()) -> dict[str, dict[str, Any]]:
    """``{currency: MinimumBudget}`` for every currency the fake knows (plus ``extra_currencies``)."""
    codes = (
        set(UNITS_PER_USD) | set(_MORE_UNITS_PER_USD) | ZERO_DECIMAL_CURRENCIES | {c.upper() for c in extra_currencies}
    )
    return {c: minimum_budget_entry(c) for c in sorted(codes)}


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

    def adsets_of(self, campaign_id: str) -> list[dict[str, Any]]:
        return [a for a in self.adsets if a.get("campaign_id") == str(campaign_id)]

    def insight(self, day: date | str, adset_id: str) -> InsightDay | None:
        d = as_date(day)
        return next((r for r in self.insights if r.day == d and r.adset_id == str(adset_id)), None)

    def is_cbo(self, adset_id: str) -> bool:
        """True when the ad set's campaign carries the budget (campaign budget optimisation)."""
        adset = self.adset(adset_id)
        camp = self.campaign(adset["campaign_id"]) if adset else None
        return bool(camp and (int(camp.get("daily_budget") or 0) or int(camp.get("lifetime_budget") or 0)))


def activity(
    event_type: str,
    when: datetime,
    obj: Mapping[str, Any],
    object_type: str,
    extra_data: str,
    tz_info: Any,
    translated: str,
    actor: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """One ``AdActivity`` record as Graph lists it on ``/act_<id>/activities``."""
    who = {**BUILDER_ACTOR, **(actor or {})}
    local_dt = when.astimezone(tz_info)
    return {
        "event_type": event_type,
        "event_time": graph_time(when.astimezone(UTC)),
        "object_id": obj["id"],
        "object_name": obj.get("name", ""),
        "object_type": object_type,
        "extra_data": extra_data,
        "actor_id": who["actor_id"],
        "actor_name": who["actor_name"],
        "application_id": who["application_id"],
        "application_name": who["application_name"],
        "translated_event_type": translated,
        "date_time_in_timezone": local_dt.strftime("%m/%d/%Y at %I:%M %p").replace(" 0", " "),
    }


# --------------------------------------------------------------------------- restating insight facts


def value_windows(counts: Mapping[str, int], unit_value: Decimal, currency: str) -> dict[str, Decimal]:
    q = quantum(currency)
    return {k: (unit_value * n).quantize(q, rounding=ROUND_HALF_UP) for k, n in counts.items()}


def restate_row(acct: AccountData, day: date | str, adset_id: str, **fields: Any) -> InsightDay:
    """Change stored numbers for one ad set-day (see ``FakeGraph.restate``); a day without a row gets one."""
    if acct.adset(adset_id) is None:
        raise KeyError(f"no ad set {adset_id} in {acct.account_id}")
    row = acct.insight(day, adset_id)
    if row is None:
        row = InsightDay(as_date(day), str(adset_id), Decimal(0), 0, 0, 0, 0)
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
            _restate_value(acct, row, key.removesuffix("_value"), value)
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


def _restate_value(acct: AccountData, row: InsightDay, event: str, value: Any) -> None:
    if isinstance(value, Mapping):
        row.event_values[event] = {k: Decimal(str(v)) for k, v in value.items()}
        return
    old = row.total_value(event)
    new = Decimal(str(value))
    counts = row.events.get(event, {})
    if old > 0:
        factor = new / old
        row.event_values[event] = {
            k: (Decimal(v) * factor).quantize(quantum(acct.currency), ROUND_HALF_UP)
            for k, v in row.event_values[event].items()
        }
    else:
        total = row.total(event) or 1
        unit = new / total
        row.event_values[event] = value_windows(counts or {"7d_click": 1}, unit, acct.currency)
