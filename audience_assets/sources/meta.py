"""The Meta Marketing API source: which days to pull per account, and the API's rows in the raw shapes.

The SDK adapter (`integrations/meta.py`) makes the requests; this module decides what to ask
for and turns the answers into the source contract with pure polars transforms.

Purchases come from ONE canonical action type chosen by a configurable priority (never a sum of
Meta's overlapping purchase types), read from `actions` and `action_values` with the same type;
the raw arrays are kept as JSON for audit. Budgets arrive in the currency's minor unit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import polars as pl

from audience_assets.engine.execution import from_minor
from audience_assets.sources import AUDIENCE_SCHEMA, RAW_COLUMNS, RAW_INSIGHTS_API, empty_days

DEFAULT_PURCHASE_PRIORITY = (
    "omni_purchase",
    "offsite_conversion.fb_pixel_purchase",
    "purchase",
    "onsite_web_purchase",
    "onsite_conversion.purchase",
    "app_custom_event.fb_mobile_purchase",
)

# Per-window keys ride along with "value" when windows are requested; kept in the audit JSON.
ATTRIBUTION_KEYS = ("1d_click", "7d_click", "28d_click", "1d_view", "1d_ev")
_ACTIONS = pl.List(pl.Struct({"action_type": pl.Utf8, "value": pl.Utf8, **{k: pl.Utf8 for k in ATTRIBUTION_KEYS}}))
INSIGHT_SCHEMA = {
    "account_id": pl.Utf8,
    "account_currency": pl.Utf8,
    "campaign_id": pl.Utf8,
    "campaign_name": pl.Utf8,
    "adset_id": pl.Utf8,
    "adset_name": pl.Utf8,
    "date_start": pl.Utf8,
    "spend": pl.Utf8,
    "impressions": pl.Utf8,
    "clicks": pl.Utf8,
    "inline_link_clicks": pl.Utf8,
    "reach": pl.Utf8,
    "frequency": pl.Utf8,
    "actions": _ACTIONS,
    "action_values": _ACTIONS,
    "purchase_roas": _ACTIONS,
}


def budget_from_minor(value: Any, currency: str) -> float | None:
    """A Meta budget string in minor units -> currency units; "0" or empty means the ad set has none."""
    return None if value in (None, "", "0") else from_minor(value, currency)


def _canonical(list_col: str, priority: tuple[str, ...]) -> pl.Expr:
    """The value of the highest-priority purchase type present in an actions list (0 when none)."""
    rank = {t: i for i, t in enumerate(priority)}
    key = pl.element().struct.field("action_type").replace_strict(rank, default=len(rank), return_dtype=pl.Int32)
    first = pl.col(list_col).list.eval(pl.element().sort_by(key).first()).list.first()
    return pl.when(first.struct.field("action_type").is_in(list(priority))).then(first)


def insights_frame(rows: list[dict[str, Any]], account_id: str, priority: tuple[str, ...]) -> pl.DataFrame:
    """Daily ad-set insight rows (numbers as strings, nested action lists) -> the raw insights shape."""
    frame = pl.from_dicts(rows, schema=INSIGHT_SCHEMA) if rows else pl.DataFrame(schema=INSIGHT_SCHEMA)
    purchase = _canonical("actions", priority)
    chosen_type = purchase.struct.field("action_type")

    def num(col: str, dtype: pl.DataType = pl.Float64) -> pl.Expr:
        return pl.col(col).cast(pl.Float64, strict=False).fill_null(0.0).cast(dtype)

    out = frame.with_columns(
        pl.lit(account_id).alias("account_id"),
        pl.col("date_start").str.to_date("%Y-%m-%d").alias("date"),
        num("spend").alias("spend"),
        num("impressions", pl.Int64).alias("impressions"),
        num("clicks", pl.Int64).alias("clicks"),
        num("inline_link_clicks", pl.Int64).alias("inline_link_clicks"),
        num("reach", pl.Int64).alias("reach"),
        num("frequency").alias("frequency"),
        purchase.struct.field("value").cast(pl.Float64, strict=False).fill_null(0.0).alias("purchases"),
        chosen_type.alias("purchase_action_type"),
        pl.col("account_currency").str.to_uppercase().alias("currency"),
        _json("actions").alias("actions_json"),
        _json("action_values").alias("action_values_json"),
        _json("purchase_roas").alias("purchase_roas_json"),
    )
    # The value comes from action_values under the very type the count was read from.
    values = (
        frame.with_row_index("_row")
        .select("_row", "action_values")
        .explode("action_values")
        .unnest("action_values")
        .select("_row", "action_type", pl.col("value").cast(pl.Float64, strict=False).alias("purchase_value"))
        .drop_nulls("action_type")
        .unique(subset=["_row", "action_type"], keep="first")
    )
    out = (
        out.with_row_index("_row")
        .join(values, left_on=["_row", "purchase_action_type"], right_on=["_row", "action_type"], how="left")
        .with_columns(pl.col("purchase_value").fill_null(0.0))
    )
    # One row per ad-set day: a row the API repeats (a page read twice) keeps its last copy. Files are
    # checked for duplicates instead, so raw_insights never needs deduplicating.
    return (
        out.select(*RAW_COLUMNS, *RAW_INSIGHTS_API)
        .unique(subset=["account_id", "adset_id", "date"], keep="last", maintain_order=True)
        .sort("adset_id", "date")
    )


def _json(col: str) -> pl.Expr:
    """The raw action array as JSON text, kept for audit."""
    items = pl.col(col).list.eval(pl.element().struct.json_encode()).list.join(",")
    return pl.when(pl.col(col).is_not_null()).then(pl.format("[{}]", items))


# Audience metadata ------------------------------------------------------------------------------

_PCT = re.compile(r"(\d+(?:\.\d+)?)\s*%")


def _quality(name: str) -> str | None:
    n = name.lower()
    if "purchase" in n or "buyer" in n:
        return "PURCHASERS"
    if "add to cart" in n or "add_to_cart" in n or re.search(r"\batc\b", n):
        return "ATC"
    if "view" in n or re.search(r"\bvc\b", n) or "visitor" in n:
        return "VC"
    return None


def audience_type(targeting: dict[str, Any] | None) -> tuple[str, float | None, str | None]:
    """(type, lookalike %, source quality) from a targeting spec, as DOMAIN.md describes."""
    t = targeting or {}
    audiences = list(t.get("custom_audiences") or [])
    for ca in audiences:
        name = str(ca.get("name", ""))
        spec = ca.get("lookalike_spec") or {}
        if ca.get("subtype") == "LOOKALIKE" or spec or "lookalike" in name.lower():
            ratio = spec.get("ratio")
            if ratio is not None:
                pct = float(ratio) * 100 if float(ratio) <= 1 else float(ratio)
            else:
                m = _PCT.search(name)
                pct = float(m.group(1)) if m else None
            origin = " ".join(str(o.get("name", "")) for o in spec.get("origin", []) if isinstance(o, dict))
            return "LOOKALIKE", pct, _quality(origin or name)
    if audiences:
        return "CUSTOM", None, _quality(" ".join(str(ca.get("name", "")) for ca in audiences))
    for spec in t.get("flexible_spec") or []:
        if any(spec.get(k) for k in ("interests", "behaviors", "life_events", "industries", "work_positions")):
            return "INTEREST", None, None
    if t.get("interests") or t.get("behaviors"):
        return "INTEREST", None, None
    return "BROAD", None, None


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    for fmt in ("%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S.%f%z"):
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            continue
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def audiences_frame(
    adsets: list[dict[str, Any]],
    campaigns: list[dict[str, Any]],
    account: dict[str, Any],
    budget_changes: list[dict[str, Any]],
) -> pl.DataFrame:
    """One row per ad set in the audiences shape, with the API-only metadata."""
    currency = str(account.get("currency") or "USD").upper()
    zone = _zone(account.get("timezone_name"))
    camp = {str(c["id"]): c for c in campaigns}
    last_change: dict[str, datetime] = {}
    for ev in budget_changes:
        when = _parse_time(ev.get("event_time"))
        obj = str(ev.get("object_id") or "")
        if when is None or not obj:
            continue
        when = when.astimezone(UTC).replace(tzinfo=None)
        last_change[obj] = max(last_change.get(obj, when), when)
    records = []
    for a in adsets:
        kind, pct, quality = audience_type(a.get("targeting"))
        c = camp.get(str(a.get("campaign_id")), {})
        own_budget = budget_from_minor(a.get("daily_budget"), currency)
        own_lifetime = budget_from_minor(a.get("lifetime_budget"), currency)
        # An ad set with no budget of its own spends its campaign's (CBO / Advantage+ campaign budget).
        cbo = own_budget is None and own_lifetime is None
        created = _parse_time(a.get("created_time"))
        learning = a.get("learning_stage_info") or {}
        records.append(
            {
                "adset_id": str(a["id"]),
                "audience_type": kind,
                "lookalike_pct": pct,
                "source_quality": quality,
                "launched_on": created.astimezone(zone).date() if created else None,
                "daily_budget": own_budget,
                "last_budget_change_at": last_change.get(str(a["id"])),
                "effective_status": a.get("effective_status") or a.get("status"),
                "bid_strategy": a.get("bid_strategy") or c.get("bid_strategy"),
                "is_cbo": bool(cbo),
                "lifetime_budget": own_lifetime,
                "learning_stage": learning.get("status"),
            }
        )
    return pl.DataFrame(records, schema=AUDIENCE_SCHEMA)


def apply_overrides(derived: pl.DataFrame, overrides: pl.DataFrame | None) -> pl.DataFrame:
    """A user's audiences mapping (same contract as audiences.csv) wins over derived values."""
    if overrides is None or overrides.height == 0:
        return derived
    cols = [
        c
        for c in ("audience_type", "lookalike_pct", "source_quality", "launched_on", "daily_budget")
        if c in overrides.columns
    ]
    joined = derived.join(overrides.select("adset_id", *cols), on="adset_id", how="left", suffix="_user")
    return joined.with_columns([pl.coalesce(f"{c}_user", c).alias(c) for c in cols]).drop([f"{c}_user" for c in cols])


def today_in(zone_name: str | None) -> date:
    """Today in an account's timezone: a day is the account's day."""
    return datetime.now(_zone(zone_name)).date()


@dataclass(frozen=True)
class MetaExtract:
    """One Meta load: rows and replaced days of the accounts that succeeded, and the failures."""

    insights: pl.DataFrame | None
    days: pl.DataFrame
    audiences: pl.DataFrame
    accounts: dict[str, dict]
    failures: dict[str, str]
    full_history: dict[str, bool]


def pull_range(
    as_of: date, today: date, stored: tuple[date, date] | None, lookback_days: int, initial_days: int
) -> tuple[date, date, bool]:
    """(since, until, full history) for one account.

    A new account gets `initial_days`; a known one re-pulls the lookback window, reaching back
    further when runs were missed so no gap is left. A day is pulled only once it is over in the
    account's timezone.
    """
    until = min(as_of, today) - timedelta(days=1)
    if stored is None:
        return until - timedelta(days=initial_days - 1), until, True
    window_start = until - timedelta(days=lookback_days - 1) if lookback_days else until
    return min(window_start, stored[1] + timedelta(days=1)), until, False


def extract_meta(
    client,
    account_ids: list[str],
    as_of: date,
    stored: dict[str, tuple[date, date]],
    lookback_days: int,
    initial_days: int,
    purchase_priority: tuple[str, ...],
    with_insights: bool = True,
    with_metadata: bool = True,
) -> MetaExtract:
    """Pull each account through `client` (the SDK adapter); one account's failure keeps the others' rows.

    `stored` holds each account's first and last stored day in the warehouse.
    """
    frames, day_frames, audience_frames = [], [], []
    accounts, failures, full = {}, {}, {}
    for act in account_ids:
        try:
            info = client.account(act)
            accounts[act] = info
            if with_insights:
                since, until, full[act] = pull_range(
                    as_of, today_in(info.get("timezone_name")), stored.get(act), lookback_days, initial_days
                )
                if since <= until:
                    frames.append(insights_frame(client.insights(act, since, until), act, purchase_priority))
                    day_frames.append(
                        pl.DataFrame({"account_id": [act]})
                        .with_columns(pl.date_ranges(pl.lit(since), pl.lit(until)).alias("date"))
                        .explode("date")
                    )
            if with_metadata:
                changes = client.budget_changes(act, as_of - timedelta(days=30))
                audience_frames.append(
                    audiences_frame(client.adsets(act), client.campaigns(act), info, changes).with_columns(
                        pl.lit(act).alias("account_id")
                    )
                )
        except Exception as err:  # noqa: BLE001 - recorded per account and raised after the others are saved
            failures[act] = client.redact(f"{type(err).__name__}: {err}")
    insights = pl.concat(frames, how="vertical_relaxed") if frames else None
    days = pl.concat(day_frames) if day_frames else empty_days()
    audiences = pl.concat(audience_frames, how="vertical_relaxed") if audience_frames else pl.DataFrame()
    return MetaExtract(insights, days, audiences, accounts, failures, full)
