"""``build_account``: deterministic fake ad accounts covering every audience kind, budget type and history."""

from __future__ import annotations

import json
import random
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from .accounts import (
    CURRENCY_COUNTRY,
    CURRENCY_TIMEZONE,
    DEFAULT_END_DATE,
    DEFAULT_VALUE_WINDOWS,
    PURCHASE_ACTION_TYPES,
    UNITS_PER_USD,
    AccountData,
    InsightDay,
    activity,
    budget_extra_data,
    graph_time,
    minor_unit_offset,
    quantum,
    tz,
    value_windows,
)


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
    tz_name = timezone_name or CURRENCY_TIMEZONE.get(currency, "UTC")
    zone = tz(tz_name)
    cc = country or CURRENCY_COUNTRY.get(currency, "US")
    units = UNITS_PER_USD.get(currency, 1)
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
        return datetime(d.year, d.month, d.day, hour, minute, tzinfo=zone)

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
                "created_time": graph_time(camp_created),
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
            "created_time": graph_time(created),
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
                adset["end_time"] = graph_time(local(end + timedelta(days=30), 23, 59))
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
            spend = Decimal(str(budget_major * rng.uniform(0.7, 1.1))).quantize(quantum(currency), ROUND_HALF_UP)
            spend_usd = float(spend) / units
            impressions = max(1, int(spend_usd / cpm_usd * 1000))
            clicks = int(round(impressions * ctr * rng.uniform(0.85, 1.15)))
            link = int(round(clicks * link_share))
            lpv = int(round(link * 0.75))
            atc = int(round(lpv * rng.uniform(0.06, 0.12)))
            ic = int(round(atc * 0.5))
            purchases = int(round(link * cvr * rng.uniform(0.6, 1.4)))
            aov = Decimal(str(aov_usd * units * rng.uniform(0.85, 1.15))).quantize(quantum(currency), ROUND_HALF_UP)
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
                        "add_to_cart": value_windows(events["add_to_cart"], aov, currency),
                        "purchase": value_windows(events["purchase"], aov, currency),
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
                activity(
                    "update_ad_set_budget",
                    local(mid, 10 + i % 8, 15),
                    adset,
                    "ADSET",
                    budget_extra_data(old, daily, currency),
                    zone,
                    "Ad set budget updated",
                )
            )
        if adset["status"] == "PAUSED":
            acct.activities.append(
                activity(
                    "update_ad_set_run_status",
                    local(end - timedelta(days=2), 9, 0),
                    adset,
                    "ADSET",
                    json.dumps({"old_value": "Active", "new_value": "Paused"}, separators=(",", ":")),
                    zone,
                    "Ad set run status updated",
                )
            )
    acct.activities.append(
        activity(
            "update_campaign_budget",
            local(mid - timedelta(days=1), 16, 40),
            campaigns[2],
            "CAMPAIGN",
            budget_extra_data(_nice(cbo_budget / 1.25 / offset, budget_step) * offset, cbo_budget, currency),
            zone,
            "Campaign budget updated",
        )
    )
    acct.activities.sort(key=lambda a: a["event_time"])
    return acct
