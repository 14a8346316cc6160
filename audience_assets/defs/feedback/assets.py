"""Feedback layer: `outcomes` (every stored decision of an account judged over each horizon the
warehouse holds), recomputed by every run of the account and by a sensor when its new days land;
`rule_scorecard` over every account's outcomes; the analyst view `decision_outcomes`."""

import json
from datetime import timedelta

import dagster as dg
from dagster_duckdb import DuckDBResource

from audience_assets.defs.common import (
    ACCOUNTS,
    DATES,
    PARTITIONS,
    POOL,
    account_of,
    as_of,
    description,
    doc_check_result,
    doc_check_spec,
    markdown_preview,
    partition_key,
    table_metadata,
)
from audience_assets.defs.resources import FeedbackResource, RulesResource
from audience_assets.engine.outcomes import LABELS
from audience_assets.execution.approvals import ensure_tables
from audience_assets.feedback.outcomes import refresh
from audience_assets.warehouse import WarehouseError, create_view, database_path, open_database, table_exists

GROUP = "feedback"
OUTCOMES_JOB = "outcomes_job"
CARD_PREVIEW = ["horizon_days", "rule_branch", "audience_type", "decisions", "good_call", "hit_rate", "net"]


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            name,
            deps=["decisions"],
            partitions_def=PARTITIONS,
            group_name=GROUP,
            description=description(name),
            kinds={"duckdb", "polars"},
        )  # fmt: skip
        for name in ("outcomes", "rule_scorecard")
    ],
    check_specs=[doc_check_spec("outcomes"), doc_check_spec("rule_scorecard")],
    pool=POOL,
    name="outcome_stages",
)
def outcome_stages(context: dg.AssetExecutionContext, duckdb: DuckDBResource, rules: RulesResource,
                   feedback: FeedbackResource):  # fmt: skip
    """Judge every stored decision over the horizons the warehouse now holds (restated days re-judged)."""
    settings = feedback.settings()
    with duckdb.get_connection() as conn:
        ensure_tables(conn)  # the analyst view joins the action log, which may not exist yet
        outcomes, card = refresh(conn, rules.load(), settings, account_of(context))
        create_view(conn, "decision_outcomes", "feedback/decision_outcomes")
        labels = dict(outcomes.group_by("label").len().iter_rows()) if outcomes.height else {}
        extra = {f"labels/{k}": int(labels.get(k, 0)) for k in LABELS}
        extra["horizons"] = ", ".join(map(str, settings.horizons))
        extra["decision_date"] = as_of(context).isoformat()
        yield dg.MaterializeResult(
            asset_key="outcomes",
            metadata={**table_metadata(conn, "outcomes", outcomes.height, extra)},
            check_results=[doc_check_result(conn, "outcomes", ("account_id = ?", [account_of(context)]))],
        )
        meta = table_metadata(conn, "rule_scorecard", card.height)
        if card.height:
            top = card.sort("net").select(CARD_PREVIEW)
            meta["worst_branches"] = dg.MetadataValue.md(markdown_preview(top, rows=10))
            meta["net"] = float(card["net"].sum())
        yield dg.MaterializeResult(
            asset_key="rule_scorecard", metadata=meta, check_results=[doc_check_result(conn, "rule_scorecard")]
        )


outcomes_job = dg.define_asset_job(
    OUTCOMES_JOB,
    selection=dg.AssetSelection.assets("outcomes", "rule_scorecard"),
    executor_def=dg.in_process_executor,
    description="Re-judge every stored decision: outcomes and the rule scorecard",
)


@dg.sensor(
    job=outcomes_job,
    minimum_interval_seconds=300,
    description="Re-judges an account's outcomes when new days of it land in raw_insights",
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def outcomes_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
    try:
        conn = open_database(database_path(), read_only=True)
    except WarehouseError as err:
        return dg.SkipReason(f"warehouse not readable now: {err}")
    try:
        if not table_exists(conn, "raw_insights") or not table_exists(conn, "decisions"):
            return dg.SkipReason("no decisions yet")
        stamps = conn.execute(
            "SELECT account_id, max(date), count(*) FROM raw_insights "
            "WHERE account_id IN (SELECT DISTINCT account_id FROM decisions) GROUP BY account_id ORDER BY account_id"
        ).fetchall()
    finally:
        conn.close()
    # The cursor holds each account's newest day and row count when it was last judged.
    seen = json.loads(context.cursor) if context.cursor and context.cursor.startswith("{") else {}
    dates = set(DATES.get_partition_keys())
    known = set(context.instance.get_dynamic_partitions(ACCOUNTS.name))
    runs, cursor, new = [], dict(seen), []
    for account, newest, rows in stamps:
        stamp = f"{newest}:{rows}"
        day = (newest + timedelta(days=1)).isoformat()
        if seen.get(account) == stamp or day not in dates:
            continue
        if account not in known:  # decided through another Dagster instance
            new.append(account)
        cursor[account] = stamp
        runs.append(
            dg.RunRequest(
                run_key=f"outcomes-{account}-{stamp}",
                partition_key=partition_key(day, account),
                tags={"source": "new_days"},
            )  # fmt: skip
        )
    if not runs:
        return dg.SkipReason("no new days since the last judgement")
    adds = [ACCOUNTS.build_add_request(new)] if new else []
    return dg.SensorResult(
        run_requests=runs, cursor=json.dumps(cursor, sort_keys=True), dynamic_partitions_requests=adds
    )
