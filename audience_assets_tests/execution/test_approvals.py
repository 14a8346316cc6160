"""The approvals table: pending rows follow the recommendations, an approval binds its exact plan, a
recomputed decision supersedes it, and bad requests are refused whole with the reason."""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb
import pytest

from audience_assets.engine.execution import ExecutionSettings
from audience_assets.execution import ApprovalError
from audience_assets.execution.approvals import current, decide, high_confidence_pending, sync_pending
from audience_assets_tests.execution_helpers import TODAY, environment
from audience_assets_tests.meta_helpers import run_meta


@pytest.fixture
def env(execution_template, tmp_path):
    template, ids = execution_template
    with environment(template, ids, tmp_path) as e:
        yield e


def statuses(db) -> dict[tuple[str, str], int]:
    with duckdb.connect(str(db)) as conn:
        rows = conn.execute("SELECT adset_id, status, count(*) FROM approvals GROUP BY ALL").fetchall()
    return {(a, s): n for a, s, n in rows}


def test_rematerialising_the_same_decisions_keeps_every_approval(env):
    env.approve(env.ids.inr_scale)
    before = statuses(env.db)
    assert run_meta(env.db, env.fake, TODAY).success
    assert statuses(env.db) == before


def test_a_recomputed_plan_supersedes_the_approval_and_waits_again(env):
    env.approve(env.ids.inr_scale, env.ids.jpy_scale)
    env.execute(apply=True, writer=True)  # the JPY one is applied below; both were applied here
    with duckdb.connect(str(env.db)) as conn:
        conn.execute("DELETE FROM action_log WHERE adset_id = ?", [env.ids.inr_scale])  # as if never executed
        conn.execute(
            "UPDATE recommendations SET new_daily_budget = new_daily_budget - 100 WHERE audience_id IN (?, ?)",
            [env.ids.inr_scale, env.ids.jpy_scale],
        )
        counts = sync_pending(conn, TODAY, datetime.now(UTC))
    after = statuses(env.db)
    assert after[(env.ids.inr_scale, "superseded")] == 1 and after[(env.ids.inr_scale, "pending")] == 1
    # An executed approval stays what it was: the log refers to it.
    assert after[(env.ids.jpy_scale, "approved")] == 1 and after[(env.ids.jpy_scale, "pending")] == 1
    assert counts["new"] == 2 and counts["superseded"] == 1


def test_decide_refuses_the_whole_request_naming_each_problem(env):
    with duckdb.connect(str(env.db)) as conn:
        hold = conn.execute(
            "SELECT audience_id FROM recommendations WHERE decision_date = ? AND action = 'HOLD' LIMIT 1", [TODAY]
        ).fetchone()[0]
        with pytest.raises(ApprovalError) as err:
            decide(conn, TODAY, [env.ids.inr_scale, "999", hold], "approved", by="maria", note=None,
                   now=datetime.now(UTC), settings=ExecutionSettings())  # fmt: skip
        assert "999: no recommendation" in str(err.value) and f"{hold}: the decision of {TODAY} is HOLD" in str(
            err.value
        )
        assert current(conn, TODAY).filter(current(conn, TODAY)["status"] == "approved").height == 0
        with pytest.raises(ApprovalError, match="--by"):
            decide(conn, TODAY, [env.ids.inr_scale], "approved", by="  ", note=None, now=datetime.now(UTC),
                   settings=ExecutionSettings())  # fmt: skip


def test_an_applied_item_cannot_be_decided_again(env):
    env.approve(env.ids.inr_scale)
    env.execute(apply=True)
    with pytest.raises(ApprovalError, match="already applied"):
        env.approve(env.ids.inr_scale, verdict="rejected")


def test_approval_expiry_and_all_high(env):
    now = datetime(TODAY.year, TODAY.month, TODAY.day, 9, tzinfo=UTC)
    row = env.approve(env.ids.inr_scale, now=now).row(0, named=True)
    assert (row["expires_at"] - row["decided_at"]).total_seconds() == 24 * 3600
    with duckdb.connect(str(env.db)) as conn:
        high = high_confidence_pending(conn, TODAY)
        confidences = dict(
            conn.execute("SELECT adset_id, confidence FROM approvals WHERE status = 'pending'").fetchall()
        )
    assert high and env.ids.inr_scale not in high  # already approved
    assert all(confidences[a] == "HIGH" for a in high)
    assert set(high) == {a for a, c in confidences.items() if c == "HIGH"}
