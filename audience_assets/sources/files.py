"""Insights and audiences files: read strictly (encoding, delimiter, quoting), validate, and load whole days.

An insights file is our CSV contract or a Meta Ads Manager export (its headers mapped onto the
contract by `ads_manager.ADS_MANAGER_COLUMNS`), as CSV or as an .xlsx workbook (its first sheet,
read by DuckDB's excel extension). Both become the same text table, then the same checks.

Text is never replaced silently. UTF-8 (with or without a BOM) is read as it is; UTF-16 and
UTF-32 with a BOM (Excel's "Unicode text") and any encoding named with `--encoding` (cp1252,
latin-1, ...) are decoded strictly by Python's codecs into a temporary UTF-8 copy. A byte that
does not decode is an error naming the file, line and byte. DuckDB then parses the CSV with every
column as text; ragged rows and stray quotes come back from its rejects table with their line
numbers, and the validators type the columns and check every value.
"""

from __future__ import annotations

import codecs
import csv
import io
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from audience_assets.sources import (
    AUDIENCES_OPTIONAL,
    AUDIENCES_REQUIRED,
    INSIGHTS_OPTIONAL,
    INSIGHTS_REQUIRED,
    RAW_COLUMNS,
    Extract,
    InputError,
    SourceSpec,
    day_grid,
)
from audience_assets.sources.ads_manager import (
    KNOWN_HEADERS,
    Layout,
    contract_layout,
    insights_layout,
    read_first_sheet,
    totals_row_check,
    workbook_kind,
)
from audience_assets.sources.validation import (
    AUDIENCE_NUMBERS,
    INSIGHT_NUMBERS,
    MAX_REPORTED,
    Problems,
    audience_checks,
    audience_duplicates,
    check_coverage,
    insight_checks,
    insight_consistency,
    number,
    q,
    require_columns,
    run_checks,
    typed_audiences_sql,
    typed_insights_sql,
)

CHUNK = 1 << 23  # 8 MiB of input at a time: memory does not grow with the file
DELIMITERS = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}
# Longest BOMs first: UTF-32 LE starts with the UTF-16 LE BOM.
BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
LEGACY_GUESS = "cp1252"  # what a Windows spreadsheet writes when it is not UTF-8


def _codec_name(name: str) -> str:
    try:
        return codecs.lookup(name).name
    except LookupError:
        raise InputError(f"--encoding {name!r} is not a known text encoding (e.g. utf-8, cp1252, latin-1)") from None


def detect_encoding(path: Path, declared: str | None) -> str:
    """The file's encoding: from its BOM, else the declared one, else UTF-8."""
    with path.open("rb") as fh:
        head = fh.read(4)
    for bom, name in BOMS:
        if head.startswith(bom):
            if declared and _codec_name(declared).replace("_", "-") not in (name, "utf-8", name.split("-sig")[0]):
                raise InputError(
                    f"{path}: starts with a {name.upper()} byte-order mark, but --encoding says {declared}; "
                    "drop --encoding or re-save the file"
                )
            return name
    return _codec_name(declared) if declared else "utf-8"


def _position(path: Path, offset: int) -> tuple[int, bytes, int]:
    """(1-based line, the raw bytes of that line, the offset within it) of a byte offset in a file."""
    line, start = 1, 0
    with path.open("rb") as fh:
        read = 0
        while read < offset:
            block = fh.read(min(CHUNK, offset - read))
            if not block:
                break
            line += block.count(b"\n")
            last = block.rfind(b"\n")
            if last >= 0:
                start = read + last + 1
            read += len(block)
        fh.seek(start)
        text = fh.readline()
    return line, text, offset - start


def _undecodable(path: Path, encoding: str, offset: int, bad: bytes) -> InputError:
    line, raw, at = _position(path, offset)
    shown = " ".join(f"0x{b:02X}" for b in bad[:4])
    hint = ""
    if encoding.startswith("utf-8"):
        try:
            around = raw[max(at - 30, 0) : at + 30]
            guess = around.decode(LEGACY_GUESS, errors="strict").strip()
            hint = (
                f"; read as Windows-1252 it says ...{guess}...: re-save the file as UTF-8, "
                f"or pass --encoding {LEGACY_GUESS} if that is right"
            )
        except UnicodeDecodeError:
            hint = "; re-save the file as UTF-8 or pass its encoding with --encoding"
    row = f" (data row {line - 1})" if line > 1 else " (the header)"
    return InputError(
        f"{path} line {line}{row}, byte {offset}: {shown} is not valid {encoding.upper()}{hint}. "
        "Nothing was loaded: characters are never replaced silently."
    )


def _check_utf8(path: Path) -> None:
    """Validate UTF-8 in chunks cut at newlines (a newline byte is never inside a UTF-8 sequence)."""
    offset, carry = 0, b""
    with path.open("rb") as fh:
        while True:
            block = fh.read(CHUNK)
            data = carry + block
            cut = len(data) if not block else data.rfind(b"\n") + 1
            piece, carry = data[:cut], data[cut:]
            try:
                piece.decode("utf-8")
            except UnicodeDecodeError as err:
                raise _undecodable(path, "utf-8", offset + err.start, piece[err.start : err.end]) from None
            offset += len(piece)
            if not block:
                return


def _transcode(path: Path, encoding: str, target: Path) -> None:
    """Strictly decode a file into UTF-8, chunk by chunk."""
    decoder = codecs.getincrementaldecoder(encoding)("strict")
    fed = 0
    with path.open("rb") as src, target.open("w", encoding="utf-8", newline="") as out:
        while True:
            block = src.read(CHUNK)
            try:
                out.write(decoder.decode(block, final=not block))
            except UnicodeDecodeError as err:
                pending = len(decoder.getstate()[0]) if hasattr(decoder, "getstate") else 0
                base = fed - pending
                raise _undecodable(path, encoding, max(base + err.start, 0), err.object[err.start : err.end]) from None
            fed += len(block)
            if not block:
                return


@contextmanager
def utf8_copy(path: Path, encoding: str | None, check: bool = True) -> Iterator[Path]:
    """A UTF-8 version of the file: the file itself when it already is, else a temporary copy.

    `check=False` skips the byte-by-byte UTF-8 check (for a reader that fails on bad bytes anyway)."""
    detected = detect_encoding(path, encoding)
    if detected in ("utf-8", "utf-8-sig"):
        if check:
            _check_utf8(path)
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="audience-engine-csv-") as tmp:
        target = Path(tmp) / "utf8.csv"
        _transcode(path, detected, target)
        yield target


def _header(text_path: Path) -> str:
    """The first line only (decoding more could trip on a bad byte further down, which the full
    check reports with its line)."""
    with text_path.open("rb") as fh:
        raw = fh.readline(1 << 20)
    return raw.decode("utf-8", errors="strict").lstrip("\ufeff")


def _split(line: str, delimiter: str) -> list[str]:
    return next(csv.reader(io.StringIO(line), delimiter=delimiter), [])


def detect_delimiter(header: str, expected: tuple[str, ...], declared: str | None, name: str) -> str:
    """The field separator: the declared one, else the candidate whose split names the most expected columns."""
    if declared:
        if declared == "\\t":
            declared = "\t"
        if len(declared) != 1:
            raise InputError(f"--delimiter {declared!r}: expected one character such as ',' ';' or '\\t'")
        return declared
    wanted = set(expected)

    def hits(delim: str) -> tuple[int, int]:
        names = {c.strip().lower() for c in _split(header, delim)}
        return len(names & wanted), len(names)

    best = max(DELIMITERS, key=lambda d: (hits(d), d == ","))
    if hits(best)[0] == 0 and hits(best)[1] <= 1:
        return ","
    return best


def _normalised(names: list[str]) -> list[str]:
    return [n.strip().lstrip("\ufeff").strip().lower() for n in names]


def new_connection() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB for checking files without a warehouse (sensor, CLI)."""
    conn = duckdb.connect()
    conn.execute("SET TimeZone = 'UTC'")
    conn.execute("SET enable_progress_bar = false")
    return conn


def load_text(
    conn: duckdb.DuckDBPyConnection,
    path: str | Path,
    table: str,
    encoding: str | None = None,
    delimiter: str | None = None,
    expected: tuple[str, ...] = (),
    optional: tuple[str, ...] = (),
    numbers: Sequence[str] = (),
) -> tuple[list[str], int]:
    """Load a CSV into a temporary table of text columns; (the file's columns, its rows).

    Optional columns the file lacks are added empty; each of `numbers` is also parsed once into
    `_n_<col>`, in the same pass. A view `<table>_rows` adds `_row` (1 = the first data row).
    An empty file gives no columns. The header's names are trimmed and lower-cased."""
    p = _existing(path)

    def layout(header: list[str], raw: list[str]) -> Layout:
        return contract_layout(header, raw, str(p), optional=optional)

    found, rows = _load_csv(conn, p, table, encoding, delimiter, expected, numbers, layout)
    return (list(found.columns) if found else []), rows


def _existing(path: str | Path) -> Path:
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: file not found" if not p.exists() else f"{p}: not a file")
    return p


def _load_csv(
    conn: duckdb.DuckDBPyConnection,
    p: Path,
    table: str,
    encoding: str | None,
    delimiter: str | None,
    expected: tuple[str, ...],
    numbers: Sequence[str],
    make_layout: Callable[[list[str], list[str]], Layout],
) -> tuple[Layout | None, int]:
    """Read a CSV once into `table` through the layout its header calls for; (the layout, its rows)."""
    with p.open("rb") as fh:
        head = fh.read(4096)
    if not head.strip(b"\x00\xff\xfe\xef\xbb\xbf \r\n\t"):
        return None, 0
    with utf8_copy(p, encoding) as text_path:
        header = _header(text_path)
        delim = detect_delimiter(header, expected, delimiter, str(p))
        written = _split(header, delim)
        if not written or _normalised(written) == [""]:
            return None, 0
        layout = make_layout(written, [f"c{i}" for i in range(len(written))])
        columns = {f"c{i}": "VARCHAR" for i in range(len(written))}
        source = (
            "read_csv(?, header = true, auto_detect = false, columns = ?, delim = ?, quote = '\"', "
            f"escape = '\"', strict_mode = true, store_rejects = true, rejects_table = '_rejects_{table}', "
            f"rejects_scan = '_rejects_scan_{table}', max_line_size = 1048576)"
        )
        try:
            _create_text_table(conn, table, layout.columns, source, [str(text_path), columns, delim], numbers)
            _rejects_in(conn, table, str(p))
        except duckdb.Error as err:
            raise InputError(f"{p}: not a readable CSV file ({str(err).splitlines()[0]})") from None
    return layout, _rows_view(conn, table)


def _create_text_table(
    conn: duckdb.DuckDBPyConnection,
    table: str,
    columns: dict[str, str],
    source: str,
    params: list[Any],
    numbers: Sequence[str],
) -> None:
    """The text table: each column's expression over the source, and each number parsed once."""
    projection = ", ".join(f"{expr} AS {q(name)}" for name, expr in columns.items())
    parsed = "".join(f", {number(c)} AS {q('_n_' + c)}" for c in numbers if c in columns)
    conn.execute(
        f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT *{parsed} FROM (SELECT {projection} FROM {source})", params
    )


def _rows_view(conn: duckdb.DuckDBPyConnection, table: str) -> int:
    """The view `<table>_rows` with `_row` (1 = the first data row); the table's row count."""
    has_row = any(r[0] == "_row" for r in conn.execute(f"DESCRIBE {table}").fetchall())
    # A temporary table keeps the file's order (insertion order is preserved), so rowid + 1 is the
    # data row a person sees in a spreadsheet; a view exposes it as _row without a window function.
    # A sheet's rows carry their own number (_row) instead.
    select = "*" if has_row else "rowid + 1 AS _row, *"
    conn.execute(f"CREATE OR REPLACE TEMP VIEW {table}_rows AS SELECT {select} FROM {table}")
    return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def _rejects_in(conn: duckdb.DuckDBPyConnection, table: str, name: str) -> None:
    rows = conn.execute(
        f"SELECT line, error_type, column_name, error_message, csv_line FROM _rejects_{table} ORDER BY line"
    ).fetchall()
    conn.execute(f"DROP TABLE IF EXISTS _rejects_{table}")
    conn.execute(f"DROP TABLE IF EXISTS _rejects_scan_{table}")
    if not rows:
        return
    shown = []
    for line, kind, column, message, raw in rows[:MAX_REPORTED]:
        where = f", column {column}" if column and kind not in ("TOO MANY COLUMNS",) else ""
        text = (raw or "")[:80]
        shown.append(f"{name} line {line} (data row {line - 1}){where}: {kind.lower()}: {message} in {text!r}")
    more = f"\n  ... and {len(rows) - MAX_REPORTED} more" if len(rows) > MAX_REPORTED else ""
    raise InputError(
        f"{name}: {len(rows)} line(s) are not well-formed CSV, nothing was loaded "
        "(a value containing the separator or a quote must be quoted, quotes inside doubled):\n  "
        + "\n  ".join(shown)
        + more
    )


def read_csv_text(
    path: str | Path,
    encoding: str | None = None,
    delimiter: str | None = None,
    expected: tuple[str, ...] = (),
) -> pl.DataFrame:
    """A CSV with every column as text (for callers that want a frame; the loads stay in DuckDB)."""
    conn = new_connection()
    try:
        columns, _rows = load_text(conn, path, "_text", encoding, delimiter, expected)
        if not columns:
            return pl.DataFrame()
        return conn.execute("SELECT * FROM _text ORDER BY rowid").pl()
    finally:
        conn.close()


INSIGHTS_TEXT, INSIGHTS_TYPED = "_insights_text", "_insights_typed"
AUDIENCES_TEXT, AUDIENCES_TYPED = "_audiences_text", "_audiences_typed"


INSIGHTS_EXPECTED = INSIGHTS_REQUIRED + INSIGHTS_OPTIONAL + KNOWN_HEADERS
SHEET_TABLE = "_insights_sheet"


def load_insights_text(
    conn: duckdb.DuckDBPyConnection, path: str, encoding: str | None, delimiter: str | None
) -> tuple[Layout | None, int]:
    """An insights file (CSV, or the first sheet of an .xlsx) into _insights_text through the layout
    its header calls for: our contract, or an Ads Manager export mapped onto it."""
    p = _existing(path)
    if workbook_kind(p) is None:

        def layout(header: list[str], raw: list[str]) -> Layout:
            return insights_layout(header, raw, str(p))

        return _load_csv(conn, p, INSIGHTS_TEXT, encoding, delimiter, INSIGHTS_EXPECTED, INSIGHT_NUMBERS, layout)
    try:
        sheet = read_first_sheet(conn, p, SHEET_TABLE)
        if sheet is None:
            return None, 0
        found = insights_layout(sheet.header, sheet.raw, str(p), workbook=True, context=sheet.context)
        columns = {"_row": "_sheet_row", **found.columns}
        _create_text_table(conn, INSIGHTS_TEXT, columns, sheet.source, [], INSIGHT_NUMBERS)
    finally:
        conn.execute(f"DROP TABLE IF EXISTS {SHEET_TABLE}")
    return found, _rows_view(conn, INSIGHTS_TEXT)


def stage_insights(conn: duckdb.DuckDBPyConnection, path: str, encoding: str | None, delimiter: str | None) -> None:
    """Load, check and type an insights file into the temporary table _insights_typed."""
    layout, rows = load_insights_text(conn, path, encoding, delimiter)
    columns = [c for c in layout.columns if c != "_row"] if layout else []
    require_columns(columns, rows, path, INSIGHTS_REQUIRED)
    assert layout is not None
    has_currency = "account_currency" in columns
    problems = Problems(path, layout.labels, layout.row_format, layout.notes)
    text = f"{INSIGHTS_TEXT}_rows"
    if layout.ads_manager:
        run_checks(conn, text, [totals_row_check(rows)], problems)
        problems.raise_if_any()
    run_checks(conn, text, insight_checks(has_currency) + list(layout.checks), problems)
    problems.raise_if_any()
    conn.execute(f"CREATE OR REPLACE TEMP TABLE {INSIGHTS_TYPED} AS {typed_insights_sql(text, has_currency)}")
    conn.execute(f"DROP VIEW {text}")
    conn.execute(f"DROP TABLE {INSIGHTS_TEXT}")
    insight_consistency(conn, INSIGHTS_TYPED, problems)
    problems.raise_if_any()


def stage_audiences(
    conn: duckdb.DuckDBPyConnection, path: str, encoding: str | None = None, delimiter: str | None = None
) -> pl.DataFrame:
    """Load, check and type an audiences file into _audiences_typed; also returned as a frame."""
    expected = AUDIENCES_REQUIRED + AUDIENCES_OPTIONAL
    if workbook_kind(_existing(path)):
        raise InputError(
            f"{path}: is an Excel workbook; the audiences file must be CSV (in Excel: Save as > CSV UTF-8)"
        )
    columns, rows = load_text(
        conn, path, AUDIENCES_TEXT, encoding, delimiter, expected, AUDIENCES_OPTIONAL, AUDIENCE_NUMBERS
    )
    require_columns(columns, rows, path, AUDIENCES_REQUIRED)
    problems = Problems(path)
    text = f"{AUDIENCES_TEXT}_rows"
    run_checks(conn, text, audience_checks(), problems)
    problems.raise_if_any()
    conn.execute(f"CREATE OR REPLACE TEMP TABLE {AUDIENCES_TYPED} AS {typed_audiences_sql(text)}")
    conn.execute(f"DROP VIEW {text}")
    conn.execute(f"DROP TABLE {AUDIENCES_TEXT}")
    audience_duplicates(conn, AUDIENCES_TYPED, problems)
    problems.raise_if_any()
    return conn.execute(f"SELECT * EXCLUDE (_row) FROM {AUDIENCES_TYPED} ORDER BY _row").pl()


def read_audiences_file(path: str, encoding: str | None = None, delimiter: str | None = None) -> pl.DataFrame:
    """An audiences CSV (also the Meta source's override mapping), validated and typed."""
    conn = new_connection()
    try:
        return stage_audiences(conn, str(path), encoding, delimiter)
    finally:
        conn.close()


def stage_files(conn: duckdb.DuckDBPyConnection, spec: SourceSpec) -> pl.DataFrame:
    """Both files of a CSV source checked into temporary tables; the audiences as a frame."""
    if not spec.insights_path or not spec.audiences_path:
        raise InputError("the csv source needs both an insights file and an audiences file")
    ins_name, aud_name = str(spec.insights_path), str(spec.audiences_path)
    stage_insights(conn, ins_name, spec.encoding, spec.delimiter)
    audiences = stage_audiences(conn, aud_name, spec.encoding, spec.delimiter)
    check_coverage(conn, INSIGHTS_TYPED, AUDIENCES_TYPED, ins_name, aud_name)
    return audiences


def read_files(spec: SourceSpec) -> tuple[pl.DataFrame, pl.DataFrame]:
    """All insight rows and audience rows of a pair of CSV files, validated and typed, as frames."""
    conn = new_connection()
    try:
        audiences = stage_files(conn, spec)
        insights = conn.execute(f"SELECT {', '.join(RAW_COLUMNS)} FROM {INSIGHTS_TYPED} ORDER BY _row").pl()
    finally:
        conn.close()
    return insights, audiences


def checked_files(spec: SourceSpec) -> tuple[date, list[str]]:
    """Check a pair of CSV files whole (as a load would) without a warehouse: their newest day and
    their accounts, sorted."""
    conn = new_connection()
    try:
        stage_files(conn, spec)
        newest = conn.execute(f"SELECT max(date) FROM {INSIGHTS_TYPED}").fetchone()[0]
        accounts = [
            r[0] for r in conn.execute(f"SELECT DISTINCT account_id FROM {INSIGHTS_TYPED} ORDER BY 1").fetchall()
        ]
        return newest, accounts
    finally:
        conn.close()


@dataclass(frozen=True)
class FileLoad:
    """A checked CSV load waiting in the connection's temporary table `relation`."""

    relation: str
    days: pl.DataFrame
    audiences: pl.DataFrame
    rows: int
    ignored_after: int


LOAD_RELATION = "_insights_load"


def extract_files(conn: duckdb.DuckDBPyConnection, spec: SourceSpec, as_of: date) -> FileLoad:
    """A file load replaces every day the file covers, up to the day before the decision date."""
    audiences = stage_files(conn, spec)
    total, kept, first, last = conn.execute(
        f"SELECT count(*), count_if(date < ?), min(date), max(date) FROM {INSIGHTS_TYPED}", [as_of]
    ).fetchone()
    if not kept:
        raise InputError(
            f"no insight rows before the decision date {as_of}: nothing to decide on "
            f"(the insights run from {first} to {last})"
        )
    conn.execute(
        f"CREATE OR REPLACE TEMP TABLE {LOAD_RELATION} AS "
        f"SELECT {', '.join(RAW_COLUMNS)} FROM {INSIGHTS_TYPED} WHERE date < ?",
        [as_of],
    )
    conn.execute(f"DROP TABLE {INSIGHTS_TYPED}")
    days = conn.execute(
        f"""SELECT account_id, unnest(generate_series(min(date), max(date), INTERVAL 1 DAY))::DATE AS date
            FROM {LOAD_RELATION} GROUP BY account_id ORDER BY account_id, date"""
    ).pl()
    return FileLoad(LOAD_RELATION, days, audiences, int(kept), int(total - kept))


def decision_rows(insights: pl.DataFrame, audiences: pl.DataFrame, as_of: date, full_history: bool) -> Extract:
    """Complete days before the decision date (for sources that arrive as frames), and a count of the rest."""
    kept = insights.filter(pl.col("date") < as_of)
    ignored = insights.height - kept.height
    if kept.height == 0:
        raise InputError(
            f"no insight rows before the decision date {as_of}: nothing to decide on "
            f"(the insights run from {insights['date'].min()} to {insights['date'].max()})"
        )
    days = day_grid(kept, pl.col("date").min(), pl.col("date").max())
    return Extract(kept, days, audiences, full_history, ignored)


def _newest_date_column(path: Path, spec: SourceSpec) -> date | None:
    """The newest date_start, read from that one column; None when the column needs the full checks
    (DuckDB refuses bad UTF-8 itself, and the full checks then name the byte)."""
    with utf8_copy(path, spec.encoding, check=False) as text_path:
        try:
            header = _header(text_path)
        except UnicodeDecodeError:
            return None
        delim = detect_delimiter(header, INSIGHTS_REQUIRED, spec.delimiter, str(path))
        conn = new_connection()
        try:
            newest, unparsed = conn.execute(
                "SELECT max(d), count(*) FILTER (WHERE d IS NULL) FROM (SELECT "
                "try_strptime(trim(date_start), '%Y-%m-%d')::DATE AS d FROM read_csv(?, header = true, "
                "all_varchar = true, delim = ?, quote = '\"', escape = '\"', normalize_names = true))",
                [str(text_path), delim],
            ).fetchone()
        except duckdb.Error:
            return None
        finally:
            conn.close()
    return newest if not unparsed else None


def newest_day(spec: SourceSpec) -> date:
    """The newest day of an insights file (the default decision date is the day after it).

    Fast path: one column. Anything odd falls through to the full validation and its exact message.
    """
    if not spec.insights_path:
        raise InputError("the csv source needs an insights file")
    path = Path(spec.insights_path)
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    newest = None if workbook_kind(path) else _newest_date_column(path, spec)
    if newest is None:
        insights, _ = read_files(spec)
        newest = insights["date"].max()
    return newest
