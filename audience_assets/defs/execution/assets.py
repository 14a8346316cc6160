"""Execution layer: `approvals` (pending items from each day's recommendations), `action_log` (the
execute_approved job: approved changes written to Meta, dry run by default) with its blocking check,
the record_approvals job for approving from the Dagster UI, and the sensor that executes new approvals."""

import os
from datetime import UTC, date, datetime

import dagster as dg
import duckdb as duckdb_mod
import polars as pl
from dagster_duckdb import DuckDBResource
from pydantic import Field

from audience_assets.defs.common import (
    PARTITIONS,
    POOL,
    account_of,
    as_of,
    description,
    doc_check_result,
    doc_check_spec,
    guardrail_result,
    markdown_preview,
    partition_of,
    table_metadata,
)
from audience_assets.defs.resources import ExecutionResource, MetaResource, RulesResource
from audience_assets.engine.execution import verify_action_log
from audience_assets.engine.fmt import minor_unit
from audience_assets.execution import ApprovalError, ExecutionError
from audience_assets.execution.approvals import (
    current,
    decide,
    high_confidence_pending,
    newest_decision_date,
    sync_pending,
)
from audience_assets.execution.runner import execute
from audience_assets.warehouse import WarehouseError, database_path, open_database, partition_filter, table_exists

GROUP = "execution"
EXECUTE_JOB = "execute_approved"
APPROVALS_JOB = "record_approvals"
VERIFIED_CHECK = "approved_and_within_guardrails"
SUCCEEDED_CHECK = "writes_succeeded"
SENSOR_ENV = "AUDIENCE_ENGINE_EXECUTION_SENSOR"  # off (default) | dry-run | apply
PREVIEW = ["adset_name", "action", "budget_from_minor", "budget_to_minor", "confidence", "status", "decided_by"]
LOG_PREVIEW = ["adset_name", "action", "mode", "outcome", "reason"]


@dg.asset(
    partitions_def=PARTITIONS,
    pool=POOL,
    group_name=GROUP,
    deps=["recommendations"],
    description=description("approvals"),
    kinds={"duckdb"},
    check_specs=[doc_check_spec("approvals")],
)
def approvals(context: dg.AssetExecutionContext, duckdb: DuckDBResource) -> dg.MaterializeResult:
    """Every actionable recommendation of the day waits here, pending, until a person decides."""
    day, account = as_of(context), account_of(context)
    with duckdb.get_connection() as conn:
        counts = sync_pending(conn, day, datetime.now(UTC), account)
        rows = current(conn, day, ("pending", "approved", "rejected"), account)
        by_status = dict(rows.group_by("status").len().iter_rows()) if rows.height else {}
        meta = table_metadata(conn, "approvals", rows.height, {f"status/{k}": int(v) for k, v in by_status.items()})
        meta |= {f"sync/{k}": v for k, v in counts.items()}
        meta["preview"] = dg.MetadataValue.md(markdown_preview(rows.select(PREVIEW)))
        check = doc_check_result(conn, "approvals", partition_filter(partition_of(context)))
    return dg.MaterializeResult(metadata=meta, check_results=[check])


class ExecuteConfig(dg.Config):
    date: str | None = Field(None, description="decision date YYYY-MM-DD (default: the newest with approvals)")
    apply: bool = Field(False, description="true writes to Meta; false (default) asks Meta to validate only")


def verify_log(conn: duckdb_mod.DuckDBPyConnection, max_scale_pct: float) -> tuple[pl.DataFrame, int]:
    """Violations over the whole action log, and how many rows were checked."""
    log = conn.execute("SELECT * FROM action_log").pl()
    caps = conn.execute(
        "SELECT account_id, decision_date, any_value(account_increase_cap) AS cap, any_value(currency) AS currency "
        "FROM decisions WHERE decision_date IN (SELECT DISTINCT decision_date FROM action_log) GROUP BY ALL"
    ).pl()
    # Meta's integer minor units: the cap over the size of one minor unit (0.01, or 1 for zero-decimal currencies).
    minor = (pl.col("cap") / minor_unit(pl.col("currency")) + 1e-6).floor().cast(pl.Int64)
    caps = caps.select("account_id", "decision_date", minor.alias("account_cap_minor"))
    approvals_rows = conn.execute("SELECT * FROM approvals").pl()
    return verify_action_log(log, approvals_rows, caps, max_scale_pct), log.height


@dg.asset(
    pool=POOL,
    group_name=GROUP,
    deps=["approvals"],
    description=description("action_log"),
    kinds={"duckdb", "meta"},
    check_specs=[
        doc_check_spec("action_log"),
        dg.AssetCheckSpec(
            VERIFIED_CHECK,
            asset="action_log",
            blocking=True,
            description="Every write carries a valid approval for exactly that plan and stays within the guardrails",
        ),
        dg.AssetCheckSpec(SUCCEEDED_CHECK, asset="action_log", description="No attempted write failed"),
    ],
)
def action_log(
    context: dg.AssetExecutionContext,
    config: ExecuteConfig,
    duckdb: DuckDBResource,
    meta: MetaResource,
    execution: ExecutionResource,
    rules: RulesResource,
) -> dg.MaterializeResult:
    """Execute the approved items of a decision date (dry run unless `apply`), one action_log row each."""
    day = date.fromisoformat(config.date) if config.date else None
    with duckdb.get_connection() as conn:
        if config.apply:
            _refuse_on_a_broken_log(conn, rules.load().max_scale_pct)
        try:
            rows = execute(
                conn, meta.writer(), day=day, apply=config.apply, settings=execution.settings(),
                run_id=context.run.run_id, say=context.log.info,
            )  # fmt: skip
        except ExecutionError as err:
            raise dg.Failure(description=str(err)) from None
        violations, checked = verify_log(conn, rules.load().max_scale_pct)
        meta_out = table_metadata(conn, "action_log", None, _outcomes(rows, config.apply))
        meta_out["this_run"] = dg.MetadataValue.md(markdown_preview(rows.select(LOG_PREVIEW), rows=50))
        checks = [
            doc_check_result(conn, "action_log"),
            guardrail_result(violations, checked, "action_log", VERIFIED_CHECK),
            _succeeded(rows),
        ]
    return dg.MaterializeResult(metadata=meta_out, check_results=checks)


def _refuse_on_a_broken_log(conn: duckdb_mod.DuckDBPyConnection, max_scale_pct: float) -> None:
    """The check runs before writes too: a log that already breaks the rules stops every new write."""
    if not table_exists(conn, "action_log"):
        return
    violations, _ = verify_log(conn, max_scale_pct)
    if violations.height:
        raise dg.Failure(
            description=f"the action log already breaks the execution rules ({violations.height} violation(s)): "
            "no writes until they are investigated",
            metadata={"violations": dg.MetadataValue.md(markdown_preview(violations, rows=20))},
        )


def _outcomes(rows: pl.DataFrame, apply: bool) -> dict:
    counts = dict(rows.group_by("outcome").len().iter_rows()) if rows.height else {}
    return {"mode": "apply" if apply else "dry_run", **{f"outcome/{k}": int(v) for k, v in counts.items()}}


def _succeeded(rows: pl.DataFrame) -> dg.AssetCheckResult:
    failed = rows.filter(pl.col("outcome") == "failed")
    return dg.AssetCheckResult(
        asset_key="action_log",
        check_name=SUCCEEDED_CHECK,
        passed=failed.height == 0,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"failed": failed.height, "detail": dg.MetadataValue.md(markdown_preview(failed.select(LOG_PREVIEW)))},
    )


execute_approved = dg.define_asset_job(
    EXECUTE_JOB,
    selection=dg.AssetSelection.assets("action_log"),
    executor_def=dg.in_process_executor,
    description="Write the approved changes to Meta: a dry run (validate_only) unless run config sets apply: true",
)


class ApprovalConfig(dg.Config):
    date: str | None = Field(None, description="decision date YYYY-MM-DD (default: the newest)")
    audience_ids: list[str] = Field(default_factory=list, description="ad set ids to decide on")
    verdict: str = Field("approve", description="approve or reject")
    by: str = Field(description="who decides (recorded with the approval)")
    note: str | None = None
    all_high: bool = Field(False, description="approve every pending HIGH-confidence item (explicit, never default)")


@dg.op(pool=POOL, description="Record approvals or rejections in the approvals table")
def record_approvals_op(context: dg.OpExecutionContext, config: ApprovalConfig, duckdb: DuckDBResource,
                        execution: ExecutionResource) -> None:  # fmt: skip
    verdict = {"approve": "approved", "reject": "rejected"}.get(config.verdict)
    if verdict is None:
        raise dg.Failure(description=f"verdict {config.verdict!r}: expected approve or reject")
    with duckdb.get_connection() as conn:
        day = date.fromisoformat(config.date) if config.date else newest_decision_date(conn)
        if day is None:
            raise dg.Failure(description="no approvals in the warehouse: materialise the recommendations first")
        ids = list(config.audience_ids)
        if config.all_high and verdict == "approved":
            ids += high_confidence_pending(conn, day)
        if not ids:
            raise dg.Failure(description="no audience_ids given (and all_high found none)")
        try:
            rows = decide(conn, day, ids, verdict, by=config.by, note=config.note, now=datetime.now(UTC),
                          settings=execution.settings(), via="dagster")  # fmt: skip
        except ApprovalError as err:
            raise dg.Failure(description=str(err)) from None
    context.log.info(f"{verdict} {rows.height} item(s) of {day} by {config.by}")


@dg.job(name=APPROVALS_JOB, description="Approve or reject pending items from the Dagster UI (run config)")
def record_approvals() -> None:
    record_approvals_op()


def sensor_mode() -> str:
    mode = (os.environ.get(SENSOR_ENV) or "off").strip().lower()
    return mode if mode in ("off", "dry-run", "apply") else "off"


@dg.sensor(
    job=execute_approved,
    minimum_interval_seconds=60,
    description=f"Launches execute_approved when new approvals appear; off unless {SENSOR_ENV}=dry-run or apply",
    default_status=dg.DefaultSensorStatus.RUNNING if sensor_mode() != "off" else dg.DefaultSensorStatus.STOPPED,
)
def approvals_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
    mode = sensor_mode()
    if mode == "off":
        return dg.SkipReason(f"{SENSOR_ENV} is off: set it to dry-run or apply to execute new approvals")
    try:
        conn = open_database(database_path(), read_only=True)
    except WarehouseError as err:
        return dg.SkipReason(f"warehouse not readable now: {err}")
    try:
        if not table_exists(conn, "approvals"):
            return dg.SkipReason("no approvals table yet")
        newest = conn.execute("SELECT max(decided_at) FROM approvals WHERE status = 'approved'").fetchone()[0]
    finally:
        conn.close()
    stamp = newest.isoformat() if newest else ""
    if not stamp or stamp == context.cursor:
        return dg.SkipReason("no new approvals since the last run")
    config = {"ops": {"action_log": {"config": {"apply": mode == "apply"}}}}
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=f"approvals-{stamp}", run_config=config, tags={"source": "approvals"})],
        cursor=stamp,
    )
