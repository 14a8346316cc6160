"""Join window metrics with benchmarks and metadata; normalise and score (spec 4, 6)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import polars as pl

from audience_assets.engine.config import RulesConfig

KEYS = ["decision_date", "account_id", "adset_id"]


def modifier_key() -> pl.Expr:
    """BROAD/INTEREST/LOOKALIKE/CUSTOM, with lookalikes of at most 1 % as LOOKALIKE_1PCT."""
    return (
        pl.when((pl.col("audience_type") == "LOOKALIKE") & (pl.col("lookalike_pct") <= 1.0))
        .then(pl.lit("LOOKALIKE_1PCT"))
        .otherwise(pl.col("audience_type"))
    )


def per_type(cfg: RulesConfig, name: str, key: str = "modifier_key") -> pl.Expr:
    """A per-audience-type value of a config field, as a column."""
    mapping = {k: cfg.resolved(k, name) for k in cfg.modifiers}
    default = cfg.resolved("__none__", name)
    return pl.col(key).replace_strict(mapping, default=default, return_dtype=pl.Float64)


def target_cpa_columns(cfg: RulesConfig) -> list[pl.Expr]:
    """`target_cpa` (configured per account, else the account's derived CPA) and its source."""
    configured = pl.col("account_id").replace_strict(cfg.target_cpa, default=None, return_dtype=pl.Float64)
    return [
        pl.coalesce(configured, pl.col("derived_cpa")).alias("target_cpa"),
        pl.when(configured.is_not_null())
        .then(pl.lit("configured"))
        .otherwise(pl.lit("derived"))
        .alias("target_cpa_source"),
    ]


def money_threshold_columns(cfg: RulesConfig) -> list[pl.Expr]:
    """Money thresholds in each account's own currency: converted from the threshold currency,
    or set per account. NULL when no rate is configured (the audience is then not eligible)."""
    rates = {cfg.threshold_currency: 1.0, **cfg.currency_rates}
    factor = pl.col("currency").replace_strict(rates, default=None, return_dtype=pl.Float64)
    override = pl.col("account_id").replace_strict(cfg.account_min_spend, default=None, return_dtype=pl.Float64)
    min_spend = pl.coalesce(override, factor * cfg.min_spend)
    pause_floor = (
        min_spend
        if cfg.min_spend_to_pause is None
        else pl.coalesce(
            override * (cfg.min_spend_to_pause / cfg.min_spend) if cfg.min_spend else override,
            factor * cfg.min_spend_to_pause,
        )
    )
    return [min_spend.alias("min_spend_acct"), pause_floor.alias("pause_min_spend_acct")]


def _benchmarks(account_bench: pl.DataFrame) -> pl.DataFrame:
    return account_bench.select(
        "account_id",
        pl.col("avg_roas").alias("account_avg_roas"),
        pl.col("derived_cpa"),
        pl.col("avg_cvr").alias("account_avg_cvr"),
        pl.col("avg_order_value").alias("account_aov"),
        pl.col("median_audience_spend"),
        pl.col("avg_roas_long").alias("account_avg_roas_long"),
        pl.col("avg_order_value_long").alias("account_aov_long"),
    )


def _campaigns(campaign_bench: pl.DataFrame) -> pl.DataFrame:
    return campaign_bench.select("account_id", "campaign_id", pl.col("avg_roas").alias("campaign_avg_roas"))


def _metadata(metadata: pl.DataFrame) -> pl.DataFrame:
    """The metadata the rules read; API-only columns are NULL (CBO False) when a source lacks them."""

    def optional(name: str, dtype: pl.DataType, default: object = None) -> pl.Expr:
        if name in metadata.columns:
            return pl.col(name).fill_null(default) if default is not None else pl.col(name)
        return pl.lit(default, dtype).alias(name)

    return metadata.select(
        "account_id",
        "adset_id",
        "audience_type",
        "lookalike_pct",
        "source_quality",
        "launched_on",
        "daily_budget",
        "last_budget_change_at",
        optional("is_cbo", pl.Boolean(), False),
        optional("lifetime_budget", pl.Float64()),
        optional("effective_status", pl.Utf8()),
        optional("learning_stage", pl.Utf8()),
    )


def _engine_changes(history: pl.DataFrame, as_of: date) -> pl.DataFrame:
    """When the engine itself last scaled each ad set: the moment that run decided (its decision
    date for rows stored before decided_at was recorded)."""
    if not history.height:
        return pl.DataFrame(
            schema={"account_id": pl.Utf8, "adset_id": pl.Utf8, "last_engine_change_at": pl.Datetime("us")}
        )
    engine_time = pl.col("decision_date").cast(pl.Datetime("us"))
    if "decided_at" in history.columns:
        engine_time = pl.coalesce(pl.col("decided_at").cast(pl.Datetime("us")), engine_time)
    return (
        history.filter((pl.col("decision_date") < as_of) & (pl.col("action") == "SCALE"))
        .group_by("account_id", "adset_id")
        .agg(engine_time.max().alias("last_engine_change_at"))
    )


def prepare(
    window: pl.DataFrame,
    account_bench: pl.DataFrame,
    campaign_bench: pl.DataFrame,
    metadata: pl.DataFrame,
    history: pl.DataFrame,
    cfg: RulesConfig,
    as_of: date,
    decided_at: datetime | None = None,
) -> pl.DataFrame:
    """One row per audience with everything the rules read, as of the decision date.

    `decided_at` is when the decision is made (naive UTC): budget changes up to then count for the
    cooldown, even those made earlier on the decision date itself. For a replay of a past date it
    is capped at the end of that date, so later changes cannot leak into the past. Without it the
    decision is taken at the start of the decision date.
    """
    acct, camp, meta = _benchmarks(account_bench), _campaigns(campaign_bench), _metadata(metadata)
    last_engine_change = _engine_changes(history, as_of)
    start = datetime.combine(as_of, time.min)
    moment = start if decided_at is None else min(decided_at, start + timedelta(days=1))
    decision_time = pl.lit(moment).cast(pl.Datetime("us"))
    # A change stamped after the decision time is ignored: it cannot inform a replay of the past.
    meta_change = pl.col("last_budget_change_at").cast(pl.Datetime("us"))
    meta_change = pl.when(meta_change <= decision_time).then(meta_change)
    frame = (
        window.join(acct, on="account_id", how="left")
        .join(camp, on=["account_id", "campaign_id"], how="left")
        .join(meta, on=["account_id", "adset_id"], how="left")
        .join(last_engine_change, on=["account_id", "adset_id"], how="left")
        .with_columns(
            modifier_key().alias("modifier_key"),
            (pl.lit(as_of) - pl.coalesce("launched_on", "first_spend_date")).dt.total_days().alias("age_days"),
            *target_cpa_columns(cfg),
            *money_threshold_columns(cfg),
            # Never an estimate: a budget the engine does not know is a budget it must not change.
            pl.col("daily_budget").alias("current_daily_budget"),
            pl.when(pl.col("daily_budget").is_not_null())
            .then(pl.lit("metadata"))
            .otherwise(pl.lit("unknown"))
            .alias("budget_source"),
            pl.max_horizontal(meta_change, pl.col("last_engine_change_at")).alias("last_budget_change_at"),
            decision_time.alias("decided_at"),
        )
        .with_columns(
            ((decision_time - pl.col("last_budget_change_at")).dt.total_minutes() / 60.0).alias(
                "hours_since_budget_change"
            )
        )
        .drop("last_engine_change_at")
    )
    return normalise(frame, cfg)


def ratio(num: str, den: str) -> pl.Expr:
    """num / den, NULL when the denominator is zero or missing (never NaN or infinity)."""
    return pl.when(pl.col(den) > 0).then(pl.col(num) / pl.col(den))


def normalise(frame: pl.DataFrame, cfg: RulesConfig) -> pl.DataFrame:
    """Normalised metrics and the composite score (spec 6); scores rank, they do not act."""
    w = cfg.score_weights
    cap = cfg.normalised_cap

    def capped(expr: pl.Expr) -> pl.Expr:
        return expr.clip(0.0, cap)

    return frame.with_columns(
        ratio("roas_window", "account_avg_roas").alias("normalized_roas"),
        ratio("roas_window", "campaign_avg_roas").alias("normalized_roas_campaign"),
        ratio("spend_window", "median_audience_spend").alias("normalized_spend"),
        ratio("cvr_window", "account_avg_cvr").alias("normalized_cvr"),
        (pl.col("purchases_window") / cfg.purchase_volume_target).clip(0.0, 1.0).alias("purchase_volume_score"),
    ).with_columns(
        (
            capped(pl.col("normalized_roas").fill_null(0.0).fill_nan(0.0)) * w.roas
            + capped(pl.col("normalized_spend").fill_null(0.0).fill_nan(0.0)) * w.spend
            + capped(pl.col("normalized_cvr").fill_null(0.0).fill_nan(0.0)) * w.cvr
            + pl.col("purchase_volume_score") * w.purchase_volume
        ).alias("score")
    )
