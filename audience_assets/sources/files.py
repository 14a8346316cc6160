"""CSV exports: read strictly (encoding, delimiter, quoting), validate, and load whole days.

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
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

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
from audience_assets.sources.validation import MAX_REPORTED, check_coverage, validate_audiences, validate_insights

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
def utf8_copy(path: Path, encoding: str | None) -> Iterator[Path]:
    """A UTF-8 version of the file: the file itself when it already is, else a temporary copy."""
    detected = detect_encoding(path, encoding)
    if detected in ("utf-8", "utf-8-sig"):
        _check_utf8(path)
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="audience-engine-csv-") as tmp:
        target = Path(tmp) / "utf8.csv"
        _transcode(path, detected, target)
        yield target


def _header(text_path: Path) -> str:
    with text_path.open(encoding="utf-8", newline="") as fh:
        return fh.readline().lstrip("\ufeff")


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


def _rejects(conn: duckdb.DuckDBPyConnection, name: str) -> None:
    rows = conn.execute(
        "SELECT line, error_type, column_name, error_message, csv_line FROM reject_errors ORDER BY line"
    ).fetchall()
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
    """Read a CSV with every column as text (types are checked by the validators)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: file not found" if not p.exists() else f"{p}: not a file")
    with p.open("rb") as fh:
        head = fh.read(4096)
    if not head.strip() or not head.strip(b"\x00\xff\xfe\xef\xbb\xbf \r\n\t"):
        return pl.DataFrame()
    with utf8_copy(p, encoding) as text_path:
        header = _header(text_path)
        delim = detect_delimiter(header, expected, delimiter, str(p))
        names = _normalised(_split(header, delim))
        twice = sorted({n for i, n in enumerate(names) if n in names[:i]})
        if twice:
            raise InputError(f"{p}: column(s) {', '.join(twice)} appear more than once in the header")
        if not names or names == [""]:
            return pl.DataFrame()
        columns = {f"c{i}": "VARCHAR" for i in range(len(names))}
        conn = duckdb.connect()
        try:
            frame = conn.execute(
                "SELECT * FROM read_csv(?, header = true, auto_detect = false, columns = ?, delim = ?, "
                "quote = '\"', escape = '\"', strict_mode = true, store_rejects = true, "
                "max_line_size = 1048576)",
                [str(text_path), columns, delim],
            ).pl()
            _rejects(conn, str(p))
        except duckdb.Error as err:
            raise InputError(f"{p}: not a readable CSV file ({str(err).splitlines()[0]})") from None
        finally:
            conn.close()
    return frame.rename(dict(zip(frame.columns, names, strict=True)))


def read_files(spec: SourceSpec) -> tuple[pl.DataFrame, pl.DataFrame]:
    """All insight rows and audience rows of a pair of CSV files, validated and typed."""
    if not spec.insights_path or not spec.audiences_path:
        raise InputError("the csv source needs both an insights file and an audiences file")
    ins_name, aud_name = str(spec.insights_path), str(spec.audiences_path)
    raw = read_csv_text(spec.insights_path, spec.encoding, spec.delimiter, INSIGHTS_REQUIRED + INSIGHTS_OPTIONAL)
    insights = validate_insights(raw, ins_name)
    audiences = read_audiences_file(spec.audiences_path, spec.encoding, spec.delimiter)
    check_coverage(insights, audiences, ins_name, aud_name)
    return insights.select(RAW_COLUMNS), audiences


def read_audiences_file(path: str, encoding: str | None = None, delimiter: str | None = None) -> pl.DataFrame:
    """An audiences CSV (also the Meta source's override mapping), validated and typed."""
    raw = read_csv_text(path, encoding, delimiter, AUDIENCES_REQUIRED + AUDIENCES_OPTIONAL)
    return validate_audiences(raw, str(path))


def extract_files(spec: SourceSpec, as_of: date) -> Extract:
    """A file load replaces every day the file covers, up to the day before the decision date."""
    insights, audiences = read_files(spec)
    return decision_rows(insights, audiences, as_of, full_history=True)


def decision_rows(insights: pl.DataFrame, audiences: pl.DataFrame, as_of: date, full_history: bool) -> Extract:
    """Complete days before the decision date, and a count of the rows left out."""
    kept = insights.filter(pl.col("date") < as_of)
    ignored = insights.height - kept.height
    if kept.height == 0:
        first = insights["date"].min()
        raise InputError(
            f"no insight rows before the decision date {as_of}: nothing to decide on "
            f"(the insights run from {first} to {insights['date'].max()})"
        )
    days = day_grid(kept, pl.col("date").min(), pl.col("date").max())
    return Extract(kept, days, audiences, full_history, ignored)


def _newest_date_column(path: Path, spec: SourceSpec) -> date | None:
    """The newest date_start, read from that one column; None when the column needs the full checks."""
    with utf8_copy(path, spec.encoding) as text_path:
        delim = detect_delimiter(_header(text_path), INSIGHTS_REQUIRED, spec.delimiter, str(path))
        conn = duckdb.connect()
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
    newest = _newest_date_column(path, spec)
    if newest is None:
        insights, _ = read_files(spec)
        newest = insights["date"].max()
    return newest
