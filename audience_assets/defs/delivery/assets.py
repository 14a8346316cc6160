"""Delivery layer: ranked recommendations in the spec's schema, as a table and a JSON file."""

from datetime import UTC, datetime

import dagster as dg
import polars as pl
from dagster_duckdb import DuckDBResource

from audience_assets.defs.common import (
    PARTITIONS,
    POOL,
    as_of,
    description,
    doc_check_spec,
    guardrail_result,
    load_partition,
    markdown_preview,
    write_partition,
)
from audience_assets.defs.resources import OutputResource, RulesResource
from audience_assets.engine.guardrails import verify_recommendations
from audience_assets.engine.recommend import recommendation_json, summary_counts, to_recommendations
from audience_assets.warehouse import write_atomically

GROUP = "delivery"
GUARDRAIL_CHECK = "guardrails"


@dg.asset(
    partitions_def=PARTITIONS,
    pool=POOL,
    group_name=GROUP,
    deps=["decisions", "analysis"],
    description=description("recommendations"),
    kinds={"duckdb", "json"},
    check_specs=[doc_check_spec("recommendations")],
)
def recommendations(
    context: dg.AssetExecutionContext, duckdb: DuckDBResource, output: OutputResource, rules: RulesResource
) -> dg.MaterializeResult:
    day = as_of(context)
    cfg = rules.load()
    with duckdb.get_connection() as conn:
        decided = load_partition(conn, "decisions", day)
        rows = to_recommendations(decided, load_partition(conn, "analysis", day)).with_columns(
            pl.lit(context.run.run_id).alias("run_id")
        )
        # Verified before anything is delivered; the blocking check re-verifies the stored table.
        violations = verify_recommendations(rows, decided, cfg)
        if violations.height:
            raise dg.Failure(
                description=f"{violations.height} guardrail violation(s) in the final recommendations; nothing delivered",
                metadata={"violations": dg.MetadataValue.md(markdown_preview(violations, rows=20))},
            )
        extra: dict = {f"summary/{k}": v for k, v in summary_counts(rows).items()}
        path = output.path_for(day)
        if path is not None:
            write_atomically(path, recommendation_json(rows, day, datetime.now(UTC).isoformat(timespec="seconds")))
            extra["json_path"] = dg.MetadataValue.path(str(path))
        return write_partition(
            context,
            conn,
            "recommendations",
            rows,
            extra={**extra, "needs_review": int(rows["needs_review"].sum())},
            preview_columns=[
                "rank",
                "audience_name",
                "action",
                "scale_percentage",
                "confidence",
                "explanation_source",
                "needs_review",
            ],
        )


@dg.asset_check(
    asset="recommendations",
    name=GUARDRAIL_CHECK,
    blocking=True,
    pool=POOL,
    partitions_def=PARTITIONS,
    description="The final recommendations carry their decisions' actions and pass every guardrail",
)
def recommendations_guardrail_check(
    context: dg.AssetCheckExecutionContext, duckdb: DuckDBResource, rules: RulesResource
) -> dg.AssetCheckResult:
    day = as_of(context)
    with duckdb.get_connection() as conn:
        recs = load_partition(conn, "recommendations", day)
        violations = verify_recommendations(recs, load_partition(conn, "decisions", day), rules.load())
    return guardrail_result(violations, recs.height)
