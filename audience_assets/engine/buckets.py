"""Performance buckets (spec 7.1) on the window ROAS against the account's window average."""

from __future__ import annotations

import polars as pl

from audience_assets.engine.config import RulesConfig
from audience_assets.engine.prepare import per_type


def assign_buckets(frame: pl.DataFrame, cfg: RulesConfig) -> pl.DataFrame:
    """Adds `bucket` and the per-type thresholds it was judged against."""
    frame = frame.with_columns(
        per_type(cfg, "winner_roas").alias("winner_threshold"),
        per_type(cfg, "loser_roas").alias("loser_threshold"),
    )
    n = pl.col("normalized_roas")
    return frame.with_columns(
        pl.when(n.is_null() | n.is_nan())
        .then(None)
        .when(n >= pl.col("winner_threshold"))
        .then(pl.lit("WINNER"))
        .when(n >= pl.col("loser_threshold"))
        .then(pl.lit("AVERAGE"))
        .otherwise(pl.lit("LOSER"))
        .alias("bucket")
    )
