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
    (
        "thousands_separator",
        "insights",
        lambda f: set_cell(f, 4, "spend", "1,234.50"),
        ("row 5", "spend", "'1,234.50'", "thousands separator", "write 1234.50"),
    ),
    (
        "currency_sign",
        "insights",
        lambda f: set_cell(f, 4, "purchase_value", "₹1234.50"),
        ("row 5", "purchase_value", "currency sign", "amount only"),
    ),
    (
        "currency_code",
        "audiences",
        lambda f: set_cell(f, 1, "daily_budget", "INR 5000"),
        ("row 2", "daily_budget", "currency sign"),
    ),
    (
        "decimal_comma",
        "insights",
        lambda f: set_cell(f, 4, "spend", "1234,50"),
        ("row 5", "spend", "decimal comma", "write 1234.50"),
    ),
    (
        "ragged_row",
        "insights",
        lambda f: _lines(f, lambda lines: lines[:3] + [lines[3] + ",extra"] + lines[4:]),
        ("line 4 (data row 3)", "too many columns"),
    ),
    (
        "short_row",
        "insights",
        lambda f: _lines(f, lambda lines: lines[:5] + [lines[5].rsplit(",", 2)[0]] + lines[6:]),
        ("line 6 (data row 5)", "missing columns"),
    ),
    (
        "stray_quote",
        "insights",
        lambda f: _lines(f, lambda lines: lines[:2] + [lines[2].replace(",", ',"bad"quote,', 1)] + lines[3:]),
        ("line 3 (data row 2)",),
    ),
    (
        "windows_1252_name",
        "insights",
        lambda f: _encode(set_cell(f, 2, "adset_name", "Café Crème"), "cp1252"),
        ("line 4 (data row 3)", "0xE9", "not valid UTF-8", "Café Crème", "--encoding cp1252"),
    ),
]


def _lines(frame: pl.DataFrame, edit: Callable[[list[str]], list[str]]) -> str:
    """The frame as CSV text, with its lines edited (line 0 is the header)."""
    return "\n".join(edit(frame.write_csv().splitlines())) + "\n"


def _encode(frame: pl.DataFrame, encoding: str) -> bytes:
    return frame.write_csv().encode(encoding)


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
    code, out, err = recommend(capsys, good, good.insights, good.audiences, "--as-of", "2026-10-01")
    assert code == 2
    assert "error: no insight rows before the decision date 2026-10-01" in err
    assert "the insights run from 2026-10-27 to 2026-11-25" in err
    assert "future" not in err
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


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("2099-01-01", "is in the future: the latest decision date is tomorrow (UTC)"),
        (
            "2010-01-01",
            "is before the first partition, 2026-09-13: to decide on older data, set "
            "AUDIENCE_ENGINE_PARTITIONS_START=2010-01-01",
        ),
        ("2000-01-01", "is before the first partition"),
    ],
)
def test_as_of_outside_the_partitions_is_a_clear_error(capsys, good, text, says):
    """The message states the real cause: a date long past is not "data dated in the future"."""
    before = snapshot(good)
    code, out, err = recommend(capsys, good, good.insights, good.audiences, "--as-of", text)
    assert code == 2, err[-500:]
    assert err.startswith("error: ") and text in err and says in err
    assert "Traceback" not in err
    if text < "2026":
        assert "future" not in err
    assert_unchanged(good, before)


def _one_bad_cell(capsys, good, tmp_path, column: str, value: str) -> list[str]:
    ins, aud = write_case(good, tmp_path, "insights", lambda f: set_cell(f, 8, column, value))
    code, _, err = recommend(capsys, good, ins, aud)
    assert code == 2, err
    return [line for line in err.splitlines() if "row 9" in line]


@pytest.mark.parametrize(
    ("value", "says", "never"),
    [
        ("NaN", "is not a number (NaN)", ("implausibly large", "negative")),
        ("-inf", "is not a finite number", ("negative", "implausibly large")),
        ("inf", "is not a finite number", ("implausibly large",)),
    ],
)
def test_a_bad_number_is_reported_once_with_its_real_cause(capsys, good, tmp_path, value, says, never):
    lines = _one_bad_cell(capsys, good, tmp_path, "spend", value)
    assert len(lines) == 1, lines
    assert says in lines[0]
    for wrong in never:
        assert wrong not in lines[0]


def test_negative_zero_is_stored_as_zero(capsys, tmp_path):
    ins, aud = write_sample_csvs(tmp_path / "csv", n_adsets=N_ADSETS, days=N_DAYS)
    frame = set_cell(read(ins), 0, "purchases", "-0")
    frame = set_cell(frame, 1, "spend", "-0.0")
    frame.write_csv(ins)
    db, out = tmp_path / "w.duckdb", tmp_path / "o.json"
    code, _, err = cli(capsys, "recommend", "--insights", ins, "--audiences", aud, "--db", db, "--out", out, "--quiet")
    assert code == 0, err
    import math

    first = read(ins).row(0, named=True)
    second = read(ins).row(1, named=True)
    got = query(
        db,
        "SELECT adset_id, date, purchases, spend FROM raw_insights WHERE (adset_id = ? AND date = ?) OR (adset_id = ? AND date = ?)",
        [first["adset_id"], first["date_start"], second["adset_id"], second["date_start"]],
    )
    values = [v for v in got["purchases"].to_list() + got["spend"].to_list() if v == 0]
    assert len(values) == 2 and all(math.copysign(1.0, v) == 1.0 for v in values)


def test_windows_1252_file_loads_verbatim_with_its_encoding_named(capsys, tmp_path):
    ins, aud = write_sample_csvs(tmp_path / "csv", n_adsets=N_ADSETS, days=N_DAYS)
    frame = read(ins)
    target = frame["adset_id"][0]
    frame = frame.with_columns(
        pl.when(pl.col("adset_id") == target)
        .then(pl.lit("Café Crème – Ößé"))
        .otherwise(pl.col("adset_name"))
        .alias("adset_name")
    )
    ins.write_bytes(frame.write_csv().encode("cp1252"))
    db, out = tmp_path / "w.duckdb", tmp_path / "o.json"
    base = ("recommend", "--insights", ins, "--audiences", aud, "--db", db, "--out", out, "--quiet")
    code, _, err = cli(capsys, *base)
    assert code == 2 and "--encoding cp1252" in err and not db.exists()
    code, _, err = cli(capsys, *base, "--encoding", "cp1252")
    assert code == 0, err
    names = query(db, "SELECT DISTINCT adset_name FROM raw_insights WHERE adset_id = ?", [target])["adset_name"]
    assert names.to_list() == ["Café Crème – Ößé"]


@pytest.mark.parametrize(
    ("encoding", "delimiter"),
    [("utf-16", "\t"), ("utf-16-be", ","), ("utf-8-sig", ";"), ("utf-8", "\t")],
    ids=["excel_unicode_text", "utf16_be_bom", "utf8_bom_semicolon", "utf8_tab"],
)
def test_excel_encodings_and_separators_are_detected(capsys, tmp_path, encoding, delimiter):
    """Excel's "Unicode text" is UTF-16 LE with a BOM and tabs; European exports use semicolons."""
    ins, aud = write_sample_csvs(tmp_path / "csv", n_adsets=N_ADSETS, days=N_DAYS)
    frame = read(ins)
    target = frame["adset_id"][0]
    name = "日本語 Ünïcödé | test"
    frame = frame.with_columns(
        pl.when(pl.col("adset_id") == target).then(pl.lit(name)).otherwise(pl.col("adset_name")).alias("adset_name")
    )
    text = frame.write_csv(separator=delimiter)
    data = text.encode(encoding)
    if encoding == "utf-16-be":
        data = b"\xfe\xff" + data  # with its byte-order mark, as Excel writes it
    ins.write_bytes(data)
    db, out = tmp_path / "w.duckdb", tmp_path / "o.json"
    code, _, err = cli(capsys, "recommend", "--insights", ins, "--audiences", aud, "--db", db, "--out", out, "--quiet")
    assert code == 0, err
    assert scalar(db, "SELECT count(*) FROM raw_insights") == frame.height
    names = query(db, "SELECT DISTINCT adset_name FROM raw_insights WHERE adset_id = ?", [target])["adset_name"]
    assert names.to_list() == [name]


def test_rows_after_the_decision_date_are_counted_not_dropped_silently(capsys, good, tmp_path):
    db, out = tmp_path / "w.duckdb", tmp_path / "o.json"
    last = read(good.insights)["date_start"].max()
    later = (read(good.insights)["date_start"] == last).sum()
    code, _, err = cli(
        capsys,
        "recommend",
        "--insights",
        good.insights,
        "--audiences",
        good.audiences,
        "--db",
        db,
        "--out",
        out,
        "--quiet",
        "--as-of",
        last,
    )
    assert code == 0, err
    assert f"note: {later:,} insight rows dated on or after the decision date were ignored" in err


def test_top_must_not_be_negative_and_zero_prints_only_the_summary(capsys, good, tmp_path):
    code, out, err = cli(capsys, "recommend", "--insights", good.insights, "--audiences", good.audiences, "--top", "-1")
    assert code == 2 and "--top" in err and "negative" in err
    db, json_out = tmp_path / "w.duckdb", tmp_path / "o.json"
    code, out, err = cli(
        capsys,
        "recommend",
        "--insights",
        good.insights,
        "--audiences",
        good.audiences,
        "--db",
        db,
        "--out",
        json_out,
        "--top",
        "0",
    )
    assert code == 0, err
    assert out.strip().startswith("Decision date") and "(0 shown" in out
