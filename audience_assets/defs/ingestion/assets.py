"""Ingestion layer: raw insights (days replaced idempotently), staging views, audience metadata."""

import uuid
from datetime import UTC, datetime

import dagster as dg
import polars as pl
from dagster_duckdb import DuckDBResource

from audience_assets.defs.common import (
    PARTITIONS,
    POOL,
    as_of,
    description,
    doc_tests_check,
    markdown_preview,
    table_metadata,
    write_partition,
)
from audience_assets.defs.resources import RulesResource, SourceResource
from audience_assets.sources import extract, metadata_snapshot, read_audiences
from audience_assets.warehouse import coverage, create_view, replace_days

GROUP = "ingestion"


@dg.asset(
    partitions_def=PARTITIONS,
    pool=POOL,
    group_name=GROUP,
    description=description("raw_insights"),
    kinds={"duckdb"},
)
def raw_insights(
    context: dg.AssetExecutionContext, duckdb: DuckDBResource, source: SourceResource, rules: RulesResource
) -> dg.MaterializeResult:
    day = as_of(context)
    cfg = rules.load()
    spec = source.spec()
    with duckdb.get_connection() as conn:
        stored = {a: first for a, first, _ in coverage(conn, "raw_insights", day).iter_rows()}
        # Validation happens inside extract: bad input raises before anything is written.
        ext = extract(spec, day, stored, cfg.lookback_days)
        load_id = uuid.uuid4().hex[:12]
        frame = ext.insights.with_columns(
            pl.lit(spec.kind).alias("source"),
            pl.lit(load_id).alias("load_id"),
            pl.lit(datetime.now(UTC).replace(tzinfo=None)).cast(pl.Datetime("us")).alias("loaded_at"),
        )
        stats = replace_days(conn, "raw_insights", frame, ext.days)
        total = conn.execute("SELECT count(*) FROM raw_insights").fetchone()[0]
        meta = table_metadata(
            conn,
            "raw_insights",
            int(total),
            {
                **stats,
                "load": "full history" if ext.full_history else f"lookback {cfg.lookback_days} days",
                "source": spec.kind,
                "first_day_loaded": str(ext.days["date"].min()),
                "last_day_loaded": str(ext.days["date"].max()),
                "load_id": load_id,
            },
        )
    context.log.info(
        f"raw_insights: {stats['rows_inserted']} rows over {stats['days_loaded']} account-days, "
        f"{stats['days_restated']} restated (spend delta {stats['restated_spend_delta']})"
    )
    return dg.MaterializeResult(metadata=meta)


def _view_asset(name: str, model: str, dep: str) -> dg.AssetsDefinition:
    @dg.asset(
        name=name,
        deps=[dep],
        partitions_def=PARTITIONS,
        pool=POOL,
        group_name=GROUP if name.startswith("stg") else "metrics",
        description=description(name),
        kinds={"duckdb", "sql"},
    )
    def _view(context: dg.AssetExecutionContext, duckdb: DuckDBResource) -> dg.MaterializeResult:
        with duckdb.get_connection() as conn:
            create_view(conn, name, model)
            rows = conn.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]
            meta = table_metadata(conn, name, int(rows), {"sql": dg.MetadataValue.path(f"sql/{model}.sql")})
        return dg.MaterializeResult(metadata=meta)

    return _view


stg_insights = _view_asset("stg_insights", "staging/stg_insights", "raw_insights")
daily_metrics = _view_asset("daily_metrics", "metrics/daily_metrics", "stg_insights")


@dg.asset(
    partitions_def=PARTITIONS,
    pool=POOL,
    group_name=GROUP,
    deps=[stg_insights],
    description=description("audience_metadata"),
    kinds={"duckdb"},
)
def audience_metadata(
    context: dg.AssetExecutionContext, duckdb: DuckDBResource, source: SourceResource
) -> dg.MaterializeResult:
    day = as_of(context)
    spec = source.spec()
    audiences = read_audiences(spec)
    with duckdb.get_connection() as conn:
        names = conn.execute(
            """SELECT account_id, adset_id, arg_max(adset_name, date) AS adset_name,
                      arg_max(campaign_id, date) AS campaign_id, arg_max(campaign_name, date) AS campaign_name,
                      arg_max(currency, date) AS currency
               FROM stg_insights WHERE date < ? GROUP BY account_id, adset_id""",
            [day],
        ).pl()
        frame = metadata_snapshot(names, audiences, day, spec.kind)
        counts = frame.group_by("audience_type").len().sort("audience_type")
        return write_partition(
            context,
            conn,
            "audience_metadata",
            frame,
            extra={"audiences_by_type": dg.MetadataValue.md(markdown_preview(counts, rows=10))},
        )


CHECKS = [
    doc_tests_check(raw_insights, "raw_insights", partitioned=False),
    doc_tests_check(stg_insights, "stg_insights", partitioned=False),
    doc_tests_check(daily_metrics, "daily_metrics", partitioned=False),
    doc_tests_check(audience_metadata, "audience_metadata"),
]
ASSETS = [raw_insights, stg_insights, daily_metrics, audience_metadata]
