"""Decision matrix (spec 8) with audience-type modifiers (spec 9) and the confidence gate."""

from __future__ import annotations

import numpy as np
import polars as pl

from audience_assets.engine.confidence import break_even
from audience_assets.engine.config import RulesConfig
from audience_assets.engine.fmt import dec, num
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
    # Open in the spec: an average audience whose posterior puts it below break-even (the account
    # average) is a PAUSE candidate; the expected-value gate decides whether the evidence is enough.
    ("AVERAGE", "STABLE_BELOW_BREAK_EVEN", "PAUSE"),
    ("AVERAGE", "VOLATILE_BELOW_BREAK_EVEN", "PAUSE"),
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
    below = (
        pl.lit(cfg.pause_average_below_break_even)
        & (pl.col("bucket") == "AVERAGE")
        & pl.col("trend").is_in(["STABLE", "VOLATILE"])
        & (pl.col("posterior_roas_ratio") < 1.0)
        & enough
    )
    condition = (
        pl.when(pl.col("bucket") == "LOSER")
        .then(pl.when(enough).then(pl.lit("ENOUGH_DATA")).otherwise(pl.lit("LOW_SPEND")))
        .when(below.fill_null(False))
        .then(pl.format("{}_BELOW_BREAK_EVEN", pl.col("trend")))
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
    return _gate(_break_even_figures(frame, cfg), cfg)


def _label(p: pl.Expr, cfg: RulesConfig) -> pl.Expr:
    return (
        pl.when(p >= cfg.confidence_high)
        .then(pl.lit("HIGH"))
        .when(p >= cfg.confidence_medium)
        .then(pl.lit("MEDIUM"))
        .otherwise(pl.lit("LOW"))
    )


def _break_even_figures(frame: pl.DataFrame, cfg: RulesConfig) -> pl.DataFrame:
    """For a proposed SCALE or PAUSE: the probability that acting is on the right side of break-even,
    and the expected gain and loss per unit of daily spend, from the posterior of the true ratio.

    Break-even is the account's average ROAS (a ratio of 1): the money a PAUSE frees, or a SCALE
    adds, earns the account's average elsewhere. A SCALE earns the *marginal* ratio, the audience's
    ratio times its type's `marginal_roas_factor` (saturation: the next budget buys less than the
    average), so it is right when theta > 1 / factor. A PAUSE is right when theta < 1."""
    frame = frame.with_columns(
        per_type(cfg, "marginal_roas_factor").alias("marginal_roas_factor"),
        per_type(cfg, "pause_loss_weight").alias("_pause_weight"),
    )
    a = frame["posterior_shape"].fill_null(np.nan).to_numpy()
    b = frame["posterior_rate"].fill_null(np.nan).to_numpy()
    factor = frame["marginal_roas_factor"].to_numpy()
    proposed = frame["matrix_action"].to_numpy()
    is_scale, is_pause = proposed == "SCALE", proposed == "PAUSE"
    below_1, short_1, excess_1 = break_even(a, b, 1.0)
    below_s, short_s, excess_s = break_even(a, b, 1.0 / factor)
    prob = np.select([is_scale, is_pause], [1.0 - below_s, below_1], default=np.nan)
    gain = np.select([is_scale, is_pause], [factor * excess_s, short_1], default=np.nan)
    loss = np.select([is_scale, is_pause], [factor * short_s, excess_1], default=np.nan)
    weight = np.select(
        [is_scale, is_pause], [np.full(len(a), cfg.scale_loss_weight), frame["_pause_weight"].to_numpy()], np.nan
    )
    return frame.drop("_pause_weight").with_columns(
        pl.Series("act_probability", prob).fill_nan(None),
        pl.Series("expected_gain", gain).fill_nan(None),
        pl.Series("expected_loss", loss).fill_nan(None),
        pl.Series("loss_weight", weight).fill_nan(None),
    )


def _gate(frame: pl.DataFrame, cfg: RulesConfig) -> pl.DataFrame:
    """Adds `confidence` (the probability behind the action, as a label), `action` and `gate_reason`.

    A SCALE or PAUSE goes ahead when it is likely right (act_probability at the confidence needed)
    and worth its risk (expected gain >= loss weight x expected loss). RETEST is judged on the long
    window; a HOLD's confidence is the probability of its bucket."""
    proposed = pl.col("matrix_action")
    frame = frame.with_columns(
        pl.when(proposed == "RETEST")
        .then(_label(pl.col("p_long_winner"), cfg))
        .when(proposed.is_in(["SCALE", "PAUSE"]))
        .then(_label(pl.col("act_probability"), cfg))
        .when(pl.col("eligible"))
        .then(pl.col("confidence"))
        .otherwise(pl.lit("LOW"))
        .alias("confidence")
    )
    rank = pl.col("confidence").replace_strict(CONFIDENCE_ORDER, return_dtype=pl.Int8)
    needed = (
        pl.when(proposed == "PAUSE")
        .then(pl.lit(cfg.min_confidence_to_pause))
        .otherwise(pl.lit(cfg.min_confidence_to_act))
    )
    need = needed.replace_strict(CONFIDENCE_ORDER, return_dtype=pl.Int8)
    unlikely = proposed.is_in(["SCALE", "PAUSE", "RETEST"]) & (rank < need)
    not_worth = proposed.is_in(["SCALE", "PAUSE"]) & (
        pl.col("expected_gain") < pl.col("loss_weight") * pl.col("expected_loss")
    ).fill_null(True)
    return frame.with_columns(
        pl.when(unlikely | not_worth).then(pl.lit("HOLD")).otherwise(proposed).alias("action"),
        pl.when(unlikely)
        .then(
            pl.format(
                "{} held back: confidence {} is below the {} needed to act",
                proposed,
                pl.col("confidence"),
                needed,
            )
        )
        .when(not_worth)
        .then(
            pl.format(
                "{} held back: the expected gain ({}% of its daily spend) does not outweigh {}x the expected loss ({}%)",
                proposed,
                dec(pl.col("expected_gain") * 100, 1),
                num(pl.col("loss_weight")),
                dec(pl.col("expected_loss") * 100, 1),
            )
        )
        .alias("gate_reason"),
    )
