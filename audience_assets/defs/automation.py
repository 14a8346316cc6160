"""The main job, its daily schedule, and the sensor that notices new CSV exports in an inbox. Each
starts one run per account-day, adding accounts that first appear to the `accounts` partitions."""

import hashlib
import os
from datetime import timedelta
from pathlib import Path

import dagster as dg

from audience_assets.defs.common import ACCOUNTS, partition_key
from audience_assets.defs.resources import MetaResource, SourceResource
from audience_assets.sources import InputError, SourceSpec
from audience_assets.sources.accounts import checked_accounts, source_accounts
from audience_assets.sources.files import checked_files

MAIN_JOB = "audience_engine_job"
INBOX_ENV = "AUDIENCE_ENGINE_INBOX"
DEFAULT_INBOX = "data/inbox"
INSIGHTS_FILE = "insights.csv"
AUDIENCES_FILE = "audiences.csv"

# In-process within a run: its steps follow one another (each needs the one before). Runs of
# different account-days are the parallelism: on a lake several run at once (the run queue's
# concurrency, deploy/), on a DuckDB file they take turns on its one writer.
main_job = dg.define_asset_job(
    MAIN_JOB,
    # Execution is its own job (execute_approved): the daily run never writes to an ad account.
    selection=dg.AssetSelection.all() - dg.AssetSelection.assets("action_log"),
    executor_def=dg.in_process_executor,
    description="Materialise the whole graph for one account-day: ingest, metrics, rules, recommendations",
)


def account_requests(
    known: set[str], accounts: list[str], day: str, run_key: str, **kw
) -> tuple[list[dg.AddDynamicPartitionsRequest], list[dg.RunRequest]]:
    """One run request per account for a decision date, and the request adding accounts not yet known."""
    new = [a for a in accounts if a not in known]
    adds = [ACCOUNTS.build_add_request(new)] if new else []
    runs = [dg.RunRequest(run_key=f"{run_key}-{a}", partition_key=partition_key(day, a), **kw) for a in accounts]
    return adds, runs


@dg.schedule(
    job=main_job,
    cron_schedule="0 6 * * *",
    execution_timezone="UTC",
    name="daily_recommendations",
    description="Every day at 06:00 UTC: decide on the complete days before today",
)
def daily_schedule(
    context: dg.ScheduleEvaluationContext, source: SourceResource, meta: MetaResource
) -> list[dg.RunRequest] | dg.SkipReason:
    day = context.scheduled_execution_time.date().isoformat()
    try:
        accounts = source_accounts(source.spec(), meta.account_list())
    except InputError as err:
        return dg.SkipReason(f"no accounts to decide: {err}")
    known = set(context.instance.get_dynamic_partitions(ACCOUNTS.name))
    adds, runs = account_requests(known, accounts, day, f"daily-{day}", tags={"source": "schedule"})
    for add in adds:  # a schedule cannot return partition requests: it adds them itself
        context.instance.add_dynamic_partitions(ACCOUNTS.name, list(add.partition_keys))
    return runs


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
        newest, accounts = checked_files(spec)
        accounts = checked_accounts(accounts, str(insights))
    except InputError as err:
        # Bad files are reported once and not retried until they change.
        return dg.SensorResult(skip_reason=dg.SkipReason(f"inbox files rejected: {err}"), cursor=digest)
    day = (newest + timedelta(days=1)).isoformat()
    adds, runs = account_requests(
        set(context.instance.get_dynamic_partitions(ACCOUNTS.name)), accounts, day, digest,
        run_config=csv_run_config(spec.insights_path, spec.audiences_path), tags={"source": "csv_inbox"},
    )  # fmt: skip
    return dg.SensorResult(run_requests=runs, dynamic_partitions_requests=adds, cursor=digest)
