"""Input contracts for insights and audiences files, checked in DuckDB over whole columns.

A file is first loaded as text (every column VARCHAR, plus `_row`: 1 = the first row after the
header). Every check is a SQL condition; one scan counts them all, and only the checks that fail
are asked for their first rows. Every problem is reported with the file, the data row, the column
and what was expected; nothing is written until a whole input passes.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from audience_assets.engine.config import AUDIENCE_TYPES
from audience_assets.sources import InputError

SOURCE_QUALITIES = ("PURCHASERS", "ATC", "VC")
MAX_MONEY = 1e12  # beyond any real ad account; catches unit mix-ups and overflow
MAX_REPORTED = 12
DEFAULT_CURRENCY = "INR"
# Currency signs and codes a spreadsheet may leave in a money cell (RE2 syntax).
CURRENCY_MARK = r"[₹$€£¥]|\b(INR|USD|EUR|GBP|JPY|Rs\.?)\b"
THOUSANDS = r"^-?\d{1,3}(,\d{3})+(\.\d+)?$"
DECIMAL_COMMA = r"^-?\d+,\d{1,2}$"
# An id a spreadsheet stored as a number: scientific notation, or a decimal point (RE2 syntax).
SPREADSHEET_NUMBER = r"^[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+$|^\d+\.\d+$"


def q(column: str) -> str:
    """A quoted SQL identifier."""
    return '"' + column.replace('"', '""') + '"'


def lit(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def blank(col: str) -> str:
    return f"({q(col)} IS NULL OR trim({q(col)}) = '')"


def number(col: str) -> str:
    """The cell as a DOUBLE, NULL when it is not a plain number (DuckDB alone would accept 1_000)."""
    return f"(CASE WHEN contains({q(col)}, '_') THEN NULL ELSE TRY_CAST(trim({q(col)}) AS DOUBLE) END)"


def parsed_number(col: str) -> str:
    """The cell as parsed once when the file was loaded (`_n_<col>`)."""
    return q("_n_" + col)


def clean_number(col: str) -> str:
    """A validated number; -0 becomes 0 (a signed zero would print as -0.0 downstream)."""
    value = parsed_number(col)
    return f"(CASE WHEN {value} = 0 THEN 0.0 ELSE {value} END)"


def as_date(col: str) -> str:
    return f"TRY_STRPTIME(trim({q(col)}), '%Y-%m-%d')::DATE"


def as_timestamp(col: str) -> str:
    """ISO 8601 with or without an offset (naive = UTC), as naive UTC. The session time zone is UTC."""
    return f"(TRY_CAST(trim({q(col)}) AS TIMESTAMPTZ) AT TIME ZONE 'UTC')::TIMESTAMP"


@dataclass(frozen=True)
class Check:
    """Rows where `bad` holds are a problem in `column`, described by `expected`."""

    column: str
    bad: str
    expected: str


class Problems:
    """Every problem of one file, the first MAX_REPORTED shown.

    `labels` name a column as the file does (an Ads Manager header), `row_format` says where a
    data row is (`{row}`, `{line}` = row + 1: the spreadsheet row or CSV line), `notes` follow the list."""

    def __init__(
        self,
        name: str,
        labels: dict[str, str] | None = None,
        row_format: str = "row {row}",
        notes: tuple[str, ...] = (),
    ) -> None:
        self.name = name
        self.labels = labels or {}
        self.row_format = row_format
        self.notes = notes
        self.lines: list[str] = []
        self.count = 0

    def where(self, row: int) -> str:
        return self.row_format.format(row=row, line=row + 1)

    def column(self, column: str) -> str:
        label = self.labels.get(column)
        return f'"{label}"' if label else column

    def add(self, line: str, count: int = 1) -> None:
        self.count += count
        self.lines.append(line)

    def raise_if_any(self) -> None:
        if not self.lines:
            return
        shown = self.lines[:MAX_REPORTED]
        more = self.count - len(shown)
        tail = f"\n  ... and {more} more problem(s)" if more > 0 else ""
        tail += "".join(f"\n  note: {note}" for note in self.notes)
        raise InputError(f"{self.name}: {self.count} problem(s), nothing was loaded:\n  " + "\n  ".join(shown) + tail)


def run_checks(conn: duckdb.DuckDBPyConnection, table: str, checks: list[Check], problems: Problems) -> None:
    """Count every check in one scan; list the first rows of those that fail."""
    if not checks:
        return
    source = table
    counts = conn.execute(
        "SELECT " + ", ".join(f"count_if(coalesce({c.bad}, false))" for c in checks) + f" FROM {source}"
    ).fetchone()
    for check, n in zip(checks, counts, strict=True):
        if not n:
            continue
        problems.count += n
        hits = conn.execute(
            f"SELECT _row, CAST({q(check.column)} AS VARCHAR) FROM {source} "
            f"WHERE coalesce({check.bad}, false) ORDER BY _row LIMIT {MAX_REPORTED}"
        ).fetchall()
        for row, value in hits:
            shown = "(empty)" if value is None or not str(value).strip() else repr(str(value)[:60])
            problems.lines.append(
                f"{problems.name} {problems.where(row)}, column {problems.column(check.column)}: {shown} {check.expected}"
            )


def number_checks(col: str, *, integer: bool = False, optional: bool = False) -> list[Check]:
    """One message per bad cell, naming the first thing wrong with it (never two for one cell).

    The conditions read `_n_<col>` (parsed once at load); the patterns only run on cells that did not parse."""
    text = f"trim({q(col)})"
    value = q("_n_" + col)
    present = f"NOT {blank(col)}"
    unparsed = f"({present} AND {value} IS NULL)"
    finite = f"({present} AND isfinite({value}))"

    def matches(pattern: str) -> str:
        return f"(CASE WHEN {unparsed} THEN regexp_matches({text}, {lit(pattern)}) ELSE false END)"

    currency, thousands, decimal_comma = matches(CURRENCY_MARK), matches(THOUSANDS), matches(DECIMAL_COMMA)
    kind = "a whole number" if integer else "a number"
    checks = [] if optional else [Check(col, blank(col), f"is missing: expected {kind} >= 0")]
    checks += [
        Check(
            col,
            f"{unparsed} AND {currency}",
            "has a currency sign: write the amount only, in the account's currency units (e.g. 1234.50)",
        ),
        Check(
            col,
            f"{unparsed} AND NOT {currency} AND {thousands}",
            "has a thousands separator, which is not allowed: write 1234.50",
        ),
        Check(col, f"{unparsed} AND {decimal_comma}", "has a decimal comma, which is not allowed: write 1234.50"),
        Check(col, f"{unparsed} AND NOT {currency} AND NOT {thousands} AND NOT {decimal_comma}", f"is not {kind}"),
        Check(col, f"{present} AND isnan({value})", f"is not {kind} (NaN)"),
        Check(col, f"{present} AND isinf({value})", "is not a finite number"),
        Check(col, f"{finite} AND {value} < 0", "is negative: expected 0 or more"),
        Check(col, f"{finite} AND {value} > {MAX_MONEY}", f"is implausibly large (over {MAX_MONEY:.0e})"),
    ]
    if integer:
        checks.append(
            Check(
                col,
                f"{finite} AND {value} >= 0 AND {value} <= {MAX_MONEY} AND {value} <> floor({value})",
                "is not a whole number",
            )
        )
    return checks


def require_columns(columns: list[str], rows: int, name: str, required: tuple[str, ...]) -> None:
    if not columns:
        raise InputError(f"{name} is empty: expected a header row with columns {', '.join(required)}")
    missing = [c for c in required if c not in columns]
    if missing:
        raise InputError(
            f"{name} is missing column(s) {', '.join(missing)}; "
            f"expected {', '.join(required)} (found {', '.join(columns)})"
        )
    if rows == 0:
        raise InputError(f"{name} has a header but no data rows")


def id_checks(col: str) -> list[Check]:
    """An id is text: missing, or turned into a number by a spreadsheet (1.20215E+14, 120215000014915.0)."""
    return [
        Check(col, blank(col), "is missing: expected an id"),
        Check(
            col,
            # The pattern runs only on the rare cell with a '.', 'e' or 'E' in it.
            f"(CASE WHEN contains({q(col)}, '.') OR contains(lower({q(col)}), 'e') "
            f"THEN regexp_matches(trim({q(col)}), {lit(SPREADSHEET_NUMBER)}) ELSE false END)",
            "is a number, not an id: this id was converted to a number by a spreadsheet: export again as text "
            "(a number keeps 15 significant digits, so a longer id has changed; in Excel, format the column as "
            "Text before saving)",
        ),
    ]


def insight_checks(has_currency: bool) -> list[Check]:
    checks = [c for col in ("account_id", "campaign_id", "adset_id") for c in id_checks(col)]
    checks += [
        Check("date_start", blank("date_start"), "is missing: expected a date YYYY-MM-DD"),
        Check(
            "date_start",
            f"NOT {blank('date_start')} AND {as_date('date_start')} IS NULL",
            "is not a date (expected YYYY-MM-DD)",
        ),
    ]
    for col in ("spend", "purchases", "purchase_value"):
        checks += number_checks(col)
    for col in ("impressions", "clicks"):
        checks += number_checks(col, integer=True)
    if has_currency:
        checks.append(
            Check(
                "account_currency",
                f"NOT {blank('account_currency')} AND NOT regexp_matches(trim(account_currency), '^[A-Za-z]{{3}}$')",
                "is not a 3-letter currency code (e.g. INR)",
            )
        )
    return checks


def typed_insights_sql(text_table: str, has_currency: bool) -> str:
    """The SELECT that types a validated insights text table into the raw shape (plus _row)."""
    currency = "upper(nullif(trim(account_currency), ''))" if has_currency else "NULL"
    return f"""
        SELECT _row,
               trim(account_id) AS account_id,
               trim(campaign_id) AS campaign_id,
               coalesce(campaign_name, '') AS campaign_name,
               trim(adset_id) AS adset_id,
               coalesce(adset_name, '') AS adset_name,
               {as_date("date_start")} AS date,
               {clean_number("spend")} AS spend,
               CAST({parsed_number("impressions")} AS BIGINT) AS impressions,
               CAST({parsed_number("clicks")} AS BIGINT) AS clicks,
               {clean_number("purchases")} AS purchases,
               {clean_number("purchase_value")} AS purchase_value,
               coalesce({currency}, '{DEFAULT_CURRENCY}') AS currency,
               {currency} IS NOT NULL AS _currency_given
        FROM {text_table}"""


def insight_consistency(conn: duckdb.DuckDBPyConnection, typed: str, problems: Problems) -> None:
    """One row per ad set per day, one account per ad set, one currency per account."""
    name = problems.name
    dupes = conn.execute(
        f"""SELECT account_id, adset_id, date, list(_row ORDER BY _row) AS rows FROM {typed}
            GROUP BY ALL HAVING count(*) > 1 ORDER BY rows[1]"""
    ).fetchall()
    for account, adset, day, rows in dupes[:MAX_REPORTED]:
        problems.add(
            f"{name} rows {', '.join(map(str, rows))}: duplicate rows for adset_id {adset!r} on {day} "
            f"(account {account!r}); expected one row per ad set per day"
        )
    problems.count += max(len(dupes) - MAX_REPORTED, 0)
    accounts = conn.execute(
        f"""SELECT adset_id, list(DISTINCT account_id ORDER BY account_id) FROM {typed}
            GROUP BY adset_id HAVING count(DISTINCT account_id) > 1 ORDER BY adset_id LIMIT {MAX_REPORTED}"""
    ).fetchall()
    for adset, accts in accounts:
        problems.add(f"{name}: adset_id {adset!r} appears under several accounts {accts}; expected one")
    currencies = conn.execute(
        f"""SELECT account_id, list(DISTINCT currency ORDER BY currency) FROM {typed} WHERE _currency_given
            GROUP BY account_id HAVING count(DISTINCT currency) > 1 ORDER BY account_id"""
    ).fetchall()
    for account, curs in currencies:
        problems.add(f"{name}: account {account!r} has several currencies {curs}; expected one")


INSIGHT_NUMBERS = ["spend", "purchases", "purchase_value", "impressions", "clicks"]
AUDIENCE_NUMBERS = ["lookalike_pct", "daily_budget"]


def audience_checks() -> list[Check]:
    kind = "upper(trim(audience_type))"
    types = ", ".join(lit(t) for t in AUDIENCE_TYPES)
    qualities = ", ".join(lit(t) for t in SOURCE_QUALITIES)
    pct = q("_n_lookalike_pct")
    has_pct = f"NOT {blank('lookalike_pct')}"
    return [
        *id_checks("adset_id"),
        Check(
            "audience_type",
            f"{blank('audience_type')} OR {kind} NOT IN ({types})",
            f"is not one of {', '.join(AUDIENCE_TYPES)}",
        ),
        Check("lookalike_pct", f"{has_pct} AND ({pct} IS NULL OR isnan({pct}))", "is not a number"),
        Check("lookalike_pct", f"{has_pct} AND ({pct} <= 0 OR {pct} > 20)", "is outside 0-20 (a lookalike size in %)"),
        Check(
            "source_quality",
            f"NOT {blank('source_quality')} AND upper(trim(source_quality)) NOT IN ({qualities})",
            f"is not one of {', '.join(SOURCE_QUALITIES)}",
        ),
        Check(
            "launched_on",
            f"NOT {blank('launched_on')} AND {as_date('launched_on')} IS NULL",
            "is not a date (expected YYYY-MM-DD)",
        ),
        *number_checks("daily_budget", optional=True),
        Check(
            "last_budget_change_at",
            f"NOT {blank('last_budget_change_at')} AND {as_timestamp('last_budget_change_at')} IS NULL",
            "is not an ISO 8601 timestamp (expected e.g. 2026-11-20T14:30:00+05:30)",
        ),
    ]


def typed_audiences_sql(text_table: str) -> str:
    return f"""
        SELECT _row,
               trim(adset_id) AS adset_id,
               upper(trim(audience_type)) AS audience_type,
               {clean_number("lookalike_pct")} AS lookalike_pct,
               nullif(upper(trim(source_quality)), '') AS source_quality,
               {as_date("launched_on")} AS launched_on,
               {clean_number("daily_budget")} AS daily_budget,
               {as_timestamp("last_budget_change_at")} AS last_budget_change_at
        FROM {text_table}"""


def audience_duplicates(conn: duckdb.DuckDBPyConnection, typed: str, problems: Problems) -> None:
    dupes = conn.execute(
        f"""SELECT adset_id, list(_row ORDER BY _row) AS rows FROM {typed}
            GROUP BY adset_id HAVING count(*) > 1 ORDER BY rows[1] LIMIT {MAX_REPORTED}"""
    ).fetchall()
    for adset, rows in dupes:
        problems.add(f"{problems.name} rows {', '.join(map(str, rows))}: adset_id {adset!r} is listed more than once")


def check_coverage(
    conn: duckdb.DuckDBPyConnection, insights: str, audiences: str, insights_name: str, audiences_name: str
) -> None:
    """Every ad set with insights needs an audience row: its type changes the rules."""
    missing = [
        r[0]
        for r in conn.execute(
            f"SELECT DISTINCT adset_id FROM {insights} ANTI JOIN {audiences} USING (adset_id) ORDER BY adset_id"
        ).fetchall()
    ]
    if missing:
        ids = ", ".join(repr(x) for x in missing[:MAX_REPORTED])
        more = f" and {len(missing) - MAX_REPORTED} more" if len(missing) > MAX_REPORTED else ""
        raise InputError(
            f"{audiences_name}: {len(missing)} ad set(s) in {insights_name} have no row here: {ids}{more}; "
            "expected one row per ad set with its audience_type"
        )
