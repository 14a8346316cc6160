"""pending / approve / reject / execute / actions / revert as a user runs them: real subprocesses, the
sample warehouse offline, and the fake Graph API through META_* variables (a crash between the API call
and the log, two execution runs at once)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import duckdb
import pytest

from audience_assets_tests.conftest import VENV_BIN
from audience_assets_tests.execution_helpers import environment
from audience_assets_tests.meta_helpers import TOKEN

ENGINE = str(VENV_BIN / "audience-engine")


def engine_env(home: Path, graph_url: str | None = None, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("META_", "ANTHROPIC_", "AUDIENCE_ENGINE_")) and "proxy" not in k.lower()
    }
    env.update(NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost", DAGSTER_HOME=str(home), COLUMNS="200")
    if graph_url:
        env.update(META_ACCESS_TOKEN=TOKEN, META_GRAPH_URL=graph_url)
    env.update(extra)
    return env


def run(env: dict[str, str], *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([ENGINE, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300)


def test_demo_walkthrough_pending_approve_dry_run(sample_warehouse, tmp_path):
    """The README's walkthrough on `make demo`'s warehouse: no Meta token, so the dry run only plans."""
    db = tmp_path / "w.duckdb"
    shutil.copy(sample_warehouse.db, db)
    env = engine_env(tmp_path / "home")
    pending = run(env, "pending", "--db", str(db), cwd=tmp_path)
    assert pending.returncode == 0, pending.stderr
    assert "53 pending, 0 approved" in pending.stdout  # 15 SCALE + 34 PAUSE + 4 RETEST of the sample
    with duckdb.connect(str(db), read_only=True) as conn:
        top = [
            r[0]
            for r in conn.execute(
                "SELECT adset_id FROM approvals WHERE action = 'SCALE' ORDER BY rank LIMIT 3"
            ).fetchall()
        ]
    # The sample's decisions are dated 2026-11-26: past two days old they are refused, with the reason.
    old = run(env, "approve", top[0], "--by", "maria", "--db", str(db), cwd=tmp_path)
    assert old.returncode == 2 and "days old (max_decision_age_days 2)" in old.stderr
    ok = run(
        env,
        "approve",
        *top[:2],
        "--by",
        "maria",
        "--note",
        "clear winners",
        "--max-decision-age-days",
        "3650",
        "--db",
        str(db),
        cwd=tmp_path,
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.count("approved 1202") == 2 and "by maria until" in ok.stdout
    rejected = run(env, "reject", top[2], "--by", "maria", "--db", str(db), cwd=tmp_path)
    assert rejected.returncode == 0 and "rejected" in rejected.stdout
    nothing = run(env, "approve", "--db", str(db), cwd=tmp_path)
    assert nothing.returncode == 2 and "name the audience ids" in nothing.stderr
    dry = run(env, "execute", "--max-decision-age-days", "3650", "--db", str(db), cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert "DRY RUN" in dry.stderr and "2 approved item(s): 2 planned" in dry.stdout
    assert "POST /" in dry.stdout and "daily_budget=" in dry.stdout  # exactly what would be sent
    listed = run(env, "actions", "--json", "--db", str(db), cwd=tmp_path)
    rows = json.loads(listed.stdout)
    assert {r["adset_id"] for r in rows} == set(top[:2]) and {r["outcome"] for r in rows} == {"planned"}
    applied = run(env, "execute", "--apply", "--max-decision-age-days", "3650", "--db", str(db), cwd=tmp_path)
    assert applied.returncode == 2 and "META_ACCESS_TOKEN" in applied.stderr


@pytest.fixture
def fake_env(execution_template, tmp_path):
    template, ids = execution_template
    with environment(template, ids, tmp_path) as e:
        yield e


def test_apply_actions_and_revert_through_the_cli(fake_env, tmp_path):
    env = engine_env(tmp_path / "home", fake_env.fake.base_url)
    db = str(fake_env.db)
    ids = fake_env.ids
    assert run(env, "approve", ids.inr_scale, ids.jpy_scale, "--by", "maria", "--db", db, cwd=tmp_path).returncode == 0
    applied = run(env, "execute", "--apply", "--db", db, cwd=tmp_path)
    assert applied.returncode == 0, applied.stderr + applied.stdout
    assert "2 approved item(s): 2 applied" in applied.stdout and "DRY RUN" not in applied.stderr
    assert fake_env.adset(ids.inr_scale)["daily_budget"] == "1488000"
    assert fake_env.adset(ids.jpy_scale)["daily_budget"] == "13200"
    listed = run(env, "actions", "--db", db, cwd=tmp_path)
    assert listed.returncode == 0 and listed.stdout.count("applied") >= 2 and "₹12,400 -> ₹14,880" in listed.stdout
    action_id = next(
        r
        for r in json.loads(run(env, "actions", "--json", "--db", db, cwd=tmp_path).stdout)
        if r["adset_id"] == ids.jpy_scale
    )["action_id"]
    undone = run(env, "revert", action_id, "--apply", "--db", db, cwd=tmp_path)
    assert undone.returncode == 0, undone.stderr + undone.stdout
    assert fake_env.adset(ids.jpy_scale)["daily_budget"] == "11000"
    assert TOKEN not in applied.stdout + applied.stderr + listed.stdout + undone.stdout


def test_a_crash_after_the_api_call_is_reconciled_by_the_next_run(fake_env, tmp_path):
    env = engine_env(tmp_path / "home", fake_env.fake.base_url)
    db = str(fake_env.db)
    target = fake_env.ids.inr_scale
    assert run(env, "approve", target, "--by", "maria", "--db", db, cwd=tmp_path).returncode == 0
    proc = subprocess.Popen([ENGINE, "execute", "--apply", "--db", db], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip

    def crash(_request):  # the process dies while Meta applies its write: the log never hears back
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        return None

    fake_env.fake.inject(rf"/{target}/?$", crash, method="POST")
    proc.communicate(timeout=300)
    assert proc.returncode == -signal.SIGKILL
    assert fake_env.adset(target)["daily_budget"] == "1488000"  # Meta holds the write
    with duckdb.connect(db, read_only=True) as conn:
        assert conn.execute("SELECT outcome FROM action_log").fetchall() == [("started",)]
    again = run(env, "execute", "--apply", "--db", db, cwd=tmp_path)
    assert again.returncode == 0, again.stderr + again.stdout
    assert "reconciled" in again.stdout
    assert len(fake_env.posts(target, validate_only=False)) == 1
    with duckdb.connect(db, read_only=True) as conn:
        assert conn.execute("SELECT outcome FROM action_log").fetchall() == [("applied",)]


def test_two_execution_runs_at_once_write_each_change_once(fake_env, tmp_path):
    env = engine_env(tmp_path / "home", fake_env.fake.base_url)
    db = str(fake_env.db)
    ids = fake_env.ids
    assert (
        run(
            env, "approve", ids.inr_scale, ids.inr_pause, ids.retest, "--by", "maria", "--db", db, cwd=tmp_path
        ).returncode
        == 0
    )
    procs = [
        subprocess.Popen(
            [ENGINE, "execute", "--apply", "--db", db],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    for adset_id in (ids.inr_scale, ids.inr_pause, ids.retest):
        assert len(fake_env.posts(adset_id, validate_only=False)) == 1
    assert len([a for a in fake_env.inr.adsets if "[retest " in a["name"]]) == 1
    with duckdb.connect(db, read_only=True) as conn:
        counts = dict(conn.execute("SELECT outcome, count(*) FROM action_log GROUP BY ALL").fetchall())
    assert counts == {"applied": 3, "skipped": 3}
    assert sum(o[0].count("already applied") for o in outs) == 3


@pytest.mark.parametrize(
    "command",
    [
        ["pending"],
        ["approve", "1", "--by", "x"],
        ["reject", "1", "--by", "x"],
        ["execute"],
        ["actions"],
        ["revert", "a"],
        ["outcomes"],
        ["replay"],
        ["feedback"],
        ["report", "--out", "r.html"],
        ["notify"],
    ],  # fmt: skip
)
def test_commands_on_a_missing_warehouse_say_so_and_create_nothing(command, tmp_path, capsys, monkeypatch):
    from audience_assets_tests.conftest import cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SLACK_WEBHOOK_URL", "http://127.0.0.1:9/services/x")  # notify gets as far as the warehouse
    monkeypatch.setenv("META_ACCESS_TOKEN", "t")  # revert gets as far as the warehouse
    code, _, err = cli(capsys, *command, "--db", str(tmp_path / "none.duckdb"))
    assert code == 2 and "no warehouse at" in err, err
    assert list(tmp_path.iterdir()) == []
