"""Seeded benchmark scenarios: simulated Meta ad accounts whose true ROAS per ad set is known.

Each seed draws its own account (`sample_params`), then simulates it (`generate_scenario`) in the
style of `simulator.simulate_account` (vectorised over the ad-set x day grid, Poisson purchases,
gamma order values, lognormal budgets, fatigue and improvement trends, volatile, stalled, ramped,
tiny and new ad sets), with two additions the decision benchmark needs:

* **Saturation.** Revenue follows a diminishing-returns curve in the budget: at a budget B the
  ROAS is `a * trend(t) * (B / B_now) ** -e`, i.e. revenue is proportional to `B ** (1 - e)`. The
  elasticity `e` depends on the audience (wide for BROAD, larger for INTEREST and LOOKALIKE, largest
  for LOOKALIKE <= 1 % and CUSTOM), so the marginal ROAS of a budget step of p % is
  `ROAS * ((1 + p) ** (1 - e) - 1) / p`, below the average. Ramped ad sets (budget raised over the
  last 3 days) show it in their data. Daily delivery noise (the fill rate) does not move ROAS: only
  the budget does.
* **A forward truth.** Trends keep going after the last simulated day (a fatigue decline in
  progress goes on falling), and the truth is the expectation over the next `horizon_days` days
  (default 7) at the current budget: `true_roas`, `daily_spend` (current daily budget x its fill
  rate) and `true_ratio` = `true_roas` / the account's true spend-weighted ROAS over the same days.

The decision date is the day after the last simulated day. `make_scenario(seed, **overrides)`
returns a `Scenario` with the insights and audiences frames in the README's CSV contract
(`write_scenario_csvs` writes them) and the truth frame. 300 ad sets x 60 days generate in
a few tens of milliseconds.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from audience_assets.sample.simulator import SAMPLE_END_DATE

__all__ = [
    "ARCHETYPES",
    "DEFAULT_HORIZON_DAYS",
    "ELASTICITY_RANGES",
    "HELDOUT_SEEDS",
    "SCALE_STEPS",
    "TUNING_SEEDS",
    "TYPE_GROUPS",
    "Scenario",
    "ScenarioParams",
    "generate_scenario",
    "make_scenario",
    "marginal_ratio",
    "marginal_ratio_expr",
    "sample_params",
    "write_scenario_csvs",
]

TUNING_SEEDS: tuple[int, ...] = tuple(range(1, 21))
HELDOUT_SEEDS: tuple[int, ...] = tuple(range(1001, 1041))
DEFAULT_HORIZON_DAYS = 7
SCALE_STEPS: tuple[int, ...] = (20, 25, 30)  # marginal-ratio columns written in the truth frame
CURRENCY = "INR"

# The audience groups the benchmark reports on (LOOKALIKE_1PCT: a lookalike of 1 % or less).
TYPE_GROUPS: tuple[str, ...] = ("BROAD", "INTEREST", "LOOKALIKE", "LOOKALIKE_1PCT", "CUSTOM")
_AUDIENCE_TYPES = np.array(["BROAD", "INTEREST", "LOOKALIKE", "CUSTOM"], dtype=object)
_BASE_TYPE_MIX = np.array([0.20, 0.35, 0.30, 0.15])
_LLA_WIDE_PCTS = np.array([2.0, 3.0, 5.0, 10.0])
_G_BROAD, _G_INTEREST, _G_LLA, _G_LLA1, _G_CUSTOM = range(5)

# Elasticity e (revenue ~ budget ** (1 - e)) drawn uniformly per ad set from its group's range,
# times the scenario's `saturation`, capped at 0.9. Narrow audiences saturate fastest.
ELASTICITY_RANGES: dict[str, tuple[float, float]] = {
    "BROAD": (0.02, 0.15),
    "INTEREST": (0.08, 0.30),
    "LOOKALIKE": (0.08, 0.30),
    "LOOKALIKE_1PCT": (0.25, 0.55),
    "CUSTOM": (0.35, 0.70),
}
# Range of the scenario's ROAS multiplier per group (retargeting earns more, broad a bit less).
_TYPE_ROAS_RANGES = np.array([(0.85, 1.05), (0.90, 1.10), (0.95, 1.15), (1.00, 1.20), (1.10, 1.50)])

# Performance tiers before the type multiplier and normalisation: ranges of the ROAS relative
# to the nominal account ROAS. They overlap the spec's 0.9 / 1.2 thresholds on purpose.
_TIERS = ("WINNER", "LOSER", "AVERAGE")
_TIER_LOW = np.array([1.20, 0.25, 0.85])
_TIER_HIGH = np.array([2.20, 0.85, 1.20])

# Archetypes (exclusive; the rest are "steady") and the youngest age each needs.
ARCHETYPES: tuple[str, ...] = ("fatigue", "improving", "volatile", "stalled", "ramp", "tiny", "new", "steady")
_MIN_AGE = np.array([21, 14, 10, 31, 10, 2, 0, 2])
_VOLATILE_SIGMA = 0.8
_WEEKEND_LIFT = 1.10
_OVER_DELIVERY_P = 0.02
_OVER_DELIVERY_RANGE = (1.2, 1.75)
_FILL_SIGMA = 0.12
# Mean of the daily delivery noise (lognormal with mean 1, and 2 % of days over-delivered).
_FILL_NOISE_MEAN = 1.0 - _OVER_DELIVERY_P + _OVER_DELIVERY_P * sum(_OVER_DELIVERY_RANGE) / 2.0
_RAMP_DAYS = 3.0
_STALL_DAYS = 7


@dataclass(frozen=True)
class ScenarioParams:
    """Everything that defines one simulated account; `sample_params(seed)` draws them."""

    seed: int
    n_adsets: int
    days: int
    end_date: date
    account_roas: float  # nominal mean ROAS the tiers are relative to
    avg_order_value: float
    order_value_cv: float  # spread of single order values (gamma)
    budget_median: float
    budget_sigma: float  # lognormal sigma of daily budgets
    winner_share: float
    loser_share: float
    type_mix: tuple[float, float, float, float]  # BROAD, INTEREST, LOOKALIKE, CUSTOM
    lla_1pct_share: float  # share of lookalikes at 1 %
    prelaunched_share: float  # share of ad sets launched before the window
    fatigue_share: float
    improving_share: float
    volatile_share: float
    stalled_share: float
    ramp_share: float
    tiny_share: float
    new_share: float  # launched in the last 0-6 days
    noise_sigma: float  # day-level conversion noise of ordinary ad sets (lognormal sigma)
    saturation: float  # multiplier on ELASTICITY_RANGES
    budget_change_share: float  # share with a recent budget change (besides ramps)
    horizon_days: int = DEFAULT_HORIZON_DAYS

    @property
    def decision_date(self) -> date:
        return self.end_date + timedelta(days=1)

    def as_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["end_date"] = self.end_date.isoformat()
        out["type_mix"] = list(self.type_mix)
        return out


@dataclass(frozen=True)
class Scenario:
    """A simulated account: what Meta would report, plus the hidden forward truth per ad set."""

    params: ScenarioParams
    insights: pl.DataFrame  # one row per ad set per day (CSV contract)
    audiences: pl.DataFrame  # one row per ad set (CSV contract)
    truth: pl.DataFrame  # one row per ad set

    @property
    def decision_date(self) -> date:
        return self.params.decision_date


def sample_params(seed: int, end_date: date = SAMPLE_END_DATE) -> ScenarioParams:
    """Draw one account's parameters from `seed` (its own random stream, independent of the simulation)."""
    rng = np.random.default_rng([int(seed), 0x5CE7])
    mix = rng.dirichlet(12.0 * _BASE_TYPE_MIX)
    return ScenarioParams(
        seed=int(seed),
        n_adsets=int(rng.integers(40, 251)),
        days=int(rng.integers(35, 57)),
        end_date=end_date,
        account_roas=round(float(rng.uniform(1.6, 4.0)), 3),
        avg_order_value=round(float(np.exp(rng.uniform(np.log(600.0), np.log(3000.0)))), 2),
        order_value_cv=round(float(rng.uniform(0.3, 1.2)), 3),
        budget_median=round(float(np.exp(rng.uniform(np.log(1500.0), np.log(8000.0)))), 2),
        budget_sigma=round(float(rng.uniform(0.4, 1.3)), 3),
        winner_share=round(float(rng.uniform(0.08, 0.35)), 3),
        loser_share=round(float(rng.uniform(0.08, 0.35)), 3),
        type_mix=tuple(round(float(x), 4) for x in mix),  # type: ignore[arg-type]
        lla_1pct_share=round(float(rng.uniform(0.25, 0.70)), 3),
        prelaunched_share=round(float(rng.uniform(0.5, 0.95)), 3),
        fatigue_share=round(float(rng.uniform(0.05, 0.25)), 3),
        improving_share=round(float(rng.uniform(0.03, 0.12)), 3),
        volatile_share=round(float(rng.uniform(0.03, 0.15)), 3),
        stalled_share=round(float(rng.uniform(0.0, 0.05)), 3),
        ramp_share=round(float(rng.uniform(0.0, 0.08)), 3),
        tiny_share=round(float(rng.uniform(0.02, 0.12)), 3),
        new_share=round(float(rng.uniform(0.0, 0.08)), 3),
        noise_sigma=round(float(rng.uniform(0.08, 0.25)), 3),
        saturation=round(float(rng.uniform(0.6, 1.4)), 3),
        budget_change_share=round(float(rng.uniform(0.03, 0.15)), 3),
    )


def make_scenario(seed: int, **overrides: Any) -> Scenario:
    """`generate_scenario(sample_params(seed))`, with any parameter replaced by `overrides`."""
    params = sample_params(seed)
    if overrides:
        params = dataclasses.replace(params, **overrides)
    return generate_scenario(params)


def marginal_ratio(ratio: Any, elasticity: Any, pct: Any) -> Any:
    """True ROAS ratio of the extra spend of a `pct` % budget step, when revenue ~ budget ** (1 - elasticity).

    `ratio * ((1 + p) ** (1 - e) - 1) / p` with p = pct / 100 (numpy-vectorised; p -> 0 gives `ratio * (1 - e)`).
    """
    p = np.asarray(pct, dtype=np.float64) / 100.0
    e = np.asarray(elasticity, dtype=np.float64)
    safe_p = np.where(p > 0, p, 1.0)
    factor = np.where(p > 0, ((1.0 + safe_p) ** (1.0 - e) - 1.0) / safe_p, 1.0 - e)
    return np.asarray(ratio, dtype=np.float64) * factor


def marginal_ratio_expr(
    pct: pl.Expr, ratio: str | pl.Expr = "true_ratio", elasticity: str | pl.Expr = "elasticity"
) -> pl.Expr:
    """`marginal_ratio` as a polars expression (pct in %, > 0)."""
    r = pl.col(ratio) if isinstance(ratio, str) else ratio
    e = pl.col(elasticity) if isinstance(elasticity, str) else elasticity
    p = pct / 100.0
    return r * ((1.0 + p).pow(1.0 - e) - 1.0) / p


def _exact_codes(rng: np.random.Generator, n: int, shares: np.ndarray) -> np.ndarray:
    """Codes 0..len(shares) with exact rounded counts (the last code takes the rest), shuffled."""
    counts = np.floor(np.asarray(shares) * n + 0.5).astype(np.int64)
    counts = np.minimum(counts, np.maximum(n - np.concatenate(([0], np.cumsum(counts)[:-1])), 0))
    codes = np.repeat(np.arange(len(shares)), counts)
    codes = np.concatenate((codes, np.full(n - codes.size, len(shares))))
    return rng.permutation(codes)


def _check(params: ScenarioParams) -> None:
    if not 1 <= params.n_adsets <= 100_000:
        raise ValueError(f"n_adsets must lie in 1..100000, got {params.n_adsets}")
    if not 8 <= params.days <= 3650:
        raise ValueError(f"days must lie in 8..3650, got {params.days}")
    if params.horizon_days < 1:
        raise ValueError(f"horizon_days must be at least 1, got {params.horizon_days}")
    shares = (
        params.fatigue_share,
        params.improving_share,
        params.volatile_share,
        params.stalled_share,
        params.ramp_share,
        params.tiny_share,
        params.new_share,
    )
    if min(shares) < 0 or sum(shares) > 1:
        raise ValueError(f"archetype shares must be >= 0 and sum to at most 1, got {shares}")
    if min(params.winner_share, params.loser_share) < 0 or params.winner_share + params.loser_share > 1:
        raise ValueError("winner_share and loser_share must be >= 0 and sum to at most 1")
    if len(params.type_mix) != 4 or min(params.type_mix) < 0 or sum(params.type_mix) <= 0:
        raise ValueError(f"type_mix needs 4 non-negative weights, got {params.type_mix}")


def generate_scenario(params: ScenarioParams) -> Scenario:
    """Simulate the account `params` describes (deterministic in `params`)."""
    _check(params)
    rng = np.random.default_rng([params.seed, 0x51A7])
    n, n_days, horizon = params.n_adsets, params.days, params.horizon_days

    # ---- per ad set: structure and hidden truth ----------------------------------------
    arch = _exact_codes(
        rng,
        n,
        np.array(
            [
                params.fatigue_share,
                params.improving_share,
                params.volatile_share,
                params.stalled_share,
                params.ramp_share,
                params.tiny_share,
                params.new_share,
            ]
        ),
    )
    is_ = {name: arch == code for code, name in enumerate(ARCHETYPES)}

    tier = _exact_codes(rng, n, np.array([params.winner_share, params.loser_share]))
    tier[is_["stalled"]] = 0  # a stalled audience is a proven one
    rel = rng.uniform(_TIER_LOW[tier], _TIER_HIGH[tier])

    mix = np.asarray(params.type_mix, dtype=np.float64)
    type_code = rng.choice(4, size=n, p=mix / mix.sum())
    lla_narrow = rng.random(n) < params.lla_1pct_share
    lla_pct = np.where(lla_narrow, 1.0, _LLA_WIDE_PCTS[rng.integers(0, _LLA_WIDE_PCTS.size, n)])
    is_lla = type_code == 2
    group = np.select(
        [type_code == 0, type_code == 1, is_lla & lla_narrow, is_lla],
        [_G_BROAD, _G_INTEREST, _G_LLA1, _G_LLA],
        default=_G_CUSTOM,
    )
    type_roas = rng.uniform(_TYPE_ROAS_RANGES[:, 0], _TYPE_ROAS_RANGES[:, 1])[group]
    el_lo = np.array([ELASTICITY_RANGES[g][0] for g in TYPE_GROUPS])[group]
    el_hi = np.array([ELASTICITY_RANGES[g][1] for g in TYPE_GROUPS])[group]
    elasticity = np.clip(rng.uniform(el_lo, el_hi) * params.saturation, 0.0, 0.9)

    base_roas = params.account_roas * rel * type_roas
    aov = params.avg_order_value * np.exp(rng.normal(0.0, 0.2, n))

    budget = np.clip(np.rint(params.budget_median * np.exp(rng.normal(0.0, params.budget_sigma, n))), 300.0, 100_000.0)
    budget = np.where(is_["tiny"], np.rint(rng.uniform(100.0, 500.0, n)), budget)
    fill_rate = rng.uniform(0.65, 0.98, n)
    ramp_factor = np.where(is_["ramp"], rng.uniform(1.5, 2.0, n), 1.0)

    before_window = rng.random(n) < params.prelaunched_share
    min_age = _MIN_AGE[arch]
    age_in = rng.integers(min_age, np.maximum(min_age + 1, n_days - 1))
    age_pre = np.maximum(n_days - 1, min_age) + rng.integers(0, 181, n)
    age = np.where(before_window, age_pre, age_in)
    age = np.where(is_["new"], rng.integers(0, 7, n), age)

    # Trends, as functions of k = days before end_date (negative: the horizon after it).
    fat_onset = rng.uniform(0.0, 14.0, n)
    fat_len = rng.uniform(7.0, 21.0, n)
    fat_drop = np.where(is_["fatigue"], rng.uniform(0.30, 0.60, n), 0.0)
    imp_onset = rng.uniform(2.0, 10.0, n)
    imp_len = rng.uniform(5.0, 14.0, n)
    imp_gain = np.where(is_["improving"], rng.uniform(0.30, 0.70, n), 0.0)
    sigma = np.where(is_["volatile"], _VOLATILE_SIGMA, params.noise_sigma)
    cpm_base = rng.uniform(150.0, 300.0, n)
    ctr_base = rng.uniform(0.008, 0.020, n)

    n_all = n_days + horizon
    t = np.arange(n_all)
    k = (n_days - 1 - t).astype(np.float64)
    start = params.end_date - timedelta(days=n_days - 1)
    day_numbers = np.datetime64(start, "D").astype(np.int64) + t
    weekday = (day_numbers + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    weekday_effect = np.where(weekday >= 5, _WEEKEND_LIFT, 1.0)

    trend = (1.0 - fat_drop[:, None] * np.clip((fat_onset[:, None] - k) / fat_len[:, None], 0.0, 1.0)) * (
        1.0 + imp_gain[:, None] * np.clip((imp_onset[:, None] - k) / imp_len[:, None], 0.0, 1.0)
    )
    # Budget path relative to today's: ramps rose over the last 3 days from budget / ramp_factor.
    budget_rel = ramp_factor[:, None] ** (-np.clip(k, 0.0, _RAMP_DAYS)[None, :] / _RAMP_DAYS)
    roas_t = base_roas[:, None] * trend * budget_rel ** (-elasticity[:, None])
    # Delivery collapse of stalled ad sets over the last 7 days, carried into the horizon.
    stall = np.where(
        is_["stalled"][:, None],
        np.where(k < _STALL_DAYS, 0.25 * 0.6 ** np.clip(_STALL_DAYS - 1 - k, 0.0, _STALL_DAYS - 1.0), 1.0)[None, :],
        1.0,
    )

    # ---- the observed window --------------------------------------------------------------
    past = slice(0, n_days)
    first_t = np.maximum(0, n_days - 1 - age)
    valid = t[None, :n_days] >= first_t[:, None]
    shape = (n, n_days)
    fill = np.exp(rng.normal(0.0, _FILL_SIGMA, shape) - _FILL_SIGMA**2 / 2.0)
    over = rng.random(shape) < _OVER_DELIVERY_P
    fill = np.where(over, rng.uniform(*_OVER_DELIVERY_RANGE, shape), fill)
    launch_day = (t[None, :n_days] == first_t[:, None]) & (age[:, None] <= n_days - 1)
    fill = np.where(launch_day, fill * rng.uniform(0.2, 0.7, shape), fill)
    spend = np.round(budget[:, None] * budget_rel[:, past] * fill_rate[:, None] * fill * stall[:, past], 2)
    conv_noise = np.exp(sigma[:, None] * rng.standard_normal(shape) - sigma[:, None] ** 2 / 2.0)

    fatigue_progress = np.where(
        is_["fatigue"][:, None], np.clip((fat_onset[:, None] - k[None, past]) / fat_len[:, None], 0.0, 1.0), 0.0
    )
    cpm = cpm_base[:, None] * np.exp(rng.normal(0.0, 0.08, shape)) * (1.0 + 0.3 * fatigue_progress)
    ctr = np.clip(ctr_base[:, None] * np.exp(rng.normal(0.0, 0.1, shape)) * (1.0 - 0.3 * fatigue_progress), 0.0, 1.0)

    rows_i, rows_t = np.nonzero(valid)
    spend_r = spend[valid]
    impressions = np.rint(spend_r / cpm[valid] * 1000.0).astype(np.int64)
    clicks = rng.binomial(impressions, ctr[valid]).astype(np.int64)
    expected_revenue = spend_r * roas_t[:, past][valid] * weekday_effect[rows_t]
    purchases = rng.poisson(expected_revenue * conv_noise[valid] / aov[rows_i]).astype(np.int64)
    cv2 = params.order_value_cv**2
    has_purchase = purchases > 0
    value = rng.gamma(np.where(has_purchase, purchases / cv2, 1.0), aov[rows_i] * cv2)
    purchase_value = np.where(has_purchase, np.maximum(np.round(value, 2), 1.0), 0.0)

    # ---- identifiers, names and metadata --------------------------------------------------
    n_camp = min(n, max(2, round(n / 20)))
    adset_num = 120216000000000 + np.cumsum(rng.integers(1, 500, n))
    campaign_num = 120217000000000 + np.cumsum(rng.integers(1, 5000, n_camp))
    campaign_of = rng.integers(0, n_camp, n)
    campaign_of[rng.permutation(n)[:n_camp]] = np.arange(n_camp)
    group_names = np.array(TYPE_GROUPS, dtype=object)[group]
    stage = np.where(type_code == 3, "Retargeting", "Prospecting").astype(object)
    pct_label = np.array([f"{p:g}%" for p in lla_pct], dtype=object)
    label = np.where(is_lla, "LLA " + pct_label, _AUDIENCE_TYPES[type_code])
    adset_id = pl.Series("adset_id", adset_num.astype(str).astype(object), dtype=pl.Utf8)
    campaign_ids = pl.Series(campaign_num.astype(str).astype(object), dtype=pl.Utf8).gather(campaign_of)
    campaign_names = pl.Series([f"Scenario {params.seed} | Sales #{c + 1}" for c in campaign_of], dtype=pl.Utf8)
    adset_names = pl.Series(stage + " | " + label + " | #" + np.arange(1, n + 1).astype(str).astype(object))

    row_idx = pl.Series(rows_i.astype(np.uint32))
    n_rows = rows_i.size
    insights = pl.DataFrame(
        {
            "date_start": pl.Series(day_numbers[rows_t].astype("datetime64[D]"), dtype=pl.Date),
            "account_id": pl.Series([f"act_{900000 + params.seed}"] * n_rows, dtype=pl.Utf8),
            "campaign_id": campaign_ids.gather(row_idx),
            "campaign_name": campaign_names.gather(row_idx),
            "adset_id": adset_id.gather(row_idx),
            "adset_name": adset_names.gather(row_idx).cast(pl.Utf8),
            "spend": pl.Series(spend_r, dtype=pl.Float64),
            "impressions": pl.Series(impressions, dtype=pl.Int64),
            "clicks": pl.Series(clicks, dtype=pl.Int64),
            "purchases": pl.Series(purchases, dtype=pl.Int64),
            "purchase_value": pl.Series(purchase_value, dtype=pl.Float64),
            "account_currency": pl.Series([CURRENCY] * n_rows, dtype=pl.Utf8),
        }
    )

    end_next = np.datetime64(params.decision_date, "s")
    other_change = (rng.random(n) < params.budget_change_share) & ~is_["ramp"] & ~is_["new"]
    change_offset_s = np.where(is_["ramp"], rng.integers(3600, 30 * 3600, n), rng.integers(3600, 4 * 86400, n))
    changed_at = (end_next - change_offset_s.astype("timedelta64[s]")).astype("datetime64[us]")
    changed_at = np.where(is_["ramp"] | other_change, changed_at, np.datetime64("NaT", "us"))
    launched_on = np.datetime64(params.end_date, "D") - age.astype("timedelta64[D]")
    sources = np.array(["PURCHASERS", "ATC", "VC"], dtype=object)[rng.integers(0, 3, n)]
    audiences = pl.DataFrame(
        {
            "adset_id": adset_id,
            "audience_type": pl.Series(_AUDIENCE_TYPES[type_code], dtype=pl.Utf8),
            "lookalike_pct": pl.Series(np.where(is_lla, lla_pct, np.nan), dtype=pl.Float64, nan_to_null=True),
            "source_quality": pl.Series(np.where(is_lla | (type_code == 3), sources, None).tolist(), dtype=pl.Utf8),
            "launched_on": pl.Series(launched_on, dtype=pl.Date),
            "daily_budget": pl.Series(budget, dtype=pl.Float64),
            "last_budget_change_at": pl.Series(changed_at, dtype=pl.Datetime("us")),
        }
    )

    # ---- the forward truth: the next `horizon` days at today's budget ----------------------
    future = slice(n_days, n_all)
    true_roas = (roas_t[:, future] * weekday_effect[None, future]).mean(axis=1)
    daily_spend = budget * fill_rate * _FILL_NOISE_MEAN * stall[:, n_days]
    account_true_roas = float((daily_spend * true_roas).sum() / daily_spend.sum())
    true_ratio = true_roas / account_true_roas

    # What a perfect 7-day estimate would see: expected revenue on the realised spend, last 7 days.
    last7 = valid & (k[past] < 7)[None, :]
    exp_rev = np.zeros(shape)
    exp_rev[valid] = expected_revenue
    spend7 = np.where(last7, spend, 0.0).sum(axis=1)
    rev7 = np.where(last7, exp_rev, 0.0).sum(axis=1)
    acct7 = rev7.sum() / max(spend7.sum(), 1e-9)
    recent_ratio = np.where(spend7 > 0, rev7 / np.where(spend7 > 0, spend7, 1.0) / acct7, np.nan)

    truth_cols: dict[str, Any] = {
        "seed": pl.Series([params.seed] * n, dtype=pl.Int64),
        "adset_id": adset_id,
        "audience_type": audiences["audience_type"],
        "lookalike_pct": audiences["lookalike_pct"],
        "type_group": pl.Series(group_names, dtype=pl.Utf8),
        "archetype": pl.Series(np.array(ARCHETYPES, dtype=object)[arch], dtype=pl.Utf8),
        "tier": pl.Series(np.array(_TIERS, dtype=object)[tier], dtype=pl.Utf8),
        "elasticity": pl.Series(elasticity, dtype=pl.Float64),
        "daily_budget": pl.Series(budget, dtype=pl.Float64),
        "budget_ramp": pl.Series(ramp_factor, dtype=pl.Float64),  # budget now / budget 3+ days ago
        "fill_rate": pl.Series(fill_rate * _FILL_NOISE_MEAN * stall[:, n_days], dtype=pl.Float64),
        "daily_spend": pl.Series(daily_spend, dtype=pl.Float64),
        "true_roas": pl.Series(true_roas, dtype=pl.Float64),
        "account_true_roas": pl.Series([account_true_roas] * n, dtype=pl.Float64),
        "true_ratio": pl.Series(true_ratio, dtype=pl.Float64),
    }
    for pct in SCALE_STEPS:
        truth_cols[f"true_marginal_ratio_{pct}"] = pl.Series(
            marginal_ratio(true_ratio, elasticity, pct), dtype=pl.Float64
        )
    truth_cols.update(
        {
            "recent_true_ratio": pl.Series(recent_ratio, dtype=pl.Float64, nan_to_null=True),
            "age_days": pl.Series(age + 1, dtype=pl.Int64),  # days from launch to the decision date
            "avg_order_value": pl.Series(aov, dtype=pl.Float64),
            "horizon_days": pl.Series([horizon] * n, dtype=pl.Int64),
        }
    )
    return Scenario(params=params, insights=insights, audiences=audiences, truth=pl.DataFrame(truth_cols))


def write_scenario_csvs(scenario: Scenario, directory: Path | str) -> tuple[Path, Path]:
    """Write `insights.csv` and `audiences.csv` (the README's CSV contract) into `directory`."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    insights_path = directory / "insights.csv"
    audiences_path = directory / "audiences.csv"
    scenario.insights.write_csv(insights_path, date_format="%Y-%m-%d")
    scenario.audiences.write_csv(audiences_path, date_format="%Y-%m-%d", datetime_format="%Y-%m-%dT%H:%M:%S")
    return insights_path, audiences_path
