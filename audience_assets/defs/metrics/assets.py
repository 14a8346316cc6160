"""Metrics layer: window metrics and benchmarks (SQL models), then the prepared, scored audiences."""

from datetime import UTC, date, datetime

import dagster as dg
import duckdb as duckdb_mod
import polars as pl
from dagster_duckdb import DuckDBResource

from audience_assets.defs.common import (
    PARTITIONS,
    POOL,
    account_of,
    as_of,
    description,
    doc_check_spec,
    load_partition,
    write_partition,
)
from audience_assets.defs.resources import RulesResource
from audience_assets.engine.config import RulesConfig
from audience_assets.engine.pipeline import added_columns
from audience_assets.engine.prepare import prepare, target_cpa_columns
from audience_assets.warehouse import query_model, table_exists

GROUP = "metrics"
# Each SQL model and what it reads; they run in this order in one step.
SQL_MODELS = {
    "window_metrics": "daily_metrics",
    "account_benchmarks": "window_metrics",
    "campaign_benchmarks": "window_metrics",
}


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            name,
            deps=[dep],
            partitions_def=PARTITIONS,
            group_name=GROUP,
            description=description(name),
            kinds={"duckdb", "sql"},
        )
        for name, dep in SQL_MODELS.items()
    ],
    check_specs=[doc_check_spec(name) for name in SQL_MODELS],
    pool=POOL,
    name="metrics_models",
    can_subset=True,
)
def metrics_models(context: dg.AssetExecutionContext, duckdb: DuckDBResource, rules: RulesResource):
    """The window metrics of every audience and the account and campaign benchmarks (sql/metrics)."""
    selected = {k.to_user_string() for k in context.selected_asset_keys}
    cfg = rules.load()
    window = cfg.decision_window_days
    params = {
        "as_of": as_of(context),
        "account": account_of(context),
        "window": window,
        "late_days": (window + 1) // 2,
        "long_window": cfg.long_window_days,
        "half_life": cfg.evidence_half_life_days,
    }
    with duckdb.get_connection() as conn:
        for name in SQL_MODELS:
            if name not in selected:
                continue
            model = f"metrics/{name}"
            frame = query_model(conn, model, params)
            if name == "account_benchmarks":
                frame = frame.with_columns(*target_cpa_columns(cfg))
            yield write_partition(context, conn, name, frame, extra={"sql": dg.MetadataValue.path(f"sql/{model}.sql")})


def decision_history(conn: duckdb_mod.DuckDBPyConnection, day: date, account: str) -> pl.DataFrame:
    """The account's earlier decisions (before this decision date), for cooldowns."""
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
    return conn.execute(
        f"SELECT {cols} FROM decisions WHERE decision_date < ? AND action = 'SCALE' AND account_id = ?",
        [day, account],
    ).pl()


def prepared_frame(conn: duckdb_mod.DuckDBPyConnection, day: date, cfg: RulesConfig, account: str) -> pl.DataFrame:
    """Window metrics joined with benchmarks, metadata and history, normalised (engine.prepare)."""
    return prepare(
        load_partition(conn, "window_metrics", day, account),
        load_partition(conn, "account_benchmarks", day, account),
        load_partition(conn, "campaign_benchmarks", day, account),
        load_partition(conn, "audience_metadata", day, account),
        decision_history(conn, day, account),
        cfg,
        day,
        decided_at=datetime.now(UTC).replace(tzinfo=None),
    )


@dg.asset(
    partitions_def=PARTITIONS,
    pool=POOL,
    group_name=GROUP,
    deps=["window_metrics", "account_benchmarks", "campaign_benchmarks", "audience_metadata"],
    description=description("audience_scores"),
    kinds={"duckdb", "polars"},
    check_specs=[doc_check_spec("audience_scores")],
)
def audience_scores(
    context: dg.AssetExecutionContext, duckdb: DuckDBResource, rules: RulesResource
) -> dg.MaterializeResult:
    cfg = rules.load()
    day, account = as_of(context), account_of(context)
    with duckdb.get_connection() as conn:
        window = load_partition(conn, "window_metrics", day, account)
        frame = prepared_frame(conn, day, cfg, account)
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
