"""Ingestion layer: raw insights (days replaced idempotently), staging views, audience metadata."""

import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import dagster as dg
import duckdb as duckdb_mod
import polars as pl
from dagster_duckdb import DuckDBResource

from audience_assets.defs.common import (
    PARTITIONS,
    POOL,
    Scope,
    account_of,
    as_of,
    days_scope,
    description,
    doc_check_spec,
    markdown_preview,
    table_result,
    write_partition,
)
from audience_assets.defs.resources import MetaResource, RulesResource, SourceResource, WarehouseResource
from audience_assets.sources import (
    AUDIENCE_SCHEMA,
    InputError,
    SourceSpec,
    metadata_snapshot,
    raw_load_sql,
    raw_table_ddl,
)
from audience_assets.sources.files import extract_files, read_audiences_file
from audience_assets.sources.meta import apply_overrides, extract_meta
from audience_assets.sources.sample import extract_sample, read_sample
from audience_assets.warehouse import coverage, create_view, ensure_table_ddl, replace_days

GROUP = "ingestion"
RAW = "raw_insights"


@dataclass
class Load:
    """What one load wrote and reports: replacement figures, metadata, and failed accounts."""

    load: str
    stats: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)


def _write(conn: duckdb_mod.DuckDBPyConnection, kind: str, relation: str, days: pl.DataFrame, out: Load) -> None:
    """Replace the loaded days of raw_insights with the rows of `relation` (accounts not in `days`
    keep their stored rows exactly as they were)."""
    if not days.height:
        return
    load_id = uuid.uuid4().hex[:12]
    present = {r[0] for r in conn.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()}
    sql = raw_load_sql(relation, present, kind, load_id, datetime.now(UTC).replace(tzinfo=None))
    out.stats = replace_days(conn, RAW, sql, days)
    out.extra |= {
        "load_id": load_id,
        "first_day_loaded": str(days["date"].min()),
        "last_day_loaded": str(days["date"].max()),
    }


def _write_frame(conn: duckdb_mod.DuckDBPyConnection, kind: str, frame: pl.DataFrame, days, out: Load) -> None:
    conn.register("_source_rows", frame)
    try:
        _write(conn, kind, "_source_rows", days, out)
    finally:
        conn.unregister("_source_rows")


def _load_meta(duckdb: WarehouseResource, meta: MetaResource, day: date, account: str, lookback_default: int) -> Load:
    with duckdb.get_connection() as conn:
        spans = {a: (first, last) for a, first, last in coverage(conn, RAW, day, account).iter_rows()}
    # The pull runs with the warehouse closed: an async backfill or a throttle pause can be long.
    client = meta.client()
    lookback = lookback_default if meta.lookback_days is None else meta.lookback_days
    priority = tuple(meta.purchase_action_priority)
    with duckdb.released():
        mx = extract_meta(client, [account], day, spans, lookback, meta.initial_days, priority, with_metadata=False)
    out = Load(
        ", ".join(
            f"{a}: {'full ' + str(meta.initial_days) + ' days' if full else 'lookback ' + str(lookback) + ' days'}"
            for a, full in mx.full_history.items()
        ),
        failures=mx.failures,
        extra={
            "meta_requests": client.requests_made,
            "meta_retries": client.stats.retries,
            "meta_throttle_pauses": client.stats.throttle_pauses,
            "meta_max_usage_pct": client.stats.max_usage_pct,
            "meta_async_jobs": client.stats.async_jobs,
            "meta_async_splits": client.stats.async_splits,
            "meta_call_cap": client.slots.limit,
            "meta_call_wait_seconds": round(client.slots.waited_seconds, 2),
            "accounts_loaded": len(mx.accounts) - len(mx.failures),
            "accounts_failed": len(mx.failures),
        },
    )
    if mx.insights is not None:
        with duckdb.get_connection() as conn:
            _write_frame(conn, "meta", mx.insights, mx.days, out)
    return out


def _not_in_source(account: str, kind: str, present: list[str]) -> InputError:
    return InputError(
        f"account {account} has no rows in the {kind} source (it holds {', '.join(sorted(present)[:10]) or 'none'})"
    )


def _load_local(
    conn: duckdb_mod.DuckDBPyConnection, spec: SourceSpec, day: date, account: str, lookback: int, log: Any
) -> Load:
    """Sample or CSV: checked whole before anything is written (the checks raise InputError); only
    the account's rows are written."""
    if spec.kind == "sample":
        stored = {a: first for a, first, _last in coverage(conn, RAW, day, account).iter_rows()}
        ext = extract_sample(spec, day, stored, lookback)
        present = ext.insights["account_id"].unique().to_list()
        if account not in present:
            raise _not_in_source(account, "sample", present)
        out = Load("full history" if ext.full_history else f"lookback {lookback} days")
        mine = pl.col("account_id") == account
        _write_frame(conn, "sample", ext.insights.filter(mine), ext.days.filter(mine), out)
        ignored = ext.ignored_after
    else:
        loaded = extract_files(conn, spec, day)
        out = Load("full history")
        present = [r[0] for r in conn.execute(f"SELECT DISTINCT account_id FROM {loaded.relation}").fetchall()]
        if account not in present:
            raise _not_in_source(account, "csv", present)
        conn.execute(
            f"CREATE OR REPLACE TEMP TABLE _account_rows AS SELECT * FROM {loaded.relation} WHERE account_id = $account",
            {"account": account},
        )
        _write(conn, "csv", "_account_rows", loaded.days.filter(pl.col("account_id") == account), out)
        conn.execute("DROP TABLE _account_rows")
        conn.execute(f"DROP TABLE IF EXISTS {loaded.relation}")
        ignored = loaded.ignored_after
    out.extra["rows_on_or_after_decision_date_ignored"] = ignored
    if ignored:
        log.warning(
            f"{ignored} insight rows dated on or after the decision date {day} were ignored: "
            "a decision uses complete days before its date"
        )
    return out


@dg.asset(
    partitions_def=PARTITIONS,
    pool=POOL,
    group_name=GROUP,
    description=description(RAW),
    kinds={"duckdb"},
    check_specs=[doc_check_spec(RAW)],
)
def raw_insights(
    context: dg.AssetExecutionContext,
    duckdb: WarehouseResource,
    source: SourceResource,
    rules: RulesResource,
    meta: MetaResource,
) -> dg.MaterializeResult:
    day, account = as_of(context), account_of(context)
    cfg = rules.load()
    spec = source.spec()
    started = time.monotonic()
    if spec.kind == "meta":
        out = _load_meta(duckdb, meta, day, account, cfg.lookback_days)
    else:
        with duckdb.get_connection() as conn:
            out = _load_local(conn, spec, day, account, cfg.lookback_days, context.log)
    seconds = time.monotonic() - started
    rows_in = int(out.stats.get("rows_inserted", 0))
    figures = {
        **out.stats,
        **out.extra,
        "load": out.load,
        "source": spec.kind,
        "rows_per_second": round(rows_in / seconds, 1) if seconds else 0.0,
    }
    with duckdb.get_connection() as conn:
        ensure_table_ddl(conn, raw_table_ddl(RAW))
        total = int(conn.execute(f"SELECT count(*) FROM {RAW} WHERE account_id = ?", [account]).fetchone()[0])
        scope = (
            days_scope(
                date.fromisoformat(out.extra["first_day_loaded"]),
                date.fromisoformat(out.extra["last_day_loaded"]),
                account,
            )
            if "first_day_loaded" in out.extra
            else loaded_scope(conn, account)
        )
        result = table_result(conn, RAW, total, scope, figures)
    if out.failures:
        raise dg.Failure(
            description="Meta pull failed, nothing of it stored (each account is a run of its own): "
            + "; ".join(f"{a}: {m}" for a, m in out.failures.items()),
            metadata=dict(result.metadata or {}),
        )
    context.log.info(f"raw_insights: {rows_in} rows loaded ({out.load})")
    return result


VIEWS = {"stg_insights": "staging/stg_insights", "daily_metrics": "metrics/daily_metrics"}


def loaded_scope(
    conn: duckdb_mod.DuckDBPyConnection,
    account: str,
    instance: dg.DagsterInstance | None = None,
    partition: str | None = None,
) -> Scope | None:
    """The days of the account's newest load: what a load's doc tests look at, so their cost does not
    grow with the stored history (None before anything was loaded). Read from raw_insights' last
    materialisation of this partition when the instance has it, else from the table."""
    meta: Any = {}
    if instance is not None and partition is not None:
        found = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(RAW), asset_partitions=[partition]), limit=1
        ).records
        mat = found[0].asset_materialization if found else None
        meta = mat.metadata if mat is not None else {}
    if "first_day_loaded" in meta and "last_day_loaded" in meta:
        return days_scope(
            date.fromisoformat(meta["first_day_loaded"].value),
            date.fromisoformat(meta["last_day_loaded"].value),
            account,
        )
    first, last = conn.execute(
        f"SELECT min(date), max(date) FROM {RAW} WHERE account_id = $account AND loaded_at = "
        f"(SELECT max(loaded_at) FROM {RAW} WHERE account_id = $account)",
        {"account": account},
    ).fetchone()
    return days_scope(first, last, account) if first is not None else None


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            "stg_insights",
            deps=[RAW],
            partitions_def=PARTITIONS,
            group_name=GROUP,
            description=description("stg_insights"),
            kinds={"duckdb", "sql"},
        ),
        dg.AssetSpec(
            "daily_metrics",
            deps=["stg_insights"],
            partitions_def=PARTITIONS,
            group_name="metrics",
            description=description("daily_metrics"),
            kinds={"duckdb", "sql"},
        ),
    ],
    check_specs=[doc_check_spec(name) for name in VIEWS],
    pool=POOL,
    name="staging_views",
    can_subset=True,
)
def staging_views(context: dg.AssetExecutionContext, duckdb: DuckDBResource):
    """The typed, deduplicated staging view and the per-day metrics view over raw_insights."""
    selected = {k.to_user_string() for k in context.selected_asset_keys}
    with duckdb.get_connection() as conn:
        for name, model in VIEWS.items():
            if name not in selected:
                continue
            create_view(conn, name, model)
            scope = loaded_scope(conn, account_of(context), context.instance, context.partition_key)
            loaded = (
                conn.execute(f'SELECT count(*) FROM "{name}" WHERE {scope[0]}', scope[1]).fetchone()[0] if scope else 0
            )
            extra = {"sql": dg.MetadataValue.path(f"sql/{model}.sql"), "rows_on_days_loaded": int(loaded)}
            yield table_result(conn, name, None, scope, extra)


def _audiences(spec: SourceSpec, meta: MetaResource, day: date, account: str) -> tuple[pl.DataFrame, dict[str, str]]:
    """The source's audience rows for a decision date (Meta: of the account), and whether Meta failed."""
    if spec.kind == "sample":
        return read_sample(spec)[1], {}
    if spec.kind == "csv":
        if not spec.audiences_path:
            raise InputError("the csv source needs an audiences file")
        return read_audiences_file(spec.audiences_path, spec.encoding, spec.delimiter), {}
    mx = extract_meta(meta.client(), [account], day, {}, 0, 0, (), with_insights=False)
    overrides = read_audiences_file(meta.audience_mapping_path) if meta.audience_mapping_path else None
    if not mx.audiences.height:
        return pl.DataFrame(schema=AUDIENCE_SCHEMA), mx.failures
    return apply_overrides(mx.audiences.drop("account_id"), overrides), mx.failures


@dg.asset(
    partitions_def=PARTITIONS,
    pool=POOL,
    group_name=GROUP,
    deps=["window_metrics"],
    description=description("audience_metadata"),
    kinds={"duckdb"},
    check_specs=[doc_check_spec("audience_metadata")],
)
def audience_metadata(
    context: dg.AssetExecutionContext, duckdb: WarehouseResource, source: SourceResource, meta: MetaResource
) -> dg.MaterializeResult:
    day, account = as_of(context), account_of(context)
    spec = source.spec()
    with duckdb.released():
        audiences, failures = _audiences(spec, meta, day, account)
    with duckdb.get_connection() as conn:
        # The newest names of every ad set with history before the decision date (window_metrics).
        names = conn.execute(
            """SELECT account_id, adset_id, adset_name, campaign_id, campaign_name, currency
               FROM window_metrics WHERE decision_date = $day AND ($account::VARCHAR IS NULL OR account_id = $account)""",
            {"day": day, "account": account},
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
        raise dg.Failure(description="Meta pull failed: " + "; ".join(f"{a}: {m}" for a, m in failures.items()))
    return result
