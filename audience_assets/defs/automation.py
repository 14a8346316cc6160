"""The main job, its daily schedule, and the sensor that notices new CSV exports in an inbox."""

import hashlib
import os
from datetime import timedelta
from pathlib import Path

import dagster as dg

from audience_assets.sources import InputError, SourceSpec
from audience_assets.sources.files import validate_files

MAIN_JOB = "audience_engine_job"
INBOX_ENV = "AUDIENCE_ENGINE_INBOX"
DEFAULT_INBOX = "data/inbox"
INSIGHTS_FILE = "insights.csv"
AUDIENCES_FILE = "audiences.csv"

# In-process: every step shares the DuckDB pool of one, so separate step processes (each started
# ~4 s apart by the multiprocess executor) would only add start-up time, never parallelism.
main_job = dg.define_asset_job(
    MAIN_JOB,
    # Execution is its own job (execute_approved): the daily run never writes to an ad account.
    selection=dg.AssetSelection.all() - dg.AssetSelection.assets("action_log"),
    executor_def=dg.in_process_executor,
    description="Materialise the whole graph for one decision date: ingest, metrics, rules, recommendations",
)


@dg.schedule(
    job=main_job,
    cron_schedule="0 6 * * *",
    execution_timezone="UTC",
    name="daily_recommendations",
    description="Every day at 06:00 UTC: decide on the complete days before today",
)
def daily_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    day = context.scheduled_execution_time.date()
    return dg.RunRequest(run_key=f"daily-{day.isoformat()}", partition_key=day.isoformat(), tags={"source": "schedule"})


def inbox_dir() -> Path:
    return Path(os.environ.get(INBOX_ENV) or DEFAULT_INBOX)


def _digest(*paths: Path) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:20]


def csv_run_config(insights: str, audiences: str) -> dict:
    return {
        "resources": {"source": {"config": {"kind": "csv", "insights_path": insights, "audiences_path": audiences}}}
    }


@dg.sensor(
    job=main_job,
    minimum_interval_seconds=60,
    description=f"Starts a run when {INSIGHTS_FILE} and {AUDIENCES_FILE} in the inbox folder change",
    default_status=dg.DefaultSensorStatus.STOPPED,
)
def csv_inbox_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
    inbox = inbox_dir()
    insights, audiences = inbox / INSIGHTS_FILE, inbox / AUDIENCES_FILE
    if not (insights.is_file() and audiences.is_file()):
        return dg.SkipReason(f"waiting for {INSIGHTS_FILE} and {AUDIENCES_FILE} in {inbox}")
    digest = _digest(insights, audiences)
    if digest == context.cursor:
        return dg.SkipReason("inbox files unchanged since the last run")
    spec = SourceSpec(kind="csv", insights_path=str(insights.resolve()), audiences_path=str(audiences.resolve()))
    try:
        # Validate the whole pair here: a bad drop is reported once, not as a failed run.
        day = validate_files(spec) + timedelta(days=1)
    except InputError as err:
        # Bad files are reported once and not retried until they change.
        return dg.SensorResult(skip_reason=dg.SkipReason(f"inbox files rejected: {err}"), cursor=digest)
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=digest,
                partition_key=day.isoformat(),
                run_config=csv_run_config(spec.insights_path, spec.audiences_path),
                tags={"source": "csv_inbox"},
            )
        ],
        cursor=digest,
    )
