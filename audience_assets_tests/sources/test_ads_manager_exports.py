"""Meta Ads Manager exports (CSV and .xlsx) as `--insights`: the same decisions as our CSV contract,
and errors that name the file, the row or column, and what to do."""

from __future__ import annotations

import os
import random
import subprocess
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from audience_assets.sample.simulator import write_sample_csvs
from audience_assets.sources import InputError, SourceSpec, ads_manager
from audience_assets.sources.files import read_files
from audience_assets_tests.conftest import (
    SAMPLE_DECISION_DATE,
    VENV_BIN,
    cli,
    csv_source,
    failure_messages,
    materialise,
    query,
)

N_ADSETS, N_DAYS = 20, 30  # the graph runs: enough ad sets for every action
SMALL_ADSETS, SMALL_DAYS = 5, 10  # the error cases: read and checked, never run
# Our contract's columns under their Ads Manager headers (spend's carries the currency).
HEADERS = {
    "date_start": "Day",
    "account_id": "Account ID",
    "campaign_id": "Campaign ID",
    "campaign_name": "Campaign name",
    "adset_id": "Ad set ID",
    "adset_name": "Ad set name",
    "impressions": "Impressions",
    "clicks": "Link clicks",
    "purchases": "Purchases",
    "purchase_value": "Purchases conversion value",
}
DECISION_COLUMNS = "adset_id, action, scale_percentage, confidence, currency"


def ads_manager_export(plain: pl.DataFrame, currency: str | None = "INR", seed: int = 3) -> pl.DataFrame:
    """Our contract's rows as Ads Manager writes them: its headers, its extra columns, any column order."""
    spend = f"Amount spent ({currency})" if currency else "Amount spent"
    frame = plain.drop("account_currency").rename(HEADERS | {"spend": spend})
    frame = frame.with_columns(
        pl.col("Day").alias("Reporting starts"),
        pl.col("Day").alias("Reporting ends"),
        (pl.col("Impressions").cast(pl.Int64) // 3).cast(pl.Utf8).alias("Reach"),
        pl.lit("3.00").alias("Frequency"),
        pl.col("Purchases").alias("Results"),
        pl.lit("412.50").alias("Cost per result"),
        pl.lit("active").alias("Ad set delivery"),
    )
    order = frame.columns
    random.Random(seed).shuffle(order)
    return frame.select(order)


def excel(conn: duckdb.DuckDBPyConnection | None = None) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the excel extension loaded from its package (never INSTALLed)."""
    conn = conn or duckdb.connect()
    conn.execute(f"LOAD '{ads_manager.excel_extension_path()}'")
    return conn


def write_xlsx(
    frame: pl.DataFrame, path: Path, sheet: str = "Raw Data Report", as_numbers: tuple[str, ...] = ()
) -> Path:
    """The frame as one sheet: Day as a date cell, metrics (and `as_numbers`) as number cells, ids as text."""
    numbers = [c for c in frame.columns if c.startswith(("Amount spent", "Impressions", "Link clicks", "Purchases"))]
    casts = {c: "DOUBLE" for c in (*numbers, *as_numbers)} | ({"Day": "DATE"} if "Day" in frame.columns else {})
    select = ", ".join(f'CAST("{c}" AS {casts[c]}) AS "{c}"' if c in casts else f'"{c}"' for c in frame.columns)
    with excel() as conn:
        conn.register("frame", frame)
        conn.execute(f"COPY (SELECT {select} FROM frame) TO '{path}' (FORMAT xlsx, HEADER true, SHEET '{sheet}')")
    return path


def two_sheets(first: Path, second: Path, out: Path, name: str) -> Path:
    """A workbook whose first sheet is `first`'s and whose second is `second`'s (named `name`)."""
    with zipfile.ZipFile(first) as a, zipfile.ZipFile(second) as b, zipfile.ZipFile(out, "w") as book:
        for item in a.infolist():
            data = a.read(item.filename)
            if item.filename == "xl/workbook.xml":
                data = data.replace(b"</sheets>", f'<sheet name="{name}" sheetId="2" r:id="rId99"/></sheets>'.encode())
            elif item.filename == "xl/_rels/workbook.xml.rels":
                rel = (
                    '<Relationship Id="rId99" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
                    'relationships/worksheet" Target="worksheets/sheet2.xml"/></Relationships>'
                )
                data = data.replace(b"</Relationships>", rel.encode())
            elif item.filename == "[Content_Types].xml":
                part = (
                    '<Override PartName="/xl/worksheets/sheet2.xml" ContentType="application/'
                    'vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/></Types>'
                )
                data = data.replace(b"</Types>", part.encode())
            book.writestr(item, data)
        book.writestr("xl/worksheets/sheet2.xml", b.read("xl/worksheets/sheet1.xml"))
    return out


def read_text(path: Path) -> pl.DataFrame:
    return pl.read_csv(path, infer_schema=False)


@dataclass(frozen=True)
class Files:
    plain: Path
    audiences: Path
    export_csv: Path
    export_xlsx: Path


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Files:
    root = tmp_path_factory.mktemp("ads_manager")
    plain, audiences = write_sample_csvs(root / "plain", n_adsets=N_ADSETS, days=N_DAYS)
    export = ads_manager_export(read_text(plain))
    export.write_csv(root / "export.csv")
    return Files(plain, audiences, root / "export.csv", write_xlsx(export, root / "export.xlsx"))


def decisions_and_rows(db: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    decisions = query(
        db,
        f"SELECT {DECISION_COLUMNS} FROM decisions WHERE decision_date = ? ORDER BY adset_id",
        [SAMPLE_DECISION_DATE],
    )
    rows = query(db, "SELECT * EXCLUDE (load_id, loaded_at) FROM raw_insights ORDER BY adset_id, date")
    return decisions, rows


def test_ads_manager_csv_and_xlsx_decide_exactly_as_our_csv(files, tmp_path):
    """The real graph on our CSV, on the Ads Manager CSV and on the Ads Manager .xlsx: the same rows
    loaded, the same decisions (ad set, action, scale %, confidence)."""
    got = {}
    for kind, insights in (("plain", files.plain), ("csv", files.export_csv), ("xlsx", files.export_xlsx)):
        db = tmp_path / kind / "w.duckdb"
        result = materialise(db, SAMPLE_DECISION_DATE, source=csv_source(insights, files.audiences))
        assert result.success, failure_messages(result)
        got[kind] = decisions_and_rows(db)
    decisions, rows = got["plain"]
    assert decisions.height == N_ADSETS
    assert decisions["action"].n_unique() > 1, "the sample should exercise more than one action"
    for kind in ("csv", "xlsx"):
        assert_frame_equal(got[kind][0], decisions)
        assert_frame_equal(got[kind][1], rows)


def test_cli_recommend_reads_an_xlsx_export_with_a_usd_header(files, tmp_path):
    """`audience-engine recommend --insights export.xlsx` as a real process; 'Amount spent (USD)'
    makes the account's currency USD in raw_insights and decisions."""
    export = ads_manager_export(read_text(files.plain), currency="USD")
    book = write_xlsx(export, tmp_path / "export.xlsx")
    db, out, home = tmp_path / "wh" / "w.duckdb", tmp_path / "recs.json", tmp_path / "dagster_home"
    home.mkdir()
    proc = subprocess.run(
        [str(VENV_BIN / "audience-engine"), "recommend", "--insights", str(book), "--audiences", str(files.audiences)]
        + ["--db", str(db), "--out", str(out), "--quiet"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "DAGSTER_HOME": str(home)},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert out.is_file()
    assert query(db, "SELECT DISTINCT currency FROM raw_insights")["currency"].to_list() == ["USD"]
    decisions = query(db, "SELECT DISTINCT currency, decision_date FROM decisions")
    assert decisions.rows() == [("USD", SAMPLE_DECISION_DATE)]


# ---- mappings: read and checked as a load would, without a run ------------------------------


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> tuple[pl.DataFrame, Path, pl.DataFrame]:
    """(our contract's rows as text, the audiences file, those rows as the insights frame a load yields)."""
    root = tmp_path_factory.mktemp("small")
    plain, audiences = write_sample_csvs(root, n_adsets=SMALL_ADSETS, days=SMALL_DAYS)
    loaded, _ = read_files(SourceSpec(kind="csv", insights_path=str(plain), audiences_path=str(audiences)))
    return read_text(plain), audiences, loaded


def load(path: Path, audiences: Path) -> pl.DataFrame:
    return read_files(SourceSpec(kind="csv", insights_path=str(path), audiences_path=str(audiences)))[0]


def set_cell(frame: pl.DataFrame, row: int, column: str, value: str | None) -> pl.DataFrame:
    """Set one cell (0-based frame row = data row row + 1)."""
    at = pl.int_range(pl.len()) == row
    return frame.with_columns(pl.when(at).then(pl.lit(value, dtype=pl.Utf8)).otherwise(pl.col(column)).alias(column))


Edit = Callable[[pl.DataFrame], pl.DataFrame]


def same(got: pl.DataFrame, want: pl.DataFrame) -> None:
    assert_frame_equal(got, want)


def empty_cells_are_zero(got: pl.DataFrame, want: pl.DataFrame) -> None:
    assert_frame_equal(got[2:], want[2:])
    assert (got["purchases"][0], got["purchase_value"][0], got["clicks"][1]) == (0, 0, 0)
    assert_frame_equal(
        got[:2].drop("purchases", "purchase_value", "clicks"), want[:2].drop("purchases", "purchase_value", "clicks")
    )


def in_usd(got: pl.DataFrame, want: pl.DataFrame) -> None:
    assert_frame_equal(got, want.with_columns(pl.lit("USD").alias("currency")))


LOADS: list[tuple[str, Edit, Callable[[pl.DataFrame, pl.DataFrame], None]]] = [
    ("clicks_all_only_when_no_link_clicks", lambda f: f.rename({"Link clicks": "Clicks (all)"}), same),
    ("link_clicks_win_over_clicks_all", lambda f: f.with_columns(pl.lit("999999").alias("Clicks (all)")), same),
    (
        "website_purchases_pair",
        lambda f: f.rename(
            {"Purchases": "Website purchases", "Purchases conversion value": "Website purchases conversion value"}
        ),
        same,
    ),
    (
        "empty_and_dash_metrics_are_zero",
        lambda f: set_cell(
            set_cell(set_cell(f, 0, "Purchases", ""), 0, "Purchases conversion value", "-"), 1, "Link clicks", "—"
        ),
        empty_cells_are_zero,
    ),
    ("no_currency_in_the_header_is_inr", lambda f: f.rename({"Amount spent (INR)": "Amount spent"}), same),
    (
        "account_currency_column_when_the_header_has_none",
        lambda f: f.rename({"Amount spent (INR)": "Amount spent"}).with_columns(
            pl.lit("usd").alias("Account currency")
        ),
        in_usd,
    ),
    (
        "day_inside_a_report_wide_period",
        lambda f: f.with_columns(
            pl.col("Day").min().alias("Reporting starts"), pl.col("Day").max().alias("Reporting ends")
        ),
        same,
    ),
    ("reporting_starts_alone_is_the_day", lambda f: f.drop("Day"), same),
]


@pytest.mark.parametrize(("name", "edit", "expect"), LOADS, ids=[c[0] for c in LOADS])
def test_ads_manager_mapping(small, tmp_path, name, edit, expect):
    plain, audiences, want = small
    path = tmp_path / "export.csv"
    edit(ads_manager_export(plain)).write_csv(path)
    expect(load(path, audiences), want)


def test_excel_unicode_text_export_is_read(small, tmp_path):
    """Some Ads Manager exports are UTF-16 with a BOM and tab-separated."""
    plain, audiences, want = small
    path = tmp_path / "export.csv"
    path.write_bytes(ads_manager_export(plain).write_csv(separator="\t").encode("utf-16"))
    assert_frame_equal(load(path, audiences), want)


# ---- errors: each names the file, the column or row, and what to do -------------------------

ERRORS: list[tuple[str, Edit, tuple[str, ...]]] = [
    (
        "two_purchase_columns",
        lambda f: f.with_columns(
            pl.col("Purchases").alias("Website purchases"),
            pl.col("Purchases conversion value").alias("Website purchases conversion value"),
        ),
        ("'Purchases'", "'Website purchases'", "delete one of them", "never added up"),
    ),
    (
        "purchases_without_their_value",
        lambda f: f.rename({"Purchases conversion value": "Website purchases conversion value"}),
        ("'Purchases'", "not 'Purchases conversion value'", "same purchases", "Customize columns"),
    ),
    (
        "two_spend_columns",
        lambda f: f.with_columns(pl.col("Amount spent (INR)").alias("Amount spent (USD)")),
        ("'Amount spent (INR)'", "'Amount spent (USD)'", "delete all but one"),
    ),
    (
        "account_currency_disagrees_with_the_spend_header",
        lambda f: set_cell(f.with_columns(pl.lit("INR").alias("Account currency")), 2, "Account currency", "EUR"),
        ("row 3 (line 4)", 'column "Account currency"', "'EUR'", "differs from INR in the header 'Amount spent (INR)'"),
    ),
    (
        "a_row_of_several_days",
        lambda f: set_cell(f.drop("Day"), 4, "Reporting ends", "2026-12-31"),
        ("row 5 (line 6)", '"Reporting starts..Reporting ends"', "..2026-12-31'", "several days", "By time > Day"),
    ),
    (
        "day_outside_its_period",
        lambda f: set_cell(f, 4, "Day", "2026-12-31"),
        ("row 5 (line 6)", 'column "Day"', "'2026-12-31'", "outside the row's Reporting starts..Reporting ends"),
    ),
    (
        "id_in_scientific_notation",
        lambda f: set_cell(f, 3, "Ad set ID", "1.20215E+14"),
        (
            "row 4 (line 5)",
            'column "Ad set ID"',
            "'1.20215E+14'",
            "converted to a number by a spreadsheet: export again as text",
        ),
    ),
    (
        "totals_row_last",
        lambda f: pl.concat([f, pl.DataFrame({"Amount spent (INR)": ["123456.78"]})], how="diagonal"),
        ("row {rows} (line", "summary (totals) row", "delete that row", "Include summary row"),
    ),
    (
        "totals_row_first",
        lambda f: pl.concat([pl.DataFrame({"Impressions": ["99"]}), f], how="diagonal"),
        ("row 1 (line 2)", "summary (totals) row"),
    ),
    (
        "no_ad_set_id_column",
        lambda f: f.drop("Ad set ID"),
        ("looks like an Ads Manager export", "lacks 'Ad set ID'", "Customize columns"),
    ),
    (
        "no_currency_is_said_in_the_message",
        lambda f: set_cell(f.rename({"Amount spent (INR)": "Amount spent"}), 0, "Amount spent", "12,50"),
        ('column "Amount spent"', "decimal comma", "'Amount spent' names none, so INR is assumed"),
    ),
]


@pytest.mark.parametrize(("name", "edit", "expected"), ERRORS, ids=[c[0] for c in ERRORS])
def test_ads_manager_export_errors(small, tmp_path, name, edit, expected):
    plain, audiences, _ = small
    path = tmp_path / "export.csv"
    edited = edit(ads_manager_export(plain))
    edited.write_csv(path)
    with pytest.raises(InputError) as err:
        load(path, audiences)
    message = str(err.value)
    assert str(path) in message
    for fragment in expected:
        fragment = fragment.format(rows=edited.height)
        assert fragment in message, f"{fragment!r} not in {message!r}"


def test_an_error_through_the_cli_exits_2_before_anything_is_written(capsys, small, tmp_path):
    plain, audiences, _ = small
    path = tmp_path / "export.csv"
    ads_manager_export(plain).with_columns(pl.col("Purchases").alias("Website purchases")).write_csv(path)
    db, out = tmp_path / "w.duckdb", tmp_path / "o.json"
    code, stdout, err = cli(capsys, "recommend", "--insights", path, "--audiences", audiences, "--db", db, "--out", out)
    assert code == 2 and stdout == ""
    assert str(path) in err and "'Website purchases'" in err
    assert not db.exists() and not out.exists()


def test_our_csv_with_an_id_a_spreadsheet_made_a_number(small, tmp_path):
    """The same check guards our own contract, insights and audiences alike."""
    plain, audiences, _ = small
    path = tmp_path / "insights.csv"
    set_cell(plain, 1, "campaign_id", "1.20214E+14").write_csv(path)
    with pytest.raises(InputError, match=r"row 2, column campaign_id: '1\.20214E\+14' .*export again as text"):
        load(path, audiences)
    bad_audiences = tmp_path / "audiences.csv"
    set_cell(read_text(audiences), 0, "adset_id", "120215000000440.0").write_csv(bad_audiences)
    with pytest.raises(InputError, match=r"row 1, column adset_id: '120215000000440\.0' .*spreadsheet"):
        load(plain_path(tmp_path, plain), bad_audiences)


def plain_path(tmp_path: Path, plain: pl.DataFrame) -> Path:
    path = tmp_path / "plain.csv"
    plain.write_csv(path)
    return path


# ---- .xlsx ------------------------------------------------------------------------------------


def test_xlsx_of_our_own_contract_loads(small, tmp_path):
    plain, audiences, want = small
    book = tmp_path / "insights.xlsx"
    with excel() as conn:
        conn.register("plain", plain)
        conn.execute(
            f"COPY (SELECT * REPLACE (CAST(date_start AS DATE) AS date_start) FROM plain) TO '{book}' (FORMAT xlsx, HEADER true)"
        )
    assert_frame_equal(load(book, audiences), want)


def test_xlsx_whose_first_sheet_lacks_the_headers(small, tmp_path):
    plain, audiences, want = small
    summary = write_xlsx(
        pl.DataFrame({"Report": ["Ad sets, last 10 days"], "Created": ["2026-11-26"]}), tmp_path / "a.xlsx", "Summary"
    )
    data = write_xlsx(ads_manager_export(plain), tmp_path / "b.xlsx")
    book = two_sheets(summary, data, tmp_path / "export.xlsx", "Raw data")
    with pytest.raises(InputError) as err:
        load(book, audiences)
    message = str(err.value)
    for fragment in (
        str(book),
        "the first sheet 'Summary' of 2",
        "'Raw data'",
        "only the first is read",
        "no insights header",
        "Report",
    ):
        assert fragment in message, f"{fragment!r} not in {message!r}"
    # The data sheet first: read.
    assert_frame_equal(load(two_sheets(data, summary, tmp_path / "fixed.xlsx", "Summary"), audiences), want)


def test_xlsx_ids_stored_as_numbers(small, tmp_path):
    plain, audiences, _ = small
    book = write_xlsx(ads_manager_export(plain), tmp_path / "export.xlsx", as_numbers=("Ad set ID",))
    with pytest.raises(InputError) as err:
        load(book, audiences)
    message = str(err.value)
    for fragment in (str(book), "row 1 (sheet row 2)", 'column "Ad set ID"', "converted to a number by a spreadsheet"):
        assert fragment in message, f"{fragment!r} not in {message!r}"


def test_xlsx_without_the_excel_extension_is_a_clear_error(small, tmp_path, monkeypatch):
    plain, audiences, _ = small
    book = write_xlsx(ads_manager_export(plain), tmp_path / "export.xlsx")
    monkeypatch.setattr(ads_manager, "EXTENSION_PACKAGE", "no_such_duckdb_extension_package")
    with pytest.raises(
        InputError, match=rf"excel extension.*pip install duckdb-extension-excel=={duckdb.__version__}.*CSV"
    ):
        load(book, audiences)


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 64, "old binary Excel .xls"),
        (b"Day,Ad set ID\n2026-11-01,1\n", "not a readable .xlsx workbook"),
    ],
    ids=["xls", "csv_named_xlsx"],
)
def test_files_that_only_look_like_workbooks(small, tmp_path, content, says):
    _, audiences, _ = small
    book = tmp_path / "export.xlsx"
    book.write_bytes(content)
    with pytest.raises(InputError, match=says) as err:
        load(book, audiences)
    assert str(book) in str(err.value)


def test_audiences_must_stay_csv(small, tmp_path):
    plain, audiences, _ = small
    book = write_xlsx(read_text(audiences), tmp_path / "audiences.xlsx")
    with pytest.raises(InputError, match="audiences file must be CSV"):
        load(plain_path(tmp_path, plain), book)


def test_an_empty_first_sheet(small, tmp_path):
    _, audiences, _ = small
    book = tmp_path / "export.xlsx"
    with excel() as conn:
        conn.execute(f"COPY (SELECT 'x' AS a WHERE false) TO '{book}' (FORMAT xlsx, HEADER false, SHEET 'Report')")
    with pytest.raises(InputError, match=r"export\.xlsx: the first sheet 'Report' is empty: expected a header row"):
        load(book, audiences)
