"""Without ANTHROPIC_API_KEY everything works offline; with a key the CLI gives the same actions.

The CLI runs as a subprocess: `audience_assets.definitions.defs` reads the key and base URL
from the environment when it is imported, so each run must load the definitions fresh.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import polars as pl
import pytest

import audience_assets.integrations.anthropic_client as anthropic_client
from audience_assets.engine.analysis import template_analysis
from audience_assets.sample.simulator import write_sample_csvs
from audience_assets_tests.analysis_helpers import (
    API_KEY,
    D,
    analysis_rows,
    by_id,
    recommendations,
    responder,
    run_job,
    text_hits,
)
from audience_assets_tests.conftest import (
    SMALL,
    VENV_BIN,
    check_evaluations,
    failure_messages,
    materialisation_metadata,
    query,
)
from audience_assets_tests.fakes.anthropic_server import FakeAnthropic

EXE = VENV_BIN / "audience-engine"
ENV_VARS = ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "ANTHROPIC_AUTH_TOKEN")


def test_without_a_key_every_explanation_is_the_template_and_nothing_is_called(tmp_path, monkeypatch):
    from audience_assets.definitions import defs

    if defs.resources["claude"].api_key is not None:
        pytest.skip("the definitions were loaded with ANTHROPIC_API_KEY set")
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)

    def no_client(*args, **kwargs):
        raise AssertionError("an Anthropic client was created without an API key")

    monkeypatch.setattr(anthropic_client.anthropic, "Anthropic", no_client)
    db = tmp_path / "w.duckdb"
    result = run_job(db, claude=None)  # the `claude` resource exactly as the definitions build it
    assert result.success, failure_messages(result)

    rows = analysis_rows(db)
    assert rows.height == 40
    assert set(rows["explanation_source"]) == {"template"}
    assert not rows["analysed"].any()
    assert rows["faithful"].null_count() == rows.height
    assert all("ANTHROPIC_API_KEY" in r for r in rows["fallback_reason"])
    assert rows["model"].null_count() == rows.height and rows["ref"].null_count() == rows.height
    assert not rows["needs_review"].any()
    decisions = query(db, "SELECT * FROM decisions WHERE decision_date = ?", [D])
    template = by_id(template_analysis(decisions))
    for r in rows.iter_rows(named=True):
        assert r["explanation"] == template[r["adset_id"]]["explanation"]
        assert r["alternatives"] == template[r["adset_id"]]["alternatives"]
    calls = query(db, "SELECT count(*) AS n FROM llm_calls WHERE run_id = ?", [result.run_id])["n"].item()
    assert calls == 0
    meta = materialisation_metadata(result, "analysis")
    assert meta["llm_enabled"] is False and meta["model"] == "none (template)"
    assert meta["llm_calls"] == 0 and meta["audiences_analysed"] == 0
    check = check_evaluations(result)[("analysis", "faithfulness")]
    assert check.passed and check.metadata["analysed"].value == 0
    recs = recommendations(db)
    assert set(recs["explanation_source"]) == {"template"}
    assert check_evaluations(result)[("recommendations", "guardrails")].passed


# --------------------------------------------------------------------------- the CLI, with and without a key


def _cli(args: list[str], cwd: Path, env_extra: dict[str, str]) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    env.update(env_extra)
    proc = subprocess.run([str(EXE), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _by_audience(path: Path) -> dict[str, dict]:
    return {r["audience_id"]: r for r in json.loads(path.read_text())["recommendations"]}


@pytest.fixture(scope="module")
def csv_pair(tmp_path_factory) -> tuple[Path, Path]:
    return write_sample_csvs(tmp_path_factory.mktemp("cli_csv"), n_adsets=SMALL)


@pytest.mark.parametrize("command", ["demo", "recommend"])
def test_cli_with_a_key_and_without_gives_the_same_actions(tmp_path, csv_pair, command):
    ins, aud = csv_pair
    args = (
        ["demo", "--history-weeks", "0"]
        if command == "demo"
        else ["recommend", "--insights", str(ins), "--audiences", str(aud)]
    )
    outputs = {}
    with FakeAnthropic(responder()) as fake:
        for label, extra in (
            ("claude", {"ANTHROPIC_API_KEY": API_KEY, "ANTHROPIC_BASE_URL": fake.base_url}),
            ("template", {}),
        ):
            run_dir = tmp_path / label
            run_dir.mkdir()
            _cli([*args, "--db", "w.duckdb", "--out", "out.json", "--quiet"], run_dir, extra)
            outputs[label] = _by_audience(run_dir / "out.json")
        posts = [r for r in fake.requests if r["path"] == "/v1/messages"]
    claude, template = outputs["claude"], outputs["template"]
    assert posts, "the run with a key never called the (fake) API"
    assert set(fake.api_keys) == {API_KEY}
    assert set(claude) == set(template) and claude
    for audience, rec in template.items():
        other = claude[audience]
        assert (other["action"], other["scale_percentage"], other["new_daily_budget"]) == (
            rec["action"],
            rec["scale_percentage"],
            rec["new_daily_budget"],
        ), audience
        assert rec["explanation_source"] == "template"
    sources = {r["explanation_source"] for r in claude.values()}
    assert sources == {"claude", "template"}  # analysed audiences vs those not selected
    db = tmp_path / "claude" / "w.duckdb"
    analysed = analysis_rows(db).filter(pl.col("analysed"))
    assert set(analysed["explanation_source"]) == {"claude"}
    assert {k for k, r in claude.items() if r["explanation_source"] == "claude"} == set(analysed["adset_id"])
    assert text_hits(db, API_KEY) == [] and text_hits(tmp_path / "template" / "w.duckdb", API_KEY) == []
    assert query(tmp_path / "template" / "w.duckdb", "SELECT count(*) AS n FROM llm_calls")["n"].item() == 0
