"""The recommendation output schema (spec section 12) and the engine's vocabularies."""

from __future__ import annotations

import json
from datetime import date
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Action(StrEnum):
    SCALE = "SCALE"
    HOLD = "HOLD"
    PAUSE = "PAUSE"
    RETEST = "RETEST"


class Confidence(StrEnum):
    HIGH = "HIGH"
    MEDIUM = "MEDIUM"
    LOW = "LOW"


class Bucket(StrEnum):
    WINNER = "WINNER"
    AVERAGE = "AVERAGE"
    LOSER = "LOSER"


class Trend(StrEnum):
    STABLE = "STABLE"
    IMPROVING = "IMPROVING"
    DECLINING = "DECLINING"
    VOLATILE = "VOLATILE"


CONFIDENCE_RANK = {Confidence.LOW: 0, Confidence.MEDIUM: 1, Confidence.HIGH: 2}


class AudienceMetrics(BaseModel):
    """The figures behind a recommendation, over the decision window."""

    model_config = ConfigDict(extra="forbid")

    window_days: int
    spend: float
    purchases: float
    revenue: float
    roas: float | None
    account_avg_roas: float | None
    normalized_roas: float | None
    cpa: float | None
    target_cpa: float | None
    ctr: float | None
    cvr: float | None
    roas_change: float | None = Field(None, description="late vs early part of the window")
    spend_acceleration: float | None
    p_true_roas_in_bucket: float | None = Field(
        None, description="posterior probability that true ROAS is on the bucket's side"
    )
    p_action_right: float | None = Field(
        None,
        description="for a proposed SCALE or PAUSE: posterior probability that acting is on the right "
        "side of break-even (the confidence behind it)",
    )
    expected_gain: float | None = Field(
        None, description="expected gain of the proposed SCALE or PAUSE, as a share of the money it moves"
    )
    expected_loss: float | None = Field(
        None, description="expected loss of the proposed SCALE or PAUSE if it is wrong, same unit"
    )
    score: float | None


class Recommendation(BaseModel):
    """One recommendation: spec section 12 fields first, then context."""

    model_config = ConfigDict(extra="forbid")

    audience_id: str
    audience_name: str
    action: Action
    scale_percentage: int = Field(ge=0, le=100)
    confidence: Confidence
    reasons: list[str]
    risks: list[str]

    account_id: str
    campaign_id: str
    campaign_name: str
    decision_date: date
    rank: int = Field(ge=1)
    audience_type: str | None
    eligible: bool
    bucket: Bucket | None
    trend: Trend | None
    currency: str
    current_daily_budget: float | None
    new_daily_budget: float | None
    metrics: AudienceMetrics
    explanation_source: Literal["claude", "template"] = Field(
        "template", description="who wrote the explanation: Claude (validated) or the deterministic template"
    )
    assessment: Literal["agree", "disagree", "insufficient_data"] | None = Field(
        None, description="the analysis layer's view of the rule decision; it never changes the action"
    )
    explanation: str | None = Field(None, description="plain-English rationale")
    risk_flags: list[str] = Field(default_factory=list)
    alternatives: list[str] = Field(default_factory=list, description="only those the guardrails allow")
    needs_review: bool = Field(False, description="the analysis disagrees with the rules: a person should look")
    config_hash: str

    @model_validator(mode="after")
    def _scale_only_when_scaling(self) -> Recommendation:
        if self.action is Action.SCALE and self.scale_percentage <= 0:
            raise ValueError("a SCALE needs a positive scale_percentage")
        if self.action is not Action.SCALE and self.scale_percentage != 0:
            raise ValueError("scale_percentage must be 0 unless the action is SCALE")
        return self


class RecommendationFile(BaseModel):
    """What `audience-engine recommend --out` writes."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = 1
    decision_date: date
    generated_at: str
    config_hash: str
    run_id: str | None = Field(None, description="the Dagster run that produced the file (one account)")
    run_ids: list[str] | None = Field(None, description="the runs behind it, one per account-day, when several")
    summary: dict[str, int]
    recommendations: list[Recommendation]


def recommendation_json_schema() -> dict[str, Any]:
    """The JSON Schema of the recommendations file."""
    return RecommendationFile.model_json_schema()


def recommendation_json_schema_text() -> str:
    return json.dumps(recommendation_json_schema(), indent=2, sort_keys=True) + "\n"
