"""Outcomes of decisions (spec 14), the pure part: was each decision right over its horizon, what it
earned or cost, and the rule scorecard.

The horizon's ROAS ratio to the account gets the same Gamma-Poisson posterior as a decision does
(evidence grows with purchases, not revenue), and a label is given only when the posterior is clear
(`certainty`, default 0.8); otherwise `inconclusive`. Money is valued against the account's average
over the same days (the alternative use of the budget): a SCALE earns step x daily spend x days x
(ROAS - account ROAS), a PAUSE saves daily spend x days x (account ROAS - ROAS). An executed SCALE is
judged on its marginal ROAS, (revenue after - before) / (spend after - before), as a
difference-in-differences against comparable held audiences, with a bootstrap interval over them;
an executed PAUSE, which leaves no after-data, is judged by comparable held audiences with the same
evidence at decision time.
"""

from __future__ import annotations

import hashlib

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field
from scipy.special import gammaincc, ndtri

from audience_assets.engine.confidence import posterior
from audience_assets.engine.config import RulesConfig

LABELS = ("good_call", "false_positive_scale", "missed_winner", "bad_pause", "inconclusive")
GROUP_KEYS = ["decision_date", "account_id", "horizon_days", "audience_type", "bucket"]


class OutcomeSettings(BaseModel):
    """How outcomes are judged; none of it changes a decision."""

    model_config = ConfigDict(extra="forbid")

    horizons: tuple[int, ...] = Field((3, 7), description="days after a decision it is judged over")
    certainty: float = Field(0.8, gt=0.5, lt=1, description="posterior probability needed for a label")
    maturing_days: int = Field(7, ge=0, description="a day keeps receiving conversions this long (attribution)")
    bootstrap_samples: int = Field(400, ge=50)
    interval: float = Field(0.9, gt=0, lt=1, description="width of the reported intervals")
    comparable_band: float = Field(0.25, gt=0, description="decision-time ratio distance of a comparable audience")
    min_increase_pct: float = Field(5.0, ge=0, description="spend increase below which no marginal ROAS is measured")
    seed: int = 7


def rule_branch() -> pl.Expr:
    """The branch of the rules that produced the action: a guardrail, a gate, else the matrix row."""
    return (
        pl.when(pl.col("guardrail").is_not_null())
        .then(pl.format("guardrail:{}", pl.col("guardrail")))
        .when(pl.col("gate_reason").is_not_null())
        .then(pl.format("gate:{}_held", pl.col("matrix_action")))
        .otherwise(pl.col("matrix_rule"))
    )


def _probabilities(frame: pl.DataFrame, cfg: RulesConfig, prefix: str = "") -> pl.DataFrame:
    """P(ratio > 1) and P(ratio > winner threshold) over the horizon, from purchase counts."""
    a, b = posterior(
        frame.with_columns(pl.lit(None, pl.Float64).alias("overdispersion")),
        cfg, f"{prefix}spend", f"{prefix}revenue", f"{prefix}purchases", "account_roas", "account_aov",
    )  # fmt: skip
    winner = frame["winner_threshold"].fill_null(1.2).to_numpy()
    with np.errstate(invalid="ignore"):
        above = gammaincc(a, b * 1.0)
        above_w = gammaincc(a, b * winner)
    no_data = (frame[f"{prefix}spend"].fill_null(0) <= 0).to_numpy()
    return frame.with_columns(
        pl.Series(f"{prefix}p_above_average", np.where(no_data, np.nan, above)).fill_nan(None),
        pl.Series(f"{prefix}p_winner", np.where(no_data, np.nan, above_w)).fill_nan(None),
    )


def comparable_held(frame: pl.DataFrame, settings: OutcomeSettings) -> pl.DataFrame:
    """For each row, the pooled horizon figures of held, unexecuted audiences of the same account, type
    and bucket whose decision-time ratio was within `comparable_band` of its own."""
    held = frame.filter((pl.col("action") == "HOLD") & ~pl.col("executed")).select(
        *GROUP_KEYS, pl.col("adset_id").alias("_c_id"), pl.col("normalized_roas").alias("_c_nr"),
        "spend", "revenue", "purchases", "spend_before", "revenue_before",
    )  # fmt: skip
    pairs = frame.select("adset_id", *GROUP_KEYS, "normalized_roas").join(held, on=GROUP_KEYS, how="inner")
    pairs = pairs.filter(
        (pl.col("_c_id") != pl.col("adset_id"))
        & ((pl.col("_c_nr") - pl.col("normalized_roas")).abs() <= settings.comparable_band)
    )
    return pairs.group_by("adset_id", *GROUP_KEYS).agg(
        pl.len().alias("comparable_audiences"),
        pl.col("spend").sum().alias("c_spend"),
        pl.col("revenue").sum().alias("c_revenue"),
        pl.col("purchases").sum().alias("c_purchases"),
    )


def _seed(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256("|".join(map(str, parts)).encode()).digest()[:4], "big")


def marginal_roas(
    treated: dict, controls: pl.DataFrame, settings: OutcomeSettings
) -> tuple[float, float, float] | None:
    """Difference-in-differences marginal ROAS of a budget increase: the treated audience's change in
    revenue over its change in spend, each net of the change comparable held audiences saw, with a
    bootstrap interval over those audiences. None when there is no increase to measure."""
    c = controls.select("spend_before", "spend", "revenue_before", "revenue").to_numpy()
    if len(c) < 2 or treated["spend_before"] <= 0:
        return None

    def estimate(rows: np.ndarray) -> float:
        sb, sa, rb, ra = rows.sum(axis=0)
        if sb <= 0 or rb <= 0:
            return np.nan
        extra_spend = treated["spend"] - treated["spend_before"] * sa / sb
        if extra_spend <= treated["spend_before"] * settings.min_increase_pct / 100:
            return np.nan
        return (treated["revenue"] - treated["revenue_before"] * ra / rb) / extra_spend

    point = estimate(c)
    if not np.isfinite(point):
        return None
    rng = np.random.default_rng(
        _seed(settings.seed, treated["decision_date"], treated["adset_id"], treated["horizon_days"])
    )
    draws = np.array([estimate(c[rng.integers(0, len(c), len(c))]) for _ in range(settings.bootstrap_samples)])
    draws = draws[np.isfinite(draws)]
    tail = (1 - settings.interval) / 2 * 100
    lo, hi = np.percentile(draws, [tail, 100 - tail]) if len(draws) else (np.nan, np.nan)
    return float(point), float(lo), float(hi)


def _with_marginal(frame: pl.DataFrame, settings: OutcomeSettings) -> pl.DataFrame:
    """Marginal ROAS (difference-in-differences) of every executed SCALE; a loop over executed actions
    only, which a person approved one by one."""
    out = {"marginal_roas": [], "marginal_roas_lo": [], "marginal_roas_hi": []}
    held = frame.filter((pl.col("action") == "HOLD") & ~pl.col("executed"))
    for row in frame.iter_rows(named=True):
        found = None
        if row["action"] == "SCALE" and row["executed"]:
            same = held.filter(*(pl.col(k) == row[k] for k in GROUP_KEYS if row[k] is not None))
            if same.height < 2:
                same = held.filter(*(pl.col(k) == row[k] for k in ("decision_date", "account_id", "horizon_days")))
            found = marginal_roas(row, same, settings)
        for key, value in zip(out, found or (None, None, None), strict=True):
            out[key].append(value)
    return frame.with_columns(*(pl.Series(k, v, dtype=pl.Float64) for k, v in out.items()))


def _labels(c: float) -> pl.Expr:
    action, executed = pl.col("action"), pl.col("executed")
    lo = pl.col("marginal_roas_lo") / pl.col("account_roas")
    hi = pl.col("marginal_roas_hi") / pl.col("account_roas")
    above = pl.col("p_above_average")
    pause_p = pl.when(executed).then(pl.col("c_p_above_average")).otherwise(above)
    saw = pl.col("eligible").fill_null(False) & (pl.col("normalized_roas") >= pl.col("winner_threshold"))
    return (
        pl.when((action == "SCALE") & executed & (lo > 1)).then(pl.lit("good_call"))
        .when((action == "SCALE") & executed & (hi < 1)).then(pl.lit("false_positive_scale"))
        .when((action == "SCALE") & (above >= c)).then(pl.lit("good_call"))
        .when((action == "SCALE") & (1 - above >= c)).then(pl.lit("false_positive_scale"))
        .when((action == "PAUSE") & (pause_p >= c)).then(pl.lit("bad_pause"))
        .when((action == "PAUSE") & (1 - pause_p >= c)).then(pl.lit("good_call"))
        .when((action == "HOLD") & saw & (pl.col("p_winner") >= c)).then(pl.lit("missed_winner"))
        .when((action == "HOLD") & (1 - pl.col("p_winner") >= c)).then(pl.lit("good_call"))
        .when((action == "RETEST") & (above >= c)).then(pl.lit("good_call"))
        .otherwise(pl.lit("inconclusive"))
    )  # fmt: skip


def _money() -> list[pl.Expr]:
    days, acct = pl.col("horizon_days"), pl.col("account_roas")
    daily = pl.col("spend_window") / pl.col("window_days")
    own = pl.col("roas")
    pooled = pl.col("c_revenue") / pl.col("c_spend")
    scaled = pl.coalesce(pl.when(pl.col("executed")).then(pl.col("marginal_roas")), own)
    value = (
        pl.when(pl.col("action") == "SCALE")
        .then(pl.col("scale_percentage") / 100 * daily * days * (scaled - acct))
        .when(pl.col("action") == "PAUSE")
        .then(daily * days * (acct - pl.when(pl.col("executed")).then(pooled).otherwise(own)))
        .otherwise(0.0)
        .fill_null(0.0)
        .fill_nan(0.0)
    )
    missed = (
        pl.when(pl.col("label") == "missed_winner")
        .then(pl.col("type_scale_pct") / 100 * daily * days * (own - acct).clip(lower_bound=0))
        .otherwise(0.0)
        .fill_null(0.0)
    )
    return [
        value.alias("value"),
        value.clip(lower_bound=0).alias("gained"),
        ((-value).clip(lower_bound=0) + missed).alias("lost"),
        missed.alias("missed_value"),
    ]


def judge(frame: pl.DataFrame, cfg: RulesConfig, settings: OutcomeSettings) -> pl.DataFrame:
    """Label and value every (decision, horizon) row: the outcome windows joined with the decision's
    columns and `executed` / `learning_restarted` from the action log."""
    frame = _probabilities(frame, cfg)
    pooled = comparable_held(frame, settings)
    frame = frame.join(pooled, on=["adset_id", *GROUP_KEYS], how="left", nulls_equal=True)
    frame = frame.with_columns(pl.col("comparable_audiences").fill_null(0))
    frame = _probabilities(frame.with_columns(pl.col("c_spend", "c_revenue", "c_purchases").fill_null(0)), cfg, "c_")
    frame = _with_marginal(frame, settings)
    frame = frame.with_columns(_labels(settings.certainty).alias("label"), rule_branch().alias("rule_branch"))
    return frame.with_columns(_money())


def _wilson(hits: np.ndarray, n: np.ndarray, z: float) -> tuple[np.ndarray, np.ndarray]:
    with np.errstate(invalid="ignore", divide="ignore"):
        p = hits / n
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    # The interval holds the estimate exactly (binary rounding leaves 0.9999999 above a 100 % rate).
    return np.minimum(centre - half, p), np.maximum(centre + half, p)


SCORECARD_KEYS = ["horizon_days", "rule_branch", "audience_type", "currency"]


def scorecard(outcomes: pl.DataFrame, settings: OutcomeSettings, keys: list[str] | None = None) -> pl.DataFrame:
    """Per rule branch and audience type: counts per label, hit rate among the labelled (Wilson
    interval), money gained or saved and lost, and the net with a bootstrap interval over decisions."""
    keys = keys or SCORECARD_KEYS
    card = outcomes.group_by(keys).agg(
        pl.len().alias("decisions"),
        *(pl.col("label").eq(lab).sum().alias(lab) for lab in LABELS),
        pl.col("executed").sum().alias("executed"),
        pl.col("learning_restarted").fill_null(False).sum().alias("learning_restarts"),
        pl.col("gained").sum(),
        pl.col("lost").sum(),
        (pl.col("gained") - pl.col("lost")).alias("_net_rows"),
    ).with_columns(
        (pl.col("decisions") - pl.col("inconclusive")).alias("labelled"),
        (pl.col("gained") - pl.col("lost")).alias("net"),
    ).sort(keys)  # fmt: skip
    z = float(ndtri(0.5 + settings.interval / 2))
    lo, hi = _wilson(card["good_call"].to_numpy().astype(float), card["labelled"].to_numpy().astype(float), z)
    tail = (1 - settings.interval) / 2 * 100
    rng = np.random.default_rng(settings.seed)
    net_lo, net_hi = [], []
    for rows in card["_net_rows"].to_list():
        values = np.asarray(rows, dtype=float)
        sums = values[rng.integers(0, len(values), (settings.bootstrap_samples, len(values)))].sum(axis=1)
        a, b = np.percentile(sums, [tail, 100 - tail])
        net_lo.append(float(a))
        net_hi.append(float(b))
    return card.drop("_net_rows").with_columns(
        pl.when(pl.col("labelled") > 0).then(pl.col("good_call") / pl.col("labelled")).alias("hit_rate"),
        pl.Series("hit_rate_lo", lo).fill_nan(None),
        pl.Series("hit_rate_hi", hi).fill_nan(None),
        pl.Series("net_lo", net_lo),
        pl.Series("net_hi", net_hi),
    )
