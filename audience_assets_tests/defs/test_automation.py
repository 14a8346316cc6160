"""Automation of the real Definitions: the job's daily schedule, the CSV inbox sensor, validation."""

from __future__ import annotations

import os
import subprocess
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import polars as pl
import pytest

from audience_assets.definitions import defs
from audience_assets.defs.automation import INBOX_ENV, csv_inbox_sensor
from audience_assets.sample.simulator import write_sample_csvs
from audience_assets_tests.conftest import JOB, REPO_ROOT, VENV_BIN, failure_messages, query, run_config

# ---- schedule ----------------------------------------------------------------------


def default_resources() -> dict:
    from audience_assets.defs.resources import default_resources as defaults

    return {k: v for k, v in defaults().items() if k in ("source", "meta")}


def schedule_context(when: datetime, instance: dg.DagsterInstance | None = None) -> dg.ScheduleEvaluationContext:
    return dg.build_schedule_context(
        instance=instance or dg.DagsterInstance.local_temp(),
        scheduled_execution_time=when,
        repository_def=defs.get_repository_def(),
        resources=default_resources(),
    )


def test_daily_schedule_requests_each_accounts_day_partition_of_the_main_job():
    schedule = defs.get_schedule_def("daily_recommendations")
    assert schedule.job_name == JOB
    # A persistent instance (as the daemon's): the schedule adds new accounts to it.
    with dg.DagsterInstance.local_temp() as instance:
        ctx = schedule_context(datetime(2026, 11, 26, 6, 0, tzinfo=UTC), instance)
        data = schedule.evaluate_tick(ctx)
        # The sample's one account, added to the accounts partitions when it first appears.
        assert instance.get_dynamic_partitions("accounts") == ["act_1001"]
    assert data.skip_message is None
    assert len(data.run_requests) == 1
    request = data.run_requests[0]
    # The run at 06:00 decides for that day, on the complete days before it.
    assert request.partition_key == "act_1001|2026-11-26"
    assert request.tags.get("dagster/partition/date") == "2026-11-26"
    assert request.tags.get("dagster/partition/account") == "act_1001"
    assert request.job_name in (None, JOB)


def test_daily_schedule_runs_every_day_at_six_utc():
    schedule = defs.get_schedule_def("daily_recommendations")
    assert schedule.cron_schedule == "0 6 * * *"
    assert (schedule.execution_timezone or "UTC") == "UTC"
    ctx = schedule_context(datetime(2026, 10, 1, 6, 0, tzinfo=UTC))
    assert [r.partition_key for r in schedule.evaluate_tick(ctx).run_requests] == ["act_1001|2026-10-01"]


def test_partitions_start_at_the_samples_first_decision_date():
    """Not 2015: the UI lists the decision dates data can have, from the sample's first one."""
    from audience_assets.defs.common import DATES
    from audience_assets.sample.simulator import SAMPLE_DAYS, SAMPLE_END_DATE

    first = DATES.get_first_partition_key()
    assert first == "2026-09-13"
    assert date.fromisoformat(first) == SAMPLE_END_DATE - timedelta(days=SAMPLE_DAYS - 2)


def test_main_job_runs_in_process():
    """A UI launch must not start one process per step (31 of them, ~4 s apart): the pool allows one at a time."""
    job = defs.resolve_job_def("audience_engine_job")
    assert job.executor_def.name == "in_process"


# ---- sensor ------------------------------------------------------------------------


@pytest.fixture
def inbox(tmp_path, monkeypatch):
    path = tmp_path / "inbox"
    path.mkdir()
    monkeypatch.setenv(INBOX_ENV, str(path))
    return path


def evaluate(cursor: str | None = None):
    with dg.DagsterInstance.ephemeral() as instance:
        ctx = dg.build_sensor_context(cursor=cursor, instance=instance)
        return csv_inbox_sensor(ctx)


def as_result(value) -> tuple[list[dg.RunRequest], str | None, str | None]:
    """(run requests, skip message, cursor) of whatever the sensor returned."""
    if isinstance(value, dg.SkipReason):
        return [], value.skip_message, None
    assert isinstance(value, dg.SensorResult), type(value)
    skip = value.skip_reason.skip_message if value.skip_reason else None
    return list(value.run_requests or []), skip, value.cursor


def test_sensor_belongs_to_the_main_job():
    sensor = defs.get_sensor_def("csv_inbox_sensor")
    assert sensor.job_name == JOB


def test_sensor_skips_an_empty_inbox(inbox):
    requests, skip, _ = as_result(evaluate())
    assert requests == []
    assert skip and "insights.csv" in skip and str(inbox) in skip


def test_sensor_skips_when_only_one_file_arrived(inbox):
    ins, aud = write_sample_csvs(inbox, n_adsets=10, days=20)
    aud.unlink()
    requests, skip, _ = as_result(evaluate())
    assert requests == [] and skip


def test_sensor_requests_a_run_for_new_files_then_waits_for_a_change(inbox):
    ins, aud = write_sample_csvs(inbox, n_adsets=10, days=20, end_date=date(2026, 10, 31))
    requests, skip, cursor = as_result(evaluate())
    assert skip is None
    assert len(requests) == 1
    req = requests[0]
    assert req.partition_key.endswith("|2026-11-01")  # the day after the newest row
    assert req.run_key and req.run_key.startswith(cursor)
    source = req.run_config["resources"]["source"]["config"]
    assert source["kind"] == "csv"
    assert source["insights_path"] == str(ins.resolve())
    assert source["audiences_path"] == str(aud.resolve())
    # The run config is valid for the job.
    job = defs.resolve_job_def(JOB)
    from audience_assets.defs.common import DATES, PARTITIONS

    assert job.partitions_def == PARTITIONS
    assert DATES.has_partition_key(req.partition_key.split("|")[1])

    # Same files, with the returned cursor: nothing new.
    requests2, skip2, _ = as_result(evaluate(cursor))
    assert requests2 == []
    assert skip2 and "unchanged" in skip2

    # A changed file (one more day of data): a new run request with a new run key.
    write_sample_csvs(inbox, n_adsets=10, days=21, end_date=date(2026, 11, 1))
    requests3, skip3, cursor3 = as_result(evaluate(cursor))
    assert skip3 is None and len(requests3) == 1
    assert requests3[0].partition_key.endswith("|2026-11-02")
    assert requests3[0].run_key.startswith(cursor3) and cursor3 != cursor


def test_sensor_run_request_runs_the_job(inbox, tmp_path):
    write_sample_csvs(inbox, n_adsets=10, days=20, end_date=date(2026, 10, 31))
    (req,), _, _ = as_result(evaluate())
    cfg = run_config(tmp_path / "w.duckdb")
    cfg["resources"]["source"] = req.run_config["resources"]["source"]
    with dg.DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions("accounts", [req.partition_key.split("|")[0]])
        result = defs.resolve_job_def(JOB).execute_in_process(
            partition_key=req.partition_key, run_config=cfg, instance=instance, raise_on_error=False, tags=req.tags
        )
    assert result.success, failure_messages(result)
    days = query(
        tmp_path / "w.duckdb",
        "SELECT min(date) AS lo, max(date) AS hi, count(DISTINCT adset_id) AS n FROM raw_insights",
    )
    assert days.row(0) == (date(2026, 10, 12), date(2026, 10, 31), 10)
    assert query(tmp_path / "w.duckdb", "SELECT DISTINCT source FROM raw_insights")["source"].to_list() == ["csv"]


def test_sensor_rejects_a_bad_file_pair_with_a_reason(inbox):
    ins, aud = write_sample_csvs(inbox, n_adsets=10, days=20)
    pl.read_csv(ins, infer_schema=False).drop("date_start").write_csv(ins)
    requests, skip, cursor = as_result(evaluate())
    assert requests == []
    assert skip and "date_start" in skip and "insights.csv" in skip
    # Reported once: the same bad files are not re-evaluated until they change.
    assert cursor
    requests2, skip2, _ = as_result(evaluate(cursor))
    assert requests2 == [] and "unchanged" in (skip2 or "")
    # Fixed files start a run.
    write_sample_csvs(inbox, n_adsets=10, days=20)
    requests3, _, _ = as_result(evaluate(cursor))
    assert len(requests3) == 1


def test_sensor_rejects_audiences_missing_an_ad_set(inbox):
    ins, aud = write_sample_csvs(inbox, n_adsets=10, days=20)
    frame = pl.read_csv(aud, infer_schema=False)
    frame[1:].write_csv(aud)
    requests, skip, _ = as_result(evaluate())
    assert requests == []
    assert skip and frame["adset_id"][0] in skip


# ---- dagster definitions validate ----------------------------------------------------


def test_dagster_definitions_validate(tmp_path):
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path)}
    proc = subprocess.run(
        [str(VENV_BIN / "dagster"), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Validation successful" in proc.stdout + proc.stderr
