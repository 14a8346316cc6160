"""Decision matrix (spec 8) with audience-type modifiers (spec 9) and the confidence gate."""

from __future__ import annotations

import polars as pl

from audience_assets.engine.config import RulesConfig
from audience_assets.engine.prepare import per_type

CONFIDENCE_ORDER = {"LOW": 0, "MEDIUM": 1, "HIGH": 2}

# (bucket, trend or data condition) -> action; the spec's six rows plus the cases it leaves open.
MATRIX = [
    ("WINNER", "STABLE", "SCALE"),
    ("WINNER", "IMPROVING", "SCALE"),
    ("WINNER", "VOLATILE", "HOLD"),
    ("WINNER", "DECLINING", "HOLD"),
    ("AVERAGE", "IMPROVING", "HOLD"),
    ("AVERAGE", "DECLINING", "PAUSE"),
    ("AVERAGE", "STABLE", "HOLD"),
    ("AVERAGE", "VOLATILE", "HOLD"),
    ("LOSER", "LOW_SPEND", "HOLD"),
    ("LOSER", "ENOUGH_DATA", "PAUSE"),
]


def apply_matrix(frame: pl.DataFrame, cfg: RulesConfig) -> pl.DataFrame:
    """Adds `matrix_rule`, `matrix_action`, then `action` after the confidence gate."""
    frame = frame.with_columns(
        per_type(cfg, "pause_spend_multiple").alias("pause_spend_multiple"),
    ).with_columns(
        (pl.col("pause_spend_multiple") * pl.col("target_cpa")).alias("pause_spend_needed"),
    )
    enough = pl.col("spend_window") >= pl.col("pause_spend_needed")
    condition = (
        pl.when(pl.col("bucket") == "LOSER")
        .then(pl.when(enough).then(pl.lit("ENOUGH_DATA")).otherwise(pl.lit("LOW_SPEND")))
        .otherwise(pl.col("trend"))
    )
    frame = frame.with_columns(condition.alias("_cond"))
    # An eligible row the matrix cannot place (no bucket) holds: the engine never leaves it undecided.
    action = pl.lit("HOLD", dtype=pl.Utf8)
    for bucket, cond, act in reversed(MATRIX):
        action = pl.when((pl.col("bucket") == bucket) & (pl.col("_cond") == cond)).then(pl.lit(act)).otherwise(action)
    retest = (
        ~pl.col("eligible")
        & (pl.col("effective_status").is_null() | (pl.col("effective_status") == "ACTIVE"))
        & (pl.col("age_days") >= cfg.retest_min_age_days)
        & (pl.col("spend_window") < pl.col("min_spend_acct"))
        & (pl.col("purchases_long") >= cfg.retest_min_purchases)
        & (
            pl.col("revenue_long") / pl.col("spend_long") / pl.col("account_avg_roas_long")
            >= pl.col("winner_threshold")
        )
    )
    frame = frame.with_columns(
        pl.when(pl.col("eligible"))
        .then(pl.coalesce(pl.format("{}+{}", pl.col("bucket"), pl.col("_cond")), pl.lit("UNPLACED")))
        .when(retest)
        .then(pl.lit("STALLED_WINNER"))
        .otherwise(pl.lit("NOT_ELIGIBLE"))
        .alias("matrix_rule"),
        pl.when(pl.col("eligible"))
        .then(action)
        .when(retest)
        .then(pl.lit("RETEST"))
        .otherwise(pl.lit("HOLD"))
        .alias("matrix_action"),
    ).drop("_cond")
    # RETEST is judged on the long window; everything else on the bucket probability.
    frame = frame.with_columns(
        pl.when(pl.col("matrix_action") == "RETEST")
        .then(
            pl.when(pl.col("p_long_winner") >= cfg.confidence_high)
            .then(pl.lit("HIGH"))
            .when(pl.col("p_long_winner") >= cfg.confidence_medium)
            .then(pl.lit("MEDIUM"))
            .otherwise(pl.lit("LOW"))
        )
        .when(pl.col("eligible"))
        .then(pl.col("confidence"))
        .otherwise(pl.lit("LOW"))
        .alias("confidence")
    )
    need = CONFIDENCE_ORDER[cfg.min_confidence_to_act]
    rank = pl.col("confidence").replace_strict(CONFIDENCE_ORDER, return_dtype=pl.Int8)
    acting = pl.col("matrix_action").is_in(["SCALE", "PAUSE", "RETEST"])
    gated = acting & (rank < need)
    return frame.with_columns(
        pl.when(gated).then(pl.lit("HOLD")).otherwise(pl.col("matrix_action")).alias("action"),
        pl.when(gated)
        .then(
            pl.format(
                "{} held back: confidence {} is below the {} needed to act",
                pl.col("matrix_action"),
                pl.col("confidence"),
                pl.lit(cfg.min_confidence_to_act),
            )
        )
        .alias("gate_reason"),
    )
