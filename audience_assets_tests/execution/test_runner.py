"""Execution against the fake Graph API through the real facebook-business SDK: what is written, what is
refused and why, exactly once, and undo. Every state is read back from the fake's accounts."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import duckdb
import pytest

from audience_assets.execution import ExecutionError
from audience_assets.execution.runner import WRITES_ENV, revert
from audience_assets_tests.execution_helpers import environment
from audience_assets_tests.fakes.graph_server import graph_error, throttle_error
from audience_assets_tests.meta_helpers import TOKEN


@pytest.fixture
def env(execution_template, tmp_path):
    template, ids = execution_template
    with environment(template, ids, tmp_path) as e:
        yield e


def outcome(rows, adset_id):
    found = rows.filter(rows["adset_id"] == adset_id)
    assert found.height == 1, rows.select("adset_id", "outcome").to_dicts()
    return found.row(0, named=True)


def test_scale_writes_absolute_minor_units_in_inr_and_jpy(env):
    env.approve(env.ids.inr_scale, env.ids.jpy_scale)
    rows = env.execute(apply=True)
    inr, jpy = outcome(rows, env.ids.inr_scale), outcome(rows, env.ids.jpy_scale)
    assert (inr["outcome"], jpy["outcome"]) == ("applied", "applied"), (inr["reason"], jpy["reason"])
    # Paise: ₹12,400.00 -> ₹14,880.00 is 1,240,000 -> 1,488,000; yen have no minor unit: ¥11,000 -> ¥13,200.
    assert (inr["budget_from_minor"], inr["budget_to_minor"]) == (1_240_000, 1_488_000)
    assert (jpy["budget_from_minor"], jpy["budget_to_minor"]) == (11_000, 13_200)
    assert [p["body"] for p in env.posts(env.ids.inr_scale)] == [{"daily_budget": "1488000"}]
    assert [p["body"] for p in env.posts(env.ids.jpy_scale)] == [{"daily_budget": "13200"}]
    assert env.adset(env.ids.inr_scale)["daily_budget"] == "1488000"
    assert env.adset(env.ids.jpy_scale)["daily_budget"] == "13200"
    assert json.loads(inr["state_before"])["daily_budget"] == "1240000"
    assert json.loads(inr["state_after"])["daily_budget"] == "1488000"
    assert inr["request_id"] and inr["approved_by"] == "tester" and inr["mode"] == "apply"
    assert TOKEN not in json.dumps(rows.to_dicts(), default=str)


def test_pause_and_retest_duplicate(env):
    original = dict(env.adset(env.ids.retest))
    env.approve(env.ids.inr_pause, env.ids.retest)
    rows = env.execute(apply=True)
    assert outcome(rows, env.ids.inr_pause)["outcome"] == "applied"
    assert env.adset(env.ids.inr_pause)["status"] == "PAUSED"
    retest = outcome(rows, env.ids.retest)
    assert retest["outcome"] == "applied", retest["reason"]
    copy = env.adset(retest["new_adset_id"])
    assert copy["status"] == "PAUSED" and copy["name"].startswith(original["name"]) and "[retest " in copy["name"]
    after = env.adset(env.ids.retest)  # the original is never touched
    assert {k: after.get(k) for k in ("status", "daily_budget", "name")} == {
        k: original.get(k) for k in ("status", "daily_budget", "name")
    }
    assert [p["path"] for p in env.posts(env.ids.retest)] == [f"/v26.0/{env.ids.retest}/copies"]


def test_dry_run_sends_only_validate_only_and_changes_nothing(env):
    before = {i: dict(env.adset(i)) for i in (env.ids.inr_scale, env.ids.inr_pause, env.ids.retest)}
    adsets = len(env.inr.adsets)
    env.approve(env.ids.inr_scale, env.ids.inr_pause, env.ids.retest)
    rows = env.execute(apply=False)
    assert set(rows["outcome"]) == {"validated"} and set(rows["mode"]) == {"dry_run"}
    posts = env.posts()
    assert len(posts) == 3 and all(p["body"]["execution_options"] == ["validate_only"] for p in posts)
    assert {i: dict(env.adset(i)) for i in before} == before and len(env.inr.adsets) == adsets


def test_dry_run_without_a_token_plans_and_contacts_nobody(env):
    env.approve(env.ids.inr_scale)
    rows = env.execute(apply=False, writer=False)
    row = outcome(rows, env.ids.inr_scale)
    assert row["outcome"] == "planned" and "META_ACCESS_TOKEN" in row["reason"]
    assert json.loads(row["request"]) == {"path": env.ids.inr_scale, "params": {"daily_budget": "1488000"}}
    assert env.fake.requests == []
    with pytest.raises(ExecutionError, match="ads_management"):
        env.execute(apply=True, writer=False)


def test_unapproved_and_rejected_items_are_never_written(env):
    env.approve(env.ids.inr_scale)
    env.approve(env.ids.jpy_scale, verdict="rejected")
    rows = env.execute(apply=True)
    assert rows["adset_id"].to_list() == [env.ids.inr_scale]
    assert env.posts(env.ids.jpy_scale) == [] and env.posts(env.ids.inr_pause) == []
    assert len(env.posts()) == 1


def test_expired_approval_is_refused(env):
    env.approve(env.ids.inr_scale)
    later = datetime.now(UTC) + timedelta(hours=25)
    row = outcome(env.execute(apply=True, clock=lambda: later), env.ids.inr_scale)
    assert row["outcome"] == "skipped" and "expired" in row["reason"]
    assert env.posts() == []


def test_old_decision_is_refused(env):
    env.approve(env.ids.inr_scale)
    row = outcome(
        env.execute(apply=True, max_decision_age_days=0, clock=lambda: datetime.now(UTC) + timedelta(days=1)),
        env.ids.inr_scale,
    )
    assert row["outcome"] == "skipped" and "1 days old" in row["reason"]
    assert env.posts() == []


def test_budget_edited_outside_after_the_decision_is_refused(env):
    env.approve(env.ids.inr_scale)
    env.fake.edit_outside(env.ids.inr_scale, daily_budget=1_300_000, actor_name="Priya", application_name="Ads Manager")
    row = outcome(env.execute(apply=True), env.ids.inr_scale)
    assert row["outcome"] == "skipped"
    assert "1,300,000" in row["reason"] and "1,240,000" in row["reason"] and "edited" in row["reason"]
    assert "Priya via Ads Manager" in row["reason"]  # the change also falls inside the cooldown
    assert env.posts() == [] and env.adset(env.ids.inr_scale)["daily_budget"] == "1300000"


def test_cooldown_names_who_changed_the_budget(env):
    env.approve(env.ids.inr_scale)
    ten_hours_ago = datetime.now(UTC) - timedelta(hours=10)
    for budget in (1_300_000, 1_240_000):  # changed and changed back: the budget matches, the cooldown does not
        env.fake.edit_outside(
            env.ids.inr_scale, daily_budget=budget, actor_name="Ravi", application_name="Revealbot", at=ten_hours_ago
        )
    row = outcome(env.execute(apply=True), env.ids.inr_scale)
    assert row["outcome"] == "skipped"
    assert "10.0 h ago by Ravi via Revealbot" in row["reason"] and "cooldown" in row["reason"]
    assert "differs" not in row["reason"]
    assert env.posts() == []


def test_hourly_budget_change_limit(env):
    env.approve(env.ids.inr_scale)
    recent = datetime.now(UTC) - timedelta(minutes=20)
    for budget in (1_250_000, 1_240_000, 1_250_000, 1_240_000):
        env.fake.edit_outside(env.ids.inr_scale, daily_budget=budget, at=recent)
    row = outcome(env.execute(apply=True, budget_changes_per_hour=4), env.ids.inr_scale)
    assert "limit of 4 budget changes per ad set per hour" in row["reason"]
    assert env.posts() == []


def test_status_learning_and_campaign_budget_are_checked_live(env):
    env.approve(env.ids.inr_scale, env.ids.jpy_scale, env.ids.inr_pause)
    env.fake.edit_outside(env.ids.inr_pause, status="PAUSED")
    adset = env.adset(env.ids.inr_scale)
    adset["learning_stage_info"] = {"status": "LEARNING", "last_sig_edit_ts": int(datetime.now(UTC).timestamp())}
    campaign = env.adset(env.ids.jpy_scale)["campaign_id"]
    env.fake.edit_outside(campaign, daily_budget=50_000)
    rows = env.execute(apply=True)
    assert "learning phase" in outcome(rows, env.ids.inr_scale)["reason"]
    assert "campaign budget optimisation" in outcome(rows, env.ids.jpy_scale)["reason"]
    # Paused by someone else: Meta already holds the approved state; nothing is written.
    assert "already holds" in outcome(rows, env.ids.inr_pause)["reason"]
    assert set(rows["outcome"]) == {"skipped"} and env.posts() == []


def test_account_daily_increase_cap_is_rechecked_at_write_time(env):
    env.approve(env.ids.inr_scale)
    with duckdb.connect(str(env.db)) as conn:  # today another run already used the account's room
        conn.execute("UPDATE decisions SET account_increase_cap = 1000 WHERE account_id = 'act_1001'")
    row = outcome(env.execute(apply=True), env.ids.inr_scale)
    assert row["outcome"] == "skipped" and "daily increase cap of 100,000 minor units" in row["reason"]
    assert env.posts() == []


def test_a_write_meta_accepts_without_effect_is_a_failure(env):
    env.approve(env.ids.inr_scale)
    env.fake.writes_without_effect.add(env.ids.inr_scale)
    row = outcome(env.execute(apply=True), env.ids.inr_scale)
    assert row["outcome"] == "failed"
    assert "answered success but does not hold" in row["reason"] and "1240000" in row["reason"]
    assert json.loads(row["response"]) == {"success": True}


def test_a_meta_error_mid_batch_fails_that_item_and_the_rest_go_on(env):
    env.approve(env.ids.inr_scale, env.ids.jpy_scale, env.ids.inr_pause)
    env.fake.inject(rf"/{env.ids.jpy_scale}/?$", graph_error(100, message="(#100) Invalid parameter"), method="POST")
    rows = env.execute(apply=True)
    failed = outcome(rows, env.ids.jpy_scale)
    assert failed["outcome"] == "failed" and failed["error_code"] == 100 and "Invalid parameter" in failed["reason"]
    assert outcome(rows, env.ids.inr_scale)["outcome"] == "applied"
    assert outcome(rows, env.ids.inr_pause)["outcome"] == "applied"
    assert env.adset(env.ids.jpy_scale)["daily_budget"] == "11000"


def test_rerun_writes_nothing_twice(env):
    env.approve(env.ids.inr_scale, env.ids.retest)
    env.execute(apply=True)
    again = env.execute(apply=True)
    assert set(again["outcome"]) == {"skipped"} and all("already applied" in r for r in again["reason"])
    assert len(env.posts(env.ids.inr_scale)) == 1 and len(env.posts(env.ids.retest)) == 1


def test_interrupted_write_is_reconciled_not_repeated(env):
    """The crash window: Meta applied the write, the log still says `started`. The next run reads the live
    state, finds the target, completes the row and sends nothing. (The CLI tests kill a real process.)"""
    env.approve(env.ids.inr_scale, env.ids.retest)
    env.execute(apply=True)
    with duckdb.connect(str(env.db)) as conn:
        conn.execute("UPDATE action_log SET outcome = 'started', reason = NULL, finished_at = NULL")
    rows = env.execute(apply=True)
    for adset_id in (env.ids.inr_scale, env.ids.retest):
        row = outcome(rows, adset_id)
        assert row["outcome"] == "applied" and row["reason"].startswith("reconciled"), row["reason"]
        assert len(env.posts(adset_id, validate_only=False)) == 1
    log = env.log()
    assert log.height == 2 and set(log["outcome"]) == {"applied"}  # the interrupted rows were completed


def test_kill_switch_stops_every_write(env, monkeypatch):
    env.approve(env.ids.inr_scale, env.ids.inr_pause)
    monkeypatch.setenv(WRITES_ENV, "off")
    rows = env.execute(apply=True)
    assert set(rows["outcome"]) == {"skipped"} and all(f"{WRITES_ENV}=off" in r for r in rows["reason"])
    monkeypatch.delenv(WRITES_ENV)
    rows = env.execute(apply=True, writes_enabled=False)
    assert set(rows["outcome"]) == {"skipped"} and all("writes_enabled" in r for r in rows["reason"])
    assert env.posts(validate_only=False) == []
    assert set(env.execute(apply=False)["outcome"]) == {"validated"}  # a dry run writes nothing: still allowed


def test_circuit_breaker_stops_after_repeated_rate_limits(env):
    env.approve(env.ids.inr_scale, env.ids.jpy_scale, env.ids.inr_pause, env.ids.retest)
    env.fake.inject(r"/v26\.0/\d+/?$", *[throttle_error(17, "act_1001", regain_minutes=0)] * 2, method="POST")
    env.fake.inject(r"/copies$", throttle_error(17, "act_1001", regain_minutes=0), method="POST")
    rows = env.execute(apply=True, breaker_errors=2)
    outcomes = rows.sort("started_at").select("adset_id", "outcome", "reason").to_dicts()
    assert [o["outcome"] for o in outcomes] == ["failed", "failed", "skipped", "skipped"], outcomes
    assert all("circuit breaker" in o["reason"] for o in outcomes[2:])
    assert len(env.posts(validate_only=False)) == 2


def test_circuit_breaker_opens_at_once_on_a_revoked_token(env):
    env.approve(env.ids.inr_scale, env.ids.jpy_scale, env.ids.inr_pause)
    env.fake.inject(r"/v26\.0/\d+/?$", graph_error(190, message="Error validating access token"), method="POST")
    rows = env.execute(apply=True)
    outcomes = rows.sort("started_at")["outcome"].to_list()
    assert outcomes == ["failed", "skipped", "skipped"]
    assert "190" in rows.sort("started_at")["reason"][1]


def test_revert_restores_the_previous_budget_once(env):
    env.approve(env.ids.inr_scale, env.ids.inr_pause)
    rows = env.execute(apply=True)
    scale_id = outcome(rows, env.ids.inr_scale)["action_id"]
    with duckdb.connect(str(env.db)) as conn:
        dry = revert(conn, env.writer(), scale_id, apply=False, settings=_settings(), run_id="r0")
        assert dry["outcome"] == "validated" and env.adset(env.ids.inr_scale)["daily_budget"] == "1488000"
        done = revert(conn, env.writer(), scale_id, apply=True, settings=_settings(), run_id="r1")
        assert done["outcome"] == "applied", done["reason"]
        assert env.adset(env.ids.inr_scale)["daily_budget"] == "1240000"
        with pytest.raises(ExecutionError, match="already reverted"):
            revert(conn, env.writer(), scale_id, apply=True, settings=_settings(), run_id="r2")
        pause_id = outcome(rows, env.ids.inr_pause)["action_id"]
        env.fake.edit_outside(env.ids.inr_pause, status="ACTIVE")  # someone already switched it back on
        moved = revert(conn, env.writer(), pause_id, apply=True, settings=_settings(), run_id="r3")
        assert moved["outcome"] == "skipped" and "moved on" in moved["reason"]
    assert env.log().filter(env.log()["action"] == "REVERT_SCALE")["outcome"].to_list() == ["validated", "applied"]


def _settings():
    from audience_assets.engine.execution import ExecutionSettings

    return ExecutionSettings()


def test_an_approval_row_edited_after_it_was_given_is_refused(env):
    env.approve(env.ids.inr_scale)
    with duckdb.connect(str(env.db)) as conn:  # someone raises the target in SQL after the approval
        conn.execute("UPDATE approvals SET budget_to_minor = 9000000 WHERE adset_id = ?", [env.ids.inr_scale])
    row = outcome(env.execute(apply=True), env.ids.inr_scale)
    assert row["outcome"] == "skipped" and "seal" in row["reason"]
    assert env.posts() == []
