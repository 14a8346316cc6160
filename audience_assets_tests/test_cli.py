"""The `audience-engine` command line: help, demo, recommend, config, schema and --set."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import tomllib

import pytest

from audience_assets.cli import main
from audience_assets.engine.config import RulesConfig, load_config
from audience_assets.engine.schema import RecommendationFile
from audience_assets.sample.simulator import write_sample_csvs
from audience_assets_tests.conftest import REPO_ROOT, SAMPLE_DECISION_DATE, VENV_BIN, cli, query, scalar

EXE = VENV_BIN / "audience-engine"

# ---- --help (as a real subprocess of the installed entry point) ---------------------------

HELP_OPTIONS = {
    None: [
        "recommend",
        "demo",
        "config",
        "schema",
        "pending",
        "approve",
        "reject",
        "execute",
        "actions",
        "revert",
        "outcomes",
        "replay",
        "feedback",
    ],
    "recommend": [
        "--source",
        "--insights",
        "--audiences",
        "--as-of",
        "--config",
        "--set",
        "--db",
        "--out",
        "--top",
        "--quiet",
    ],
    "demo": ["--as-of", "--config", "--set", "--db", "--out", "--report", "--top", "--quiet", "--history-weeks"],
    "config": ["--config", "--set"],
    "schema": [],
    "pending": ["--date", "--db"],
    "approve": ["--by", "--note", "--all-high", "--date", "--db", "--max-decision-age-days"],
    "reject": ["--by", "--note", "--date", "--db"],
    "execute": ["--apply", "--date", "--db", "--max-decision-age-days"],
    "actions": ["--json", "--date", "--db"],
    "revert": ["--apply", "--db"],
    "outcomes": ["--from", "--to", "--horizon", "--json", "--db"],
    "replay": ["--from", "--to", "--config", "--set", "--json", "--db"],
    "feedback": ["--from", "--to", "--config", "--json", "--db"],
    "report": ["--date", "--out", "--db"],
    "notify": ["--date", "--report", "--db"],
    "slack-app": ["--host", "--port", "--db", "--max-decision-age-days"],
    "mcp": ["--db"],
}


@pytest.mark.parametrize("command", list(HELP_OPTIONS), ids=lambda c: c or "main")
def test_help_exits_zero_and_lists_options(command, tmp_path):
    args = [str(EXE)] + ([command] if command else []) + ["--help"]
    proc = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: audience-engine")
    for option in HELP_OPTIONS[command]:
        assert option in proc.stdout, option
    if command == "schema":
        assert "JSON Schema" in proc.stdout
    # --help must not touch the working directory (no warehouse, no data folder).
    assert list(tmp_path.iterdir()) == []


def test_no_command_is_a_usage_error(capsys):
    code, _, err = cli(capsys)
    assert code == 2
    assert "usage:" in err


# ---- demo and recommend --------------------------------------------------------------


def _run_quietly(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    db, out = root / "demo" / "w.duckdb", root / "demo.json"
    code, stdout, stderr = _run_quietly(
        ["demo", "--history-weeks", "0", "--db", str(db), "--out", str(out), "--top", "200"]
    )
    return code, stdout, stderr, db, out


def _table(stdout: str) -> tuple[str, list[str]]:
    """(header, data rows) of the ranked table: the lines between the dashed rule and the blank line."""
    lines = stdout.splitlines()
    rule = next(i for i, line in enumerate(lines) if line.strip() and set(line) <= {"-", " "})
    rows = []
    for line in lines[rule + 1 :]:
        if not line.strip():
            break
        rows.append(line)
    return lines[rule - 1], rows


def _actions(path) -> dict[str, tuple[str, int, str]]:
    doc = RecommendationFile.model_validate_json(path.read_text())
    return {r.audience_id: (r.action.value, r.scale_percentage, r.confidence.value) for r in doc.recommendations}


def test_demo_writes_json_and_prints_a_ranked_table(demo_run):
    code, stdout, stderr, db, out = demo_run
    assert code == 0, stderr
    doc = RecommendationFile.model_validate_json(out.read_text())
    assert doc.decision_date == SAMPLE_DECISION_DATE
    assert len(doc.recommendations) == 120
    # Only --out is written: no shared staging file beside the warehouse (two runs could race on it).
    assert not (db.parent / "recommendations").exists()

    lines = stdout.splitlines()
    header, rows = _table(stdout)
    assert "action" in header and "audience" in header and "id" in header
    assert len(rows) == 120
    # Ranked: the first row is rank 1 and the order follows the JSON ranks; the id is shown.
    ranks = [int(r.split()[0]) for r in rows]
    assert ranks == list(range(1, 121))
    assert [r.split()[1] for r in rows] == [rec.audience_id for rec in doc.recommendations]
    first = doc.recommendations[0]
    assert first.action.value in rows[0]
    summary = [line for line in lines if line.startswith("Decision date")]
    assert len(summary) == 1
    s = doc.summary
    assert f"Decision date {SAMPLE_DECISION_DATE}" in summary[0]
    assert f"{s['audiences']} audiences" in summary[0]
    assert f"SCALE {s['SCALE']} | HOLD {s['HOLD']} | PAUSE {s['PAUSE']} | RETEST {s['RETEST']}" in summary[0]
    assert doc.config_hash in summary[0]
    # Progress goes to stderr, never into the table on stdout.
    assert "guardrails" in stderr and "passed" in stderr
    assert "guardrails" not in stdout and "Materialising" not in stdout


def test_demo_top_limits_the_table(tmp_path, capsys):
    # Re-print the demo's JSON via a quick run on a tiny CSV instead: --top 3 shows three rows.
    ins, aud = write_sample_csvs(tmp_path / "csv", n_adsets=12, days=20)
    code, stdout, err = cli(
        capsys,
        "recommend",
        "--insights",
        ins,
        "--audiences",
        aud,
        "--db",
        tmp_path / "w" / "w.duckdb",
        "--out",
        tmp_path / "o.json",
        "--top",
        "3",
    )
    assert code == 0, err
    _header, rows = _table(stdout)
    assert len(rows) == 3
    assert "(3 shown" in stdout and "12 audiences" in stdout


def test_recommend_on_csvs_of_the_sample_matches_demo(demo_run, tmp_path, capsys):
    _, _, _, _, demo_out = demo_run
    ins, aud = write_sample_csvs(tmp_path / "csv")  # the same embedded sample, as CSV exports
    out = tmp_path / "rec.json"
    code, _, err = cli(
        capsys,
        "recommend",
        "--source",
        "csv",
        "--insights",
        ins,
        "--audiences",
        aud,
        "--db",
        tmp_path / "w" / "w.duckdb",
        "--out",
        out,
        "--quiet",
    )
    assert code == 0, err
    doc = RecommendationFile.model_validate_json(out.read_text())
    assert doc.decision_date == SAMPLE_DECISION_DATE
    demo, rec = _actions(demo_out), _actions(out)
    assert len(demo) == 120
    assert rec.keys() == demo.keys()
    diff = {k: (demo[k], rec[k]) for k in demo if demo[k] != rec[k]}
    assert not diff


def test_set_override_reaches_the_run(tmp_path, capsys):
    ins, aud = write_sample_csvs(tmp_path / "csv", n_adsets=20, days=30)
    db, out = tmp_path / "w" / "w.duckdb", tmp_path / "o.json"
    code, stdout, err = cli(
        capsys,
        "recommend",
        "--insights",
        ins,
        "--audiences",
        aud,
        "--db",
        db,
        "--out",
        out,
        "--set",
        "min_spend=1e9",
    )
    assert code == 0, err
    doc = json.loads(out.read_text())
    assert doc["summary"]["eligible"] == 0
    assert doc["summary"]["SCALE"] == 0 and doc["summary"]["PAUSE"] == 0
    expected_hash = load_config(None, {"min_spend": 1e9}).config_hash()
    assert doc["config_hash"] == expected_hash != RulesConfig().config_hash()
    assert query(db, "SELECT DISTINCT config_hash FROM decisions")["config_hash"].to_list() == [expected_hash]
    assert scalar(db, "SELECT count(*) FROM eligibility WHERE eligible") == 0
    assert "0 with enough data" in stdout


def test_nested_set_overrides_are_merged(capsys):
    code, out, err = cli(capsys, "config", "--set", "modifiers.BROAD.winner_roas=1.15", "--set", "min_purchases=0")
    assert code == 0, err
    values = tomllib.loads(out)
    assert values["modifiers"]["BROAD"]["winner_roas"] == 1.15
    assert values["modifiers"]["BROAD"]["loser_roas"] == 0.8  # the rest of the BROAD modifier is kept
    assert values["min_purchases"] == 0
    cfg = load_config(None, {"modifiers": {"BROAD": {"winner_roas": 1.15}}, "min_purchases": 0})
    assert RulesConfig.model_validate(values) == cfg


def test_recommend_source_sample(tmp_path, capsys):
    out = tmp_path / "o.json"
    code, _, err = cli(
        capsys,
        "recommend",
        "--source",
        "sample",
        "--db",
        tmp_path / "w" / "w.duckdb",
        "--out",
        out,
        "--quiet",
        "--as-of",
        "2026-11-20",
    )
    assert code == 0, err
    doc = RecommendationFile.model_validate_json(out.read_text())
    assert str(doc.decision_date) == "2026-11-20"
    assert scalar(tmp_path / "w" / "w.duckdb", "SELECT max(date) FROM raw_insights").isoformat() == "2026-11-19"


def test_input_error_found_inside_the_run_is_reported_without_a_traceback(tmp_path, capsys):
    """With --as-of the CSVs are validated inside the run; the user should still see one clean error."""
    ins, aud = write_sample_csvs(tmp_path / "csv", n_adsets=10, days=20)
    text = ins.read_text().splitlines()
    cells = text[1].split(",")
    cells[6] = "-5"  # spend
    text[1] = ",".join(cells)
    ins.write_text("\n".join(text) + "\n")
    code, _, err = cli(
        capsys,
        "recommend",
        "--insights",
        ins,
        "--audiences",
        aud,
        "--db",
        tmp_path / "w" / "w.duckdb",
        "--out",
        tmp_path / "o.json",
        "--quiet",
        "--as-of",
        "2026-11-26",
    )
    assert code == 2
    assert f"error: {ins}: 1 problem(s)" in err
    assert "row 1, column spend" in err
    assert "Stack Trace" not in err and "STEP_FAILURE" not in err, err[:2000]


# ---- config and schema -------------------------------------------------------------


def test_config_prints_toml_that_round_trips(capsys):
    code, out, _ = cli(capsys, "config")
    assert code == 0
    values = tomllib.loads(out)
    assert RulesConfig.model_validate(values) == RulesConfig()
    assert values["min_spend"] == 3000
    assert "modifiers" in values and set(values["modifiers"]) >= {"BROAD", "CUSTOM"}


def test_config_set_shows_the_override(capsys):
    code, out, _ = cli(capsys, "config", "--set", "min_spend=5000")
    assert code == 0
    values = tomllib.loads(out)
    assert values["min_spend"] == 5000
    assert RulesConfig.model_validate(values) == load_config(None, {"min_spend": 5000})


def test_config_file_is_printed_with_overrides(capsys, tmp_path):
    cfg = tmp_path / "rules.toml"
    cfg.write_text("min_spend = 4000\n[modifiers.BROAD]\nwinner_roas = 1.05\n")
    code, out, _ = cli(capsys, "config", "--config", cfg, "--set", "min_purchases=3")
    assert code == 0
    values = tomllib.loads(out)
    assert values["min_spend"] == 4000 and values["min_purchases"] == 3
    assert values["modifiers"]["BROAD"]["winner_roas"] == 1.05
    # Other defaults of the BROAD modifier survive a partial override.
    assert values["modifiers"]["BROAD"]["loser_roas"] == 0.8


def test_config_rejects_a_bad_value(capsys):
    code, out, err = cli(capsys, "config", "--set", "confidence_high=2")
    assert code == 2 and out == ""
    assert "confidence_high" in err


def test_shipped_rules_file_is_valid(capsys):
    rules = REPO_ROOT / "audience_assets" / "rules.toml"
    code, out, err = cli(capsys, "config", "--config", rules)
    assert code == 0, err
    RulesConfig.model_validate(tomllib.loads(out))


def test_schema_prints_the_json_schema_with_the_spec_fields(capsys):
    code, out, _ = cli(capsys, "schema")
    assert code == 0
    schema = json.loads(out)
    assert schema == RecommendationFile.model_json_schema()
    rec = schema["$defs"]["Recommendation"]
    for field in ("audience_id", "audience_name", "action", "scale_percentage", "confidence", "reasons", "risks"):
        assert field in rec["properties"], field
        assert field in rec["required"], field
    actions = schema["$defs"]["Action"]["enum"]
    assert set(actions) == {"SCALE", "HOLD", "PAUSE", "RETEST"}


def test_guardrail_violation_exits_3_without_writing_json(tmp_path, capsys, monkeypatch):
    """A blocked run is a guardrail failure (exit 3), not a generic step failure (exit 1)."""
    import polars as pl

    import audience_assets.engine.pipeline as pipeline

    real = pipeline.apply_guardrails

    def unsafe(frame, cfg):
        out = real(frame, cfg)
        first = pl.int_range(pl.len()) < 2
        return out.with_columns(
            pl.when(first).then(pl.lit("SCALE")).otherwise(pl.col("action")).alias("action"),
            pl.when(first)
            .then(80)
            .otherwise(pl.col("scale_percentage"))
            .cast(out.schema["scale_percentage"])
            .alias("scale_percentage"),
        )

    monkeypatch.setattr(pipeline, "apply_guardrails", unsafe)
    ins, aud = write_sample_csvs(tmp_path / "csv", n_adsets=12, days=20)
    out = tmp_path / "o.json"
    code, stdout, err = cli(
        capsys,
        "recommend",
        "--insights",
        ins,
        "--audiences",
        aud,
        "--db",
        tmp_path / "w" / "w.duckdb",
        "--out",
        out,
        "--quiet",
    )
    assert not out.exists()
    assert stdout == ""
    assert "guardrail" in err
    assert code == 3, err[-600:]
    assert "recommendations were not produced" in err
