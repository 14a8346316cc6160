"""Deterministic template explanations: reasons and risks with the real figures."""

from __future__ import annotations

import polars as pl

from audience_assets.engine.config import RulesConfig
from audience_assets.engine.fmt import dec, money, num, pct

RISK_SATURATION_X_MEDIAN = 2.0
IMMATURE_DAY_RATIO = 0.7


def _days(col: str = "window_days") -> pl.Expr:
    return pl.col(col).cast(pl.Utf8)


def _x(col: str) -> pl.Expr:
    return pl.concat_str([dec(pl.col(col)), pl.lit("x")])


def _probability(p: pl.Expr) -> pl.Expr:
    """A probability as a percentage, never claiming certainty: 0.999 -> ">99%"."""
    return (
        pl.when(p > 0.99)
        .then(pl.lit(">99%"))
        .when(p < 0.01)
        .then(pl.lit("<1%"))
        .otherwise(pl.concat_str([(p * 100).round(0).cast(pl.Int64).cast(pl.Utf8), pl.lit("%")]))
    )


def _no_trend_text(cfg: RulesConfig, late: pl.Expr, early: pl.Expr) -> pl.Expr:
    """Why a tested change is not a trend: too small, or not significant for its purchase count."""
    change = pl.col("roas_change")
    z = pl.col("roas_change_z")
    rising = change >= 0
    needed_z = pl.when(rising).then(pl.lit(cfg.trend_z)).otherwise(pl.col("decline_z"))
    moved = pl.format(
        "No trend: ROAS {} over the last {} days versus the {} before", pct(change, signed=True), late, early
    )
    return (
        pl.when(change.is_null() | z.is_null())
        .then(pl.format("No trend: too little spend in one half of the {}-day window to compare", _days()))
        .when(change.abs() < cfg.trend_min_change)
        .then(pl.format("{}, within the {} that counts as a change", moved, pct(pl.lit(cfg.trend_min_change))))
        .otherwise(
            pl.format(
                "{}, but not significant: |z| {} < {} with {} purchases",
                moved,
                dec(z.abs(), 1),
                dec(needed_z, 1),
                num(pl.col("purchases_window")),
            )
        )
    )


def _trend_text(cfg: RulesConfig) -> pl.Expr:
    """What the trend test found, with its figures."""
    late = pl.lit(str((cfg.decision_window_days + 1) // 2))
    early = pl.lit(str(cfg.decision_window_days // 2))
    return (
        pl.when((pl.col("trend_evidence") == "insufficient") & pl.col("roas_change_z").is_null())
        .then(
            pl.format(
                "No trend claimed: the {} days have no spend or revenue in one half to compare the other with",
                _days(),
            )
        )
        .when(pl.col("trend_evidence") == "insufficient")
        .then(
            pl.format(
                "No trend claimed: {} purchases over {} days are too few to tell a change from noise (needs {})",
                num(pl.col("purchases_window")),
                _days(),
                num(pl.lit(cfg.trend_min_purchases)),
            )
        )
        .when(pl.col("trend") == "VOLATILE")
        .then(
            pl.format(
                "Volatile: daily purchases vary {}x more than spend explains (p={})",
                dec(pl.col("dispersion_ratio"), 1),
                dec(pl.col("dispersion_p"), 3),
            )
        )
        .when(pl.col("trend") == "STABLE")
        .then(_no_trend_text(cfg, late, early))
        .otherwise(
            pl.format(
                "{}: ROAS {} over the last {} days versus the {} before (z {} {} {} with {} purchases{})",
                pl.col("trend").str.to_titlecase(),
                pct(pl.col("roas_change"), signed=True),
                late,
                early,
                dec(pl.col("roas_change_z"), 1),
                pl.when(pl.col("trend") == "IMPROVING").then(pl.lit(">=")).otherwise(pl.lit("<=")),
                pl.when(pl.col("trend") == "IMPROVING")
                .then(dec(pl.lit(cfg.trend_z), 1))
                .when(pl.col("roas_change_z") <= -pl.col("decline_z"))
                .then(dec(-pl.col("decline_z"), 1))
                .otherwise(dec(pl.lit(-cfg.soft_decline_z), 1)),
                num(pl.col("purchases_window")),
                pl.when((pl.col("trend") == "DECLINING") & (pl.col("roas_change_z") > -pl.col("decline_z")))
                .then(pl.format(", while daily spend grew {}", pct(pl.col("spend_acceleration"))))
                .otherwise(pl.lit("")),
            )
        )
    )


def _side() -> pl.Expr:
    """The bucket's side of its thresholds, in words."""
    return (
        pl.when(pl.col("bucket") == "WINNER")
        .then(pl.format("at least {}x", dec(pl.col("winner_threshold"))))
        .when(pl.col("bucket") == "LOSER")
        .then(pl.format("below {}x", dec(pl.col("loser_threshold"))))
        .otherwise(pl.format("between {}x and {}x", dec(pl.col("loser_threshold")), dec(pl.col("winner_threshold"))))
    )


def _loser_data() -> pl.Expr:
    return pl.format(
        "{} with {} data: spend {} {} {} x target CPA {}",
        pl.col("bucket"),
        pl.when(pl.col("matrix_rule").str.ends_with("ENOUGH_DATA"))
        .then(pl.lit("enough"))
        .otherwise(pl.lit("too little")),
        money(pl.col("spend_window")),
        pl.when(pl.col("matrix_rule").str.ends_with("ENOUGH_DATA")).then(pl.lit(">=")).otherwise(pl.lit("<")),
        dec(pl.col("pause_spend_multiple"), 1),
        money(pl.col("target_cpa")),
    )


def _value_text() -> pl.Expr:
    """The expected-value test of a proposed SCALE or PAUSE, with its figures."""
    scale = pl.col("matrix_action") == "SCALE"
    right = (
        pl.when(scale)
        .then(
            pl.when(pl.col("marginal_roas_factor") < 1)
            .then(
                pl.format(
                    "true ROAS above {}x the account average, as the next budget earns about {}x the audience's average",
                    dec(1 / pl.col("marginal_roas_factor")),
                    dec(pl.col("marginal_roas_factor")),
                )
            )
            .otherwise(pl.lit("true ROAS above the account average"))
        )
        .otherwise(pl.lit("true ROAS below the account average, its break-even"))
    )
    return pl.format(
        "{} probability that {} is right ({}); expected {} {}% of {}, against a possible loss of {}% weighted {}x: "
        "confidence {}",
        _probability(pl.col("act_probability")),
        pl.when(scale).then(pl.lit("scaling")).otherwise(pl.lit("pausing")),
        right,
        pl.when(scale).then(pl.lit("return above break-even")).otherwise(pl.lit("saving")),
        dec(pl.col("expected_gain") * 100, 1),
        pl.when(scale).then(pl.lit("the added budget")).otherwise(pl.lit("its daily spend")),
        dec(pl.col("expected_loss") * 100, 1),
        num(pl.col("loss_weight")),
        pl.col("confidence"),
    )


def _evidence(cfg: RulesConfig) -> list[pl.Expr]:
    """The figures behind the decision: ROAS against the account, noise filters, bucket, trend, probability."""
    eligible = pl.col("eligible")
    side = _side()
    return [
        pl.when(eligible)
        .then(
            pl.format(
                "ROAS {} is {} the account average of {} over {} days",
                dec(pl.col("roas_window")),
                _x("normalized_roas"),
                dec(pl.col("account_avg_roas")),
                _days(),
            )
        )
        .otherwise(pl.format("Not enough data to decide: {}", pl.col("filter_reason"))),
        pl.when(eligible).then(
            pl.format(
                "Spend {} and {} purchases over {} days, above the noise thresholds ({}, {} purchases, {} days old)",
                money(pl.col("spend_window")),
                num(pl.col("purchases_window")),
                _days(),
                money(pl.col("min_spend_acct")),
                num(pl.lit(cfg.min_purchases)),
                pl.lit(str(cfg.min_age_days)),
            )
        ),
        pl.when(eligible).then(
            pl.format(
                "{} bucket on the {} thresholds: {} the account average", pl.col("bucket"), pl.col("modifier_key"), side
            )
        ),
        pl.when(eligible).then(_trend_text(cfg)),
        pl.when(eligible & ~pl.col("matrix_action").is_in(["SCALE", "PAUSE"])).then(
            pl.format(
                "{} probability that true ROAS is {} the account average (confidence {})",
                _probability(pl.col("p_in_bucket")),
                side,
                pl.col("confidence"),
            )
        ),
        pl.when(eligible & pl.col("matrix_action").is_in(["SCALE", "PAUSE"])).then(_value_text()),
        pl.when(eligible & (pl.col("bucket") == "LOSER")).then(_loser_data()),
    ]


def _reasons(cfg: RulesConfig) -> list[pl.Expr]:
    """Every reason of a decision, in reading order: the evidence, then the rule, gate and guardrail."""
    eligible = pl.col("eligible")
    return [
        *_evidence(cfg),
        pl.when(eligible).then(
            pl.format(
                "Decision matrix: {} -> {}",
                pl.col("matrix_rule").str.replace("+", " + ", literal=True),
                pl.col("matrix_action"),
            )
        ),
        pl.when(pl.col("matrix_action") == "RETEST").then(
            pl.format(
                "Delivery stalled: spend {} over {} days, but over {} days ROAS was {}x the account average on {} purchases",
                money(pl.col("spend_window")),
                _days(),
                _days("long_window_days"),
                dec(pl.col("revenue_long") / pl.col("spend_long") / pl.col("account_avg_roas_long")),
                num(pl.col("purchases_long")),
            )
        ),
        pl.col("gate_reason"),
        pl.col("guardrail_reason"),
        pl.when(pl.col("action") == "SCALE").then(
            pl.format(
                "Raise the daily budget {}%: {} -> {}",
                pl.col("scale_percentage").cast(pl.Utf8),
                money(pl.col("current_daily_budget")),
                money(pl.col("new_daily_budget")),
            )
        ),
        pl.when(pl.col("action") == "SCALE").then(pl.col("guardrail_note")),
        pl.when(pl.col("action") == "RETEST").then(pl.lit("Duplicate the ad set and relaunch it to restart delivery")),
    ]


def _risks(cfg: RulesConfig) -> list[pl.Expr]:
    eligible = pl.col("eligible")
    median_daily = pl.col("median_audience_spend") / pl.col("window_days")
    risks = [
        pl.when(eligible & (pl.col("bucket") == "WINNER") & (pl.col("trend") == "DECLINING")).then(
            pl.format("Fatigue: ROAS {} in the most recent days of the window", pct(pl.col("roas_change"), signed=True))
        ),
        pl.when(eligible & (pl.col("spend_acceleration") >= cfg.spend_acceleration_threshold)).then(
            pl.format(
                "Saturation: daily spend up {} in the most recent days{}",
                pct(pl.col("spend_acceleration")),
                pl.when(pl.col("roas_change") < 0)
                .then(pl.format(" while ROAS moved {}", pct(pl.col("roas_change"), signed=True)))
                .otherwise(pl.lit("")),
            )
        ),
        pl.when(eligible & (pl.col("trend") == "VOLATILE")).then(
            pl.lit("Volatility: day-to-day results swing more than purchase counts explain; one day can mislead")
        ),
        pl.when(eligible & (pl.col("purchases_window") < cfg.trend_min_purchases)).then(
            pl.format("Thin data: only {} purchases over {} days", num(pl.col("purchases_window")), _days())
        ),
        pl.when(
            (pl.col("action") == "SCALE") & (pl.col("new_daily_budget") > RISK_SATURATION_X_MEDIAN * median_daily)
        ).then(
            pl.format(
                "Possible saturation beyond {} a day: {}x the account's median audience spend",
                money(pl.col("new_daily_budget")),
                dec(pl.col("new_daily_budget") / median_daily, 1),
            )
        ),
        pl.when((pl.col("action") == "SCALE") & (pl.col("age_days") <= 7)).then(
            pl.format(
                "Young ad set ({} days): it may still be in Meta's learning phase", pl.col("age_days").cast(pl.Utf8)
            )
        ),
        pl.when(eligible & (pl.col("roas_1d") < IMMATURE_DAY_RATIO * pl.col("roas_window"))).then(
            pl.format(
                "Yesterday's ROAS {} looks low, but the latest days are still maturing as conversions are attributed",
                dec(pl.col("roas_1d")),
            )
        ),
        pl.when(eligible & (pl.col("learning_stage") == "LEARNING")).then(
            pl.lit(
                "In Meta's learning phase: delivery and CPA are unstable until about 50 optimisation events follow the last significant edit"
            )
        ),
        pl.when(pl.col("action") == "PAUSE").then(
            pl.lit("A pause of 7 days or more resets Meta's learning phase if the ad set is restarted")
        ),
    ]
    for key in cfg.modifiers:
        for note in cfg.modifier(key).risk_notes:
            risks.append(pl.when(eligible & (pl.col("modifier_key") == key)).then(pl.lit(note)))
    return risks


def explain(frame: pl.DataFrame, cfg: RulesConfig) -> pl.DataFrame:
    """Adds `reasons` and `risks` (lists of strings) to decision rows."""
    return frame.with_columns(
        pl.concat_list(_reasons(cfg)).list.drop_nulls().alias("reasons"),
        pl.concat_list(_risks(cfg)).list.drop_nulls().alias("risks"),
    )
