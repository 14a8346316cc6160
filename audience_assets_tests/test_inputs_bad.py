"""Bad input through `audience-engine recommend`: exit 2, a message naming file/row/column, nothing written."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from audience_assets.sample.simulator import write_sample_csvs
from audience_assets_tests.conftest import SAMPLE_DECISION_DATE, cli, query, relations, scalar

N_ADSETS = 20
N_DAYS = 30


@dataclass(frozen=True)
class Good:
    root: Path
    insights: Path
    audiences: Path
    db: Path
    out: Path


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Good:
    """A warehouse holding one good CSV load; bad inputs are run against it and must leave it as it is."""
    root = tmp_path_factory.mktemp("inputs")
    ins, aud = write_sample_csvs(root / "good", n_adsets=N_ADSETS, days=N_DAYS)
    db, out = root / "wh" / "w.duckdb", root / "wh" / "recommendations.json"
    from audience_assets.cli import main

    assert (
        main(
            [
                "recommend",
                "--insights",
                str(ins),
                "--audiences",
                str(aud),
                "--db",
                str(db),
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    return Good(root, ins, aud, db, out)


def snapshot(g: Good) -> dict:
    return {
        "relations": relations(g.db),
        "raw": query(g.db, "SELECT * FROM raw_insights ORDER BY account_id, adset_id, date"),
        "decisions": scalar(g.db, "SELECT count(*) FROM decisions"),
        "recommendations": scalar(g.db, "SELECT count(*) FROM recommendations"),
        "metadata": scalar(g.db, "SELECT count(*) FROM audience_metadata"),
        "out": g.out.read_bytes(),
    }


def assert_unchanged(g: Good, before: dict) -> None:
    after = snapshot(g)
    assert after["relations"] == before["relations"]
    assert_frame_equal(after["raw"], before["raw"])
    for key in ("decisions", "recommendations", "metadata"):
        assert after[key] == before[key], key
    assert after["out"] == before["out"], "the recommendations JSON was overwritten"


def recommend(capsys, g: Good, insights: Path, audiences: Path, *extra: str) -> tuple[int, str, str]:
    return cli(
        capsys,
        "recommend",
        "--insights",
        insights,
        "--audiences",
        audiences,
        "--db",
        g.db,
        "--out",
        g.out,
        "--quiet",
        *extra,
    )


def read(path: Path) -> pl.DataFrame:
    return pl.read_csv(path, infer_schema=False)


def set_cell(frame: pl.DataFrame, row: int, column: str, value: str | None) -> pl.DataFrame:
    """Set one cell (0-based frame row = data row row+1)."""
    return frame.with_columns(
        pl.when(pl.int_range(pl.len()) == row)
        .then(pl.lit(value, dtype=pl.Utf8))
        .otherwise(pl.col(column))
        .alias(column)
    )


# (id, which file, frame -> frame or raw text, expected fragments of stderr besides the file name)
Mutation = Callable[[pl.DataFrame], pl.DataFrame | str | bytes]
CASES: list[tuple[str, str, Mutation, tuple[str, ...]]] = [
    ("missing_column", "insights", lambda f: f.drop("purchase_value"), ("missing column", "purchase_value")),
    (
        "bad_date_month_13",
        "insights",
        lambda f: set_cell(f, 4, "date_start", "2026-13-45"),
        ("row 5", "date_start", "2026-13-45", "not a date"),
    ),
    (
        "bad_date_word",
        "insights",
        lambda f: set_cell(f, 0, "date_start", "yesterday"),
        ("row 1", "date_start", "yesterday", "not a date"),
    ),
    ("missing_date", "insights", lambda f: set_cell(f, 2, "date_start", ""), ("row 3", "date_start", "missing")),
    ("negative_spend", "insights", lambda f: set_cell(f, 6, "spend", "-12.5"), ("row 7", "spend", "-12.5", "negative")),
    ("non_numeric_clicks", "insights", lambda f: set_cell(f, 3, "clicks", "many"), ("row 4", "clicks", "many")),
    ("fractional_clicks", "insights", lambda f: set_cell(f, 3, "clicks", "2.5"), ("row 4", "clicks", "whole number")),
    ("huge_spend", "insights", lambda f: set_cell(f, 8, "spend", "1e20"), ("row 9", "spend", "1e20", "large")),
    ("nan_spend", "insights", lambda f: set_cell(f, 8, "spend", "NaN"), ("row 9", "spend", "NaN")),
    (
        "infinite_revenue",
        "insights",
        lambda f: set_cell(f, 8, "purchase_value", "inf"),
        ("row 9", "purchase_value", "inf"),
    ),
    ("missing_adset_id", "insights", lambda f: set_cell(f, 1, "adset_id", " "), ("row 2", "adset_id", "missing")),
    (
        "bad_currency",
        "insights",
        lambda f: set_cell(f, 1, "account_currency", "RUPEES"),
        ("row 2", "account_currency", "RUPEES"),
    ),
    ("empty_file", "insights", lambda f: b"", ("empty",)),
    ("header_only", "insights", lambda f: ",".join(f.columns) + "\n", ("no data rows",)),
    (
        "unknown_audience_type",
        "audiences",
        lambda f: set_cell(f, 2, "audience_type", "LAL"),
        ("row 3", "audience_type", "LAL", "BROAD"),
    ),
    ("blank_audience_type", "audiences", lambda f: set_cell(f, 2, "audience_type", ""), ("row 3", "audience_type")),
    (
        "lookalike_pct_out_of_range",
        "audiences",
        lambda f: set_cell(f, 0, "lookalike_pct", "50"),
        ("row 1", "lookalike_pct", "50"),
    ),
    (
        "bad_source_quality",
        "audiences",
        lambda f: set_cell(f, 0, "source_quality", "FANS"),
        ("row 1", "source_quality", "FANS"),
    ),
    (
        "negative_budget",
        "audiences",
        lambda f: set_cell(f, 0, "daily_budget", "-1"),
        ("row 1", "daily_budget", "negative"),
    ),
    (
        "bad_timestamp",
        "audiences",
        lambda f: set_cell(f, 0, "last_budget_change_at", "last tuesday"),
        ("row 1", "last_budget_change_at", "last tuesday"),
    ),
    (
        "audiences_missing_type_column",
        "audiences",
        lambda f: f.drop("audience_type"),
        ("missing column", "audience_type"),
    ),
    ("audiences_empty", "audiences", lambda f: b"", ("empty",)),
    ("duplicate_audience", "audiences", lambda f: pl.concat([f, f[3:4]]), ("rows 4, 21", "listed more than once")),
]


def write_case(g: Good, tmp_path: Path, which: str, mutate: Mutation) -> tuple[Path, Path]:
    src = g.insights if which == "insights" else g.audiences
    bad = tmp_path / f"bad_{which}.csv"
    value = mutate(read(src))
    if isinstance(value, pl.DataFrame):
        value.write_csv(bad)
    elif isinstance(value, bytes):
        bad.write_bytes(value)
    else:
        bad.write_text(value)
    return (bad, g.audiences) if which == "insights" else (g.insights, bad)


# Every case is checked before the run (no --as-of: the default decision date reads the files);
# a representative few also inside the run (--as-of given: the raw_insights asset validates).
INSIDE_RUN = {
    "missing_column",
    "bad_date_month_13",
    "negative_spend",
    "huge_spend",
    "empty_file",
    "unknown_audience_type",
    "duplicate_audience",
}
PARAMS = [
    pytest.param(*case, when, id=f"{case[0]}-{when}")
    for case in CASES
    for when in ("before_run", "inside_run")
    if when == "before_run" or case[0] in INSIDE_RUN
]


@pytest.mark.parametrize(("name", "which", "mutate", "expected", "when"), PARAMS)
def test_bad_input_is_rejected_and_nothing_changes(capsys, good, tmp_path, name, which, mutate, expected, when):
    """Without --as-of the files are validated before the run; with it, inside the raw_insights asset."""
    ins, aud = write_case(good, tmp_path, which, mutate)
    before = snapshot(good)
    extra = ("--as-of", SAMPLE_DECISION_DATE.isoformat()) if when == "inside_run" else ()
    code, out, err = recommend(capsys, good, ins, aud, *extra)
    assert code == 2, err
    bad_file = ins if which == "insights" else aud
    message = err[err.rindex("error: ") :] if "error: " in err else err
    assert str(bad_file) in message
    for fragment in expected:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert out == ""
    assert_unchanged(good, before)


def test_duplicate_rows_name_both_rows(capsys, good, tmp_path):
    frame = read(good.insights)
    dup = pl.concat([frame, frame[10:11]])
    bad = tmp_path / "dup.csv"
    dup.write_csv(bad)
    before = snapshot(good)
    code, _, err = recommend(capsys, good, bad, good.audiences)
    assert code == 2
    adset, day = frame["adset_id"][10], frame["date_start"][10]
    assert f"rows 11, {frame.height + 1}" in err
    assert adset in err and day in err and "duplicate" in err
    assert_unchanged(good, before)


def test_adset_missing_from_audiences_is_named(capsys, good, tmp_path):
    frame = read(good.audiences)
    bad = tmp_path / "aud.csv"
    frame.filter(pl.col("adset_id") != frame["adset_id"][5]).write_csv(bad)
    before = snapshot(good)
    code, _, err = recommend(capsys, good, good.insights, bad)
    assert code == 2
    assert frame["adset_id"][5] in err
    assert str(bad) in err and str(good.insights) in err
    assert "audience_type" in err
    assert_unchanged(good, before)


def test_many_problems_are_all_counted(capsys, good, tmp_path):
    frame = read(good.insights).with_columns(pl.lit("-1").alias("spend"))
    bad = tmp_path / "many.csv"
    frame.write_csv(bad)
    before = snapshot(good)
    code, _, err = recommend(capsys, good, bad, good.audiences)
    assert code == 2
    assert f"{frame.height} problem(s)" in err
    assert "more problem(s)" in err
    assert len(err.splitlines()) < 30, "the report should be capped, not one line per bad row"
    assert_unchanged(good, before)


@pytest.mark.parametrize("flag", ["--insights", "--audiences"])
def test_missing_file_path(capsys, good, tmp_path, flag):
    missing = tmp_path / "nope" / "missing.csv"
    before = snapshot(good)
    ins = missing if flag == "--insights" else good.insights
    aud = missing if flag == "--audiences" else good.audiences
    code, out, err = recommend(capsys, good, ins, aud)
    assert code == 2
    assert str(missing) in err and "not found" in err and flag in err
    assert_unchanged(good, before)


def test_csv_source_without_files(capsys, good):
    code, _, err = cli(capsys, "recommend", "--db", good.db, "--out", good.out, "--quiet")
    assert code == 2
    assert "--insights" in err and "--audiences" in err


@pytest.mark.parametrize("text", ["2026-02-30", "26-11-2026", "tomorrow"])
def test_bad_as_of_is_an_argparse_error(capsys, good, text):
    before = snapshot(good)
    code, out, err = recommend(capsys, good, good.insights, good.audiences, "--as-of", text)
    assert code == 2
    assert "--as-of" in err and text in err and "YYYY-MM-DD" in err
    assert "usage:" in err
    assert_unchanged(good, before)


def test_as_of_before_any_data(capsys, good):
    before = snapshot(good)
    code, out, err = recommend(capsys, good, good.insights, good.audiences, "--as-of", "2020-01-01")
    assert code == 2
    assert "error: no insight rows before the decision date 2020-01-01" in err
    assert_unchanged(good, before)


def test_bad_config_file_invalid_toml(capsys, good, tmp_path):
    cfg = tmp_path / "rules.toml"
    cfg.write_text("min_spend = = 3000\n")
    before = snapshot(good)
    code, _, err = recommend(capsys, good, good.insights, good.audiences, "--config", cfg)
    assert code == 2
    assert str(cfg) in err and "not valid TOML" in err
    assert_unchanged(good, before)


@pytest.mark.parametrize(
    ("toml", "field"),
    [
        ("winner_roas = -1\n", "winner_roas"),
        ('min_spend = "lots"\n', "min_spend"),
        ("no_such_rule = 3\n", "no_such_rule"),
        ("[modifiers.BROAD]\nwinner_roas = 0\n", "modifiers.BROAD.winner_roas"),
        ("winner_roas = 0.8\nloser_roas = 0.9\n", "loser_roas"),
    ],
)
def test_bad_config_file_value_names_the_field(capsys, good, tmp_path, toml, field):
    cfg = tmp_path / "rules.toml"
    cfg.write_text(toml)
    before = snapshot(good)
    code, _, err = recommend(capsys, good, good.insights, good.audiences, "--config", cfg)
    assert code == 2
    assert str(cfg) in err and field in err
    assert_unchanged(good, before)


def test_missing_config_file(capsys, good, tmp_path):
    cfg = tmp_path / "absent.toml"
    before = snapshot(good)
    code, _, err = recommend(capsys, good, good.insights, good.audiences, "--config", cfg)
    assert code == 2
    assert str(cfg) in err and "does not exist" in err
    assert_unchanged(good, before)


def test_bad_set_override_names_the_field(capsys, good):
    before = snapshot(good)
    code, _, err = recommend(capsys, good, good.insights, good.audiences, "--set", "winner_roas=-1")
    assert code == 2 and "winner_roas" in err
    code, _, err = recommend(capsys, good, good.insights, good.audiences, "--set", "min_spend")
    assert code == 2 and "key=value" in err
    assert_unchanged(good, before)


@pytest.mark.parametrize("text", ["2099-01-01", "2010-01-01"])
def test_as_of_outside_the_partitions_is_a_clear_error(capsys, good, text):
    before = snapshot(good)
    code, out, err = recommend(capsys, good, good.insights, good.audiences, "--as-of", text)
    assert code == 2, err[-500:]
    assert err.startswith("error: ") and text in err
    assert "Traceback" not in err
    assert_unchanged(good, before)
