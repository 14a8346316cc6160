"""Trend states (spec 7.2), claimed only when the signal beats the noise purchases imply.

The decision window is split into an early and a late part. ROAS moves between them are
tested as a log ratio whose standard error comes from the purchase counts (compound Poisson:
relative variance (1 + cv^2) / n, cv the order-value spread). Volatility is a Pearson
dispersion test of daily purchases against what each day's spend predicts; when that dispersion is
significant, the standard error of the ROAS change widens by it (quasi-Poisson).
"""

from __future__ import annotations

import numpy as np
import polars as pl
from scipy.special import gammaincc

from audience_assets.engine.config import RulesConfig
from audience_assets.engine.prepare import per_type


def overdispersion(cfg: RulesConfig) -> pl.Expr:
    """Variance inflation beyond Poisson: the dispersion ratio when it is significant, else 1."""
    significant = (pl.col("dispersion_p") < cfg.volatility_p) & (pl.col("dispersion_ratio") > 1.0)
    return pl.when(significant.fill_null(False)).then(pl.col("dispersion_ratio")).otherwise(1.0)


def derive_trends(frame: pl.DataFrame, cfg: RulesConfig) -> pl.DataFrame:
    """Adds `trend`, `roas_change`, `roas_change_z`, dispersion figures and `trend_evidence`."""
    frame = frame.with_columns((pl.col("active_days") - 1).clip(lower_bound=0).alias("dispersion_df"))
    df = frame["dispersion_df"].to_numpy().astype(float)
    stat = frame["purchase_dispersion"].fill_null(0.0).to_numpy().astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        p_value = np.where(df > 0, gammaincc(df / 2.0, stat / 2.0), np.nan)
        ratio = np.where(df > 0, stat / df, np.nan)
    frame = frame.with_columns(
        pl.Series("dispersion_ratio", ratio).fill_nan(None),
        pl.Series("dispersion_p", p_value).fill_nan(None),
    ).with_columns(overdispersion(cfg).alias("overdispersion"))
    infl = 1.0 + cfg.order_value_cv**2
    aov = pl.col("account_aov")
    # Revenue in units of a typical order, with half an order of continuity on each side.
    late_orders = pl.col("revenue_late") / aov + 0.5
    early_orders = pl.col("revenue_early") / aov + 0.5
    log_ratio = (late_orders / pl.col("spend_late")).log() - (early_orders / pl.col("spend_early")).log()
    # Quasi-Poisson: when days scatter more than Poisson, the standard error widens with them,
    # so one lumpy day cannot pass for a trend.
    se = (
        infl
        * pl.col("overdispersion")
        * (1.0 / (pl.col("purchases_late") + 0.5) + 1.0 / (pl.col("purchases_early") + 0.5))
    ).sqrt()
    roas_late = pl.col("revenue_late") / pl.col("spend_late")
    roas_early = pl.col("revenue_early") / pl.col("spend_early")
    frame = frame.with_columns(
        pl.when((pl.col("spend_late") > 0) & (pl.col("spend_early") > 0) & (aov > 0))
        .then(log_ratio / se)
        .alias("roas_change_z"),
        pl.when((pl.col("spend_late") > 0) & (pl.col("spend_early") > 0) & (roas_early > 0))
        .then(roas_late / roas_early - 1.0)
        .alias("roas_change"),
        per_type(cfg, "decline_z").alias("decline_z"),
    )
    z = pl.col("roas_change_z")
    change = pl.col("roas_change")
    enough = (pl.col("purchases_window") >= cfg.trend_min_purchases) & z.is_not_null()
    improving = (z >= cfg.trend_z) & (change >= cfg.trend_min_change)
    declining = ((z <= -pl.col("decline_z")) & (change <= -cfg.trend_min_change)) | (
        (pl.col("spend_acceleration") >= cfg.spend_acceleration_threshold)
        & (z <= -cfg.soft_decline_z)
        & (change <= -cfg.trend_min_change)
    )
    volatile = (
        (pl.col("active_days") >= 4)
        & (pl.col("dispersion_ratio") >= cfg.volatility_dispersion)
        & (pl.col("dispersion_p") < cfg.volatility_p)
    )
    return frame.with_columns(
        pl.when(~enough)
        .then(pl.lit("STABLE"))
        .when(declining)
        .then(pl.lit("DECLINING"))
        .when(improving)
        .then(pl.lit("IMPROVING"))
        .when(volatile)
        .then(pl.lit("VOLATILE"))
        .otherwise(pl.lit("STABLE"))
        .alias("trend"),
        pl.when(~enough).then(pl.lit("insufficient")).otherwise(pl.lit("tested")).alias("trend_evidence"),
    )
