"""Metrics layer: window metrics and benchmarks (SQL models), normalised metrics and scores."""

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
    load_partition,
    write_partition,
)
from audience_assets.defs.ingestion.assets import audience_metadata, daily_metrics
from audience_assets.defs.resources import RulesResource
from audience_assets.engine.pipeline import added_columns
from audience_assets.engine.prepare import prepare, target_cpa_columns
from audience_assets.warehouse import query_model, table_exists

GROUP = "metrics"


def _sql_asset(name: str, deps: list) -> dg.AssetsDefinition:
    @dg.asset(
        name=name,
        deps=deps,
        partitions_def=PARTITIONS,
        pool=POOL,
        group_name=GROUP,
        description=description(name),
        kinds={"duckdb", "sql"},
    )
    def _asset(context: dg.AssetExecutionContext, duckdb: DuckDBResource, rules: RulesResource) -> dg.MaterializeResult:
        cfg = rules.load()
        window = cfg.decision_window_days
        params = {
            "as_of": as_of(context),
            "window": window,
            "late_days": (window + 1) // 2,
            "long_window": cfg.long_window_days,
        }
        with duckdb.get_connection() as conn:
            model = f"metrics/{name}"
            frame = query_model(conn, model, params)
            if name == "account_benchmarks":
                frame = frame.with_columns(*target_cpa_columns(cfg))
            return write_partition(context, conn, name, frame, extra={"sql": dg.MetadataValue.path(f"sql/{model}.sql")})

    return _asset


window_metrics = _sql_asset("window_metrics", [daily_metrics])
account_benchmarks = _sql_asset("account_benchmarks", [window_metrics])
campaign_benchmarks = _sql_asset("campaign_benchmarks", [window_metrics])


def decision_history(conn, day) -> pl.DataFrame:
    """Earlier decisions (before this decision date), for cooldowns."""
    if not table_exists(conn, "decisions"):
        return pl.DataFrame(
            schema={
                "decision_date": pl.Date,
                "account_id": pl.Utf8,
                "adset_id": pl.Utf8,
                "action": pl.Utf8,
                "decided_at": pl.Datetime("us"),
            }
        )
    cols = "decision_date, account_id, adset_id, action"
    if "decided_at" in {r[0] for r in conn.execute("DESCRIBE decisions").fetchall()}:
        cols += ", decided_at"
    return conn.execute(f"SELECT {cols} FROM decisions WHERE decision_date < ?", [day]).pl()


def prepared_frame(conn, day, cfg) -> pl.DataFrame:
    """Window metrics joined with benchmarks, metadata and history, normalised (engine.prepare)."""
    return prepare(
        load_partition(conn, "window_metrics", day),
        load_partition(conn, "account_benchmarks", day),
        load_partition(conn, "campaign_benchmarks", day),
        load_partition(conn, "audience_metadata", day),
        decision_history(conn, day),
        cfg,
        day,
        decided_at=datetime.now(UTC).replace(tzinfo=None),
    )


@dg.asset(
    partitions_def=PARTITIONS,
    pool=POOL,
    group_name=GROUP,
    deps=[window_metrics, account_benchmarks, campaign_benchmarks, audience_metadata],
    description=description("audience_scores"),
    kinds={"duckdb", "polars"},
)
def audience_scores(
    context: dg.AssetExecutionContext, duckdb: DuckDBResource, rules: RulesResource
) -> dg.MaterializeResult:
    cfg = rules.load()
    day = as_of(context)
    with duckdb.get_connection() as conn:
        window = load_partition(conn, "window_metrics", day)
        frame = prepared_frame(conn, day, cfg)
        return write_partition(
            context,
            conn,
            "audience_scores",
            added_columns(window, frame).sort("score", descending=True, nulls_last=True),
            preview_columns=[
                "adset_id",
                "modifier_key",
                "normalized_roas",
                "normalized_spend",
                "normalized_cvr",
                "score",
            ],
        )


CHECKS = [
    doc_tests_check(window_metrics, "window_metrics"),
    doc_tests_check(account_benchmarks, "account_benchmarks"),
    doc_tests_check(campaign_benchmarks, "campaign_benchmarks"),
    doc_tests_check(audience_scores, "audience_scores"),
]
ASSETS = [window_metrics, account_benchmarks, campaign_benchmarks, audience_scores]
