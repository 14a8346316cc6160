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
    as_of,
    description,
    doc_check_spec,
    guardrail_result,
    load_partition,
    markdown_preview,
    write_partition,
)
from audience_assets.defs.resources import OutputResource, RulesResource
from audience_assets.engine.guardrails import verify_guardrails
from audience_assets.engine.pipeline import RULE_STAGES, RULE_TABLES, run_rules
from audience_assets.engine.prepare import KEYS
from audience_assets.warehouse import table_exists

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


def rule_inputs(conn: duckdb_mod.DuckDBPyConnection, day: date) -> pl.DataFrame:
    """The prepared rows the rule stages start from: window metrics with the audience_scores columns."""
    frame = load_partition(conn, "window_metrics", day)
    return frame.join(load_partition(conn, "audience_scores", day), on=KEYS, how="left")


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


@dg.multi_asset(
    specs=_specs(),
    check_specs=[doc_check_spec(t) for t in RULE_TABLES],
    pool=POOL,
    name="rule_stages",
    can_subset=True,
)
def rule_stages(
    context: dg.AssetExecutionContext, duckdb: DuckDBResource, rules: RulesResource, output: OutputResource
):
    """Every rule stage of the engine (engine.pipeline.RULE_STAGES), each written to its table."""
    cfg = rules.load()
    day = as_of(context)
    selected = {k.to_user_string() for k in context.selected_asset_keys}
    with duckdb.get_connection() as conn:
        tables = {t: f for t, f in run_rules(rule_inputs(conn, day), cfg).items() if t in selected}
        if "decisions" in tables:
            tables["decisions"] = tables["decisions"].with_columns(pl.lit(context.run.run_id).alias("run_id"))
            # New decisions void what was derived from the old ones: a blocked rerun must not leave
            # an earlier run's recommendations standing for this date.
            for table in DERIVED_TABLES:
                if table_exists(conn, table):
                    conn.execute(f'DELETE FROM "{table}" WHERE decision_date = ?', [day])
            path = output.path_for(day)
            if path is not None:
                path.unlink(missing_ok=True)
        for table, frame in tables.items():
            columns, summary = PREVIEW[table]
            counts = frame.group_by(summary).len().sort(summary)
            extra = {f"count_by_{summary}": dg.MetadataValue.md(markdown_preview(counts))}
            if table == "decisions":
                extra |= {"config_hash": cfg.config_hash(), **{f"actions/{a}": int(n) for a, n in counts.iter_rows()}}
            yield write_partition(context, conn, table, frame, extra=extra, preview_columns=columns)


@dg.asset_check(
    asset="decisions",
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
