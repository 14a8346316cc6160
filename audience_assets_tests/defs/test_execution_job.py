"""The execution layer of the real Definitions: the approvals asset in the daily job, execute_approved
(dry run by default, apply from run config) with its blocking check, record_approvals from the UI's run
config, and the approvals sensor (off unless a setting turns it on)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import dagster as dg
import duckdb
import pytest

from audience_assets.defs.automation import MAIN_JOB
from audience_assets.defs.execution.assets import (
    APPROVALS_JOB,
    EXECUTE_JOB,
    SENSOR_ENV,
    VERIFIED_CHECK,
    approvals_sensor,
)
from audience_assets_tests.execution_helpers import TODAY, environment
from audience_assets_tests.meta_helpers import TOKEN


@pytest.fixture
def env(execution_template, tmp_path):
    template, ids = execution_template
    with environment(template, ids, tmp_path) as e:
        yield e


def _run(job: str, env, **ops_config):
    from audience_assets.definitions import defs

    meta = {"access_token": TOKEN, "graph_url": env.fake.base_url, "backoff_seconds": 0.0, "max_retries": 1}
    op = "action_log" if job == EXECUTE_JOB else "record_approvals_op"
    config = {
        "resources": {"duckdb": {"config": {"database": str(env.db)}}, "meta": {"config": meta}},
        "ops": {op: {"config": ops_config}},
        "loggers": {"console": {"config": {"log_level": "CRITICAL"}}},
    }
    return defs.resolve_job_def(job).execute_in_process(
        run_config=config, instance=dg.DagsterInstance.ephemeral(), raise_on_error=False
    )


def _check(result, name: str):
    found = [c for c in result.get_asset_check_evaluations() if c.asset_check_key.name == name]
    assert len(found) == 1
    return found[0]


def test_daily_job_never_executes_but_fills_approvals():
    from audience_assets.definitions import defs

    keys = {k.to_user_string() for k in defs.resolve_job_def(MAIN_JOB).asset_layer.executable_asset_keys}
    assert "approvals" in keys and "action_log" not in keys
    assert {k.to_user_string() for k in defs.resolve_job_def(EXECUTE_JOB).asset_layer.executable_asset_keys} == {
        "action_log"
    }


def test_pending_rows_for_every_actionable_recommendation(env):
    with duckdb.connect(str(env.db)) as conn:
        recs = conn.execute(
            "SELECT audience_id, action FROM recommendations WHERE decision_date = ? AND action <> 'HOLD'", [TODAY]
        ).fetchall()
        rows = conn.execute(
            "SELECT adset_id, action, status FROM approvals WHERE decision_date = ?", [TODAY]
        ).fetchall()
    assert sorted(recs) == sorted((a, b) for a, b, _ in rows) and {s for *_, s in rows} == {"pending"}
    assert {"SCALE", "PAUSE", "RETEST"} <= {a for _, a in recs}


def test_record_approvals_job_then_execute_approved_applies_with_the_check_passing(env):
    result = _run(APPROVALS_JOB, env, audience_ids=[env.ids.inr_scale, env.ids.inr_pause], by="ui-user")
    assert result.success
    with duckdb.connect(str(env.db)) as conn:
        via = conn.execute(
            "SELECT DISTINCT decided_by, decided_via FROM approvals WHERE status = 'approved'"
        ).fetchall()
    assert via == [("ui-user", "dagster")]

    dry = _run(EXECUTE_JOB, env)  # apply defaults to false
    assert dry.success and _check(dry, VERIFIED_CHECK).passed
    assert all(p["body"].get("execution_options") == ["validate_only"] for p in env.posts())
    applied = _run(EXECUTE_JOB, env, apply=True)
    assert applied.success and _check(applied, VERIFIED_CHECK).passed
    mat = applied.asset_materializations_for_node("action_log")[0]
    assert mat.metadata["outcome/applied"].value == 2 and mat.metadata["mode"].value == "apply"
    assert env.adset(env.ids.inr_scale)["daily_budget"] == "1488000"


def test_record_approvals_job_refuses_unknown_ids(env):
    result = _run(APPROVALS_JOB, env, audience_ids=["999"], by="ui-user")
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "999: no recommendation" in failure.event_specific_data.user_failure_data.description


def _forge(env, **values) -> None:
    """A write in the log that no approval covers (what a bug or a hand-made row would leave)."""
    row = {
        "action_id": uuid.uuid4().hex[:16], "run_id": "forged", "idempotency_key": "k", "approval_id": "none",
        "decision_date": TODAY, "account_id": "act_1001", "adset_id": env.ids.inr_scale, "action": "SCALE",
        "mode": "apply", "currency": "INR", "budget_from_minor": 1_240_000, "budget_to_minor": 1_488_000,
        "outcome": "applied", "started_at": datetime.now(UTC).replace(tzinfo=None), **values,
    }  # fmt: skip
    with duckdb.connect(str(env.db)) as conn:
        cols = ", ".join(row)
        conn.execute(f"INSERT INTO action_log ({cols}) VALUES ({', '.join('?' for _ in row)})", list(row.values()))


@pytest.mark.parametrize(
    ("values", "violation"),
    [
        ({}, "no approved approval"),
        ({"budget_to_minor": 2_000_000}, "budget step above 30%"),
    ],
)
def test_blocking_check_catches_a_write_without_approval(env, values, violation):
    _run(EXECUTE_JOB, env)  # creates the tables
    _forge(env, **values)
    result = _run(EXECUTE_JOB, env)
    check = _check(result, VERIFIED_CHECK)
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert violation in check.metadata["detail"].value
    env.approve(env.ids.jpy_scale)
    refused = _run(EXECUTE_JOB, env, apply=True)  # no more writes on top of a log that breaks the rules
    assert not refused.success and env.posts(validate_only=False) == []
    failure = next(e for e in refused.all_events if e.event_type_value == "STEP_FAILURE")
    assert "no writes until" in failure.event_specific_data.user_failure_data.description


def test_approvals_sensor_is_off_by_default_and_requests_runs_when_on(env, monkeypatch):
    monkeypatch.delenv(SENSOR_ENV, raising=False)
    monkeypatch.setenv("AUDIENCE_ENGINE_DB", str(env.db))
    assert approvals_sensor.default_status == dg.DefaultSensorStatus.STOPPED
    with dg.DagsterInstance.ephemeral() as instance:
        off = approvals_sensor(dg.build_sensor_context(instance=instance))
        assert isinstance(off, dg.SkipReason) and SENSOR_ENV in off.skip_message
        monkeypatch.setenv(SENSOR_ENV, "apply")
        nothing = approvals_sensor(dg.build_sensor_context(instance=instance))
        assert isinstance(nothing, dg.SkipReason)
        env.approve(env.ids.inr_scale)
        found = approvals_sensor(dg.build_sensor_context(instance=instance))
        assert isinstance(found, dg.SensorResult) and len(found.run_requests) == 1
        assert found.run_requests[0].run_config["ops"]["action_log"]["config"]["apply"] is True
        again = approvals_sensor(dg.build_sensor_context(instance=instance, cursor=found.cursor))
        assert isinstance(again, dg.SkipReason)
