"""Confidence as a probability: Gamma-Poisson posterior of the audience's true ROAS.

The true ROAS ratio to the account mean, theta, has a Gamma(k, k) prior (mean 1: shrinkage
toward the account, k = prior_strength pseudo-purchases). Purchases are Poisson; the exposure
is the number of purchases the account's average ROAS would need to earn the audience's revenue
at the audience's order value (n / observed ratio). Both are deflated by (1 + cv^2) for the
spread of order values, and by the significant overdispersion of daily purchases (quasi-Poisson).
The posterior is Gamma(k + n', k + expected'), so the evidence grows with
the purchase count, not with revenue: three large orders are weak evidence however big they are.
Confidence is P(theta on the bucket's side of its threshold).
"""

from __future__ import annotations

import numpy as np
import polars as pl
from scipy.special import gammainc, gammaincc

from audience_assets.engine.config import RulesConfig


def posterior(
    frame: pl.DataFrame,
    cfg: RulesConfig,
    spend: str,
    revenue: str,
    purchases: str,
    roas: str,
    aov: str,
) -> tuple[np.ndarray, np.ndarray]:
    """Gamma posterior (shape, rate) of the ROAS ratio to the account, from purchase counts."""
    infl = 1.0 + cfg.order_value_cv**2
    k = cfg.prior_strength

    def col(name: str) -> np.ndarray:
        return frame[name].cast(pl.Float64).fill_null(np.nan).to_numpy()

    n = np.nan_to_num(col(purchases), nan=0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = col(revenue) / col(spend) / col(roas)
        # Purchases the account's ROAS would need at this audience's order value; with no
        # purchases (or no revenue) the account's order value stands in.
        expected = np.where((n > 0) & (ratio > 0), n / ratio, col(spend) * col(roas) / col(aov))
    # Days that scatter beyond Poisson carry less evidence per purchase (quasi-Poisson).
    phi = frame["overdispersion"].fill_null(1.0).to_numpy() if "overdispersion" in frame.columns else 1.0
    return k + n / (infl * phi), k + expected / (infl * phi)


def break_even(a: np.ndarray, b: np.ndarray, t: np.ndarray | float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For theta ~ Gamma(shape a, rate b): P(theta < t), E[(t - theta)+] and E[(theta - t)+].

    E[theta; theta < t] = (a / b) P(Gamma(a + 1, b) < t), so both partial expectations are closed
    forms of the regularised incomplete gamma: the gate's figures are exact, not simulated."""
    with np.errstate(invalid="ignore", divide="ignore"):
        p_below = gammainc(a, b * t)
        mean = a / b
        shortfall = t * p_below - mean * gammainc(a + 1.0, b * t)
        excess = mean - t + shortfall
    return p_below, np.maximum(shortfall, 0.0), np.maximum(excess, 0.0)


def score_confidence(frame: pl.DataFrame, cfg: RulesConfig) -> pl.DataFrame:
    """Adds posterior figures, `p_in_bucket`, `confidence` and the long-window winner probability."""
    a, b = posterior(
        frame, cfg, "spend_window", "revenue_window", "purchases_window", "account_avg_roas", "account_aov"
    )
    w = frame["winner_threshold"].to_numpy()
    lo = frame["loser_threshold"].to_numpy()
    bucket = frame["bucket"].to_numpy()
    with np.errstate(invalid="ignore"):
        p_winner = gammaincc(a, w * b)
        p_loser = gammainc(a, lo * b)
        p_average = 1.0 - p_winner - p_loser
        p_in = np.select(
            [bucket == "WINNER", bucket == "AVERAGE", bucket == "LOSER"],
            [p_winner, p_average, p_loser],
            default=np.nan,
        )
        la, lb = posterior(
            frame, cfg, "spend_long", "revenue_long", "purchases_long", "account_avg_roas_long", "account_aov_long"
        )
        p_long_winner = gammaincc(la, w * lb)
    # Whether to act is judged on recency-weighted evidence (what the audience does now), so an
    # improving audience is not paused, nor a fading one scaled, on the average of the week.
    a, b = posterior(
        frame, cfg, "spend_recent", "revenue_recent", "purchases_recent", "account_avg_roas", "account_aov"
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = a / b
    frame = frame.with_columns(
        pl.Series("posterior_shape", a).fill_nan(None),
        pl.Series("posterior_rate", b).fill_nan(None),
        pl.Series("posterior_roas_ratio", mean).fill_nan(None),
        pl.Series("p_winner", p_winner).fill_nan(None),
        pl.Series("p_loser", p_loser).fill_nan(None),
        pl.Series("p_in_bucket", p_in).fill_nan(None),
        pl.Series("p_long_winner", p_long_winner).fill_nan(None),
    )
    p = pl.col("p_in_bucket")
    return frame.with_columns(
        pl.when(p >= cfg.confidence_high)
        .then(pl.lit("HIGH"))
        .when(p >= cfg.confidence_medium)
        .then(pl.lit("MEDIUM"))
        .otherwise(pl.lit("LOW"))
        .alias("confidence")
    )
