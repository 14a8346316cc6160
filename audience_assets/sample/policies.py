"""Reference decision policies for the decision benchmark, and the valuation of any policy's actions.

Every policy is a pure function over polars frames returning one row per ad set:
`adset_id, action, scale_percentage` (action SCALE | HOLD | PAUSE | RETEST, scale_percentage 0
unless SCALE). The naive policies see only what the engine sees (the insights and audiences of
the CSV contract); `spec_table_on_truth` and `oracle` read the scenario's hidden truth.

Valuation (`value_actions`), per day over the scenario's horizon (the mean of its next
`horizon_days` days, 7 by default), in account-currency units of spend, where ratios are relative
to the account's true spend-weighted ROAS (so the unit is "spend earning above the account's
average"):

* SCALE p %: `p / 100 * daily_spend * (true_marginal_ratio(p) - 1)`, with the saturating
  marginal ratio of `scenarios.marginal_ratio`;
* PAUSE: `daily_spend * (1 - true_ratio)` (the freed spend goes to the account's average);
* HOLD and RETEST: 0.

Multiply by the account's true ROAS for revenue, or by the horizon for a total.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import polars as pl

from audience_assets.sample.scenarios import marginal_ratio, marginal_ratio_expr

__all__ = [
    "ACTIONS",
    "MAX_SCALE_PCT",
    "MIN_SCALE_PCT",
    "meta_style_rule_3d",
    "oracle",
    "spec_table_on_truth",
    "spec_table_point_estimates",
    "type_group_expr",
    "value_actions",
]

ACTIONS = ("SCALE", "HOLD", "PAUSE", "RETEST")
MIN_SCALE_PCT = 20.0  # the spec's band for one budget step (section 10)
MAX_SCALE_PCT = 30.0
_OUT_SCHEMA = {"adset_id": pl.Utf8, "action": pl.Utf8, "scale_percentage": pl.Float64}


def type_group_expr(audience_type: str = "audience_type", lookalike_pct: str = "lookalike_pct") -> pl.Expr:
    """BROAD | INTEREST | LOOKALIKE | LOOKALIKE_1PCT (a lookalike of 1 % or less) | CUSTOM."""
    t = pl.col(audience_type).str.to_uppercase()
    return (
        pl.when((t == "LOOKALIKE") & (pl.col(lookalike_pct) <= 1.0))
        .then(pl.lit("LOOKALIKE_1PCT"))
        .otherwise(t)
        .alias("type_group")
    )


def _decision_date(insights: pl.DataFrame, decision_date: date | None) -> date:
    if decision_date is not None:
        return decision_date
    return insights["date_start"].max() + timedelta(days=1)  # type: ignore[operator]


def _window(insights: pl.DataFrame, decision_date: date, days: int) -> pl.DataFrame:
    """Per ad set: spend, purchases, revenue over the `days` complete days before `decision_date`."""
    return (
        insights.filter(
            (pl.col("date_start") < decision_date) & (pl.col("date_start") >= decision_date - timedelta(days=days))
        )
        .group_by("adset_id")
        .agg(
            pl.col("spend").sum().alias("spend"),
            pl.col("purchases").sum().cast(pl.Float64).alias("purchases"),
            pl.col("purchase_value").sum().alias("revenue"),
        )
    )


def _finish(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.select(
        pl.col("adset_id").cast(pl.Utf8),
        pl.col("action").cast(pl.Utf8),
        pl.when(pl.col("action") == "SCALE")
        .then(pl.col("scale_percentage"))
        .otherwise(0.0)
        .cast(pl.Float64)
        .alias("scale_percentage"),
    ).sort("adset_id")


def spec_table_point_estimates(
    insights: pl.DataFrame,
    audiences: pl.DataFrame,
    decision_date: date | None = None,
    *,
    window_days: int = 7,
    min_spend: float = 3000.0,
    min_purchases: float = 2.0,
    min_age_days: int = 2,
    winner: float = 1.2,
    loser: float = 0.9,
    pause_spend_multiple: float = 3.0,
    scale_pct: float = 20.0,
) -> pl.DataFrame:
    """The spec's table on 7-day point estimates: no trends, no statistics, no guardrails.

    Over the `window_days` (7) complete days before the decision date (default: the day after
    the newest row):

    1. Noise filter (spec 5 with the README's defaults): spend >= 3000, purchases >= 2 and age >= 2
       days (age = decision date - `launched_on`, or the first insight day when missing); an
       ad set failing any of them is HOLD.
    2. ratio = ad-set ROAS / account ROAS (revenue / spend over every ad set in the window).
    3. ratio >= 1.2 (WINNER): SCALE 20 %. ratio < 0.9 (LOSER): PAUSE when window spend >= 3 x the
       account's CPA (account spend / account purchases over the window), else HOLD.
       Otherwise (AVERAGE): HOLD.
    """
    d = _decision_date(insights, decision_date)
    win = _window(insights, d, window_days)
    acct_spend, acct_purchases, acct_revenue = (float(win[c].sum()) for c in ("spend", "purchases", "revenue"))
    acct_roas = acct_revenue / acct_spend if acct_spend > 0 else None
    acct_cpa = acct_spend / acct_purchases if acct_purchases > 0 else None
    first_day = insights.group_by("adset_id").agg(pl.col("date_start").min().alias("first_day"))
    if "launched_on" not in audiences.columns:
        audiences = audiences.with_columns(pl.lit(None, dtype=pl.Date).alias("launched_on"))
    frame = (
        audiences.select("adset_id", "launched_on")
        .join(first_day, on="adset_id", how="left")
        .join(win, on="adset_id", how="left")
        .with_columns(pl.col("spend", "purchases", "revenue").fill_null(0.0))
        .with_columns(
            (pl.lit(d) - pl.coalesce("launched_on", "first_day")).dt.total_days().alias("age_days"),
            pl.when(pl.col("spend") > 0)
            .then(pl.col("revenue") / pl.col("spend") / pl.lit(acct_roas))
            .otherwise(None)
            .alias("ratio"),
        )
    )
    eligible = (
        (pl.col("spend") >= min_spend)
        & (pl.col("purchases") >= min_purchases)
        & (pl.col("age_days").fill_null(-1) >= min_age_days)
        & pl.col("ratio").is_not_null()
    )
    enough_spend = pl.lit(acct_cpa is not None) & (pl.col("spend") >= pause_spend_multiple * pl.lit(acct_cpa))
    frame = frame.with_columns(
        pl.when(~eligible)
        .then(pl.lit("HOLD"))
        .when(pl.col("ratio") >= winner)
        .then(pl.lit("SCALE"))
        .when((pl.col("ratio") < loser) & enough_spend)
        .then(pl.lit("PAUSE"))
        .otherwise(pl.lit("HOLD"))
        .alias("action"),
        pl.lit(scale_pct).alias("scale_percentage"),
    )
    return _finish(frame)


def meta_style_rule_3d(
    insights: pl.DataFrame,
    audiences: pl.DataFrame,
    decision_date: date | None = None,
    *,
    window_days: int = 3,
    min_spend: float = 1500.0,
    scale_at: float = 1.2,
    pause_below: float = 0.8,
    scale_pct: float = 20.0,
) -> pl.DataFrame:
    """Two automated rules a media buyer sets up in Meta Ads Manager, evaluated on the last 3 days.

    Over the `window_days` (3) complete days before the decision date, with the account's ROAS
    = revenue / spend over all its ad sets in those days:

    * "Turn off ad set if ROAS (last 3 days) < 0.8 x account ROAS (last 3 days) and spent
      (last 3 days) >= 1,500": PAUSE. Like Meta's rules, an ad set with spend but no purchase has
      ROAS 0, so it is turned off once it has spent 1,500.
    * "Increase daily budget by 20 % if ROAS (last 3 days) >= 1.2 x account ROAS (last 3 days) and
      spent (last 3 days) >= 1,500": SCALE 20 %.
    * Everything else (including ad sets with less spend, no row in the window, or launched
      yesterday): HOLD. No purchase minimum, no age condition, no cooldown.
    """
    d = _decision_date(insights, decision_date)
    win = _window(insights, d, window_days)
    acct_spend, acct_revenue = float(win["spend"].sum()), float(win["revenue"].sum())
    acct_roas = acct_revenue / acct_spend if acct_spend > 0 else None
    frame = (
        audiences.select("adset_id")
        .join(win, on="adset_id", how="left")
        .with_columns(pl.col("spend", "revenue").fill_null(0.0))
        .with_columns(
            pl.when((pl.col("spend") > 0) & pl.lit(acct_roas is not None))
            .then(pl.col("revenue") / pl.col("spend") / pl.lit(acct_roas))
            .otherwise(None)
            .alias("ratio")
        )
    )
    active = (pl.col("spend") >= min_spend) & pl.col("ratio").is_not_null()
    frame = frame.with_columns(
        pl.when(active & (pl.col("ratio") < pause_below))
        .then(pl.lit("PAUSE"))
        .when(active & (pl.col("ratio") >= scale_at))
        .then(pl.lit("SCALE"))
        .otherwise(pl.lit("HOLD"))
        .alias("action"),
        pl.lit(scale_pct).alias("scale_percentage"),
    )
    return _finish(frame)


def spec_table_on_truth(
    truth: pl.DataFrame, *, winner: float = 1.2, loser: float = 0.9, scale_pct: float = 20.0
) -> pl.DataFrame:
    """The spec's buckets with perfect information: on `true_ratio`, WINNER (>= 1.2) SCALE 20 %,
    LOSER (< 0.9) PAUSE, AVERAGE HOLD. No noise filter, no trends, no saturation awareness."""
    frame = truth.with_columns(
        pl.when(pl.col("true_ratio") >= winner)
        .then(pl.lit("SCALE"))
        .when(pl.col("true_ratio") < loser)
        .then(pl.lit("PAUSE"))
        .otherwise(pl.lit("HOLD"))
        .alias("action"),
        pl.lit(scale_pct).alias("scale_percentage"),
    )
    return _finish(frame)


def _best_scale_pct(ratio: np.ndarray, elasticity: np.ndarray) -> np.ndarray:
    """The step in [20, 30] % maximising p * (marginal_ratio(p) - 1), i.e. ratio * ((1+p)^(1-e) - 1) - p.

    That is concave in p, with its stationary point at (1 + p) = ((1 - e) * ratio) ** (1 / e);
    clipping it to the band gives the maximum over the band (30 % when e = 0 and ratio > 1).
    """
    e = np.asarray(elasticity, dtype=np.float64)
    r = np.asarray(ratio, dtype=np.float64)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        base = np.maximum((1.0 - e) * r, 1e-12)
        p_star = np.where(e > 1e-9, base ** (1.0 / np.maximum(e, 1e-9)) - 1.0, np.where(r > 1.0, np.inf, 0.0))
    return np.clip(np.nan_to_num(p_star * 100.0, nan=MIN_SCALE_PCT), MIN_SCALE_PCT, MAX_SCALE_PCT)


def oracle(truth: pl.DataFrame) -> pl.DataFrame:
    """The best action per ad set on the truth, within the spec's 20-30 % step band.

    PAUSE when `true_ratio` < 1; SCALE at the step p in [20, 30] % with the largest value when that
    value is positive (true marginal ratio at p above 1; with little saturation p is 30 %, the
    largest step the spec allows); HOLD otherwise. PAUSE and SCALE cannot both be worth something
    (a marginal ratio above 1 needs a ratio above 1), so this maximises `value_actions` per ad set
    over every action a spec-conforming policy can take, and no such policy can exceed it.
    """
    r = truth["true_ratio"].to_numpy()
    e = truth["elasticity"].to_numpy()
    p = _best_scale_pct(r, e)
    scale_value = p / 100.0 * (marginal_ratio(r, e, p) - 1.0)
    action = np.where(r < 1.0, "PAUSE", np.where(scale_value > 0, "SCALE", "HOLD"))
    frame = pl.DataFrame(
        {
            "adset_id": truth["adset_id"],
            "action": pl.Series(action.astype(object), dtype=pl.Utf8),
            "scale_percentage": pl.Series(p, dtype=pl.Float64),
        }
    )
    return _finish(frame)


def value_actions(actions: pl.DataFrame, truth: pl.DataFrame) -> pl.DataFrame:
    """One row per ad set of `truth` with the policy's action and its value per day (see the module doc).

    Ad sets the policy did not mention count as HOLD (`missing` = True). Columns added: `value`,
    `marginal_ratio` (the true marginal ratio at the policy's step, SCALE only), `bad_pause`
    (PAUSE of an ad set with true_ratio > 1) and `bad_scale` (SCALE whose marginal ratio < 1).
    """
    unknown = actions.join(truth.select("adset_id"), on="adset_id", how="anti")
    if unknown.height:
        raise ValueError(f"actions for ad sets not in the truth: {unknown['adset_id'].head(5).to_list()}")
    bad = actions.filter(~pl.col("action").is_in(ACTIONS))
    if bad.height:
        raise ValueError(f"unknown actions: {sorted(set(bad['action'].to_list()))}")
    if actions["adset_id"].n_unique() != actions.height:
        raise ValueError("more than one action for an ad set")
    cols = ["adset_id", "type_group", "true_ratio", "elasticity", "daily_spend"]
    frame = truth.select(cols).join(actions.select("adset_id", "action", "scale_percentage"), on="adset_id", how="left")
    frame = frame.with_columns(
        pl.col("action").is_null().alias("missing"),
        pl.col("action").fill_null("HOLD"),
        pl.col("scale_percentage").fill_null(0.0).cast(pl.Float64),
    )
    is_scale = (pl.col("action") == "SCALE") & (pl.col("scale_percentage") > 0)
    frame = frame.with_columns(
        pl.when(is_scale).then(marginal_ratio_expr(pl.col("scale_percentage"))).otherwise(None).alias("marginal_ratio")
    )
    return frame.with_columns(
        pl.when(is_scale)
        .then(pl.col("scale_percentage") / 100.0 * pl.col("daily_spend") * (pl.col("marginal_ratio") - 1.0))
        .when(pl.col("action") == "PAUSE")
        .then(pl.col("daily_spend") * (1.0 - pl.col("true_ratio")))
        .otherwise(0.0)
        .alias("value"),
        ((pl.col("action") == "PAUSE") & (pl.col("true_ratio") > 1.0)).alias("bad_pause"),
        (is_scale & (pl.col("marginal_ratio") < 1.0)).fill_null(False).alias("bad_scale"),
    )
