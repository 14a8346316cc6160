"""The analysis layer's pure half: what Claude sees, what it may say, and what reaches the user.

Claude explains and challenges rule decisions; it never sets an action or a budget. This module
selects the audiences worth a second opinion, builds the data it is shown (no user-written
names: audiences are referred to by a short ref), validates the answer against a closed schema,
checks every figure it quotes against the input, and falls back to the deterministic template
explanation for any audience whose answer fails.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from typing import Any, Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from audience_assets.engine.config import RulesConfig

RISK_FLAGS = (
    "fatigue",
    "saturation",
    "volatility",
    "thin_data",
    "learning_phase",
    "creative_dependency",
    "immature_data",
    "budget_ceiling",
    "tracking",
)
ALTERNATIVES = ("duplicate", "retest", "creative_swap", "broaden_audience", "hold_longer", "reduce_budget")
ASSESSMENTS = ("agree", "disagree", "insufficient_data")
MAX_EXPLANATION = 1200

# The figures shown per audience: name in the prompt -> decisions column.
INPUT_METRICS = {
    "roas": "roas_window",
    "normalized_roas": "normalized_roas",
    "account_avg_roas": "account_avg_roas",
    "campaign_avg_roas": "campaign_avg_roas",
    "spend": "spend_window",
    "purchases": "purchases_window",
    "revenue": "revenue_window",
    "cpa": "cpa_window",
    "target_cpa": "target_cpa",
    "ctr": "ctr_window",
    "cvr": "cvr_window",
    "roas_1d": "roas_1d",
    "roas_3d": "roas_3d",
    "roas_7d": "roas_7d",
    "roas_change": "roas_change",
    "roas_change_z": "roas_change_z",
    "spend_acceleration": "spend_acceleration",
    "dispersion_ratio": "dispersion_ratio",
    "p_true_roas_in_bucket": "p_in_bucket",
    "p_action_right": "act_probability",
    "expected_gain": "expected_gain",
    "expected_loss": "expected_loss",
    "winner_threshold": "winner_threshold",
    "loser_threshold": "loser_threshold",
    "current_daily_budget": "current_daily_budget",
    "new_daily_budget": "new_daily_budget",
    "scale_percentage": "scale_percentage",
    "age_days": "age_days",
    "window_days": "window_days",
    "hours_since_budget_change": "hours_since_budget_change",
    "lookalike_pct": "lookalike_pct",
}
NEAR_THRESHOLD = 0.1


DEFAULT_MODEL = "claude-haiku-5-5"  # the analysis layers' default Claude model


class CitedMetric(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(max_length=64)
    value: float


class AudienceAssessment(BaseModel):
    """Claude's answer for one audience. There is no field for an action or a budget."""

    model_config = ConfigDict(extra="forbid")
    ref: str = Field(max_length=16)
    assessment: Literal["agree", "disagree", "insufficient_data"]
    explanation: str = Field(min_length=1, max_length=MAX_EXPLANATION)
    risk_flags: list[Literal[RISK_FLAGS]] = Field(default_factory=list, max_length=len(RISK_FLAGS))  # type: ignore[valid-type]
    alternatives: list[Literal[ALTERNATIVES]] = Field(default_factory=list, max_length=len(ALTERNATIVES))  # type: ignore[valid-type]
    cited_metrics: list[CitedMetric] = Field(default_factory=list, max_length=40)


class AnalysisResponse(BaseModel):
    model_config = ConfigDict(extra="forbid")
    audiences: list[AudienceAssessment]


def response_schema() -> dict[str, Any]:
    """The JSON Schema Claude must answer in (native structured output)."""
    return AnalysisResponse.model_json_schema()


def schema_hash() -> str:
    return hashlib.sha256(json.dumps(response_schema(), sort_keys=True).encode()).hexdigest()[:16]


# Selection ---------------------------------------------------------------------------


def actionable(decisions: pl.DataFrame, scope: str = "actionable") -> pl.DataFrame:
    """Rows worth Claude's attention: SCALE, PAUSE, RETEST, and HOLDs near a threshold or held back."""
    if scope == "all":
        return decisions
    n = pl.col("normalized_roas")
    near = ((n - pl.col("winner_threshold")).abs() <= NEAR_THRESHOLD) | (
        (n - pl.col("loser_threshold")).abs() <= NEAR_THRESHOLD
    )
    held = pl.col("matrix_action") != pl.col("action")
    keep = pl.col("action").is_in(["SCALE", "PAUSE", "RETEST"]) | (
        (pl.col("action") == "HOLD") & pl.col("eligible") & (near.fill_null(False) | held)
    )
    return decisions.filter(keep)


def allowed_alternatives() -> pl.Expr:
    """Alternatives the guardrails permit, per row (a forbidden suggestion is dropped, never shown)."""
    adds_spend = pl.col("guardrail").is_in(["account_daily_cap", "budget_ceiling", "cooldown"]).fill_null(False)
    in_cooldown = (pl.col("guardrail") == "cooldown").fill_null(False)
    # Under CBO or a lifetime budget there is no ad-set daily budget to lower.
    budget_elsewhere = pl.col("is_cbo").fill_null(False) | (
        pl.col("lifetime_budget").is_not_null() & pl.col("daily_budget").is_null()
    )
    items = [
        pl.when(~adds_spend).then(pl.lit("duplicate")),
        pl.when(~adds_spend).then(pl.lit("retest")),
        pl.when(~in_cooldown).then(pl.lit("creative_swap")),
        pl.when(~adds_spend).then(pl.lit("broaden_audience")),
        pl.lit("hold_longer"),
        pl.when(~in_cooldown & ~budget_elsewhere).then(pl.lit("reduce_budget")),
    ]
    return pl.concat_list(items).list.drop_nulls()


# Figures that move with the clock are shown to the hour: a re-run later the same day sends the
# same input, so the response cache answers it.
WHOLE = {"hours_since_budget_change": 0}


def _clean(value: Any, places: int = 4) -> Any:
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return None
        return round(value, places)
    return value


def build_inputs(rows: pl.DataFrame, history: pl.DataFrame, history_depth: int = 5) -> list[dict[str, Any]]:
    """One JSON-ready record per audience: figures, rule outputs, guardrail outcome, own history.

    Names are user-controlled text and are left out; the ref maps back to the ad set in code.
    """
    rows = rows.sort("adset_id").with_columns(allowed_alternatives().alias("_allowed"))
    hist = (
        history.sort("decision_date", descending=True)
        .group_by("adset_id", maintain_order=True)
        .head(history_depth)
        .group_by("adset_id", maintain_order=True)
        .agg(pl.struct(pl.col("decision_date").cast(pl.Utf8), "action", "bucket", "trend").alias("history"))
        if history.height
        else pl.DataFrame(schema={"adset_id": pl.Utf8, "history": pl.List(pl.Struct({"decision_date": pl.Utf8}))})
    )
    rows = rows.join(hist, on="adset_id", how="left")
    records = []
    for i, row in enumerate(rows.iter_rows(named=True), start=1):
        records.append(
            {
                "ref": f"a{i}",
                "adset_id": row["adset_id"],
                "audience_type": row["modifier_key"],
                "eligible": row["eligible"],
                "bucket": row["bucket"],
                "trend": row["trend"],
                "trend_evidence": row["trend_evidence"],
                "matrix_rule": row["matrix_rule"],
                "proposed_action": row["proposed_action"],
                "action": row["action"],
                "confidence": row["confidence"],
                "guardrail": row["guardrail"],
                "metrics": {name: _clean(row[col], WHOLE.get(name, 4)) for name, col in INPUT_METRICS.items()},
                "allowed_alternatives": row["_allowed"],
                "history": row["history"] or [],
            }
        )
    return records


def prompt_payload(records: list[dict[str, Any]], currency: str) -> str:
    """The data block sent to Claude: refs only, no ad-set ids or names."""
    shown = [{k: v for k, v in r.items() if k != "adset_id"} for r in records]
    return json.dumps({"currency": currency, "audiences": shown}, sort_keys=True, separators=(",", ":"))


def cache_key(prompt_version: str, prompt_sha: str, model: str, payload: str) -> str:
    """Same prompt, model, schema and input rows -> same key -> same answer, no new call."""
    h = hashlib.sha256()
    for part in (prompt_version, prompt_sha, model, schema_hash(), payload):
        h.update(part.encode())
        h.update(b"\x00")
    return h.hexdigest()


# Validation and faithfulness -----------------------------------------------------------

# A quoted number: optional sign, digits with any comma grouping (1,234,567 or 1,27,300), optional
# decimals or a bare leading-dot fraction (.97). Digits glued to letters (INR99999) are checked too.
_NUMBER = re.compile(r"(?<![\d.,])([-+]?)((?:\d[\d,]*)?\.?\d+)")
_REF = re.compile(r"\ba\d+\b")
# Metrics that are fractions: an explanation may quote them as percentages (0.23 -> 23%).
FRACTION_METRICS = {
    "ctr",
    "cvr",
    "roas_change",
    "spend_acceleration",
    "p_true_roas_in_bucket",
    "p_action_right",
    "expected_gain",
    "expected_loss",
    "roas_dod_change",
}


def _decimals(digits: str) -> int:
    return len(digits.split(".", 1)[1]) if "." in digits else 0


def _agrees(sign: str, digits: str, candidates: list[float]) -> bool:
    """A quoted number agrees with a candidate within display rounding; an explicit sign must agree."""
    number = float(digits.replace(",", ""))
    tol = 0.5 * 10 ** (-_decimals(digits)) + 1e-9
    for c in candidates:
        if (sign == "-" and c > 0) or (sign == "+" and c < 0):
            continue
        if abs(abs(c) - number) <= tol:
            return True
    return False


def _candidates(record: dict[str, Any], extra: list[float]) -> list[float]:
    out: list[float] = []
    for name, v in record["metrics"].items():
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            out.append(float(v))
            if name in FRACTION_METRICS:
                out.append(float(v) * 100)
    for v in extra:
        out.append(float(v))
        if 0 < abs(v) <= 1:  # rule settings such as confidence levels, quoted as percentages
            out.append(float(v) * 100)
    return out


def unfaithful_numbers(text: str, record: dict[str, Any], extra: list[float]) -> list[str]:
    """Numbers in an explanation that no input figure supports."""
    candidates = _candidates(record, extra)
    cleaned = _REF.sub(" ", text)  # audience refs (a12) are names, not figures
    return [sign + digits for sign, digits in _NUMBER.findall(cleaned) if not _agrees(sign, digits, candidates)]


def _cited_agrees(cited: float, value: float) -> bool:
    """A cited value equals the input figure, sign included, within the rounding it is given at."""
    text = repr(round(cited, 6))
    return (cited < 0) == (value < 0) and abs(abs(cited) - abs(value)) <= 0.5 * 10 ** (-_decimals(text)) + 1e-9


def check_assessment(a: AudienceAssessment, record: dict[str, Any], extra: list[float]) -> str | None:
    """None when faithful, else why not."""
    metrics = record["metrics"]
    for cited in a.cited_metrics:
        if cited.name not in metrics or metrics[cited.name] is None:
            return f"cited metric {cited.name!r} is not in the input"
        if not _cited_agrees(cited.value, float(metrics[cited.name])):
            return f"cited {cited.name}={cited.value} but the input has {metrics[cited.name]}"
    bad = unfaithful_numbers(a.explanation, record, extra)
    if bad:
        return "explanation quotes figures not in the input: " + ", ".join(bad[:5])
    return None


def parse_response(text: str) -> tuple[AnalysisResponse | None, str | None]:
    """The validated response, or why it is unusable."""
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, TypeError) as err:
        return None, f"not JSON: {err}"
    try:
        return AnalysisResponse.model_validate(data), None
    except ValidationError as err:
        first = err.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        return None, f"schema: {loc}: {first['msg']}"


def assess_batch(
    records: list[dict[str, Any]], response: AnalysisResponse | None, failure: str | None, extra: list[float]
) -> list[dict[str, Any]]:
    """Per audience in the batch: Claude's accepted answer, or a fallback reason."""
    by_ref = {r["ref"]: r for r in records}
    answers: dict[str, AudienceAssessment] = {}
    duplicates: set[str] = set()
    unknown: list[str] = []
    if response is not None:
        for a in response.audiences:
            if a.ref not in by_ref:
                unknown.append(a.ref)
            elif a.ref in answers:
                duplicates.add(a.ref)
            else:
                answers[a.ref] = a
    out = []
    for ref, record in by_ref.items():
        a = answers.get(ref)
        reason = failure
        if reason is None and ref in duplicates:
            reason = "answered more than once"
        elif reason is None and a is None:
            reason = "no answer for this audience"
        elif reason is None and a is not None:
            reason = check_assessment(a, record, extra)
        allowed = set(record["allowed_alternatives"])
        out.append(
            {
                "adset_id": record["adset_id"],
                "ref": ref,
                "accepted": reason is None,
                "fallback_reason": reason,
                "assessment": a.assessment if a and reason is None else None,
                "explanation": a.explanation if a and reason is None else None,
                "risk_flags": sorted(set(a.risk_flags)) if a and reason is None else [],
                "alternatives": [x for x in dict.fromkeys(a.alternatives) if x in allowed]
                if a and reason is None
                else [],
                "dropped_alternatives": [x for x in a.alternatives if x not in allowed] if a and reason is None else [],
                "cited_metrics": json.dumps([c.model_dump() for c in a.cited_metrics])
                if a and reason is None
                else "[]",
                "unknown_refs": ",".join(unknown) if unknown else None,
                # A disagreement is worth a human look even when its wording failed a check.
                "disagreed": bool(a is not None and a.assessment == "disagree" and ref not in duplicates),
            }
        )
    return out


# The template explainer: the same fields, from the rules alone ------------------------------


def template_analysis(decisions: pl.DataFrame) -> pl.DataFrame:
    """Deterministic explanation, risk flags and alternatives for every decision row."""
    flags = pl.concat_list(
        [
            pl.when((pl.col("bucket") == "WINNER") & (pl.col("trend") == "DECLINING")).then(pl.lit("fatigue")),
            pl.when(pl.col("risks").list.eval(pl.element().str.starts_with("Saturation")).list.any()).then(
                pl.lit("saturation")
            ),
            pl.when(pl.col("trend") == "VOLATILE").then(pl.lit("volatility")),
            pl.when(pl.col("trend_evidence") == "insufficient").then(pl.lit("thin_data")),
            pl.when(pl.col("modifier_key") == "CUSTOM").then(pl.lit("creative_dependency")),
            pl.when(pl.col("risks").list.eval(pl.element().str.contains("maturing")).list.any()).then(
                pl.lit("immature_data")
            ),
            pl.when(pl.col("guardrail") == "budget_ceiling").then(pl.lit("budget_ceiling")),
        ]
    ).list.drop_nulls()
    suggested = pl.concat_list(
        [
            pl.when(pl.col("action") == "RETEST").then(pl.lit("duplicate")),
            pl.when((pl.col("bucket") == "WINNER") & (pl.col("trend") == "DECLINING")).then(pl.lit("creative_swap")),
            pl.when(pl.col("action") == "PAUSE").then(pl.lit("creative_swap")),
            pl.when((pl.col("action") == "HOLD") & (pl.col("trend_evidence") == "insufficient")).then(
                pl.lit("hold_longer")
            ),
        ]
    ).list.drop_nulls()
    allowed = allowed_alternatives()
    return decisions.select(
        "decision_date",
        "account_id",
        "adset_id",
        pl.lit("agree").alias("assessment"),
        pl.col("reasons").list.join(". ").alias("explanation"),
        flags.alias("risk_flags"),
        suggested.list.set_intersection(allowed).list.unique(maintain_order=True).alias("alternatives"),
    )


# Planning and merging: pure halves of the analysis asset -------------------------------------


@dataclass(frozen=True)
class Batch:
    """One request's worth of audiences: their records, the data block sent, and its cache key."""

    records: list[dict[str, Any]]
    payload: str
    key: str


def plan_batches(
    selected: pl.DataFrame,
    history: pl.DataFrame,
    batch_size: int,
    history_depth: int,
    prompt_version: str,
    prompt_sha: str,
    model: str,
) -> list[Batch]:
    """Per account (one currency per request), batches of at most `batch_size` audiences."""
    batches = []
    for _account, group in selected.group_by("account_id", maintain_order=True):
        currency = group["currency"][0] or ""
        own_history = history.filter(pl.col("adset_id").is_in(group["adset_id"].implode()))
        records = build_inputs(group, own_history, history_depth)
        for start in range(0, len(records), batch_size):
            chunk = records[start : start + batch_size]
            payload = prompt_payload(chunk, currency)
            batches.append(Batch(chunk, payload, cache_key(prompt_version, prompt_sha, model, payload)))
    return batches


def extra_figures(cfg: RulesConfig) -> list[float]:
    """Rule settings Claude may quote besides each audience's metrics."""
    values = [
        cfg.min_spend,
        cfg.min_purchases,
        cfg.min_age_days,
        cfg.winner_roas,
        cfg.loser_roas,
        cfg.cooldown_hours,
        cfg.scale_step_pct,
        cfg.min_scale_pct,
        cfg.max_scale_pct,
        cfg.pause_spend_multiple,
        cfg.trend_min_purchases,
        cfg.decision_window_days,
        (cfg.decision_window_days + 1) // 2,
        cfg.decision_window_days // 2,
        cfg.long_window_days,
        cfg.confidence_high,
        cfg.confidence_medium,
        cfg.max_account_daily_increase_pct,
        50.0,  # Meta's learning-phase guideline, named in the prompt's domain
    ]
    for key in cfg.modifiers:
        values += [cfg.resolved(key, n) for n in ("winner_roas", "loser_roas", "cooldown_hours", "scale_step_pct")]
    return [float(v) for v in values if v is not None]


ANSWER_SCHEMA = {
    "adset_id": pl.Utf8,
    "ref": pl.Utf8,
    "accepted": pl.Boolean,
    "fallback_reason": pl.Utf8,
    "assessment": pl.Utf8,
    "explanation": pl.Utf8,
    "risk_flags": pl.List(pl.Utf8),
    "alternatives": pl.List(pl.Utf8),
    "dropped_alternatives": pl.List(pl.Utf8),
    "cited_metrics": pl.Utf8,
    "unknown_refs": pl.Utf8,
    "disagreed": pl.Boolean,
}


def merge_analysis(
    template: pl.DataFrame,
    answers: list[dict[str, Any]],
    enabled: bool,
    prompt_version: str,
    prompt_sha: str,
    model: str | None,
) -> pl.DataFrame:
    """The analysis rows: Claude's accepted answer where there is one, the template's otherwise."""
    answered = pl.DataFrame(answers, schema=ANSWER_SCHEMA)
    ok = pl.col("_ok")

    def pick(name: str) -> pl.Expr:
        return pl.when(ok).then(pl.col(f"c_{name}")).otherwise(pl.col(name)).alias(name)

    return (
        template.join(answered.rename(lambda c: f"c_{c}" if c != "adset_id" else c), on="adset_id", how="left")
        .with_columns(
            pl.col("c_ref").is_not_null().alias("analysed"), pl.col("c_accepted").fill_null(False).alias("_ok")
        )
        .select(
            "decision_date",
            "account_id",
            "adset_id",
            pl.col("c_ref").alias("ref"),
            "analysed",
            pl.when(ok).then(pl.lit("claude")).otherwise(pl.lit("template")).alias("explanation_source"),
            *[pick(n) for n in ("assessment", "explanation", "risk_flags", "alternatives")],
            pl.col("c_dropped_alternatives").fill_null([]).alias("dropped_alternatives"),
            pl.when(ok).then(pl.col("c_cited_metrics")).alias("cited_metrics"),
            pl.when(pl.col("analysed") & ok)
            .then(pl.lit(True))
            .when(pl.col("analysed"))
            .then(pl.lit(False))
            .alias("faithful"),
            pl.when(~pl.col("analysed") & pl.lit(not enabled))
            .then(pl.lit("no ANTHROPIC_API_KEY: template explanation"))
            .when(~pl.col("analysed"))
            .then(pl.lit("not selected for analysis (scope)"))
            .otherwise(pl.col("c_fallback_reason"))
            .alias("fallback_reason"),
            pl.col("c_disagreed").fill_null(False).alias("needs_review"),
            pl.col("c_unknown_refs").alias("unknown_refs"),
            pl.lit(prompt_version).alias("prompt_version"),
            pl.lit(prompt_sha).alias("prompt_sha256"),
            pl.lit(model, dtype=pl.Utf8).alias("model"),
        )
        .sort("account_id", "adset_id")
    )
