"""Rules layer: eligibility, buckets, trend states and decisions, with the blocking guardrail check."""

from collections.abc import Callable
from datetime import date

import dagster as dg
import duckdb as duckdb_mod
import polars as pl
from dagster_duckdb import DuckDBResource

from audience_assets.defs.common import (
    PARTITIONS,
    POOL,
    as_of,
    description,
    doc_tests_check,
    guardrail_result,
    load_partition,
    markdown_preview,
    write_partition,
)
from audience_assets.defs.metrics.assets import audience_scores, window_metrics
from audience_assets.defs.resources import OutputResource, RulesResource
from audience_assets.engine.buckets import assign_buckets
from audience_assets.engine.config import RulesConfig
from audience_assets.engine.eligibility import assess_eligibility
from audience_assets.engine.guardrails import verify_guardrails
from audience_assets.engine.pipeline import added_columns, decide
from audience_assets.engine.prepare import KEYS
from audience_assets.engine.trends import derive_trends
from audience_assets.warehouse import table_exists

GROUP = "rules"
GUARDRAIL_CHECK = "guardrails"
DERIVED_TABLES = ("analysis", "recommendations")


def joined(conn: duckdb_mod.DuckDBPyConnection, day: date, tables: list[str]) -> pl.DataFrame:
    """Window metrics joined on the audience keys with stored stage tables of the same date."""
    frame = load_partition(conn, "window_metrics", day)
    for table in tables:
        frame = frame.join(load_partition(conn, table, day), on=KEYS, how="left")
    return frame


def _stage_asset(
    name: str, stage: Callable[[pl.DataFrame, RulesConfig], pl.DataFrame], preview: list[str], summary: str
) -> dg.AssetsDefinition:
    @dg.asset(
        name=name,
        deps=[window_metrics, audience_scores],
        partitions_def=PARTITIONS,
        pool=POOL,
        group_name=GROUP,
        description=description(name),
        kinds={"duckdb", "polars"},
    )
    def _asset(context: dg.AssetExecutionContext, duckdb: DuckDBResource, rules: RulesResource) -> dg.MaterializeResult:
        cfg = rules.load()
        day = as_of(context)
        with duckdb.get_connection() as conn:
            base = joined(conn, day, ["audience_scores"])
            out = added_columns(base, stage(base, cfg))
            counts = out.group_by(summary).len().sort(summary)
            return write_partition(
                context,
                conn,
                name,
                out,
                extra={f"count_by_{summary}": dg.MetadataValue.md(markdown_preview(counts))},
                preview_columns=preview,
            )

    return _asset


eligibility = _stage_asset("eligibility", assess_eligibility, ["adset_id", "eligible", "filter_reason"], "eligible")
buckets = _stage_asset(
    "buckets", assign_buckets, ["adset_id", "winner_threshold", "loser_threshold", "bucket"], "bucket"
)
trend_states = _stage_asset(
    "trend_states", derive_trends, ["adset_id", "roas_change", "roas_change_z", "dispersion_ratio", "trend"], "trend"
)


@dg.asset(
    partitions_def=PARTITIONS,
    pool=POOL,
    group_name=GROUP,
    deps=[window_metrics, audience_scores, eligibility, buckets, trend_states],
    description=description("decisions"),
    kinds={"duckdb", "polars"},
)
def decisions(
    context: dg.AssetExecutionContext, duckdb: DuckDBResource, rules: RulesResource, output: OutputResource
) -> dg.MaterializeResult:
    cfg = rules.load()
    day = as_of(context)
    with duckdb.get_connection() as conn:
        frame = joined(conn, day, ["audience_scores", "eligibility", "buckets", "trend_states"])
        out = decide(frame, cfg).with_columns(pl.lit(context.run.run_id).alias("run_id"))
        # New decisions void what was derived from the old ones: a blocked rerun must not leave
        # an earlier run's recommendations standing for this date.
        for table in DERIVED_TABLES:
            if table_exists(conn, table):
                conn.execute(f'DELETE FROM "{table}" WHERE decision_date = ?', [day])
        path = output.path_for(day)
        if path is not None:
            path.unlink(missing_ok=True)
        counts = out.group_by("action").len().sort("action")
        return write_partition(
            context,
            conn,
            "decisions",
            out,
            extra={
                "config_hash": cfg.config_hash(),
                "actions": dg.MetadataValue.md(markdown_preview(counts)),
                **{f"actions/{a}": int(n) for a, n in counts.iter_rows()},
            },
            preview_columns=[
                "adset_id",
                "bucket",
                "trend",
                "matrix_action",
                "action",
                "scale_percentage",
                "confidence",
                "guardrail",
            ],
        )


@dg.asset_check(
    asset=decisions,
    name=GUARDRAIL_CHECK,
    blocking=True,
    pool=POOL,
    partitions_def=PARTITIONS,
    description="Every decision re-verified against the guardrails; a violation blocks recommendations",
)
def guardrail_check(
    context: dg.AssetCheckExecutionContext, duckdb: DuckDBResource, rules: RulesResource
) -> dg.AssetCheckResult:
    cfg = rules.load()
    with duckdb.get_connection() as conn:
        rows = load_partition(conn, "decisions", as_of(context))
    return guardrail_result(verify_guardrails(rows, cfg), rows.height)


CHECKS = [
    guardrail_check,
    doc_tests_check(eligibility, "eligibility"),
    doc_tests_check(buckets, "buckets"),
    doc_tests_check(trend_states, "trend_states"),
    doc_tests_check(decisions, "decisions"),
]
ASSETS = [eligibility, buckets, trend_states, decisions]
