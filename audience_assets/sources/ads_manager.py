"""How an insights file's columns become the contract's: our CSV contract as it is, or a Meta Ads
Manager export (ad-set level, breakdown by day, English headers) through one mapping table; and
the .xlsx workbooks Ads Manager writes by default, read with DuckDB's excel extension.

The header names, and what they count, come from these public sources (read 2026-11):
- Meta for Developers, "Measure Campaign Performance on Marketing Message API for Messenger"
  (developers.facebook.com/documentation/business-messaging/messenger-platform/
  marketing-messages-on-messenger/grow-marketing-messages-audience): the labels "Website
  Purchases" and "Website Purchases Conversion Value" are the action type
  offsite_conversion.fb_pixel_purchase (pixel or Conversions API).
- Meta's ads glossary (mirrored at brandee.edu.vn/glossary/447834205249495-facebook-en):
  "Account ID" ("the ID number of your ad account") and "Account currency".
- The Marketing API insights fields as listed in middas-0706/js-data-connectors (OWOX's
  connectors), `.../FacebookMarketing/MarketingAPIReference/ad-account-insights-fields.js`:
  account_id, adset_id, campaign_id are numeric strings to keep as text in a spreadsheet.
- fivetran/dbt_facebook_ads, `models/intermediate/int_facebook_ads__conversions.sql`: purchases
  are read by chosen action type, never by adding up the overlapping ones.
- Jon Loomer's glossary (jonloomer.com/glossary-cat/facebook-ads/page/10/): "Clicks (All)"
  includes every click (link clicks, media, reactions, comments, shares), so "Link clicks" is
  the click we want and "Clicks (all)" only a fallback.
- Open-source Ads Manager export readers found with the code search (their repositories were not
  named by the index): a Python ingester of Meta exports (UTF-16 tab-separated or UTF-8 comma;
  "Ad set ID", "Campaign ID", "Reporting starts", "Reporting ends", "Amount spent (EGP)", "Link
  clicks", "Reach", "Frequency"); a TypeScript column spec of Ads Reporting exports ("Day",
  "Campaign ID", "Ad set ID", "Ad set name", "Amount spent ({ACCOUNT_CURRENCY})", "Link clicks",
  "Clicks (all)", "Purchases", "Purchases conversion value", "Website purchases", "Website
  purchases conversion value", "Results", "Cost per result"); importers reading "Amount spent
  (INR)" / "(USD)" / "(EUR)" that skip a "Total"/"Totals" row and read "-" as an empty cell.
"Meta pixel purchases" (and its conversion value) is in the table on request: no source above
shows it, and a file without it loses nothing.
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from xml.etree import ElementTree

import duckdb

from audience_assets.extensions import ExtensionError, extension_path, load_extension
from audience_assets.sources import INSIGHTS_REQUIRED, InputError
from audience_assets.sources.validation import DEFAULT_CURRENCY, Check, as_date, blank, lit, q

CURRENCY = "<currency>"  # in a header: a 3-letter code, e.g. "Amount spent (USD)"


@dataclass(frozen=True)
class Mapped:
    """One contract column and the Ads Manager headers that fill it, in order of preference.

    `rule="first"`: the first header present wins (the others are fallbacks); `rule="one"`: two
    headers present is an error naming both, since either could be meant."""

    target: str
    headers: tuple[str, ...]
    rule: Literal["first", "one"] = "one"
    required: bool = True


# The mapping table (README, "Ads Manager exports"). Headers are matched case-insensitively.
ADS_MANAGER_COLUMNS: tuple[Mapped, ...] = (
    Mapped("date_start", ("Day", "Reporting starts"), "first"),
    Mapped("account_id", ("Account ID",)),
    Mapped("campaign_id", ("Campaign ID",)),
    Mapped("campaign_name", ("Campaign name",)),
    Mapped("adset_id", ("Ad set ID",)),
    Mapped("adset_name", ("Ad set name",)),
    Mapped("spend", (f"Amount spent ({CURRENCY})", "Amount spent")),
    Mapped("impressions", ("Impressions",)),
    Mapped("clicks", ("Link clicks", "Clicks (all)"), "first"),
    Mapped("account_currency", ("Account currency",), required=False),
)
# Purchases and their value are read as a pair of the same action type: Meta counts the same
# purchase under several of them, so two pairs in one file is ambiguous, never summed.
PURCHASE_PAIRS: tuple[tuple[str, str], ...] = (
    ("Purchases", "Purchases conversion value"),
    ("Website purchases", "Website purchases conversion value"),
    ("Meta pixel purchases", "Meta pixel purchases conversion value"),
)
PERIOD_START, PERIOD_END = "Reporting starts", "Reporting ends"
METRICS = ("spend", "impressions", "clicks", "purchases", "purchase_value")
# What Ads Manager writes in a metric cell with nothing to report: zero for our purposes.
EMPTY_METRIC = ("", "-", "–", "—")
ADD_COLUMNS_HINT = "in Ads Manager: Columns > Customize columns, tick them, and export again"
# Excel's serial day 0; 2958465 is 9999-12-31 (a cell stored as a date arrives as its serial).
EXCEL_EPOCH, EXCEL_MAX_SERIAL = "1899-12-30", 2958465
EXTENSION_PACKAGE = "duckdb_extension_excel"
XLSX_MAGIC, XLS_MAGIC = b"PK\x03\x04", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


def norm(header: str) -> str:
    """A header as matched: trimmed, inner spaces collapsed, lower case."""
    return " ".join(header.replace("\ufeff", "").split()).lower()


def shown(header: str) -> str:
    """A header as the file wrote it, for messages (without a byte-order mark)."""
    return header.replace("\ufeff", "").strip()


def _spend_currency(header: str) -> tuple[bool, str | None]:
    """(is a spend header, its currency code if it names one)."""
    m = re.fullmatch(r"amount spent(?: \(([a-z]{3})\))?", norm(header))
    return (m is not None, m.group(1).upper() if m and m.group(1) else None)


def _matches(pattern: str, header: str) -> bool:
    if CURRENCY in pattern:
        is_spend, code = _spend_currency(header)
        return is_spend and code is not None
    return norm(header) == norm(pattern)


KNOWN_HEADERS: tuple[str, ...] = (
    tuple(norm(h) for m in ADS_MANAGER_COLUMNS for h in m.headers if CURRENCY not in h)
    + tuple(norm(h) for pair in PURCHASE_PAIRS for h in pair)
    + (norm(PERIOD_END),)
)
# Headers only an Ads Manager export has (Impressions and Purchases are also contract names).
MARKERS = frozenset(KNOWN_HEADERS) - set(INSIGHTS_REQUIRED)


@dataclass(frozen=True)
class Layout:
    """How a file's columns become the text table's: one SQL expression (over the file's raw
    columns) per column, the file's own header per column for messages, and the checks only this
    kind of file needs."""

    columns: dict[str, str]
    kind: str = "csv"
    labels: dict[str, str] = field(default_factory=dict)
    checks: tuple[Check, ...] = ()
    notes: tuple[str, ...] = ()
    row_format: str = "row {row}"

    @property
    def ads_manager(self) -> bool:
        return self.kind == "Ads Manager export"


def _date_expr(raw: str, workbook: bool) -> str:
    """A date cell as text; in a workbook a cell stored as a date arrives as Excel's serial day."""
    if not workbook:
        return raw
    serial = f"TRY_CAST(trim({raw}) AS DOUBLE)"
    return (
        f"(CASE WHEN regexp_matches(trim({raw}), '^[0-9]{{1,7}}(\\.[0-9]+)?$') AND {serial} BETWEEN 1 AND "
        f"{EXCEL_MAX_SERIAL} THEN strftime(DATE '{EXCEL_EPOCH}' + CAST(floor({serial}) AS INTEGER), '%Y-%m-%d') "
        f"ELSE {raw} END)"
    )


def _zero_if_empty(raw: str) -> str:
    empty = ", ".join(lit(v) for v in EMPTY_METRIC)
    return f"(CASE WHEN {raw} IS NULL OR trim({raw}) IN ({empty}) THEN '0' ELSE {raw} END)"


def contract_layout(
    header: list[str], raw: list[str], name: str, workbook: bool = False, optional: tuple[str, ...] = ()
) -> Layout:
    """Our own contract: every column under its own (normalised) name; absent optional ones empty."""
    names = [h.strip().lstrip("\ufeff").strip().lower() for h in header]
    twice = sorted({n for i, n in enumerate(names) if n in names[:i]})
    if twice:
        raise InputError(f"{name}: column(s) {', '.join(twice)} appear more than once in the header")
    columns = {n: (_date_expr(r, workbook) if n == "date_start" else r) for n, r in zip(names, raw, strict=True)}
    columns |= {c: "NULL::VARCHAR" for c in optional if c not in columns}
    return Layout(columns, row_format="row {row} (sheet row {line})" if workbook else "row {row}")


def insights_layout(header: list[str], raw: list[str], name: str, workbook: bool = False, context: str = "") -> Layout:
    """The contract's layout when the header is ours, else the Ads Manager mapping when the header
    is Ads Manager's; a workbook whose (first) sheet is neither is an error naming the sheet."""
    found = {norm(h) for h in header}
    ours = set(INSIGHTS_REQUIRED) <= found
    theirs = bool(found & MARKERS) or any(_spend_currency(h)[0] for h in header)
    if ours or not theirs:
        if workbook and not ours:
            raise InputError(
                f"{name}: {context or 'the sheet'} has no insights header: expected our columns "
                f"({', '.join(INSIGHTS_REQUIRED)}) or an Ads Manager export's (Day, Account ID, Campaign ID, "
                f"Ad set ID, Amount spent (INR), Impressions, Link clicks, Purchases, ...); found "
                f"{', '.join(shown(h) for h in header if h.strip()) or 'no header at all'}"
            )
        return contract_layout(header, raw, name, workbook)
    return ads_manager_layout(header, raw, name, workbook)


def _hits(spec: Mapped, header: list[str]) -> list[tuple[str, list[int]]]:
    """Per header of the mapping, in order of preference: where the file has it."""
    out = []
    for pattern in spec.headers:
        where = [i for i, h in enumerate(header) if _matches(pattern, h)]
        if where:
            out.append((pattern, where))
    return out


def _pick(spec: Mapped, header: list[str], name: str) -> int | None:
    """The file's column for one contract column, or None; two candidates where one is meant is an error."""
    hits = _hits(spec, header)
    if not hits:
        return None
    chosen = hits[0][1] if spec.rule == "first" else [i for _, where in hits for i in where]
    if len(chosen) > 1:
        names = " and ".join(repr(shown(header[i])) for i in chosen)
        same = len({norm(header[i]) for i in chosen}) == 1
        raise InputError(
            f"{name}: {names} both map to {spec.target}"
            + (" (the column appears twice)" if same else "")
            + ": delete all but one of these columns and run again"
        )
    return chosen[0]


def _purchase_pair(header: list[str], name: str) -> tuple[int, int] | str:
    """The (count, value) columns of the one purchase action type in the file, or what is missing."""
    index = {norm(h): i for i, h in enumerate(header)}
    present = [(count, value) for count, value in PURCHASE_PAIRS if norm(count) in index]
    if len(present) > 1:
        shown = " and ".join(repr(count) for count, _ in present)
        raise InputError(
            f"{name}: both {shown} are purchase counts, and Meta counts the same purchase under each "
            "(they are never added up): delete one of them, with its conversion value column, and run again. "
            "'Purchases' counts every purchase attributed to the ad (website, app, on Meta); 'Website purchases' "
            "only those seen by the Meta pixel or the Conversions API."
        )
    if not present:
        return f"a purchase count ({' or '.join(repr(c) for c, _ in PURCHASE_PAIRS)})"
    count, value = present[0]
    if norm(value) not in index:
        others = [v for _, v in PURCHASE_PAIRS if norm(v) in index]
        instead = f" (found {', '.join(repr(v) for v in others)}, the value of other purchases)" if others else ""
        raise InputError(
            f"{name}: has {count!r} but not {value!r}{instead}: the count and the value must be of the same "
            f"purchases; add {value!r} ({ADD_COLUMNS_HINT})"
        )
    return index[norm(count)], index[norm(value)]


def ads_manager_layout(header: list[str], raw: list[str], name: str, workbook: bool = False) -> Layout:
    """An Ads Manager export through the mapping table: ids and names as text, empty metrics as 0,
    the currency from the spend header, and the checks that each row is one day."""
    picked = {spec.target: _pick(spec, header, name) for spec in ADS_MANAGER_COLUMNS}
    pair = _purchase_pair(header, name)
    missing = [
        " or ".join(repr(h.replace(CURRENCY, "INR")) for h in spec.headers)
        for spec in ADS_MANAGER_COLUMNS
        if spec.required and picked[spec.target] is None
    ]
    missing += [pair] if isinstance(pair, str) else []
    if missing:
        raise InputError(
            f"{name} looks like an Ads Manager export but lacks {', '.join(missing)}: add "
            f"{'it' if len(missing) == 1 else 'them'} ({ADD_COLUMNS_HINT}; ad-set level, Breakdown > By time > Day)"
        )
    assert not isinstance(pair, str)
    found: dict[str, int] = {t: i for t, i in picked.items() if i is not None}
    found |= {"purchases": pair[0], "purchase_value": pair[1]}
    columns = {
        t: _zero_if_empty(raw[i]) if t in METRICS else _date_expr(raw[i], workbook) if t == "date_start" else raw[i]
        for t, i in found.items()
    }
    labels = {t: shown(header[i]) for t, i in found.items()}
    checks, notes = _currency(header, raw, found, columns, labels)
    checks += _daily_checks(header, raw, workbook, columns, labels)
    where = "sheet row" if workbook else "line"
    return Layout(columns, "Ads Manager export", labels, tuple(checks), notes, f"row {{row}} ({where} {{line}})")


def _currency(
    header: list[str], raw: list[str], found: dict[str, int], columns: dict[str, str], labels: dict[str, str]
) -> tuple[list[Check], tuple[str, ...]]:
    """The spend header's currency code is the account's; without one, an 'Account currency'
    column, else the contract's default (said in every message about the file)."""
    spend = shown(header[found["spend"]])
    code = _spend_currency(spend)[1]
    column = found.get("account_currency")
    if code is None:
        if column is not None:
            return [], ()
        return [], (
            f"currency: {spend!r} names none, so {DEFAULT_CURRENCY} is assumed (the CSV contract's default); "
            f"export with the currency in the header (e.g. 'Amount spent (USD)') or add an 'Account currency' column",
        )
    columns["account_currency"] = lit(code)
    labels["account_currency"] = spend
    if column is None:
        return [], ()
    columns["_account_currency_column"] = raw[column]
    labels["_account_currency_column"] = shown(header[column])
    differs = f"NOT {blank('_account_currency_column')} AND upper(trim(_account_currency_column)) <> {lit(code)}"
    return [Check("_account_currency_column", differs, f"differs from {code} in the header {spend!r}")], ()


def _daily_checks(
    header: list[str], raw: list[str], workbook: bool, columns: dict[str, str], labels: dict[str, str]
) -> list[Check]:
    """One row per ad set per day: a row whose Reporting starts..Reporting ends spans several days
    is a total over a period, not a day (with a Day column, the Day must lie inside the period)."""
    index = {norm(h): i for i, h in enumerate(header)}
    start, end = index.get(norm(PERIOD_START)), index.get(norm(PERIOD_END))
    if start is None or end is None:
        return []
    columns["_period_start"] = _date_expr(raw[start], workbook)
    columns["_period_end"] = _date_expr(raw[end], workbook)
    columns["_period"] = f"concat_ws('..', {columns['_period_start']}, {columns['_period_end']})"
    labels["_period"] = f"{PERIOD_START}..{PERIOD_END}"
    both = f"{as_date('_period_start')} IS NOT NULL AND {as_date('_period_end')} IS NOT NULL"
    if norm(labels["date_start"]) != "day":
        return [
            Check(
                "_period",
                f"{both} AND {as_date('_period_start')} <> {as_date('_period_end')}",
                "is a period of several days, not one day: export again with Breakdown > By time > Day "
                "(one row per ad set per day)",
            )
        ]
    return [
        Check(
            "date_start",
            f"{both} AND {as_date('date_start')} NOT BETWEEN {as_date('_period_start')} AND {as_date('_period_end')}",
            "lies outside the row's Reporting starts..Reporting ends: the row's columns disagree; export again",
        )
    ]


def totals_row_check(last_row: int) -> Check:
    """Ads Manager's summary row (first or last, no campaign or ad set id) is refused, not skipped:
    a load never drops a row without saying so, and a total loaded as an ad set would double spend."""
    return Check(
        "adset_id",
        f"{blank('adset_id')} AND {blank('campaign_id')} AND _row IN (1, {int(last_row)})",
        "and no Campaign ID: this is Ads Manager's summary (totals) row, not an ad set: delete that row, "
        "or export again without 'Include summary row'",
    )


# --- .xlsx workbooks, read by DuckDB's excel extension from its PyPI package (never INSTALLed) ---


def workbook_kind(path: Path) -> Literal["xlsx"] | None:
    """'xlsx' for an Excel workbook (by its bytes, or its name), None for a text file."""
    with path.open("rb") as fh:
        head = fh.read(8)
    if head.startswith(XLS_MAGIC):
        raise InputError(
            f"{path}: is an old binary Excel .xls workbook, which cannot be read: "
            "save it as .xlsx (Excel Workbook) or CSV UTF-8, or export it again from Ads Manager"
        )
    return "xlsx" if head.startswith(XLSX_MAGIC) or path.suffix.lower() == ".xlsx" else None


def excel_extension_path() -> Path:
    """The excel extension shipped in the duckdb-extension-excel package, for this DuckDB version."""
    try:
        return extension_path("excel", EXTENSION_PACKAGE)
    except ExtensionError as err:
        raise InputError(f"cannot read .xlsx: {err} (or export the report as CSV)") from None


def load_excel(conn: duckdb.DuckDBPyConnection) -> None:
    """LOAD the packaged extension into this connection (no network: it is never INSTALLed)."""
    try:
        load_extension(conn, "excel", EXTENSION_PACKAGE)
    except ExtensionError as err:
        raise InputError(f"{err}, or export the report as CSV") from None


def sheet_names(path: Path) -> list[str]:
    """The workbook's sheets in tab order (DuckDB reads the first)."""
    try:
        with zipfile.ZipFile(path) as book:
            root = ElementTree.fromstring(book.read("xl/workbook.xml"))
    except (zipfile.BadZipFile, KeyError, ElementTree.ParseError) as err:
        raise InputError(f"{path}: not a readable .xlsx workbook ({err}); save it again as .xlsx or CSV") from None
    return [s.get("name", "") for s in root.iter() if s.tag.endswith("}sheet") or s.tag == "sheet"]


@dataclass(frozen=True)
class Sheet:
    """The first sheet of a workbook in a temporary table: its header row, its raw columns, and
    the SELECT of its data rows (with `_row`: 1 = the row under the header)."""

    header: list[str]
    raw: list[str]
    source: str
    context: str


def read_first_sheet(conn: duckdb.DuckDBPyConnection, path: Path, table: str) -> Sheet | None:
    """Every cell of the first sheet as text (None for a sheet without rows); trailing empty rows dropped."""
    load_excel(conn)
    sheets = sheet_names(path)
    named = f"the first sheet {sheets[0]!r}" if sheets else "the first sheet"
    if len(sheets) > 1:
        named += f" of {len(sheets)} ({', '.join(repr(s) for s in sheets)}; only the first is read)"
    try:
        conn.execute(
            f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT * FROM "
            "read_xlsx(?, header = false, all_varchar = true, stop_at_empty = false)",
            [str(path)],
        )
    except duckdb.Error as err:
        if "No rows found" in str(err):
            raise InputError(
                f"{path}: {named} is empty: expected a header row, then one row per ad set per day"
            ) from None
        raise InputError(f"{path}: not a readable .xlsx workbook ({str(err).splitlines()[0]})") from None
    raw = [r[0] for r in conn.execute(f"DESCRIBE {table}").fetchall()]
    first = conn.execute(f"SELECT * FROM {table} WHERE rowid = 0").fetchone()
    if first is None:
        return None
    header = ["" if v is None else str(v) for v in first]
    header = [h if h.strip() else f"column {i + 1}" for i, h in enumerate(header)]
    empty = " AND ".join(f"coalesce(trim({q(c)}), '') = ''" for c in raw)
    last = conn.execute(f"SELECT coalesce(max(rowid), 0) FROM {table} WHERE NOT ({empty})").fetchone()[0]
    source = f"(SELECT rowid AS _sheet_row, * FROM {table} WHERE rowid BETWEEN 1 AND {int(last)})"
    return Sheet(header, raw, source, named)
