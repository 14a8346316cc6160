"""Ingestion layer: raw insights (days replaced idempotently), staging views, audience metadata."""

import time
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
from audience_assets.defs.resources import MetaResource, RulesResource, SourceResource
from audience_assets.sources import AUDIENCE_SCHEMA, InputError, metadata_snapshot, with_api_columns
from audience_assets.sources.files import extract_files, read_audiences_file
from audience_assets.sources.meta import apply_overrides, extract_meta
from audience_assets.sources.sample import extract_sample, read_sample
from audience_assets.warehouse import coverage, create_view, replace_days, table_exists

GROUP = "ingestion"


@dg.asset(
    partitions_def=PARTITIONS,
    pool=POOL,
    group_name=GROUP,
    description=description("raw_insights"),
    kinds={"duckdb"},
)
def raw_insights(
    context: dg.AssetExecutionContext,
    duckdb: DuckDBResource,
    source: SourceResource,
    rules: RulesResource,
    meta: MetaResource,
) -> dg.MaterializeResult:
    day = as_of(context)
    cfg = rules.load()
    spec = source.spec()
    started = time.monotonic()
    with duckdb.get_connection() as conn:
        spans = {a: (first, last) for a, first, last in coverage(conn, "raw_insights", day).iter_rows()}
    stored = {a: first for a, (first, _last) in spans.items()}
    # The pull runs with the warehouse closed: an async backfill or a throttle pause can be long.
    failures: dict[str, str] = {}
    extra: dict[str, object] = {}
    if spec.kind == "meta":
        client = meta.client()
        lookback = cfg.lookback_days if meta.lookback_days is None else meta.lookback_days
        mx = extract_meta(
            client,
            meta.account_list(),
            day,
            spans,
            lookback,
            meta.initial_days,
            tuple(meta.purchase_action_priority),
            with_metadata=False,
        )
        insights, days, failures = mx.insights, mx.days, mx.failures
        load = ", ".join(
            f"{a}: {'full ' + str(meta.initial_days) + ' days' if f else 'lookback ' + str(lookback) + ' days'}"
            for a, f in mx.full_history.items()
        )
        extra = {
            "meta_requests": client.requests_made,
            "meta_retries": client.stats.retries,
            "meta_throttle_pauses": client.stats.throttle_pauses,
            "meta_max_usage_pct": client.stats.max_usage_pct,
            "meta_async_jobs": client.stats.async_jobs,
            "meta_async_splits": client.stats.async_splits,
            "accounts_loaded": len(mx.accounts) - len(failures),
            "accounts_failed": len(failures),
        }
    else:
        # Validation happens inside the extract: bad input raises before anything is written.
        if spec.kind == "sample":
            ext = extract_sample(spec, day, stored, cfg.lookback_days)
        else:
            ext = extract_files(spec, day)
        insights, days = ext.insights, ext.days
        load = "full history" if ext.full_history else f"lookback {cfg.lookback_days} days"
        extra["rows_on_or_after_decision_date_ignored"] = ext.ignored_after
        if ext.ignored_after:
            context.log.warning(
                f"{ext.ignored_after} insight rows dated on or after the decision date {day} were ignored: "
                "a decision uses complete days before its date"
            )
    with duckdb.get_connection() as conn:
        stats: dict[str, object] = {}
        if insights is not None and days.height:
            load_id = uuid.uuid4().hex[:12]
            frame = with_api_columns(insights).with_columns(
                pl.lit(spec.kind).alias("source"),
                pl.lit(load_id).alias("load_id"),
                pl.lit(datetime.now(UTC).replace(tzinfo=None)).cast(pl.Datetime("us")).alias("loaded_at"),
            )
            # Accounts that failed are not in `days`: their stored rows stay exactly as they were.
            stats = replace_days(conn, "raw_insights", frame, days)
            extra["load_id"] = load_id
            extra["first_day_loaded"] = str(days["date"].min())
            extra["last_day_loaded"] = str(days["date"].max())
        seconds = time.monotonic() - started
        rows_in = int(stats.get("rows_inserted", 0))
        total = (
            conn.execute("SELECT count(*) FROM raw_insights").fetchone()[0] if table_exists(conn, "raw_insights") else 0
        )
        meta_out = (
            table_metadata(
                conn,
                "raw_insights",
                int(total),
                {
                    **stats,
                    **extra,
                    "load": load,
                    "source": spec.kind,
                    "rows_per_second": round(rows_in / seconds, 1) if seconds else 0.0,
                },
            )
            if table_exists(conn, "raw_insights")
            else {"source": spec.kind}
        )
    if failures:
        raise dg.Failure(
            description="Meta accounts failed (the others were saved): "
            + "; ".join(f"{a}: {msg}" for a, msg in failures.items()),
            metadata=meta_out,
        )
    context.log.info(f"raw_insights: {rows_in} rows loaded ({load})")
    return dg.MaterializeResult(metadata=meta_out)


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
    context: dg.AssetExecutionContext, duckdb: DuckDBResource, source: SourceResource, meta: MetaResource
) -> dg.MaterializeResult:
    day = as_of(context)
    spec = source.spec()
    if spec.kind == "meta":
        mx = extract_meta(meta.client(), meta.account_list(), day, {}, 0, 0, (), with_insights=False)
        overrides = None
        if meta.audience_mapping_path:
            overrides = read_audiences_file(meta.audience_mapping_path)
        audiences = (
            apply_overrides(mx.audiences.drop("account_id"), overrides)
            if mx.audiences.height
            else pl.DataFrame(schema=AUDIENCE_SCHEMA)
        )
        failures = mx.failures
    elif spec.kind == "sample":
        audiences = read_sample(spec)[1]
        failures = {}
    else:
        if not spec.audiences_path:
            raise InputError("the csv source needs an audiences file")
        audiences = read_audiences_file(spec.audiences_path, spec.encoding, spec.delimiter)
        failures = {}
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
        result = write_partition(
            context,
            conn,
            "audience_metadata",
            frame,
            extra={"audiences_by_type": dg.MetadataValue.md(markdown_preview(counts, rows=10))},
        )
    if failures:
        # The others' metadata is saved; the failed accounts' audiences have none and cannot act.
        raise dg.Failure(description="Meta accounts failed: " + "; ".join(f"{a}: {m}" for a, m in failures.items()))
    return result


CHECKS = [
    doc_tests_check(raw_insights, "raw_insights", partitioned=False),
    doc_tests_check(stg_insights, "stg_insights", partitioned=False),
    doc_tests_check(daily_metrics, "daily_metrics", partitioned=False),
    doc_tests_check(audience_metadata, "audience_metadata"),
]
ASSETS = [raw_insights, stg_insights, daily_metrics, audience_metadata]
