"""Safety defects found by attacking the CLI: racing runs, terminal escapes, paths that are not
what they claim, configuration outside the spec's band, and runs the Dagster UI could not see."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from audience_assets.engine.config import RulesConfig
from audience_assets.engine.guardrails import verify_guardrails
from audience_assets.engine.schema import RecommendationFile
from audience_assets.sample.simulator import write_sample_csvs
from audience_assets.terminal import Column, render_table, safe, width_of
from audience_assets.warehouse import lock_path, warehouse_lock
from audience_assets_tests.conftest import REPO_ROOT, SAMPLE_DECISION_DATE, cli, query

ESC = "\x1b"


def _spawn(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "audience_assets.cli", *map(str, args)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "160"},
    )


def _own_input(tmp_path: Path, name: str, n_adsets: int, seed: int) -> tuple[Path, Path, set[str]]:
    ins, aud = write_sample_csvs(tmp_path / name, n_adsets=n_adsets, days=21, seed=seed)
    return ins, aud, set(pl.read_csv(ins, infer_schema=False)["adset_id"].unique())


def _wait_for_lock(db: Path, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if lock_path(str(db)).exists() and lock_path(str(db)).read_text().strip():
            return
        time.sleep(0.05)
    raise AssertionError("the first run never took the warehouse lock")


@pytest.mark.parametrize("shared_db", [True, False], ids=["same_db", "two_dbs_one_folder"])
def test_two_runs_at_once_each_write_exactly_their_own_decisions(tmp_path, shared_db):
    """Two recommend runs started together on one folder: each --out holds its own input's audiences
    and its own rules' hash, never the other run's (they once shared a staging file)."""
    a_ins, a_aud, a_ids = _own_input(tmp_path, "a", n_adsets=14, seed=3)
    b_ins, b_aud, b_ids = _own_input(tmp_path, "b", n_adsets=23, seed=4)
    assert a_ids != b_ids
    folder = tmp_path / "wh"
    db_a = folder / "w.duckdb"
    db_b = db_a if shared_db else folder / "other.duckdb"
    out_a, out_b = tmp_path / "a.json", tmp_path / "b.json"
    first = _spawn(
        "recommend", "--insights", a_ins, "--audiences", a_aud, "--db", db_a, "--out", out_a, "--set", "min_spend=2500"
    )
    if shared_db:
        _wait_for_lock(db_a)
    second = _spawn(
        "recommend", "--insights", b_ins, "--audiences", b_aud, "--db", db_b, "--out", out_b, "--set", "min_spend=3500"
    )
    results = [p.communicate(timeout=600) for p in (first, second)]
    assert first.returncode == 0, results[0][1][-2000:]
    assert second.returncode == 0, results[1][1][-2000:]
    for out, ids, min_spend in ((out_a, a_ids, 2500), (out_b, b_ids, 3500)):
        doc = RecommendationFile.model_validate_json(out.read_text())
        assert {r.audience_id for r in doc.recommendations} == ids
        assert doc.summary["audiences"] == len(ids)
        assert doc.config_hash == RulesConfig(min_spend=min_spend).config_hash()
    if shared_db:
        assert "waiting for another run on" in results[1][1]
    # Nothing but --out is written: no shared recommendations/ folder beside the warehouse.
    assert not (folder / "recommendations").exists()


def test_a_run_that_cannot_get_the_warehouse_fails_clearly(tmp_path, capsys):
    ins, aud, _ids = _own_input(tmp_path, "a", n_adsets=8, seed=1)
    db = tmp_path / "w.duckdb"
    with warehouse_lock(str(db), "a test holding the lock"):
        proc = _spawn(
            "recommend",
            "--insights",
            ins,
            "--audiences",
            aud,
            "--db",
            db,
            "--out",
            tmp_path / "o.json",
            "--lock-timeout",
            "1",
        )
        _out, err = proc.communicate(timeout=300)
    assert proc.returncode == 1, err
    assert "waiting for another run on" in err
    assert "another run holds the warehouse" in err and "a test holding the lock" in err
    assert not (tmp_path / "o.json").exists()


# ---- terminal escapes ---------------------------------------------------------------------

HOSTILE_NAMES = [
    f"Clear {ESC}[2J{ESC}[31mred",
    "Bidi \u202egnp.exe\u202c name",
    "C1 \x9b31m and DEL \x7f",
    "Line\nbreak | and pipe\r\nagain",
]


def test_names_cannot_drive_the_terminal(tmp_path, capsys):
    ins, aud = write_sample_csvs(tmp_path / "csv", n_adsets=12, days=21)
    frame = pl.read_csv(ins, infer_schema=False)
    ids = frame["adset_id"].unique(maintain_order=True).to_list()[: len(HOSTILE_NAMES)]
    mapping = dict(zip(ids, HOSTILE_NAMES, strict=True))
    frame = frame.with_columns(
        pl.col("adset_id").replace_strict(mapping, default=pl.col("adset_name")).alias("adset_name")
    )
    frame = frame.with_columns(pl.lit(f"Camp {ESC}]0;owned{chr(7)}").alias("campaign_name"))
    frame.write_csv(ins)
    db, out = tmp_path / "w.duckdb", tmp_path / "o.json"
    code, stdout, err = cli(
        capsys, "recommend", "--insights", ins, "--audiences", aud, "--db", db, "--out", out, "--top", "50"
    )
    assert code == 0, err
    for text in (stdout, err):
        for bad in (ESC, "\u202e", "\u202c", "\x9b", "\x7f", "\r", "\x07"):
            assert bad not in text, repr(bad)
    assert "\\x1b[2J" in stdout or "\\x1b[" in stdout  # shown, escaped
    lines = stdout.splitlines()
    rule = next(i for i, line in enumerate(lines) if line.strip() and set(line) <= {"-", " "})
    assert len(lines[rule + 1 : lines.index("", rule)]) == 12  # one line per audience
    # The warehouse and the JSON keep the names exactly as written.
    stored = query(db, "SELECT audience_id, audience_name FROM recommendations")
    assert {
        r["audience_id"]: r["audience_name"] for r in stored.iter_rows(named=True) if r["audience_id"] in mapping
    } == mapping


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (f"a{ESC}[2Jb", "a\\x1b[2Jb"),
        ("x\u202ey", "x\\u202ey"),
        ("tab\there", "tab here"),
        ("nul\x00", "nul\\x00"),
        ("zero\u200bwidth", "zero\\u200bwidth"),
        ("plain ₹ 日本", "plain ₹ 日本"),
    ],
)
def test_safe_escapes_every_control_and_bidi_character(text, shown):
    assert safe(text, inline=True) == shown


def test_table_fits_the_width_and_marks_every_cut():
    cols = [
        Column("#", "#", right=True),
        Column("id", "id"),
        Column("name", "name", flex=1, min_width=10, cut_middle=True),
    ]
    rows = [{"#": 1, "id": "120215000000001", "name": "Prospecting | Interest Yoga & Fitness | IN Tier-2 25-44"}]
    text = render_table(rows, cols, 40)
    assert all(width_of(line) <= 40 for line in text.splitlines())
    assert "…" in text and "120215000000001" in text and text.rstrip().endswith("25-44")


# ---- paths that are not what they claim ---------------------------------------------------


def test_out_in_an_unusable_place_fails_before_the_warehouse_is_touched(tmp_path, capsys):
    ins, aud, _ids = _own_input(tmp_path, "a", n_adsets=8, seed=1)
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    db = tmp_path / "wh" / "w.duckdb"
    for out, says in ((blocker / "recs.json", "is a file, not a folder"), (tmp_path, "is a directory")):
        code, _, err = cli(capsys, "recommend", "--insights", ins, "--audiences", aud, "--db", db, "--out", out)
        assert code == 2 and says in err, err
        assert "Traceback" not in err
    assert not db.exists()


def test_db_that_is_a_directory_or_another_kind_of_file_is_named(tmp_path, capsys):
    ins, aud, _ids = _own_input(tmp_path, "a", n_adsets=8, seed=1)
    text_file = tmp_path / "notes.duckdb"
    text_file.write_text("these are my notes, not a database\n" * 10)
    cases = ((tmp_path, "is a directory: expected a DuckDB database file"), (text_file, "is not a DuckDB database"))
    for db, says in cases:
        code, _, err = cli(
            capsys, "recommend", "--insights", ins, "--audiences", aud, "--db", db, "--out", tmp_path / "o.json"
        )
        assert code == 2, err
        assert says in err and str(db) in err
        assert "DagsterExecutionStepExecutionError" not in err and "Traceback" not in err
    assert text_file.read_text().startswith("these are my notes")


# ---- configuration cannot leave the spec's band ------------------------------------------


@pytest.mark.parametrize(
    ("sets", "says"),
    [
        (("scale_step_pct=100", "max_scale_pct=100"), "scale_step_pct: 100 is outside the spec's band 20-30"),
        (("cooldown_hours=0",), "cooldown_hours: 0 is outside the spec's band 48-72"),
        (("modifiers.LOOKALIKE_1PCT.cooldown_hours=12",), "modifiers.LOOKALIKE_1PCT.cooldown_hours: 12 is outside"),
        (("modifiers.CUSTOM.scale_step_pct=50",), "modifiers.CUSTOM.scale_step_pct: 50 is outside the spec's band"),
    ],
)
def test_settings_outside_the_spec_band_are_configuration_errors(tmp_path, capsys, sets, says):
    args = [item for s in sets for item in ("--set", s)]
    code, _, err = cli(
        capsys, "demo", "--history-weeks", "0", "--db", tmp_path / "w.duckdb", "--out", tmp_path / "o.json", *args
    )
    assert code == 2, err
    assert says in err
    assert not (tmp_path / "w.duckdb").exists()


def test_the_verifier_holds_the_spec_band_even_when_the_configuration_does_not(sample_warehouse):
    """A configuration that slipped past validation (model_copy skips validation) still cannot pass a 35 % step
    or a scale 30 h after a budget change: the blocking check re-applies the spec's own band (48-72 h)."""
    rows = query(sample_warehouse.db, "SELECT * FROM decisions WHERE decision_date = ?", [sample_warehouse.day])
    scaled = rows.filter(pl.col("action") == "SCALE").head(2)
    assert scaled.height == 2
    loose = RulesConfig().model_copy(update={"max_scale_pct": 40.0, "scale_step_pct": 35.0, "cooldown_hours": 0.0})
    bad = pl.concat(
        [
            scaled.head(1).with_columns(
                pl.lit(35, dtype=pl.Int64).alias("scale_percentage"),
                (pl.col("current_daily_budget") * 1.35).alias("new_daily_budget"),
            ),
            scaled.tail(1).with_columns(pl.lit(30.0).alias("hours_since_budget_change")),
        ],
        how="vertical_relaxed",
    )
    found = verify_guardrails(bad, loose)
    assert set(found["rule"]) >= {"spec_scale_band", "cooldown"}


# ---- the first hour in the Dagster UI -----------------------------------------------------


def test_cli_runs_are_recorded_in_the_shared_dagster_instance(tmp_path, capsys, monkeypatch):
    """`make demo` then `make dev` must show the demo's materialisations and passed checks."""
    home = tmp_path / "dagster_home"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    code, _, err = cli(
        capsys, "demo", "--history-weeks", "0", "--db", tmp_path / "w.duckdb", "--out", tmp_path / "o.json", "--quiet"
    )
    assert code == 0, err
    assert (home / "dagster.yaml").is_file()
    from audience_assets.definitions import defs

    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs()
        assert len(runs) == 1 and runs[0].status == dg.DagsterRunStatus.SUCCESS
        assert runs[0].tags.get("dagster/partition/date") == SAMPLE_DECISION_DATE.isoformat()
        assert runs[0].tags.get("dagster/partition/account") == "act_1001"
        keys = set(defs.resolve_job_def("audience_engine_job").asset_layer.executable_asset_keys)
        assert {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys() - keys} == {"action_log"}
        for key in keys:
            event = instance.get_latest_materialization_event(key)
            assert event is not None, key.to_user_string()
            schema = event.asset_materialization.metadata.get("dagster/column_schema")
            assert schema is not None and schema.value.columns, key.to_user_string()
        records = instance.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(dg.AssetKey("recommendations"), "guardrails"), limit=1
        )
        assert records and records[0].status.value == "SUCCEEDED"


def test_the_instance_limits_the_duckdb_pool_to_one_run(tmp_path, monkeypatch):
    from audience_assets.instance import ensure_home

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "h"))
    home = ensure_home()
    with dg.DagsterInstance.from_config(str(home)) as instance:
        config = instance.get_concurrency_config()
        assert config.pool_config.default_pool_limit == 1
        assert config.pool_config.pool_granularity.value == "run"


def test_json_written_from_the_run_rows_matches_the_warehouse(tmp_path, capsys):
    code, _, err = cli(
        capsys, "demo", "--history-weeks", "0", "--db", tmp_path / "w.duckdb", "--out", tmp_path / "o.json", "--quiet"
    )
    assert code == 0, err
    doc = json.loads((tmp_path / "o.json").read_text())
    stored = query(tmp_path / "w.duckdb", "SELECT audience_id, action, run_id FROM recommendations ORDER BY rank")
    assert [r["audience_id"] for r in doc["recommendations"]] == stored["audience_id"].to_list()
    assert stored["run_id"].n_unique() == 1
