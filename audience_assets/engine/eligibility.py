"""Noise filter (spec 5): who is left out of decisions, and why."""

from __future__ import annotations

import polars as pl

from audience_assets.engine.config import AUDIENCE_TYPES, RulesConfig
from audience_assets.engine.fmt import money, num


def assess_eligibility(frame: pl.DataFrame, cfg: RulesConfig) -> pl.DataFrame:
    """Adds `eligible` and `filter_reason` (every failed rule, with its figures)."""
    days = pl.col("window_days").cast(pl.Utf8)
    checks = [
        (
            pl.col("audience_type").is_null(),
            pl.lit("no audience metadata: the audience type is unknown"),
        ),
        (
            pl.col("audience_type").is_not_null() & ~pl.col("audience_type").is_in(AUDIENCE_TYPES),
            pl.format("audience type {} is not one of {}", pl.col("audience_type"), pl.lit(", ".join(AUDIENCE_TYPES))),
        ),
        (
            # Only reached when min_spend is 0: otherwise the spend rule already names it.
            (pl.col("spend_window") <= 0) & (pl.col("spend_window") >= pl.col("min_spend_acct")),
            pl.format("no spend over {} days, so ROAS is undefined", days),
        ),
        (
            pl.col("account_avg_roas").is_null() | (pl.col("account_avg_roas") <= 0),
            pl.lit("account has no revenue in the window, so there is no ROAS benchmark"),
        ),
        (
            # Only a delivering ad set can be scaled or paused; Meta's status says whether it is.
            pl.col("effective_status").is_not_null() & (pl.col("effective_status") != "ACTIVE"),
            pl.format("the ad set is not delivering (Meta status {})", pl.col("effective_status")),
        ),
        (
            pl.col("min_spend_acct").is_null(),
            pl.format(
                "no minimum spend for currency {}: set currency_rates.{} (per {}) or account_min_spend",
                pl.col("currency"),
                pl.col("currency"),
                pl.lit(cfg.threshold_currency),
            ),
        ),
        (
            pl.col("spend_window") < pl.col("min_spend_acct"),
            pl.format(
                "spend {} over {} days is under the {} minimum",
                money(pl.col("spend_window")),
                days,
                money(pl.col("min_spend_acct")),
            ),
        ),
        (
            pl.col("purchases_window") < cfg.min_purchases,
            pl.format(
                "{} purchases over {} days, under the minimum of {}",
                num(pl.col("purchases_window")),
                days,
                num(pl.lit(cfg.min_purchases)),
            ),
        ),
        (
            pl.col("age_days").is_null() | (pl.col("age_days") < cfg.min_age_days),
            pl.format(
                "launched {} days ago, under the minimum age of {} days",
                pl.col("age_days").fill_null(0).cast(pl.Utf8),
                pl.lit(str(cfg.min_age_days)),
            ),
        ),
    ]
    reasons = pl.concat_list([pl.when(cond).then(text) for cond, text in checks]).list.drop_nulls()
    return (
        frame.with_columns(reasons.alias("_filter"))
        .with_columns(
            (pl.col("_filter").list.len() == 0).alias("eligible"),
            pl.when(pl.col("_filter").list.len() > 0).then(pl.col("_filter").list.join("; ")).alias("filter_reason"),
        )
        .drop("_filter")
    )
