"""Delivery layer: ranked recommendations in the spec's schema, as a table and a JSON file."""

from datetime import UTC, datetime

import dagster as dg
import polars as pl
from dagster_duckdb import DuckDBResource

from audience_assets.defs.common import (
    PARTITIONS,
    POOL,
    account_of,
    as_of,
    description,
    doc_check_spec,
    guardrail_result,
    load_partition,
    markdown_preview,
    table_metadata,
    write_partition,
)
from audience_assets.defs.resources import OutputResource, RulesResource, SlackResource
from audience_assets.delivery.notify import notify
from audience_assets.delivery.publish import report_html
from audience_assets.engine.guardrails import verify_recommendations
from audience_assets.engine.recommend import recommendation_json, summary_counts, to_recommendations
from audience_assets.warehouse import write_atomically

GROUP = "delivery"
GUARDRAIL_CHECK = "guardrails"
PREVIEW = ["rank", "audience_name", "action", "scale_percentage", "confidence", "explanation_source", "needs_review"]


@dg.asset(
    partitions_def=PARTITIONS,
    pool=POOL,
    group_name=GROUP,
    deps=["decisions", "analysis"],
    description=description("recommendations"),
    kinds={"duckdb", "json"},
    check_specs=[
        doc_check_spec("recommendations"),
        dg.AssetCheckSpec(
            GUARDRAIL_CHECK,
            asset="recommendations",
            blocking=True,
            description="The stored recommendations carry their decisions' actions and pass every guardrail",
        ),
    ],
)
def recommendations(
    context: dg.AssetExecutionContext, duckdb: DuckDBResource, output: OutputResource, rules: RulesResource
) -> dg.MaterializeResult:
    day, account = as_of(context), account_of(context)
    cfg = rules.load()
    with duckdb.get_connection() as conn:
        decided = load_partition(conn, "decisions", day, account)
        rows = to_recommendations(decided, load_partition(conn, "analysis", day, account)).with_columns(
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
        path = output.path_for(day, account)
        if path is not None:
            extra["json_path"] = dg.MetadataValue.path(str(path))
        result = write_partition(
            context,
            conn,
            "recommendations",
            rows,
            extra={**extra, "needs_review": int(rows["needs_review"].sum())},
            preview_columns=PREVIEW,
        )
        stored = load_partition(conn, "recommendations", day, account).sort("rank")
        violations = verify_recommendations(stored, decided, cfg)
        check = guardrail_result(violations, stored.height, "recommendations", GUARDRAIL_CHECK)
        # The files are written only from rows that passed the blocking check.
        report = output.report_path_for(day, account)
        if not violations.height:
            if path is not None:
                write_atomically(
                    path, recommendation_json(stored, day, datetime.now(UTC).isoformat(timespec="seconds"))
                )
            if report is not None:
                json_label = output.json_label or (str(path) if path else None)
                write_atomically(report, report_html(conn, day, json_label, [account]))
                result = result._replace(
                    metadata={**result.metadata, "report_path": dg.MetadataValue.path(str(report))}
                )
    return result._replace(check_results=[*result.check_results, check])


NOTIFY_CHECK = "posted"


@dg.asset(
    partitions_def=PARTITIONS,
    pool=POOL,
    group_name=GROUP,
    deps=["recommendations", "approvals"],
    description=description("notifications"),
    kinds={"duckdb", "slack"},
    check_specs=[dg.AssetCheckSpec(NOTIFY_CHECK, asset="notifications", description="Every digest reached Slack")],
)
def notifications(
    context: dg.AssetExecutionContext, duckdb: DuckDBResource, slack: SlackResource, output: OutputResource
) -> dg.MaterializeResult:
    """The Slack digest of each account (posted, failed after retries, or not configured): a failed
    post is logged and reported by a WARN check, never a failed run."""
    day, account = as_of(context), account_of(context)
    report = output.report_path_for(day, account)
    with duckdb.get_connection() as conn:
        rows = notify(conn, day, slack.poster(), report_path=str(report) if report else None,
                      run_id=context.run.run_id, account=account)  # fmt: skip
        meta = table_metadata(conn, "notifications", rows.height, {
            f"status/{k}": int(v) for k, v in rows.group_by("status").len().iter_rows()})  # fmt: skip
    failed = rows.filter(pl.col("status") == "failed")
    for r in failed.iter_rows(named=True):
        context.log.warning(f"Slack digest of {r['account_id']} not posted: {r['error']}")
    check = dg.AssetCheckResult(
        check_name=NOTIFY_CHECK, passed=failed.height == 0, severity=dg.AssetCheckSeverity.WARN,
        metadata={"failed": failed.height, "not_configured": int((rows["status"] == "not_configured").sum())},
    )  # fmt: skip
    return dg.MaterializeResult(metadata=meta, check_results=[check])
