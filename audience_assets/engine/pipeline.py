"""The whole rule engine in one call, stage by stage (the assets run the same stages)."""

from __future__ import annotations

from datetime import date, datetime

import polars as pl

from audience_assets.engine.buckets import assign_buckets
from audience_assets.engine.confidence import score_confidence
from audience_assets.engine.config import RulesConfig
from audience_assets.engine.decisions import apply_matrix
from audience_assets.engine.eligibility import assess_eligibility
from audience_assets.engine.explain import explain
from audience_assets.engine.guardrails import apply_guardrails
from audience_assets.engine.prepare import KEYS, prepare
from audience_assets.engine.recommend import to_recommendations
from audience_assets.engine.trends import derive_trends


def added_columns(before: pl.DataFrame, after: pl.DataFrame) -> pl.DataFrame:
    """Keys plus the columns a stage added: what that stage's table stores."""
    new = [c for c in after.columns if c not in before.columns]
    return after.select(*KEYS, *new)


def decide(frame: pl.DataFrame, cfg: RulesConfig) -> pl.DataFrame:
    """Confidence, matrix, guardrails and explanations over prepared, bucketed, trended rows."""
    out = score_confidence(frame, cfg)
    out = apply_matrix(out, cfg)
    out = apply_guardrails(out, cfg)
    out = explain(out, cfg)
    return out.with_columns(pl.lit(cfg.config_hash()).alias("config_hash")).sort(KEYS)


def run_engine(
    window: pl.DataFrame,
    account_bench: pl.DataFrame,
    campaign_bench: pl.DataFrame,
    metadata: pl.DataFrame,
    history: pl.DataFrame,
    cfg: RulesConfig,
    as_of: date,
    decided_at: datetime | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Decision rows and recommendation rows for one decision date."""
    frame = prepare(window, account_bench, campaign_bench, metadata, history, cfg, as_of, decided_at)
    frame = assess_eligibility(frame, cfg)
    frame = assign_buckets(frame, cfg)
    frame = derive_trends(frame, cfg)
    decisions = decide(frame, cfg)
    return decisions, to_recommendations(decisions)
