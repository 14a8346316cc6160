"""Guardrails (spec 10): hard limits applied after the matrix, and an independent verifier.

`apply_guardrails` turns a proposed action into an allowed one. `verify_guardrails` re-derives
every limit from the decision rows alone and lists violations; the blocking asset check runs it,
so a bug in `apply_guardrails` cannot reach an ad account.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from audience_assets.engine.confidence import break_even
from audience_assets.engine.config import SPEC_COOLDOWN_HOURS, SPEC_SCALE_PCT, RulesConfig
from audience_assets.engine.decisions import CONFIDENCE_ORDER
from audience_assets.engine.fmt import floor_money, minor_unit, money, num, pct
from audience_assets.engine.prepare import per_type

ACTIONS = ("SCALE", "HOLD", "PAUSE", "RETEST")
_EPS = 0.01


def _type_step(cfg: RulesConfig) -> pl.Expr:
    mapping = {k: cfg.type_scale_pct(k) for k in cfg.modifiers}
    return pl.col("modifier_key").replace_strict(
        mapping, default=cfg.type_scale_pct("__none__"), return_dtype=pl.Float64
    )


def _limits(frame: pl.DataFrame, cfg: RulesConfig) -> pl.DataFrame:
    """Per-row limits, computed the same way by the applier and the verifier."""
    return frame.with_columns(
        _type_step(cfg).alias("type_scale_pct"),
        per_type(cfg, "cooldown_hours").alias("cooldown_hours"),
        (
            per_type(cfg, "budget_ceiling_x_median_spend") * pl.col("median_audience_spend") / pl.col("window_days")
        ).alias("budget_ceiling"),
    ).with_columns(
        (
            pl.col("current_daily_budget").filter(pl.col("current_daily_budget") > 0).sum().over("account_id")
            * cfg.max_account_daily_increase_pct
            / 100.0
        ).alias("account_increase_cap")
    )


def apply_guardrails(frame: pl.DataFrame, cfg: RulesConfig) -> pl.DataFrame:
    """Replaces `action` with the allowed action; adds scale, new budget and the guardrail applied."""
    frame = _limits(frame, cfg).rename({"action": "proposed_action"})
    base = pl.col("current_daily_budget")
    scale = pl.col("proposed_action") == "SCALE"
    ceiling_pct = ((pl.col("budget_ceiling") / base - 1.0) * 100.0).floor()
    step = pl.min_horizontal(pl.col("type_scale_pct"), ceiling_pct.fill_null(float("inf")))
    frame = frame.with_columns(pl.when(scale).then(step).otherwise(0.0).alias("_pct"))

    # Under campaign budget optimisation the budget lives on the campaign: never write an ad set budget.
    campaign_budget = scale & pl.col("is_cbo").fill_null(False)
    # A lifetime-budget ad set has no daily budget to raise: a daily step would change its pacing model.
    lifetime = scale & pl.col("lifetime_budget").is_not_null() & pl.col("daily_budget").is_null()
    no_budget = scale & (base.is_null() | (base <= 0))
    cooldown = scale & (pl.col("hours_since_budget_change") < pl.col("cooldown_hours"))
    ceiling = scale & (pl.col("_pct") < cfg.min_scale_pct)
    pause_min = (pl.col("proposed_action") == "PAUSE") & (
        pl.col("pause_min_spend_acct").is_null() | (pl.col("spend_window") < pl.col("pause_min_spend_acct"))
    )
    frame = frame.with_columns(
        pl.when(campaign_budget)
        .then(pl.lit("campaign_budget"))
        .when(lifetime)
        .then(pl.lit("lifetime_budget"))
        .when(no_budget)
        .then(pl.lit("no_budget"))
        .when(cooldown)
        .then(pl.lit("cooldown"))
        .when(ceiling)
        .then(pl.lit("budget_ceiling"))
        .when(pause_min)
        .then(pl.lit("pause_min_spend"))
        .alias("guardrail")
    )
    # Account-wide cap on budget added today: the best-scored SCALEs go first (ties by ad set id).
    still_scaling = scale & pl.col("guardrail").is_null()
    frame = frame.with_columns(
        pl.when(still_scaling).then(base * pl.col("_pct") / 100.0).otherwise(0.0).alias("_increase")
    ).sort(["account_id", "score", "adset_id"], descending=[False, True, False], nulls_last=True)
    refused = _over_account_cap(frame.filter(still_scaling))
    frame = frame.with_columns(
        pl.when(pl.col("adset_id").is_in(refused) & still_scaling)
        .then(pl.lit("account_daily_cap"))
        .otherwise(pl.col("guardrail"))
        .alias("guardrail")
    )
    blocked = pl.col("guardrail").is_not_null()
    final = pl.when(blocked).then(pl.lit("HOLD")).otherwise(pl.col("proposed_action"))
    frame = (
        frame.with_columns(final.alias("action"))
        .with_columns(
            pl.when(pl.col("action") == "SCALE")
            .then(pl.col("_pct"))
            .otherwise(0.0)
            .cast(pl.Int64)
            .alias("scale_percentage"),
        )
        .with_columns(
            pl.when(pl.col("action") == "SCALE")
            .then(floor_money(base * (1.0 + pl.col("scale_percentage") / 100.0)))
            .otherwise(base)
            .alias("new_daily_budget"),
            _guardrail_text(cfg).alias("guardrail_reason"),
            pl.when((pl.col("action") == "SCALE") & (pl.col("scale_percentage") < pl.col("type_scale_pct")))
            .then(
                pl.format(
                    "step limited to {}% by the {} budget ceiling of {}",
                    pl.col("scale_percentage").cast(pl.Utf8),
                    pl.col("modifier_key"),
                    money(pl.col("budget_ceiling")),
                )
            )
            .when((pl.col("action") == "SCALE") & (pl.col("type_scale_pct") != cfg.scale_step_pct))
            .then(pl.format("{} step of {}%", pl.col("modifier_key"), pl.col("scale_percentage").cast(pl.Utf8)))
            .alias("guardrail_note"),
        )
    )
    return frame.drop("_pct", "_increase")


def _over_account_cap(candidates: pl.DataFrame) -> list[str]:
    """Ad sets refused by the account's daily increase cap, filling it greedily in rank order.

    Greedy filling is sequential (a refused large step leaves room for a smaller later one), so
    this walks the SCALE candidates, one row per audience that survived every other guardrail.
    """
    refused: list[str] = []
    granted: dict[str, float] = {}
    for account, adset, increase, cap in candidates.select(
        "account_id", "adset_id", "_increase", pl.col("account_increase_cap").fill_null(0.0)
    ).iter_rows():
        if granted.get(account, 0.0) + increase > cap + _EPS:
            refused.append(adset)
        else:
            granted[account] = granted.get(account, 0.0) + increase
    return refused


def _guardrail_text(cfg: RulesConfig) -> pl.Expr:
    g = pl.col("guardrail")
    return (
        pl.when(g == "campaign_budget")
        .then(
            pl.lit(
                "SCALE held: the budget lives on the campaign (campaign budget optimisation); raise the campaign's budget, not the ad set's"
            )
        )
        .when(g == "lifetime_budget")
        .then(
            pl.format(
                "SCALE held: the ad set runs on a lifetime budget of {}; change it by hand, the engine only steps daily budgets",
                money(pl.col("lifetime_budget")),
            )
        )
        .when(g == "no_budget")
        .then(
            pl.lit(
                "SCALE held: the ad set's daily budget is unknown; add daily_budget to the audiences file "
                "(or use the Meta source) to let the engine size a step"
            )
        )
        .when(g == "cooldown")
        .then(
            pl.format(
                "SCALE held: budget last changed {} h before this decision, inside the {} h cooldown",
                num(pl.col("hours_since_budget_change").round(0)),
                num(pl.col("cooldown_hours")),
            )
        )
        .when(g == "budget_ceiling")
        .then(
            pl.format(
                "SCALE held: daily budget {} is at the {} ceiling of {}",
                money(pl.col("current_daily_budget")),
                pl.col("modifier_key"),
                money(pl.col("budget_ceiling")),
            )
        )
        .when(g == "pause_min_spend")
        .then(
            pl.format(
                "PAUSE held: spend {} is under the {} minimum for a pause",
                money(pl.col("spend_window")),
                money(pl.col("pause_min_spend_acct")),
            )
        )
        .when(g == "account_daily_cap")
        .then(
            pl.format(
                "SCALE held: the account's budget increases today already reach the cap of {} ({} of daily budgets)",
                money(pl.col("account_increase_cap")),
                pct(pl.lit(cfg.max_account_daily_increase_pct / 100.0)),
            )
        )
    )


def verify_guardrails(decisions: pl.DataFrame, cfg: RulesConfig) -> pl.DataFrame:
    """Every guardrail violation in a decisions table: one row per (audience, rule)."""
    frame = _limits(decisions, cfg)
    increase = (
        pl.when(pl.col("action") == "SCALE")
        .then(pl.col("new_daily_budget") - pl.col("current_daily_budget"))
        .otherwise(0.0)
    )
    frame = _recheck_value(frame.with_columns(increase.sum().over("account_id").alias("_account_increase")), cfg)
    parts = [
        frame.filter(cond.fill_null(False)).select(
            "decision_date", "account_id", "adset_id", pl.lit(name).alias("rule"), detail.alias("detail")
        )
        for name, cond, detail in _rules(cfg)
    ]
    return pl.concat(parts)


def _recheck_value(frame: pl.DataFrame, cfg: RulesConfig) -> pl.DataFrame:
    """The expected-value test re-derived from the stored posterior (not from the stored verdict):
    `_p_right` and `_worth` for each SCALE and PAUSE as taken."""
    if frame.height == 0:
        return frame.with_columns(pl.lit(None, pl.Float64).alias("_p_right"), pl.lit(None, pl.Boolean).alias("_worth"))
    a = frame["posterior_shape"].cast(pl.Float64).fill_null(np.nan).to_numpy()
    b = frame["posterior_rate"].cast(pl.Float64).fill_null(np.nan).to_numpy()
    factor = per_type_values(frame, cfg, "marginal_roas_factor")
    pause_weight = per_type_values(frame, cfg, "pause_loss_weight")
    action = frame["action"].to_numpy()
    below_1, short_1, excess_1 = break_even(a, b, 1.0)
    below_s, short_s, excess_s = break_even(a, b, 1.0 / factor)
    scale, pause = action == "SCALE", action == "PAUSE"
    p_right = np.select([scale, pause], [1.0 - below_s, below_1], np.nan)
    worth = np.select(
        [scale, pause],
        [
            factor * excess_s >= cfg.scale_loss_weight * factor * short_s - 1e-12,
            short_1 >= pause_weight * excess_1 - 1e-12,
        ],
        True,
    )
    return frame.with_columns(pl.Series("_p_right", p_right).fill_nan(None), pl.Series("_worth", worth))


def _rules(cfg: RulesConfig) -> list[tuple[str, pl.Expr, pl.Expr]]:
    """(rule, violated when, detail) for every limit the verifier re-applies."""
    return _scale_rules(cfg) + _action_rules(cfg)


def _scale_rules(cfg: RulesConfig) -> list[tuple[str, pl.Expr, pl.Expr]]:
    """Limits on the size and timing of a budget step."""
    action = pl.col("action")
    pct_col = pl.col("scale_percentage")
    base = pl.col("current_daily_budget")
    return [
        ("unknown_action", ~action.is_in(ACTIONS), pl.format("action {} is not allowed", action)),
        (
            "scale_pct_without_scale",
            (action != "SCALE") & (pct_col != 0),
            pl.format("{} carries scale_percentage {}", action, pct_col),
        ),
        (
            "scale_band",
            (action == "SCALE") & ((pct_col < cfg.min_scale_pct) | (pct_col > pl.col("type_scale_pct"))),
            pl.format("scale {}% outside [{}, {}]%", pct_col, pl.lit(cfg.min_scale_pct), pl.col("type_scale_pct")),
        ),
        # The spec's own band, whatever the configuration says (spec section 10).
        (
            "spec_scale_band",
            (action == "SCALE") & ((pct_col < SPEC_SCALE_PCT[0]) | (pct_col > SPEC_SCALE_PCT[1])),
            pl.format(
                "scale {}% outside the spec's {}-{}% band",
                pct_col,
                pl.lit(SPEC_SCALE_PCT[0]),
                pl.lit(SPEC_SCALE_PCT[1]),
            ),
        ),
        (
            "cooldown",
            (action == "SCALE")
            & (
                pl.col("hours_since_budget_change")
                < pl.max_horizontal(pl.col("cooldown_hours"), pl.lit(SPEC_COOLDOWN_HOURS[0]))
            ),
            pl.format(
                "scaled {} h after a budget change (cooldown {} h, the spec's minimum {} h)",
                pl.col("hours_since_budget_change"),
                pl.col("cooldown_hours"),
                pl.lit(SPEC_COOLDOWN_HOURS[0]),
            ),
        ),
        (
            "new_budget",
            (action == "SCALE")
            & (
                base.is_null()
                | (pl.col("new_daily_budget") > base * (1 + pct_col / 100.0) + 1e-6)
                | (pl.col("new_daily_budget") < base * (1 + pct_col / 100.0) - minor_unit() - 1e-6)
                | (pl.col("new_daily_budget") > pl.col("budget_ceiling") + _EPS).fill_null(False)
            ),
            pl.format(
                "new budget {} from {} at {}% (ceiling {})",
                pl.col("new_daily_budget"),
                base,
                pct_col,
                pl.col("budget_ceiling"),
            ),
        ),
        (
            "campaign_budget",
            (action == "SCALE") & pl.col("is_cbo").fill_null(False),
            pl.lit("ad set budget change under campaign budget optimisation"),
        ),
        (
            "lifetime_budget",
            (action == "SCALE") & pl.col("lifetime_budget").is_not_null() & pl.col("daily_budget").is_null(),
            pl.lit("daily budget step on a lifetime-budget ad set"),
        ),
    ]


def _needed_probability(cfg: RulesConfig, label: str) -> float:
    return {"HIGH": cfg.confidence_high, "MEDIUM": cfg.confidence_medium, "LOW": 0.0}[label]


def per_type_values(frame: pl.DataFrame, cfg: RulesConfig, name: str) -> np.ndarray:
    return frame.select(per_type(cfg, name)).to_series().to_numpy()


def _action_rules(cfg: RulesConfig) -> list[tuple[str, pl.Expr, pl.Expr]]:
    """Limits on every action: pause floor, delivery, eligibility, confidence, the account's daily cap."""
    need = CONFIDENCE_ORDER[cfg.min_confidence_to_act]
    action = pl.col("action")
    conf_rank = pl.col("confidence").replace_strict(CONFIDENCE_ORDER, default=-1, return_dtype=pl.Int8)
    return [
        (
            "pause_min_spend",
            (action == "PAUSE")
            & (pl.col("pause_min_spend_acct").is_null() | (pl.col("spend_window") < pl.col("pause_min_spend_acct"))),
            pl.format("paused at spend {} under {}", pl.col("spend_window"), pl.col("pause_min_spend_acct")),
        ),
        (
            "not_delivering",
            action.is_in(["SCALE", "PAUSE", "RETEST"])
            & pl.col("effective_status").is_not_null()
            & (pl.col("effective_status") != "ACTIVE"),
            pl.format("{} on an ad set Meta reports as {}", action, pl.col("effective_status")),
        ),
        (
            "not_eligible",
            action.is_in(["SCALE", "PAUSE"]) & ~pl.col("eligible"),
            pl.format("{} on an audience filtered as noise", action),
        ),
        (
            "confidence",
            action.is_in(["SCALE", "PAUSE", "RETEST"])
            & (
                conf_rank
                < pl.when(action == "PAUSE")
                .then(pl.lit(CONFIDENCE_ORDER[cfg.min_confidence_to_pause]))
                .otherwise(pl.lit(need))
            ),
            pl.format("{} at confidence {}", action, pl.col("confidence")),
        ),
        (
            "act_probability",
            action.is_in(["SCALE", "PAUSE"])
            & (
                pl.col("_p_right").is_null()
                | (
                    pl.col("_p_right")
                    < pl.when(action == "PAUSE")
                    .then(_needed_probability(cfg, cfg.min_confidence_to_pause))
                    .otherwise(_needed_probability(cfg, cfg.min_confidence_to_act))
                    - 1e-9
                )
            ),
            pl.format("{} with a {} probability of being right", action, pl.col("_p_right")),
        ),
        (
            "expected_value",
            action.is_in(["SCALE", "PAUSE"]) & ~pl.col("_worth"),
            pl.format("{} whose expected gain does not outweigh its weighted expected loss", action),
        ),
        (
            "account_daily_cap",
            pl.col("_account_increase") > pl.col("account_increase_cap").fill_null(0.0) + _EPS,
            pl.format("account adds {} a day, cap {}", pl.col("_account_increase"), pl.col("account_increase_cap")),
        ),
    ]


def verify_recommendations(recommendations: pl.DataFrame, decisions: pl.DataFrame, cfg: RulesConfig) -> pl.DataFrame:
    """Violations in final recommendations: each must carry its decision's action, scale and budget,
    and those must pass every guardrail."""
    recs = recommendations.select(
        "decision_date",
        pl.col("audience_id").alias("adset_id"),
        pl.col("action").alias("rec_action"),
        pl.col("scale_percentage").alias("rec_scale"),
        pl.col("new_daily_budget").alias("rec_budget"),
    )
    joined = decisions.join(recs, on=["decision_date", "adset_id"], how="full", coalesce=True)
    differs = (
        pl.col("action").is_null()
        | pl.col("rec_action").is_null()
        | (pl.col("rec_action") != pl.col("action"))
        | (pl.col("rec_scale") != pl.col("scale_percentage"))
        | ((pl.col("rec_budget") - pl.col("new_daily_budget")).abs() > _EPS).fill_null(False)
    )
    mismatched = joined.filter(differs).select(
        "decision_date",
        "account_id",
        "adset_id",
        pl.lit("differs_from_decision").alias("rule"),
        pl.format(
            "recommended {} {}% but decided {} {}%", "rec_action", "rec_scale", "action", "scale_percentage"
        ).alias("detail"),
    )
    final = joined.filter(pl.col("rec_action").is_not_null() & pl.col("action").is_not_null()).with_columns(
        pl.col("rec_action").alias("action"),
        pl.col("rec_scale").alias("scale_percentage"),
        pl.col("rec_budget").alias("new_daily_budget"),
    )
    return pl.concat([mismatched, verify_guardrails(final, cfg)])
