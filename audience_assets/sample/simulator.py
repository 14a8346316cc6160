"""Seeded simulator of a realistic Meta ad account (INR), as polars frames.

The sample drives demos, tests and benchmarks: every branch of the rule engine
(winners, losers, fatigue, improvement, volatility, new launches, tiny spenders,
budget ramps, stalled delivery, recent budget changes) shows up in the default
120 ad sets x 75 days. Everything is vectorised over the ad-set x day grid so
20,000 ad sets x 30 days generate in well under a second.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

__all__ = [
    "ACCOUNT_MEAN_ROAS",
    "ARCHETYPES",
    "SAMPLE_DAYS",
    "SAMPLE_END_DATE",
    "SampleAccount",
    "simulate_account",
    "write_sample_csvs",
]

SAMPLE_END_DATE = date(2026, 11, 25)  # last complete day of the embedded sample
SAMPLE_DAYS = 75  # days of history in the embedded sample
SAMPLE_ACCOUNT = "act_1001"  # the embedded sample's ad account
ACCOUNT_MEAN_ROAS = 2.5
CURRENCY = "INR"
MAX_ADSETS = 1_000_000  # keeps generated ids at 15 digits, so string order == numeric order

# Archetypes in assignment priority (small accounts get the first ones first) with
# their share of ad sets; the remainder is "steady".
ARCHETYPES: tuple[tuple[str, float], ...] = (
    ("fatigue", 0.15),
    ("new", 0.04),
    ("tiny", 0.08),
    ("improving", 0.08),
    ("volatile", 0.08),
    ("stalled", 0.03),
    ("ramp", 0.03),
)
_STEADY = "steady"
_ARCH_NAMES: tuple[str, ...] = tuple(a for a, _ in ARCHETYPES) + (_STEADY,)
_A = {name: code for code, name in enumerate(_ARCH_NAMES)}
# Youngest possible age (days since launch, at end_date) per archetype, so that a trend
# has the history it needs to be visible; stalled audiences are "proven" (> 30 days).
_MIN_AGE = np.array([21, 0, 10, 14, 10, 31, 10, 2])

# Performance tiers relative to the account mean ROAS: a quarter clearly above 1.2x,
# a quarter clearly below 0.9x, half in between (means average to ~1.0).
_TIERS = ("WINNER", "LOSER", "AVERAGE")
_TIER_PATTERN = np.array([0, 1, 2, 2])  # cycled within each archetype -> exact 25/25/50
_TIER_LOW = np.array([1.30, 0.30, 0.93])
_TIER_HIGH = np.array([1.75, 0.70, 1.08])

_AUDIENCE_TYPES = np.array(["BROAD", "INTEREST", "LOOKALIKE", "CUSTOM"], dtype=object)
_AUDIENCE_P = np.array([0.20, 0.35, 0.30, 0.15])
_LLA_PCTS = np.array([1.0, 2.0, 3.0, 5.0, 10.0])
_LLA_P = np.array([0.50, 0.15, 0.15, 0.10, 0.10])
_SOURCES = np.array(["PURCHASERS", "ATC", "VC"], dtype=object)
_SOURCE_P = np.array([0.50, 0.30, 0.20])
_SOURCE_LABEL = ("Purchasers", "ATC", "VC")
_CUSTOM_WINDOW = ("180d", "30d", "14d")
_BROAD_LABELS = ("Broad", "Broad Advantage+ Audience", "Broad Open Targeting")
_INTEREST_LABELS = (
    "Interest Ethnic Wear",
    "Interest Yoga & Fitness",
    "Interest Online Shopping",
    "Interest Home Decor",
    "Interest Skincare",
    "Interest Cricket",
    "Interest Bollywood",
    "Interest Travel",
    "Interest Cooking",
    "Interest Gadgets",
    "Interest Engaged Shoppers",
    "Interest Weddings",
)
_GEO_AGE = ("IN 25-44", "IN 18-34", "IN 25-54", "IN Metro 25-44", "IN 18-65+", "IN Tier-2 25-44")
_CAMPAIGN_THEMES = ("Prospecting", "Scaling", "Retargeting", "Testing", "Festive Sale", "Evergreen")
_PRODUCTS = ("Kurta Sets", "Sarees", "Skincare Kit", "Sneakers", "Home Linen", "Smartwatch", "Jewellery")

_MAX_DEFAULT_CAMPAIGNS = 40
_ORDER_VALUE_CV = 0.6
_WEEKEND_LIFT = 1.10


@dataclass(frozen=True)
class SampleAccount:
    """A simulated account: what Meta would return, plus the hidden truth behind it."""

    insights: pl.DataFrame  # one row per ad set per day
    audiences: pl.DataFrame  # one row per ad set
    truth: pl.DataFrame  # hidden truth per ad set, for tests


def _check_int(name: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if not low <= int(value) <= high:
        raise ValueError(f"{name} must be between {low} and {high}, got {value}")
    return int(value)


def _archetype_codes(rng: np.random.Generator, n: int) -> np.ndarray:
    """Exact archetype counts from the shares, shuffled over ad sets."""
    shares = np.array([s for _, s in ARCHETYPES])
    counts = np.floor(shares * n + 0.5).astype(np.int64)
    if n >= 25:
        # Guarantees every archetype on any account big enough to hold them all.
        counts = np.maximum(counts, 1)
    # Small accounts: keep the higher-priority archetypes when the shares overflow.
    counts = np.minimum(counts, np.maximum(n - np.concatenate(([0], np.cumsum(counts)[:-1])), 0))
    codes = np.repeat(np.arange(len(ARCHETYPES)), counts)
    codes = np.concatenate((codes, np.full(n - codes.size, _A[_STEADY])))
    return rng.permutation(codes)


def _rank_within(groups: np.ndarray) -> np.ndarray:
    """0-based position of each element within its group, in index order."""
    order = np.argsort(groups, kind="stable")
    sorted_groups = groups[order]
    starts = np.flatnonzero(np.r_[True, sorted_groups[1:] != sorted_groups[:-1]])
    run_start = np.repeat(starts, np.diff(np.r_[starts, groups.size]))
    rank = np.empty(groups.size, dtype=np.int64)
    rank[order] = np.arange(groups.size) - run_start
    return rank


def _pick(labels: tuple[str, ...] | np.ndarray, idx: np.ndarray) -> np.ndarray:
    return np.asarray(labels, dtype=object)[idx]


def _null_unless(values: pl.Series, keep: np.ndarray) -> pl.Series:
    """`values` where `keep`, null elsewhere."""
    return pl.select(pl.when(pl.Series(keep)).then(values).otherwise(None)).to_series()


def simulate_account(
    seed: int = 7,
    n_adsets: int = 120,
    days: int = SAMPLE_DAYS,
    end_date: date = SAMPLE_END_DATE,
    account_id: str = SAMPLE_ACCOUNT,
    n_campaigns: int | None = None,
    prelaunched_share: float = 0.7,
) -> SampleAccount:
    """Simulate `n_adsets` ad sets over the `days` complete days ending on `end_date`.

    `prelaunched_share` of ad sets (new launches and some trend archetypes aside) predate the
    window; the benchmark sets it to 1.0 so nearly every ad set has a row on every day.
    """
    if not 0.0 <= prelaunched_share <= 1.0:
        raise ValueError(f"prelaunched_share must lie in [0, 1], got {prelaunched_share!r}")
    n = _check_int("n_adsets", n_adsets, 1, MAX_ADSETS)
    n_days = _check_int("days", days, 1, 3650)
    seed = _check_int("seed", seed, 0, 2**63 - 1)
    if isinstance(end_date, datetime) or not isinstance(end_date, date):
        raise ValueError(f"end_date must be a datetime.date, got {end_date!r}")
    if not isinstance(account_id, str) or not account_id:
        raise ValueError(f"account_id must be a non-empty string, got {account_id!r}")
    if n_campaigns is None:
        n_camp = min(n, max(2, min(_MAX_DEFAULT_CAMPAIGNS, round(n / 20))))
    else:
        n_camp = _check_int("n_campaigns", n_campaigns, 1, n)

    rng = np.random.default_rng(seed)

    # ---- per ad set: identity, structure and hidden truth -------------------------
    arch = _archetype_codes(rng, n)
    is_ = {name: arch == code for name, code in _A.items()}

    # Tiers cycle within each archetype so every archetype holds winners, losers and
    # averages (e.g. a volatile winner and an improving average both exist).
    tier = _TIER_PATTERN[_rank_within(arch) % _TIER_PATTERN.size]
    tier[is_["stalled"]] = 0  # a stalled *proven* audience had a good ROAS
    rel_roas = rng.uniform(_TIER_LOW[tier], _TIER_HIGH[tier])
    true_roas = ACCOUNT_MEAN_ROAS * rel_roas
    aov = 1500.0 * np.exp(rng.normal(0.0, 0.2, n))

    budget = np.clip(np.rint(4000.0 * np.exp(rng.normal(0.0, 0.8, n))), 500.0, 40_000.0)
    budget = np.where(is_["tiny"], np.rint(rng.uniform(100.0, 600.0, n)), budget)
    # Ramped ad sets ran on half their current budget before the last 3 days.
    base_budget = np.where(is_["ramp"], np.rint(budget / 2.0), budget)
    daily_budget = np.where(is_["ramp"], base_budget * 2.0, budget)

    # Age in days at end_date (0 = launched on end_date). ~70% predate the window.
    before_window = rng.random(n) < prelaunched_share
    min_age = _MIN_AGE[arch]
    age_in = rng.integers(min_age, np.maximum(min_age + 1, n_days - 1))
    age_pre = np.maximum(n_days - 1, min_age) + rng.integers(0, 181, n)
    age = np.where(before_window, age_pre, age_in)
    age = np.where(is_["new"], rng.integers(0, 2, n), age)
    age = np.where(is_["stalled"], np.maximum(age, 31), age)

    fatigue_drop = np.where(is_["fatigue"], rng.uniform(0.30, 0.60, n), 0.0)
    fatigue_len = rng.integers(7, 15, n).astype(np.float64)
    improve_gain = np.where(is_["improving"], rng.uniform(0.30, 0.70, n), 0.0)
    volatility = np.where(is_["volatile"], 0.8, 0.15)

    cpm_base = rng.uniform(150.0, 300.0, n)
    ctr_base = rng.uniform(0.008, 0.020, n)

    # ---- the ad-set x day grid -------------------------------------------------------
    start = end_date - timedelta(days=n_days - 1)
    t = np.arange(n_days)
    k = (n_days - 1 - t).astype(np.float64)  # days before end_date
    first_t = np.maximum(0, n_days - 1 - age)
    valid = t[None, :] >= first_t[:, None]
    shape = (n, n_days)

    day_numbers = np.datetime64(start, "D").astype(np.int64) + t
    weekday = (day_numbers + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    weekday_effect = np.where(weekday >= 5, _WEEKEND_LIFT, 1.0)

    # Trend of the true ROAS: linear decay into fatigue, linear rise for improvers.
    fatigue_progress = np.clip((fatigue_len[:, None] - k[None, :]) / fatigue_len[:, None], 0.0, 1.0)
    fatigue_factor = 1.0 - fatigue_drop[:, None] * fatigue_progress
    improve_factor = 1.0 + improve_gain[:, None] * np.clip((7.0 - k) / 7.0, 0.0, 1.0)[None, :]
    roas_t = true_roas[:, None] * fatigue_factor * improve_factor
    conv_noise = np.exp(volatility[:, None] * rng.standard_normal(shape) - volatility[:, None] ** 2 / 2)

    # Delivery: close to budget, occasionally over (Meta may spend up to 1.75x a day).
    fill = rng.uniform(0.70, 1.00, shape)
    over = rng.random(shape) < 0.02
    fill = np.where(over, rng.uniform(1.0, 1.75, shape), fill)
    launch_day = (t[None, :] == first_t[:, None]) & (age[:, None] <= n_days - 1)
    fill = np.where(launch_day, fill * rng.uniform(0.2, 0.7, shape), fill)
    ramp_mult = np.where(is_["ramp"][:, None] & (k < 3)[None, :], 2.0 ** ((3.0 - k) / 3.0)[None, :], 1.0)
    stall_mult = np.where(is_["stalled"][:, None] & (k < 7)[None, :], (0.12 * 0.45 ** (6.0 - k))[None, :], 1.0)
    spend = np.round(base_budget[:, None] * fill * ramp_mult * stall_mult, 2)

    # Fatigue also shows in the auction: CPM rises and CTR falls as the audience tires.
    fatigued_auction = np.where(is_["fatigue"][:, None], fatigue_progress, 0.0)
    cpm = cpm_base[:, None] * np.exp(rng.normal(0.0, 0.08, shape)) * (1.0 + 0.3 * fatigued_auction)
    ctr_noise = np.exp(rng.normal(0.0, 0.1, shape))
    ctr = np.clip(ctr_base[:, None] * ctr_noise * (1.0 - 0.3 * fatigued_auction), 0.0, 1.0)

    # ---- keep only live days and draw the counts ------------------------------------
    rows_i, rows_t = np.nonzero(valid)  # row-major: sorted by ad set, then day
    spend_r = spend[valid]
    impressions = np.rint(spend_r / cpm[valid] * 1000.0).astype(np.int64)
    clicks = rng.binomial(impressions, ctr[valid]).astype(np.int64)
    expected_purchases = spend_r * roas_t[valid] * weekday_effect[rows_t] * conv_noise[valid] / aov[rows_i]
    purchases = rng.poisson(expected_purchases).astype(np.int64)
    # Sum of `purchases` order values with CV 0.6 each == one gamma with shape p / cv^2.
    cv2 = _ORDER_VALUE_CV**2
    has_purchase = purchases > 0
    value = rng.gamma(np.where(has_purchase, purchases / cv2, 1.0), aov[rows_i] * cv2)
    purchase_value = np.where(has_purchase, np.maximum(np.round(value, 2), 1.0), 0.0)

    # ---- identifiers and names -------------------------------------------------------
    adset_num = 120215000000000 + np.cumsum(rng.integers(1, 500, n))
    campaign_num = 120214000000000 + np.cumsum(rng.integers(1, 5000, n_camp))
    # Every campaign gets at least one ad set; the rest spread with uneven weights.
    camp_weights = rng.dirichlet(np.full(n_camp, 2.0))
    campaign_of = rng.choice(n_camp, size=n, p=camp_weights)
    campaign_of[rng.permutation(n)[:n_camp]] = np.arange(n_camp)
    campaign_names = np.array(
        [
            f"{_CAMPAIGN_THEMES[c % len(_CAMPAIGN_THEMES)]} | {_PRODUCTS[c % len(_PRODUCTS)]} | Sales #{c + 1}"
            for c in range(n_camp)
        ],
        dtype=object,
    )

    aud_code = rng.choice(4, size=n, p=_AUDIENCE_P)
    if n >= 4:
        aud_code[rng.permutation(n)[:4]] = np.arange(4)
    is_lla = aud_code == 2
    is_custom = aud_code == 3
    lla_idx = rng.choice(_LLA_PCTS.size, size=n, p=_LLA_P)
    src_idx = rng.choice(_SOURCES.size, size=n, p=_SOURCE_P)
    lookalike_pct = np.where(is_lla, _LLA_PCTS[lla_idx], np.nan)
    source_quality = _null_unless(pl.Series(_SOURCES[src_idx], dtype=pl.Utf8), is_lla | is_custom)

    lla_labels = tuple(f"LLA {int(p)}% {s}" for p in _LLA_PCTS for s in _SOURCE_LABEL)  # index = pct_idx * 3 + src_idx
    custom_labels = tuple(f"Custom {s} {w}" for s, w in zip(_SOURCE_LABEL, _CUSTOM_WINDOW, strict=True))
    label = np.select(
        [aud_code == 0, aud_code == 1, is_lla],
        [
            _pick(_BROAD_LABELS, rng.integers(0, len(_BROAD_LABELS), n)),
            _pick(_INTEREST_LABELS, rng.integers(0, len(_INTEREST_LABELS), n)),
            _pick(lla_labels, lla_idx * len(_SOURCE_LABEL) + src_idx),
        ],
        default=_pick(custom_labels, src_idx),
    )
    stage = np.where(is_custom, "Retargeting", "Prospecting").astype(object)
    geo = _pick(_GEO_AGE, rng.integers(0, len(_GEO_AGE), n))

    # Recent budget changes (~10%): every ramp, plus a random few that are not brand new.
    end_next = np.datetime64(end_date + timedelta(days=1), "s")
    other_change = (rng.random(n) < 0.075) & ~is_["ramp"] & ~is_["new"]
    change_offset_s = np.where(is_["ramp"], rng.integers(3600, 30 * 3600, n), rng.integers(3600, 4 * 86400, n))
    changed_at = (end_next - change_offset_s.astype("timedelta64[s]")).astype("datetime64[us]")
    changed_at = np.where(is_["ramp"] | other_change, changed_at, np.datetime64("NaT", "us"))

    launched_on = np.datetime64(end_date, "D") - age.astype("timedelta64[D]")

    adset_id = pl.Series("adset_id", adset_num.astype(str).astype(object), dtype=pl.Utf8)
    campaign_id = pl.Series("campaign_id", campaign_num.astype(str).astype(object), dtype=pl.Utf8)
    campaign_name = pl.Series("campaign_name", campaign_names, dtype=pl.Utf8)
    adset_meta = pl.DataFrame(
        {
            "adset_id": adset_id,
            "campaign_id": campaign_id.gather(campaign_of),
            "campaign_name": campaign_name.gather(campaign_of),
            "adset_name": pl.Series(stage + " | " + label + " | " + geo, dtype=pl.Utf8),
        }
    )

    row_idx = pl.Series("i", rows_i.astype(np.uint32))
    insights = pl.DataFrame(
        {
            "date_start": pl.Series(day_numbers[rows_t].astype("datetime64[D]"), dtype=pl.Date),
            "account_id": pl.Series([account_id], dtype=pl.Utf8).gather(np.zeros(rows_i.size, np.uint32)),
            "campaign_id": adset_meta["campaign_id"].gather(row_idx),
            "campaign_name": adset_meta["campaign_name"].gather(row_idx),
            "adset_id": adset_meta["adset_id"].gather(row_idx),
            "adset_name": adset_meta["adset_name"].gather(row_idx),
            "spend": pl.Series(spend_r, dtype=pl.Float64),
            "impressions": pl.Series(impressions, dtype=pl.Int64),
            "clicks": pl.Series(clicks, dtype=pl.Int64),
            "purchases": pl.Series(purchases, dtype=pl.Int64),
            "purchase_value": pl.Series(purchase_value, dtype=pl.Float64),
            "account_currency": pl.Series([CURRENCY], dtype=pl.Utf8).gather(np.zeros(rows_i.size, np.uint32)),
        }
    )

    audiences = pl.DataFrame(
        {
            "adset_id": adset_id,
            "audience_type": pl.Series(_AUDIENCE_TYPES[aud_code], dtype=pl.Utf8),
            "lookalike_pct": pl.Series(lookalike_pct, dtype=pl.Float64, nan_to_null=True),
            "source_quality": source_quality.alias("source_quality"),
            "launched_on": pl.Series(launched_on, dtype=pl.Date),
            "daily_budget": pl.Series(daily_budget, dtype=pl.Float64),
            "last_budget_change_at": pl.Series(changed_at, dtype=pl.Datetime("us")),
        }
    )

    # Hidden truth: the expected ROAS of the last 7 live days (trend only, no noise).
    last7 = valid & (k < 7)[None, :]
    recent_true_roas = np.where(last7, roas_t, 0.0).sum(axis=1) / np.maximum(last7.sum(axis=1), 1)
    truth = pl.DataFrame(
        {
            "adset_id": adset_id,
            "archetype": pl.Series(_pick(_ARCH_NAMES, arch), dtype=pl.Utf8),
            "tier": pl.Series(_pick(_TIERS, tier), dtype=pl.Utf8),
            "true_roas": pl.Series(true_roas, dtype=pl.Float64),
            "relative_true_roas": pl.Series(rel_roas, dtype=pl.Float64),
            "recent_true_roas": pl.Series(recent_true_roas, dtype=pl.Float64),
            "fatigue": pl.Series(is_["fatigue"], dtype=pl.Boolean),
            "fatigue_drop": pl.Series(fatigue_drop, dtype=pl.Float64),
            "improving": pl.Series(is_["improving"], dtype=pl.Boolean),
            "volatile": pl.Series(is_["volatile"], dtype=pl.Boolean),
            "stalled": pl.Series(is_["stalled"], dtype=pl.Boolean),
            "tiny": pl.Series(is_["tiny"], dtype=pl.Boolean),
            "ramp": pl.Series(is_["ramp"], dtype=pl.Boolean),
            "avg_order_value": pl.Series(aov, dtype=pl.Float64),
            "age_days": pl.Series(age, dtype=pl.Int64),
            "n_rows": pl.Series(valid.sum(axis=1), dtype=pl.Int64),
        }
    )
    return SampleAccount(insights=insights, audiences=audiences, truth=truth)


def write_sample_csvs(directory: Path, **kwargs: Any) -> tuple[Path, Path]:
    """Write `insights.csv` and `audiences.csv` of `simulate_account(**kwargs)` into `directory`."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    account = simulate_account(**kwargs)
    insights_path = directory / "insights.csv"
    audiences_path = directory / "audiences.csv"
    account.insights.write_csv(insights_path, date_format="%Y-%m-%d")
    account.audiences.write_csv(audiences_path, date_format="%Y-%m-%d", datetime_format="%Y-%m-%dT%H:%M:%S")
    return insights_path, audiences_path
