"""Synthetic input frames for the rule engine, so engine tests read like a table of cases.

A test describes audiences in media-buyer terms and an account benchmark::

    decisions, recs = run([aud("a1", type="BROAD", spend=20000, roas=3.6, purchases=40)],
                          account=account(roas=2.5, aov=1500))

and this module derives the frames `run_engine` reads, with the columns and dtypes of the
SQL models (sql/metrics/window_metrics.sql, account_benchmarks.sql, campaign_benchmarks.sql)
and of `audience_assets.sources.metadata_snapshot`.

Window columns are not invented one by one: each audience gets a day-by-day series
(days_ago 1..max(window, long window, 7)) shaped by its parameters (spend split by
acceleration, ROAS of the early and late part, long-window history), and every window
column is aggregated from that series with the SQL's formulas. So spend_1d/3d/7d, the
early/late halves, active days, dispersion, slope and long-window figures stay consistent.

By default each account also gets a "ballast" ad set: ineligible (1,000 spend, 1 purchase)
with a large daily budget, standing in for the rest of a real account so that the
account-wide daily increase cap (15 % of all daily budgets) does not block a lone SCALE.
Pass `ballast=None` to leave it out (the account-cap tests do).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any

import polars as pl

from audience_assets.engine.config import RulesConfig, load_config
from audience_assets.engine.pipeline import run_engine

AS_OF = date(2026, 11, 26)
ACCOUNT = "act_1"
CAMPAIGN = "c1"
BALLAST_ID = "zz_ballast"
DEFAULT_BALLAST_BUDGET = 100_000.0
CPC = 12.0  # clicks = spend / CPC when there are no purchases to derive them from
IMPRESSIONS_PER_CLICK = 80  # a CTR of 1.25 %

# Dtypes exactly as the SQL models / metadata snapshot produce them (checked against a demo DB).
WINDOW_SCHEMA: dict[str, pl.DataType] = {
    "decision_date": pl.Date,
    "account_id": pl.Utf8,
    "campaign_id": pl.Utf8,
    "campaign_name": pl.Utf8,
    "adset_id": pl.Utf8,
    "adset_name": pl.Utf8,
    "currency": pl.Utf8,
    "window_days": pl.Int32,
    "spend_1d": pl.Float64,
    "spend_3d": pl.Float64,
    "spend_7d": pl.Float64,
    "purchases_1d": pl.Float64,
    "purchases_3d": pl.Float64,
    "purchases_7d": pl.Float64,
    "revenue_1d": pl.Float64,
    "revenue_3d": pl.Float64,
    "revenue_7d": pl.Float64,
    "roas_1d": pl.Float64,
    "roas_3d": pl.Float64,
    "roas_7d": pl.Float64,
    "spend_window": pl.Float64,
    "purchases_window": pl.Float64,
    "revenue_window": pl.Float64,
    "impressions_window": pl.Decimal(38, 0),
    "clicks_window": pl.Decimal(38, 0),
    "roas_window": pl.Float64,
    "cpa_window": pl.Float64,
    "ctr_window": pl.Float64,
    "cvr_window": pl.Float64,
    "roas_dod_change": pl.Float64,
    "roas_slope": pl.Float64,
    "cpa_volatility": pl.Float64,
    "cpa_cv": pl.Float64,
    "spend_acceleration": pl.Float64,
    "spend_early": pl.Float64,
    "purchases_early": pl.Float64,
    "revenue_early": pl.Float64,
    "spend_late": pl.Float64,
    "purchases_late": pl.Float64,
    "revenue_late": pl.Float64,
    "spend_recent": pl.Float64,
    "purchases_recent": pl.Float64,
    "revenue_recent": pl.Float64,
    "active_days": pl.Int64,
    "purchase_dispersion": pl.Float64,
    "long_window_days": pl.Int32,
    "spend_long": pl.Float64,
    "purchases_long": pl.Float64,
    "revenue_long": pl.Float64,
    "roas_long": pl.Float64,
    "first_spend_date": pl.Date,
    "last_spend_date": pl.Date,
}

ACCOUNT_SCHEMA: dict[str, pl.DataType] = {
    "decision_date": pl.Date,
    "account_id": pl.Utf8,
    "currency": pl.Utf8,
    "audiences": pl.Int64,
    "active_audiences": pl.Int64,
    "spend_window": pl.Float64,
    "purchases_window": pl.Float64,
    "revenue_window": pl.Float64,
    "avg_roas": pl.Float64,
    "derived_cpa": pl.Float64,
    "avg_cvr": pl.Float64,
    "avg_order_value": pl.Float64,
    "median_audience_spend": pl.Float64,
    "avg_roas_long": pl.Float64,
    "avg_order_value_long": pl.Float64,
}

CAMPAIGN_SCHEMA: dict[str, pl.DataType] = {
    "decision_date": pl.Date,
    "account_id": pl.Utf8,
    "campaign_id": pl.Utf8,
    "campaign_name": pl.Utf8,
    "audiences": pl.Int64,
    "spend_window": pl.Float64,
    "purchases_window": pl.Float64,
    "revenue_window": pl.Float64,
    "avg_roas": pl.Float64,
}

METADATA_SCHEMA: dict[str, pl.DataType] = {
    "decision_date": pl.Date,
    "account_id": pl.Utf8,
    "adset_id": pl.Utf8,
    "adset_name": pl.Utf8,
    "campaign_id": pl.Utf8,
    "campaign_name": pl.Utf8,
    "audience_type": pl.Utf8,
    "lookalike_pct": pl.Float64,
    "source_quality": pl.Utf8,
    "launched_on": pl.Date,
    "daily_budget": pl.Float64,
    "last_budget_change_at": pl.Datetime("us"),
    "currency": pl.Utf8,
    "source": pl.Utf8,
}

HISTORY_SCHEMA: dict[str, pl.DataType] = {
    "decision_date": pl.Date,
    "account_id": pl.Utf8,
    "adset_id": pl.Utf8,
    "action": pl.Utf8,
}

_UNSET: Any = object()


# --------------------------------------------------------------------------- descriptions
@dataclass(frozen=True)
class Aud:
    """One audience (ad set) as a test describes it. Money in account currency units."""

    adset_id: str
    type: str | None = "LOOKALIKE"
    lookalike_pct: float | None = None
    spend: float = 20_000.0  # over the decision window
    roas: float = 3.0  # over the decision window (ignored when early_roas and late_roas are given)
    purchases: float | None = None  # default: revenue / account AOV, rounded
    change: float = 0.0  # late-part ROAS / early-part ROAS - 1
    early_roas: float | None = None
    late_roas: float | None = None
    accel: float = 0.0  # late-part daily spend / early-part daily spend - 1
    budget: float | None = 3_000.0  # metadata daily_budget (None = unknown)
    age: int | None = 30  # days since launch; None = no launched_on in the metadata
    last_change_hours: float | None = None  # metadata last_budget_change_at, hours before as_of
    long_spend: float | None = None  # over the long window (includes the decision window)
    long_roas: float | None = None
    long_purchases: float | None = None
    active_days: int | None = None  # override of the SQL column
    dispersion: float | None = None  # override of purchase_dispersion
    cvr: float | None = None  # purchases per click (default: account cvr)
    account: str = ACCOUNT
    campaign: str = CAMPAIGN
    name: str | None = None
    source_quality: str | None = None
    metadata: bool = True  # False: no metadata row at all
    extra: dict[str, Any] = field(default_factory=dict)  # raw overrides of window columns


def aud(adset_id: str, **kw: Any) -> Aud:
    """An audience; unknown keywords are window-column overrides (e.g. roas_1d=0.5)."""
    fields = set(Aud.__dataclass_fields__)
    extra = {k: kw.pop(k) for k in list(kw) if k not in fields}
    if "extra" in kw:
        extra = {**kw.pop("extra"), **extra}
    return Aud(adset_id, extra=extra, **kw)


@dataclass(frozen=True)
class Account:
    """An account benchmark row. `present=False` leaves the row out entirely."""

    account_id: str = ACCOUNT
    roas: float | None = 2.5
    aov: float | None = 1500.0
    cvr: float | None = 0.03
    median_spend: float | None = 20_000.0
    roas_long: float | None = _UNSET  # default: roas
    aov_long: float | None = _UNSET  # default: aov
    cpa: float | None = _UNSET  # default: aov / roas (what the SQL derives for a consistent account)
    currency: str = "INR"
    present: bool = True
    derived: bool = False  # True: every figure from the window rows, as account_benchmarks.sql does


def account(account_id: str = ACCOUNT, **kw: Any) -> Account:
    return Account(account_id, **kw)


def prior(adset_id: str, days_ago: int, action: str = "SCALE", account_id: str = ACCOUNT, as_of: date = AS_OF) -> dict:
    """A row of the engine's own decision history."""
    return {
        "decision_date": as_of - timedelta(days=days_ago),
        "account_id": account_id,
        "adset_id": adset_id,
        "action": action,
    }


@dataclass(frozen=True)
class Frames:
    window: pl.DataFrame
    account_bench: pl.DataFrame
    campaign_bench: pl.DataFrame
    metadata: pl.DataFrame
    history: pl.DataFrame
    as_of: date


# --------------------------------------------------------------------------- derivation
def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def _absorb(series: list[float], w: int, total: float) -> None:
    """Let the oldest active window day take the rounding remainder, so that the window sum
    (left to right, as window_row adds) is exactly `total`: thresholds can then be tested
    at their exact boundary (spend 3,000 against min_spend 3,000)."""
    active = [i for i in range(w) if series[i] > 0]
    if not active or total <= 0:
        return
    last = active[-1]
    prefix = sum(series[i] for i in range(w) if i != last)
    series[last] = total - prefix


def _daily_series(a: Aud, acct: Account, cfg: RulesConfig, n_days: int) -> tuple[list[float], list[float], list[float]]:
    """spend, revenue, purchases per days_ago 1..n_days (index 0 = yesterday)."""
    w = cfg.decision_window_days
    late = (w + 1) // 2
    long_days = cfg.long_window_days
    live = [a.age is None or d <= a.age for d in range(1, n_days + 1)]
    spend = [0.0] * n_days
    rev = [0.0] * n_days
    purch = [0.0] * n_days

    late_days = [d for d in range(1, late + 1) if live[d - 1]]
    early_days = [d for d in range(late + 1, w + 1) if live[d - 1]]
    weight = {d: 1.0 + a.accel for d in late_days} | {d: 1.0 for d in early_days}
    total_w = sum(weight.values())
    if a.spend > 0 and total_w == 0:
        raise ValueError(f"{a.adset_id}: spend {a.spend} but no live day in the window (age {a.age})")
    for d, wt in weight.items():
        spend[d - 1] = a.spend * wt / total_w if total_w else 0.0
    _absorb(spend, w, a.spend)
    s_late = sum(spend[d - 1] for d in late_days)
    s_early = sum(spend[d - 1] for d in early_days)

    if a.early_roas is not None and a.late_roas is not None:
        r_early, r_late = a.early_roas, a.late_roas
    elif s_early > 0 and s_late > 0:
        r_early = a.roas * a.spend / (s_early + s_late * (1.0 + a.change))
        r_late = r_early * (1.0 + a.change)
    else:
        r_early = r_late = a.roas
    for d in late_days:
        rev[d - 1] = spend[d - 1] * r_late
    for d in early_days:
        rev[d - 1] = spend[d - 1] * r_early
    if a.early_roas is None or a.late_roas is None:
        _absorb(rev, w, a.roas * a.spend)
    revenue = sum(rev[:w])

    aov = acct.aov or 1500.0
    total_p = float(round(revenue / aov)) if a.purchases is None else float(a.purchases)
    r_late_total = sum(rev[d - 1] for d in late_days)
    share_late = (r_late_total / revenue) if revenue > 0 else (s_late / a.spend if a.spend > 0 else 0.0)
    p_late = total_p * share_late
    if float(total_p).is_integer():
        p_late = float(round(p_late))
    p_early = total_p - p_late
    for d in late_days:
        purch[d - 1] = p_late / len(late_days)
    for d in early_days:
        purch[d - 1] = p_early / len(early_days)
    _absorb(purch, w, total_p)

    # Days before the window, up to the long window: default same daily pace and ROAS.
    pre_days = [d for d in range(w + 1, long_days + 1) if live[d - 1]]
    if pre_days:
        active = len(late_days) + len(early_days)
        pre_spend = (a.long_spend - a.spend) if a.long_spend is not None else a.spend / max(active, 1) * len(pre_days)
        long_spend = a.spend + pre_spend
        long_roas = a.long_roas if a.long_roas is not None else (revenue / a.spend if a.spend else 0.0)
        pre_rev = long_roas * long_spend - revenue
        if a.long_purchases is not None:
            pre_p = a.long_purchases - total_p
        else:
            unit = (revenue / total_p) if total_p else aov
            pre_p = float(round(pre_rev / unit)) if unit else 0.0
        if min(pre_spend, pre_rev, pre_p) < -1e-9:
            raise ValueError(f"{a.adset_id}: long-window figures smaller than the decision window's")
        for d in pre_days:
            spend[d - 1] = pre_spend / len(pre_days)
            rev[d - 1] = pre_rev / len(pre_days)
            purch[d - 1] = pre_p / len(pre_days)
    elif a.long_spend is not None or a.long_roas is not None or a.long_purchases is not None:
        raise ValueError(f"{a.adset_id}: long-window figures need an age beyond the decision window")
    return spend, rev, purch


def _stddev_samp(values: list[float]) -> float | None:
    if len(values) < 2:
        return None
    m = sum(values) / len(values)
    return math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))


def _regr_slope(ys: list[float], xs: list[float]) -> float | None:
    if len(ys) < 2:
        return None
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    vx = sum((x - mx) ** 2 for x in xs)
    if vx == 0:
        return None
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / vx


def window_row(a: Aud, acct: Account, cfg: RulesConfig, as_of: date) -> dict[str, Any]:
    """One row of window_metrics, aggregated from the audience's daily series as the SQL does."""
    w = cfg.decision_window_days
    late = (w + 1) // 2
    long_days = cfg.long_window_days
    n_days = max(w, long_days, 7)
    spend, rev, purch = _daily_series(a, acct, cfg, n_days)

    def tot(series: list[float], lo: int, hi: int) -> float:
        return float(sum(series[lo - 1 : hi]))

    def recent(series: list[float]) -> float:
        half_life = cfg.evidence_half_life_days
        return float(sum(series[d - 1] * 0.5 ** ((d - 1) / half_life) for d in range(1, long_days + 1)))

    s_w, p_w, r_w = tot(spend, 1, w), tot(purch, 1, w), tot(rev, 1, w)
    s_late, s_early = tot(spend, 1, late), tot(spend, late + 1, w)
    win_days = [d for d in range(1, w + 1) if spend[d - 1] > 0]
    daily_roas = {d: rev[d - 1] / spend[d - 1] for d in range(1, n_days + 1) if spend[d - 1] > 0}
    cvr = a.cvr if a.cvr is not None else (acct.cvr or 0.03)
    clicks = round(p_w / cvr) if p_w > 0 else round(s_w / CPC)
    impressions = clicks * IMPRESSIONS_PER_CLICK
    cpa_daily = [spend[d - 1] / purch[d - 1] for d in range(1, w + 1) if purch[d - 1] > 0]
    cpa_sd = _stddev_samp(cpa_daily)
    cpa_w = _ratio(s_w, p_w)
    if p_w > 0 and win_days:
        dispersion = 0.0
        for d in win_days:
            expected = spend[d - 1] * p_w / s_w
            dispersion += (purch[d - 1] - expected) ** 2 / expected
    else:
        dispersion = 0.0
    spend_days = [d for d in range(1, n_days + 1) if spend[d - 1] > 0]
    if a.age is not None and spend_days:
        first = as_of - timedelta(days=max(a.age, max(spend_days)))
    elif spend_days:
        first = as_of - timedelta(days=max(spend_days))
    else:
        first = None
    day1, day2 = daily_roas.get(1), daily_roas.get(2)
    row = {
        "decision_date": as_of,
        "account_id": a.account,
        "campaign_id": a.campaign,
        "campaign_name": f"Campaign {a.campaign}",
        "adset_id": a.adset_id,
        "adset_name": a.name or f"Audience {a.adset_id}",
        "currency": acct.currency,
        "window_days": w,
        "spend_1d": tot(spend, 1, 1),
        "spend_3d": tot(spend, 1, 3),
        "spend_7d": tot(spend, 1, 7),
        "purchases_1d": tot(purch, 1, 1),
        "purchases_3d": tot(purch, 1, 3),
        "purchases_7d": tot(purch, 1, 7),
        "revenue_1d": tot(rev, 1, 1),
        "revenue_3d": tot(rev, 1, 3),
        "revenue_7d": tot(rev, 1, 7),
        "roas_1d": _ratio(tot(rev, 1, 1), tot(spend, 1, 1)),
        "roas_3d": _ratio(tot(rev, 1, 3), tot(spend, 1, 3)),
        "roas_7d": _ratio(tot(rev, 1, 7), tot(spend, 1, 7)),
        "spend_window": s_w,
        "purchases_window": p_w,
        "revenue_window": r_w,
        "impressions_window": impressions,
        "clicks_window": clicks,
        "roas_window": _ratio(r_w, s_w),
        "cpa_window": cpa_w,
        "ctr_window": _ratio(clicks, impressions),
        "cvr_window": _ratio(p_w, clicks),
        "roas_dod_change": (day1 / day2 - 1) if day1 is not None and day2 else None,
        "roas_slope": _regr_slope([daily_roas[d] for d in win_days], [-d for d in win_days]),
        "cpa_volatility": cpa_sd,
        "cpa_cv": (cpa_sd / cpa_w) if cpa_sd is not None and cpa_w else None,
        "spend_acceleration": ((s_late / late) / (s_early / (w - late)) - 1) if s_early > 0 and w > late else None,
        "spend_early": s_early,
        "purchases_early": tot(purch, late + 1, w),
        "revenue_early": tot(rev, late + 1, w),
        "spend_late": s_late,
        "purchases_late": tot(purch, 1, late),
        "revenue_late": tot(rev, 1, late),
        "spend_recent": recent(spend),
        "purchases_recent": recent(purch),
        "revenue_recent": recent(rev),
        "active_days": len(win_days) if a.active_days is None else a.active_days,
        "purchase_dispersion": dispersion if a.dispersion is None else a.dispersion,
        "long_window_days": long_days,
        "spend_long": tot(spend, 1, long_days),
        "purchases_long": tot(purch, 1, long_days),
        "revenue_long": tot(rev, 1, long_days),
        "roas_long": _ratio(tot(rev, 1, long_days), tot(spend, 1, long_days)),
        "first_spend_date": first,
        "last_spend_date": (as_of - timedelta(days=min(spend_days))) if spend_days else None,
    }
    unknown = set(a.extra) - set(row)
    if unknown:
        raise ValueError(f"{a.adset_id}: unknown window columns {sorted(unknown)}")
    row.update(a.extra)
    return row


def daily_rows(a: Aud, acct: Account, cfg: RulesConfig, as_of: date) -> list[dict[str, Any]]:
    """The audience's days in the shape of the daily_metrics model (to check the builder
    against sql/metrics/window_metrics.sql). Days beyond the long window repeat the oldest
    day's figures back to the launch, so first_spend_date matches too."""
    w = cfg.decision_window_days
    n_days = max(w, cfg.long_window_days, 7)
    spend, rev, purch = _daily_series(a, acct, cfg, n_days)
    total_days = n_days if a.age is None else a.age
    cvr = a.cvr if a.cvr is not None else (acct.cvr or 0.03)
    p_w, s_w = sum(purch[:w]), sum(spend[:w])
    clicks_w = round(p_w / cvr) if p_w > 0 else round(s_w / CPC)
    out = []
    cum_share, given = 0.0, 0
    for d in range(1, total_days + 1):
        i = min(d, n_days) - 1
        s, r, p = spend[i], rev[i], purch[i]
        if d <= w:
            cum_share += (s / s_w) if s_w else 0.0
            clicks = round(cum_share * clicks_w) - given
            given += clicks
        else:
            clicks = round(s / CPC)
        impressions = clicks * IMPRESSIONS_PER_CLICK
        out.append(
            {
                "account_id": a.account,
                "campaign_id": a.campaign,
                "campaign_name": f"Campaign {a.campaign}",
                "adset_id": a.adset_id,
                "adset_name": a.name or f"Audience {a.adset_id}",
                "date": as_of - timedelta(days=d),
                "spend": s,
                "impressions": impressions,
                "clicks": clicks,
                "purchases": p,
                "revenue": r,
                "currency": acct.currency,
                "roas": _ratio(r, s),
                "cpa": _ratio(s, p),
                "ctr": _ratio(clicks, impressions),
                "cvr": _ratio(p, clicks),
            }
        )
    return out


DAILY_SCHEMA: dict[str, pl.DataType] = {
    "account_id": pl.Utf8,
    "campaign_id": pl.Utf8,
    "campaign_name": pl.Utf8,
    "adset_id": pl.Utf8,
    "adset_name": pl.Utf8,
    "date": pl.Date,
    "spend": pl.Float64,
    "impressions": pl.Int64,
    "clicks": pl.Int64,
    "purchases": pl.Float64,
    "revenue": pl.Float64,
    "currency": pl.Utf8,
    "roas": pl.Float64,
    "cpa": pl.Float64,
    "ctr": pl.Float64,
    "cvr": pl.Float64,
}


def daily_frame(auds: list[Aud], cfg: RulesConfig | None = None, as_of: date = AS_OF) -> pl.DataFrame:
    cfg = cfg or RulesConfig()
    rows_ = [r for a in auds for r in daily_rows(a, Account(a.account), cfg, as_of)]
    return pl.DataFrame(rows_, schema=DAILY_SCHEMA)


def metadata_row(a: Aud, acct: Account, as_of: date) -> dict[str, Any]:
    known = a.type is not None
    change = (
        datetime.combine(as_of, datetime.min.time()) - timedelta(hours=a.last_change_hours)
        if a.last_change_hours is not None
        else None
    )
    return {
        "decision_date": as_of,
        "account_id": a.account,
        "adset_id": a.adset_id,
        "adset_name": a.name or f"Audience {a.adset_id}",
        "campaign_id": a.campaign,
        "campaign_name": f"Campaign {a.campaign}",
        # metadata_snapshot left-joins the source's audience rows: an unknown ad set gets nulls.
        "audience_type": a.type,
        "lookalike_pct": a.lookalike_pct if known else None,
        "source_quality": a.source_quality if known else None,
        "launched_on": (as_of - timedelta(days=a.age)) if known and a.age is not None else None,
        "daily_budget": a.budget if known else None,
        "last_budget_change_at": change if known else None,
        "currency": acct.currency,
        "source": "test",
    }


def account_row(acct: Account, window: pl.DataFrame, as_of: date) -> dict[str, Any]:
    mine = window.filter(pl.col("account_id") == acct.account_id)
    roas_long = acct.roas if acct.roas_long is _UNSET else acct.roas_long
    aov_long = acct.aov if acct.aov_long is _UNSET else acct.aov_long
    if acct.cpa is _UNSET:
        cpa = (acct.aov / acct.roas) if acct.aov and acct.roas else None
    else:
        cpa = acct.cpa
    return {
        "decision_date": as_of,
        "account_id": acct.account_id,
        "currency": acct.currency,
        "audiences": mine.height,
        "active_audiences": mine.filter(pl.col("spend_window") > 0).height,
        "spend_window": float(mine["spend_window"].sum()),
        "purchases_window": float(mine["purchases_window"].sum()),
        "revenue_window": float(mine["revenue_window"].sum()),
        "avg_roas": acct.roas,
        "derived_cpa": cpa,
        "avg_cvr": acct.cvr,
        "avg_order_value": acct.aov,
        "median_audience_spend": acct.median_spend,
        "avg_roas_long": roas_long,
        "avg_order_value_long": aov_long,
    }


def derive_account_benchmarks(window: pl.DataFrame) -> pl.DataFrame:
    """account_benchmarks.sql over a window frame (for checking the builder's own consistency)."""
    nz = lambda num, den: pl.when(pl.col(den).sum() != 0).then(pl.col(num).sum() / pl.col(den).sum())  # noqa: E731
    return (
        window.group_by("decision_date", "account_id")
        .agg(
            pl.col("currency").first(),
            pl.len().cast(pl.Int64).alias("audiences"),
            (pl.col("spend_window") > 0).sum().cast(pl.Int64).alias("active_audiences"),
            pl.col("spend_window").sum(),
            pl.col("purchases_window").sum(),
            pl.col("revenue_window").sum(),
            nz("revenue_window", "spend_window").alias("avg_roas"),
            nz("spend_window", "purchases_window").alias("derived_cpa"),
            pl.when(pl.col("clicks_window").cast(pl.Float64).sum() != 0)
            .then(pl.col("purchases_window").sum() / pl.col("clicks_window").cast(pl.Float64).sum())
            .alias("avg_cvr"),
            nz("revenue_window", "purchases_window").alias("avg_order_value"),
            pl.col("spend_window").filter(pl.col("spend_window") > 0).median().alias("median_audience_spend"),
            nz("revenue_long", "spend_long").alias("avg_roas_long"),
            nz("revenue_long", "purchases_long").alias("avg_order_value_long"),
        )
        .select(list(ACCOUNT_SCHEMA))
        .cast(ACCOUNT_SCHEMA)
        .sort("account_id")
    )


def derive_campaign_benchmarks(window: pl.DataFrame) -> pl.DataFrame:
    """campaign_benchmarks.sql over a window frame."""
    return (
        window.group_by("decision_date", "account_id", "campaign_id")
        .agg(
            pl.col("campaign_name").first(),
            pl.len().cast(pl.Int64).alias("audiences"),
            pl.col("spend_window").sum(),
            pl.col("purchases_window").sum(),
            pl.col("revenue_window").sum(),
        )
        .with_columns(
            pl.when(pl.col("spend_window") != 0)
            .then(pl.col("revenue_window") / pl.col("spend_window"))
            .alias("avg_roas")
        )
        .select(list(CAMPAIGN_SCHEMA))
        .cast(CAMPAIGN_SCHEMA)
        .sort("account_id", "campaign_id")
    )


def ballast(account_id: str = ACCOUNT, budget: float = DEFAULT_BALLAST_BUDGET) -> Aud:
    """The rest of a real account: an ineligible ad set that only contributes daily budget."""
    return aud(
        f"{BALLAST_ID}_{account_id}" if account_id != ACCOUNT else BALLAST_ID,
        type="LOOKALIKE",
        lookalike_pct=5.0,
        spend=1000.0,
        roas=2.0,
        purchases=1,
        budget=budget,
        age=60,
        account=account_id,
        campaign="c_ballast",
    )


def build(
    auds: list[Aud],
    accounts: list[Account] | Account | None = None,
    history: list[dict] | None = None,
    cfg: RulesConfig | None = None,
    as_of: date = AS_OF,
    ballast_budget: float | None = DEFAULT_BALLAST_BUDGET,
) -> Frames:
    """The five input frames of run_engine for these audiences and account benchmarks."""
    cfg = cfg or RulesConfig()
    if isinstance(accounts, Account):
        accounts = [accounts]
    accts = {a.account_id: a for a in (accounts or [])}
    for a in auds:
        accts.setdefault(a.account, Account(a.account))
    auds = list(auds)
    if ballast_budget is not None:
        auds += [ballast(acct_id, ballast_budget) for acct_id in accts]
    ids = [a.adset_id for a in auds]
    if len(set(ids)) != len(ids):
        raise ValueError(f"duplicate adset ids in {ids}")
    window = pl.DataFrame([window_row(a, accts[a.account], cfg, as_of) for a in auds], schema=WINDOW_SCHEMA)
    window = window.sort("account_id", "adset_id")
    account_bench = pl.DataFrame(
        [account_row(x, window, as_of) for x in accts.values() if x.present and not x.derived], schema=ACCOUNT_SCHEMA
    )
    derived = [x.account_id for x in accts.values() if x.present and x.derived]
    if derived:
        from_sql = derive_account_benchmarks(window.filter(pl.col("account_id").is_in(derived)))
        account_bench = pl.concat([account_bench, from_sql])
    account_bench = account_bench.sort("account_id")
    metadata = pl.DataFrame(
        [metadata_row(a, accts[a.account], as_of) for a in auds if a.metadata], schema=METADATA_SCHEMA
    ).sort("account_id", "adset_id")
    hist = pl.DataFrame(history or [], schema=HISTORY_SCHEMA)
    return Frames(window, account_bench, derive_campaign_benchmarks(window), metadata, hist, as_of)


def config(**overrides: Any) -> RulesConfig:
    """Rules with per-run overrides, merged the way the CLI and resources merge them."""
    return load_config(None, overrides) if overrides else RulesConfig()


def run_frames(frames: Frames, cfg: RulesConfig | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    return run_engine(
        frames.window,
        frames.account_bench,
        frames.campaign_bench,
        frames.metadata,
        frames.history,
        cfg or RulesConfig(),
        frames.as_of,
    )


def run(
    auds: list[Aud] | Aud,
    accounts: list[Account] | Account | None = None,
    history: list[dict] | None = None,
    cfg: RulesConfig | None = None,
    as_of: date = AS_OF,
    ballast_budget: float | None = DEFAULT_BALLAST_BUDGET,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """run_engine over synthetic frames: (decisions, recommendations)."""
    if isinstance(auds, Aud):
        auds = [auds]
    cfg = cfg or RulesConfig()
    frames = build(auds, accounts, history, cfg, as_of, ballast_budget)
    return run_frames(frames, cfg)


def rows(decisions: pl.DataFrame, key: str = "adset_id") -> dict[str, dict[str, Any]]:
    """Decision (or recommendation, key="audience_id") rows by id."""
    return {r[key]: r for r in decisions.iter_rows(named=True)}


def decide_one(
    a: Aud, accounts: list[Account] | Account | None = None, cfg: RulesConfig | None = None, **kw: Any
) -> dict[str, Any]:
    """The decision row of a single audience."""
    decisions, _ = run([a], accounts, cfg=cfg, **kw)
    return rows(decisions)[a.adset_id]


def with_(a: Aud, **kw: Any) -> Aud:
    return replace(a, **kw)


_TABLE_CACHE: dict[str, dict[str, dict[str, Any]]] = {}


def decide_table(
    cases: list[tuple[str, Aud, Account | None]],
    cfg: RulesConfig | None = None,
    ballast_budget: float | None = DEFAULT_BALLAST_BUDGET,
) -> dict[str, dict[str, Any]]:
    """Decision rows for a whole table of cases in ONE engine run (fast), keyed by case id.

    Each case gets its own account (`act_<case id>`, with the case's Account settings and its
    own ballast), so nothing account-wide (benchmarks, the daily increase cap) is shared between
    cases: the result is what `decide_one` would give for each case on its own. A target CPA
    configured for act_1 applies to every case's account. Results are cached per table."""
    cfg = cfg or RulesConfig()
    key = repr((cases, cfg.config_hash(), ballast_budget))
    if key not in _TABLE_CACHE:
        auds, accts = [], []
        for case_id, a, acct in cases:
            acct_id = f"act_{case_id}"
            auds.append(replace(a, adset_id=case_id, account=acct_id))
            accts.append(replace(acct or Account(), account_id=acct_id))
        target = cfg.target_cpa.get(ACCOUNT)
        if target is not None:
            cfg = cfg.model_copy(update={"target_cpa": {**cfg.target_cpa, **{x.account_id: target for x in accts}}})
        decisions, _ = run(auds, accts, cfg=cfg, ballast_budget=ballast_budget)
        _TABLE_CACHE[key] = {case_id: rows(decisions)[case_id] for case_id, _, _ in cases}
    return _TABLE_CACHE[key]
