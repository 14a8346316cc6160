"""`audience-engine demo` with its history, then `outcomes` and `replay`, as a user runs them (real
subprocesses); the outcomes sensor."""

from __future__ import annotations

import json
import os
import subprocess

import dagster as dg
import pytest

from audience_assets_tests.conftest import VENV_BIN

ENGINE = str(VENV_BIN / "audience-engine")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("demo_history")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUDIENCE_ENGINE_", "ANTHROPIC_", "META_"))}
    env.update(DAGSTER_HOME=str(tmp / "home"), COLUMNS="160")
    db = tmp / "w.duckdb"
    proc = subprocess.run([ENGINE, "demo", "--history-weeks", "2", "--db", str(db), "--out", str(tmp / "r.json"), "--top", "0"],
                          env=env, cwd=tmp, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("Deciding the history:") == 2

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [ENGINE, *args, "--db", str(db)], env=env, cwd=tmp, capture_output=True, text=True, timeout=300
        )

    return type("Demo", (), {"tmp": tmp, "db": db, "run": staticmethod(run), "stderr": proc.stderr})


def test_outcomes_prints_the_scorecard_and_writes_json(demo):
    proc = demo.run("outcomes", "--horizon", "7", "--json", str(demo.tmp / "card.json"))
    assert proc.returncode == 0, proc.stderr
    assert "rule branch" in proc.stdout and "LOSER+ENOUGH_DATA" in proc.stdout and "₹" in proc.stdout
    doc = json.loads((demo.tmp / "card.json").read_text())
    assert {r["horizon_days"] for r in doc["scorecard"]} == {7}
    assert sum(r["decisions"] for r in doc["scorecard"]) == sum(doc["labels"].values())
    # Two weekly decision dates before the demo's: both judged over 7 days, the demo's own not yet.
    assert (doc["from"], doc["to"]) == ("2026-11-12", "2026-11-19")


def test_replay_prints_both_scorecards_and_reproduces_history(demo):
    same = demo.run("replay", "--json", str(demo.tmp / "same.json"))
    assert same.returncode == 0, same.stderr
    assert "Replayed 3 decision dates" in same.stdout and "0 decisions changed." in same.stdout
    assert "labelled'" in same.stdout  # the candidate's columns beside the stored ones
    doc = json.loads((demo.tmp / "same.json").read_text())
    assert doc["changed_decisions"] == [] and doc["baseline"] == doc["candidate"]
    strict = demo.run("replay", "--set", "min_confidence_to_act=HIGH", "--json", str(demo.tmp / "strict.json"))
    assert strict.returncode == 0, strict.stderr
    changed = json.loads((demo.tmp / "strict.json").read_text())["changed_decisions"]
    assert changed and {c["candidate_action"] for c in changed} == {"HOLD"}
    assert {c["stored_action"] for c in changed} <= {"SCALE", "RETEST"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "decision_window_days=14"], "cannot change decision_window_days"),
        (["--set", "min_spend=-5"], "min_spend"),
        (["--from", "2030-01-01"], "no stored decisions between 2030-01-01"),
    ],
)
def test_replay_refuses_what_it_cannot_answer(demo, args, message):
    proc = demo.run("replay", *args)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr


def test_outcomes_sensor_requests_a_judgement_when_new_days_land(demo, monkeypatch):
    from audience_assets.defs.feedback.assets import OUTCOMES_JOB, outcomes_sensor

    monkeypatch.setenv("AUDIENCE_ENGINE_DB", str(demo.db))
    with dg.DagsterInstance.ephemeral() as instance:
        first = outcomes_sensor(dg.build_sensor_context(instance=instance))
        assert isinstance(first, dg.SensorResult) and first.run_requests[0].partition_key == "act_1001|2026-11-26"
        again = outcomes_sensor(dg.build_sensor_context(instance=instance, cursor=first.cursor))
        assert isinstance(again, dg.SkipReason)
    assert outcomes_sensor.job_name == OUTCOMES_JOB


def test_the_readme_analyst_queries_run(demo):
    import re

    import duckdb

    from audience_assets_tests.conftest import REPO_ROOT

    text = (REPO_ROOT / "README.md").read_text()
    section = text.split("### Questions analysts ask", 1)[1].split("\n## ", 1)[0]
    queries = re.findall(r"```sql\n(.*?)```", section, re.S)
    assert len(queries) >= 5
    with duckdb.connect(str(demo.db), read_only=True) as conn:
        for query in queries:
            conn.execute(query).fetchall()


def test_feedback_offline_proposes_changes_each_with_a_replay_that_runs(demo):
    import shlex

    proc = demo.run("feedback", "--json", str(demo.tmp / "feedback.json"))
    assert proc.returncode == 0, proc.stderr
    assert "by template" in proc.stdout and "Nothing was applied" in proc.stdout
    doc = json.loads((demo.tmp / "feedback.json").read_text())
    assert doc["source"] == "template" and doc["prompt"] == "feedback_analysis/v1"
    assert doc["patterns"] and doc["proposals"]
    for p in doc["proposals"]:
        assert f"--set {p['parameter']}={p['proposed_value']}" in p["replay"]
    args = shlex.split(doc["proposals"][0]["replay"])[1:]  # without the program name
    replayed = demo.run(*args)
    assert replayed.returncode == 0, replayed.stderr
    assert "decisions changed." in replayed.stdout
