"""Recommendation rows (spec section 12) from decision rows, ranked by composite score."""

from __future__ import annotations

from datetime import date
from typing import Any

import polars as pl

from audience_assets.engine.analysis import template_analysis
from audience_assets.engine.fmt import round_money
from audience_assets.engine.schema import Action, AudienceMetrics, Confidence, Recommendation, RecommendationFile

METRIC_COLUMNS = {
    "window_days": "window_days",
    "spend": "spend_window",
    "purchases": "purchases_window",
    "revenue": "revenue_window",
    "roas": "roas_window",
    "account_avg_roas": "account_avg_roas",
    "normalized_roas": "normalized_roas",
    "cpa": "cpa_window",
    "target_cpa": "target_cpa",
    "ctr": "ctr_window",
    "cvr": "cvr_window",
    "roas_change": "roas_change",
    "spend_acceleration": "spend_acceleration",
    "p_true_roas_in_bucket": "p_in_bucket",
    "p_action_right": "act_probability",
    "expected_gain": "expected_gain",
    "expected_loss": "expected_loss",
    "score": "score",
}


# Money is rounded to the currency's minor unit; ratios to what a reader can use.
MONEY_METRICS = ("spend", "revenue", "cpa", "target_cpa")
FINE_RATIOS = {"ctr": 6, "cvr": 6}
RATIO_PLACES = 4


def _metric(name: str, src: str) -> pl.Expr:
    col = pl.col(src)
    if name in MONEY_METRICS:
        col = round_money(col)
    elif name not in ("window_days", "purchases"):
        col = col.round(FINE_RATIOS.get(name, RATIO_PLACES))
    return col.alias(f"metric_{name}")


ANALYSIS_COLUMNS = ("explanation_source", "assessment", "explanation", "risk_flags", "alternatives", "needs_review")


def to_recommendations(decisions: pl.DataFrame, analysis: pl.DataFrame | None = None) -> pl.DataFrame:
    """One row per audience in the spec's shape plus context, rank 1 = best composite score.

    Action, scale and budget always come from the decisions; the analysis only adds words.
    """
    if analysis is None:
        analysis = template_analysis(decisions).with_columns(
            pl.lit("template").alias("explanation_source"), pl.lit(False).alias("needs_review")
        )
    decisions = decisions.join(
        analysis.select("decision_date", "account_id", "adset_id", *ANALYSIS_COLUMNS),
        on=["decision_date", "account_id", "adset_id"],
        how="left",
    )
    ranked = decisions.sort(
        ["eligible", "score", "adset_id"], descending=[True, True, False], nulls_last=True
    ).with_row_index("rank", offset=1)
    return ranked.select(
        "decision_date",
        pl.col("rank").cast(pl.Int64),
        "account_id",
        "campaign_id",
        "campaign_name",
        pl.col("adset_id").alias("audience_id"),
        pl.col("adset_name").alias("audience_name"),
        pl.col("audience_type"),
        "action",
        pl.col("scale_percentage").cast(pl.Int64),
        "confidence",
        "reasons",
        "risks",
        "eligible",
        pl.when(pl.col("eligible")).then(pl.col("bucket")).alias("bucket"),
        pl.when(pl.col("eligible")).then(pl.col("trend")).alias("trend"),
        "currency",
        round_money(pl.col("current_daily_budget")).alias("current_daily_budget"),
        round_money(pl.col("new_daily_budget")).alias("new_daily_budget"),
        *[_metric(name, src) for name, src in METRIC_COLUMNS.items()],
        pl.col("explanation_source").fill_null("template"),
        "assessment",
        "explanation",
        pl.col("risk_flags").fill_null([]),
        pl.col("alternatives").fill_null([]),
        pl.col("needs_review").fill_null(False),
        "config_hash",
        pl.col("run_id") if "run_id" in decisions.columns else pl.lit(None, dtype=pl.Utf8).alias("run_id"),
    )


def _clean(value: Any) -> Any:
    if isinstance(value, float) and value != value:  # NaN has no JSON form
        return None
    return value


def to_models(rows: pl.DataFrame) -> list[Recommendation]:
    """Validate recommendation rows into pydantic models (the JSON boundary)."""
    out = []
    for row in rows.drop("run_id", strict=False).iter_rows(named=True):
        metrics = {name: _clean(row.pop(f"metric_{name}")) for name in METRIC_COLUMNS}
        row = {k: _clean(v) for k, v in row.items()}
        row["currency"] = row.get("currency") or ""
        out.append(Recommendation(**row, metrics=AudienceMetrics(**metrics)))
    return out


def recommendation_document(rows: pl.DataFrame, day: date, generated_at: str) -> RecommendationFile:
    """The JSON document for one decision date, validated by the pydantic schema."""
    models = to_models(rows)
    summary = {a: 0 for a in ("SCALE", "HOLD", "PAUSE", "RETEST")}
    for m in models:
        summary[m.action.value] += 1
    summary["audiences"] = len(models)
    summary["eligible"] = sum(m.eligible for m in models)
    return RecommendationFile(
        decision_date=day,
        generated_at=generated_at,
        config_hash=models[0].config_hash if models else "",
        summary=summary,
        recommendations=models,
    )


def decisive_reason(reasons: list[str]) -> str:
    """The one line that decided: a guardrail or gate that held the action, else the matrix rule."""
    for r in reasons:
        if " held" in r:
            return r
    for r in reasons:
        if r.startswith(("Decision matrix:", "Delivery stalled")):
            return r.replace("Decision matrix: ", "")
    return reasons[0].replace("Not enough data to decide: ", "not enough data: ") if reasons else ""


def summary_counts(rows: pl.DataFrame) -> dict[str, int]:
    """Recommendations per action, the number of audiences and how many had enough data."""
    counts = dict(rows.group_by("action").len().iter_rows())
    out = {a.value: int(counts.get(a.value, 0)) for a in Action}
    out["audiences"] = rows.height
    out["eligible"] = int(rows["eligible"].sum()) if rows.height else 0
    return out


def _json_frame(rows: pl.DataFrame) -> pl.DataFrame:
    """Recommendation rows in the JSON's shape: the model's fields in order, metrics as an object,
    NaN as null (it has no JSON form), currency never null."""
    floats = [c for c, t in rows.schema.items() if t == pl.Float64]
    rows = rows.with_columns(pl.col(floats).fill_nan(None), pl.col("currency").fill_null(""))
    metrics = pl.struct([pl.col(f"metric_{name}").alias(name) for name in METRIC_COLUMNS]).alias("metrics")
    fields = [name for name in Recommendation.model_fields if name != "metrics"]
    return rows.select(*fields, metrics).select(list(Recommendation.model_fields))


def json_records(rows: pl.DataFrame) -> list[dict[str, Any]]:
    """Recommendation rows as the JSON file's objects (for a few rows: the terminal table)."""
    return _json_frame(rows).to_dicts()


def check_rows(frame: pl.DataFrame) -> None:
    """The schema's rules over whole columns (the pydantic model checks them once, not per row)."""
    if frame.height:
        Recommendation.model_validate(frame.row(0, named=True))
    action, pct = pl.col("action"), pl.col("scale_percentage")
    bad = frame.filter(
        ~action.is_in([a.value for a in Action])
        | ~pl.col("confidence").is_in([c.value for c in Confidence])
        | (pct < 0)
        | (pct > 100)
        | ((action == "SCALE") & (pct <= 0))
        | ((action != "SCALE") & (pct != 0))
        | (pl.col("rank") < 1)
        | pl.col("audience_id").is_null()
        | pl.col("audience_name").is_null()
    )
    if bad.height:
        first = bad.row(0, named=True)
        raise ValueError(
            f"{bad.height} recommendation row(s) break the schema, e.g. audience {first['audience_id']}: "
            f"{first['action']} {first['scale_percentage']}% confidence {first['confidence']}"
        )


def recommendation_json(rows: pl.DataFrame, day: date, generated_at: str) -> str:
    """The recommendations file for one decision date, written column-wise (one object per line)."""
    frame = _json_frame(rows)
    check_rows(frame)
    runs = rows["run_id"].drop_nulls().unique(maintain_order=True).to_list() if "run_id" in rows.columns else []
    header = RecommendationFile(
        decision_date=day,
        generated_at=generated_at,
        config_hash=rows["config_hash"][0] if rows.height else "",
        run_id=runs[0] if len(runs) == 1 else None,
        run_ids=runs if len(runs) > 1 else None,
        summary=summary_counts(rows),
        recommendations=[],
    ).model_dump_json()
    body = ",\n".join(frame.write_ndjson().splitlines()) if frame.height else ""
    return header[: -len("[]}")] + "[\n" + body + "\n]}\n"
