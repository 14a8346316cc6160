"""Rules layer: the engine's rule stages (eligibility, buckets, trend states, decisions) in one step,
one table each, and the blocking guardrail check on the decisions."""

from datetime import date

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
    guardrail_result,
    load_partition,
    markdown_preview,
    partition_of,
    table_result,
    write_partition,
)
from audience_assets.defs.resources import OutputResource, RulesResource
from audience_assets.engine.guardrails import verify_guardrails
from audience_assets.engine.pipeline import RULE_STAGES, RULE_TABLES, run_rules
from audience_assets.engine.prepare import KEYS
from audience_assets.feedback import record_config
from audience_assets.warehouse import clear_rows, ensure_view, partition_filter, table_exists, transaction

GROUP = "rules"
GUARDRAIL_CHECK = "guardrails"
DERIVED_TABLES = ("analysis", "recommendations")
INPUTS = ["window_metrics", "audience_scores"]
# What each stage's metadata previews and counts.
PREVIEW = {
    "eligibility": (["adset_id", "eligible", "filter_reason"], "eligible"),
    "buckets": (["adset_id", "winner_threshold", "loser_threshold", "bucket"], "bucket"),
    "trend_states": (["adset_id", "roas_change", "roas_change_z", "dispersion_ratio", "trend"], "trend"),
    "decisions": (
        ["adset_id", "bucket", "trend", "matrix_action", "action", "scale_percentage", "confidence", "guardrail"],
        "action",
    ),
}


def rule_inputs(conn: duckdb_mod.DuckDBPyConnection, day: date, account: str) -> pl.DataFrame:
    """The prepared rows the rule stages start from: window metrics with the audience_scores columns."""
    frame = load_partition(conn, "window_metrics", day, account)
    return frame.join(load_partition(conn, "audience_scores", day, account), on=KEYS, how="left")


def _specs() -> list[dg.AssetSpec]:
    specs, earlier = [], list(INPUTS)
    for stage in RULE_STAGES:
        specs.append(
            dg.AssetSpec(
                stage.table,
                deps=list(earlier),
                partitions_def=PARTITIONS,
                group_name=GROUP,
                description=description(stage.table),
                kinds={"duckdb", "polars"},
            )
        )
        earlier.append(stage.table)
    return specs


STAGE_VIEWS = tuple(t for t in RULE_TABLES if t != "decisions")


def stage_view(conn: duckdb_mod.DuckDBPyConnection, table: str, columns: list[str]) -> None:
    """A stage's table as a view of its columns in `decisions` (which keeps the whole trail): the
    same rows for every decision date, written once."""
    kind = conn.execute(
        "SELECT table_type FROM information_schema.tables WHERE table_name = ? AND table_schema = 'main' "
        "AND table_catalog = current_database()",
        [table],
    ).fetchone()
    if kind and kind[0] == "BASE TABLE":  # stored by an earlier version: decisions holds the same columns
        conn.execute(f'DROP TABLE "{table}"')
    cols = ", ".join(f'"{c}"' for c in columns)
    ensure_view(conn, table, f"SELECT {cols} FROM decisions")


def _stage_extra(table: str, frame: pl.DataFrame, cfg) -> dict:
    summary = PREVIEW[table][1]
    counts = frame.group_by(summary).len().sort(summary)
    extra = {f"count_by_{summary}": dg.MetadataValue.md(markdown_preview(counts))}
    if table == "decisions":
        extra |= {"config_hash": cfg.config_hash(), **{f"actions/{a}": int(n) for a, n in counts.iter_rows()}}
    return extra


@dg.multi_asset(
    specs=_specs(),
    check_specs=[
        *[doc_check_spec(t) for t in RULE_TABLES],
        dg.AssetCheckSpec(
            GUARDRAIL_CHECK,
            asset="decisions",
            blocking=True,
            description="Every decision re-verified against the guardrails (from the stored rows, by code that "
            "shares only the per-row limits with the code that applied them); a violation blocks recommendations",
        ),
    ],
    pool=POOL,
    name="rule_stages",
)
def rule_stages(
    context: dg.AssetExecutionContext, duckdb: DuckDBResource, rules: RulesResource, output: OutputResource
):
    """Every rule stage of the engine (engine.pipeline.RULE_STAGES): decisions stored whole, each
    earlier stage a view of its columns, then the blocking guardrail check on the stored decisions."""
    cfg = rules.load()
    day, account = as_of(context), account_of(context)
    part = partition_of(context)
    with duckdb.get_connection() as conn:
        tables = run_rules(rule_inputs(conn, day, account), cfg)
        decided = tables["decisions"].with_columns(pl.lit(context.run.run_id).alias("run_id"))
        # New decisions void what was derived from the old ones: a blocked rerun must not leave
        # an earlier run's recommendations standing for this account-day.
        for table in DERIVED_TABLES:
            if table_exists(conn, table):
                transaction(conn, lambda t=table: clear_rows(conn, t, part), f"clear {table}")
        path = output.path_for(day, account)
        if path is not None:
            path.unlink(missing_ok=True)
        record_config(conn, cfg)  # the full rules behind the hash, for replay
        stored = write_partition(
            context, conn, "decisions", decided, _stage_extra("decisions", decided, cfg), PREVIEW["decisions"][0]
        )
        for table in STAGE_VIEWS:
            frame = tables[table]
            stage_view(conn, table, frame.columns)
            preview = frame.select(PREVIEW[table][0])
            yield table_result(
                conn, table, frame.height, partition_filter(part), _stage_extra(table, frame, cfg), preview
            )
        rows = load_partition(conn, "decisions", day, account)
        check = guardrail_result(verify_guardrails(rows, cfg), rows.height, "decisions", GUARDRAIL_CHECK)
        yield stored._replace(check_results=[*stored.check_results, check])
