"""The engine's stages, defined once: the Dagster assets and `run_engine` both run this list.

`prepare` joins window metrics with benchmarks, metadata and history (the `audience_scores`
table); the rule stages then add their columns in order. Each stage's table stores the keys and
the columns that stage added, except `decisions`, which keeps the whole trail.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Stage:
    """One rule stage: the table it writes and the pure function that computes it."""

    table: str
    run: Callable[[pl.DataFrame, RulesConfig], pl.DataFrame]
    whole_trail: bool = False  # store every column, not only the added ones


RULE_STAGES: tuple[Stage, ...] = (
    Stage("eligibility", assess_eligibility),
    Stage("buckets", assign_buckets),
    Stage("trend_states", derive_trends),
    Stage("decisions", decide, whole_trail=True),
)
RULE_TABLES = tuple(s.table for s in RULE_STAGES)


def run_rules(frame: pl.DataFrame, cfg: RulesConfig) -> dict[str, pl.DataFrame]:
    """Every rule stage over prepared rows (window metrics with the audience_scores columns)."""
    tables: dict[str, pl.DataFrame] = {}
    for stage in RULE_STAGES:
        out = stage.run(frame, cfg)
        tables[stage.table] = out if stage.whole_trail else added_columns(frame, out)
        frame = out
    return tables


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
    """Decision rows and recommendation rows for one decision date, through the same stages."""
    frame = prepare(window, account_bench, campaign_bench, metadata, history, cfg, as_of, decided_at)
    decisions = run_rules(frame, cfg)["decisions"]
    return decisions, to_recommendations(decisions)
