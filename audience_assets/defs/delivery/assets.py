"""Delivery layer: ranked recommendations in the spec's schema, as a table and a JSON file."""

from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import polars as pl
from dagster_duckdb import DuckDBResource

from audience_assets.defs.common import (
    PARTITIONS,
    POOL,
    as_of,
    description,
    doc_tests_check,
    load_partition,
    write_partition,
)
from audience_assets.defs.resources import OutputResource
from audience_assets.defs.rules.assets import decisions
from audience_assets.engine.recommend import to_models, to_recommendations
from audience_assets.engine.schema import RecommendationFile

GROUP = "delivery"


def recommendation_file(rows: pl.DataFrame, day) -> RecommendationFile:
    """The JSON document for one decision date, validated by the pydantic schema."""
    models = to_models(rows)
    summary = {a: 0 for a in ("SCALE", "HOLD", "PAUSE", "RETEST")}
    for m in models:
        summary[m.action.value] += 1
    summary["audiences"] = len(models)
    summary["eligible"] = sum(m.eligible for m in models)
    return RecommendationFile(
        decision_date=day,
        generated_at=datetime.now(UTC).isoformat(timespec="seconds"),
        config_hash=models[0].config_hash if models else "",
        summary=summary,
        recommendations=models,
    )


@dg.asset(
    partitions_def=PARTITIONS,
    pool=POOL,
    group_name=GROUP,
    deps=[decisions],
    description=description("recommendations"),
    kinds={"duckdb", "json"},
)
def recommendations(
    context: dg.AssetExecutionContext, duckdb: DuckDBResource, output: OutputResource
) -> dg.MaterializeResult:
    day = as_of(context)
    with duckdb.get_connection() as conn:
        rows = to_recommendations(load_partition(conn, "decisions", day))
        doc = recommendation_file(rows, day)
        path = Path(output.directory) / f"recommendations_{day.isoformat()}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(doc.model_dump_json(indent=2))
        tmp.replace(path)
        return write_partition(
            context,
            conn,
            "recommendations",
            rows,
            extra={
                "json_path": dg.MetadataValue.path(str(path)),
                **{f"summary/{k}": v for k, v in doc.summary.items()},
            },
            preview_columns=[
                "rank",
                "audience_name",
                "action",
                "scale_percentage",
                "confidence",
                "metric_normalized_roas",
            ],
        )


CHECKS = [doc_tests_check(recommendations, "recommendations")]
ASSETS = [recommendations]
