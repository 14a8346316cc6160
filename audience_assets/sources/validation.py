"""Input contracts for insights and audiences, checked over whole frames.

Every problem is reported with the file, the data row (1 = first row after the header),
the column and what was expected; nothing is written until a whole input passes.
"""

from __future__ import annotations

import polars as pl

from audience_assets.engine.config import AUDIENCE_TYPES
from audience_assets.sources import AUDIENCES_OPTIONAL, AUDIENCES_REQUIRED, INSIGHTS_REQUIRED, InputError

SOURCE_QUALITIES = ("PURCHASERS", "ATC", "VC")
MAX_MONEY = 1e12  # beyond any real ad account; catches unit mix-ups and overflow
MAX_REPORTED = 12


def _blank(col: str) -> pl.Expr:
    return pl.col(col).is_null() | (pl.col(col).str.strip_chars() == "")


class _Problems:
    def __init__(self, name: str, frame: pl.DataFrame) -> None:
        self.name = name
        self.frame = frame.with_row_index("_row", offset=1)
        self.lines: list[str] = []
        self.count = 0

    def check(self, bad: pl.Expr, column: str, expected: str) -> None:
        """Record every row where `bad` holds, showing the offending value."""
        hits = self.frame.filter(bad.fill_null(False)).select("_row", pl.col(column).cast(pl.Utf8))
        self.count += hits.height
        for row, value in hits.head(MAX_REPORTED).iter_rows():
            shown = "(empty)" if value is None or not str(value).strip() else repr(str(value)[:60])
            self.lines.append(f"{self.name} row {row}, column {column}: {shown} {expected}")

    def add(self, line: str) -> None:
        self.count += 1
        self.lines.append(line)

    def raise_if_any(self) -> None:
        if not self.lines:
            return
        shown = self.lines[:MAX_REPORTED]
        more = self.count - len(shown)
        tail = f"\n  ... and {more} more problem(s)" if more > 0 else ""
        raise InputError(f"{self.name}: {self.count} problem(s), nothing was loaded:\n  " + "\n  ".join(shown) + tail)


def _require_columns(frame: pl.DataFrame, name: str, required: tuple[str, ...]) -> None:
    if frame.width == 0:
        raise InputError(f"{name} is empty: expected a header row with columns {', '.join(required)}")
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise InputError(
            f"{name} is missing column(s) {', '.join(missing)}; "
            f"expected {', '.join(required)} (found {', '.join(frame.columns)})"
        )
    if frame.height == 0:
        raise InputError(f"{name} has a header but no data rows")


def _as_float(col: str) -> pl.Expr:
    return pl.col(col).str.strip_chars().cast(pl.Float64, strict=False)


def _as_date(col: str) -> pl.Expr:
    return pl.col(col).str.strip_chars().str.to_date("%Y-%m-%d", strict=False)


def _as_timestamp(col: str) -> pl.Expr:
    """ISO 8601 with or without an offset; naive values are taken as UTC. Result is naive UTC."""
    text = pl.col(col).str.strip_chars().str.replace(r"Z$", "+00:00").str.replace(" ", "T", literal=True)
    with_tz = text.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f%:z", strict=False, time_zone="UTC")
    naive = text.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f", strict=False)
    minutes = text.str.to_datetime("%Y-%m-%dT%H:%M", strict=False)
    day = text.str.to_date("%Y-%m-%d", strict=False).cast(pl.Datetime("us"))
    return pl.coalesce(
        with_tz.dt.replace_time_zone(None).cast(pl.Datetime("us")),
        naive.cast(pl.Datetime("us")),
        minutes.cast(pl.Datetime("us")),
        day,
    )


# Currency signs and codes a spreadsheet may leave in a money cell.
_CURRENCY_MARK = r"[₹$€£¥]|\b(?:INR|USD|EUR|GBP|JPY|Rs\.?)\b"


def _number_checks(p: _Problems, col: str, *, integer: bool = False, optional: bool = False) -> None:
    """One message per bad cell, naming the first thing wrong with it (never two for one cell)."""
    text = pl.col(col).str.strip_chars()
    value = _as_float(col)
    present = ~_blank(col)
    kind = "a whole number" if integer else "a number"
    unparsed = present & value.is_null()
    finite = present & value.is_finite()
    if not optional:
        p.check(_blank(col), col, f"is missing: expected {kind} >= 0")
    p.check(
        unparsed & text.str.contains(_CURRENCY_MARK),
        col,
        "has a currency sign: write the amount only, in the account's currency units (e.g. 1234.50)",
    )
    p.check(
        unparsed & ~text.str.contains(_CURRENCY_MARK) & text.str.contains(r"^-?\d{1,3}(,\d{3})+(\.\d+)?$"),
        col,
        "has a thousands separator, which is not allowed: write 1234.50",
    )
    p.check(
        unparsed & text.str.contains(r"^-?\d+,\d{1,2}$"),
        col,
        "has a decimal comma, which is not allowed: write 1234.50",
    )
    p.check(
        unparsed
        & ~text.str.contains(_CURRENCY_MARK)
        & ~text.str.contains(r"^-?\d{1,3}(,\d{3})+(\.\d+)?$")
        & ~text.str.contains(r"^-?\d+,\d{1,2}$"),
        col,
        f"is not {kind}",
    )
    p.check(present & value.is_nan(), col, f"is not {kind} (NaN)")
    p.check(present & value.is_infinite(), col, "is not a finite number")
    p.check(finite & (value < 0), col, "is negative: expected 0 or more")
    p.check(finite & (value > MAX_MONEY), col, f"is implausibly large (over {MAX_MONEY:.0e})")
    if integer:
        p.check(finite & (value >= 0) & (value <= MAX_MONEY) & (value != value.floor()), col, "is not a whole number")


def _number(col: str) -> pl.Expr:
    """A validated number; -0 becomes 0 (a signed zero would print as -0.0 downstream)."""
    value = _as_float(col)
    return pl.when(value == 0).then(pl.lit(0.0)).otherwise(value)


def validate_insights(raw: pl.DataFrame, name: str = "insights") -> pl.DataFrame:
    """Check and type an insights export (all columns read as text); raise InputError on any problem."""
    _require_columns(raw, name, INSIGHTS_REQUIRED)
    p = _Problems(name, raw)
    for col in ("account_id", "campaign_id", "adset_id"):
        p.check(_blank(col), col, "is missing: expected an id")
    p.check(_blank("date_start"), "date_start", "is missing: expected a date YYYY-MM-DD")
    p.check(
        ~_blank("date_start") & _as_date("date_start").is_null(), "date_start", "is not a date (expected YYYY-MM-DD)"
    )
    for col in ("spend", "purchases", "purchase_value"):
        _number_checks(p, col)
    for col in ("impressions", "clicks"):
        _number_checks(p, col, integer=True)
    if "account_currency" in raw.columns:
        p.check(
            ~_blank("account_currency") & ~pl.col("account_currency").str.strip_chars().str.contains(r"^[A-Za-z]{3}$"),
            "account_currency",
            "is not a 3-letter currency code (e.g. INR)",
        )
    p.raise_if_any()

    currency = (
        pl.col("account_currency").str.strip_chars().str.to_uppercase().replace("", None)
        if "account_currency" in raw.columns
        else pl.lit(None, dtype=pl.Utf8)
    )
    typed = raw.with_row_index("_row", offset=1).select(
        "_row",
        pl.col("account_id").str.strip_chars(),
        pl.col("campaign_id").str.strip_chars(),
        pl.col("campaign_name").fill_null(""),
        pl.col("adset_id").str.strip_chars(),
        pl.col("adset_name").fill_null(""),
        _as_date("date_start").alias("date"),
        _number("spend").alias("spend"),
        _number("impressions").cast(pl.Int64).alias("impressions"),
        _number("clicks").cast(pl.Int64).alias("clicks"),
        _number("purchases").alias("purchases"),
        _number("purchase_value").alias("purchase_value"),
        currency.alias("currency"),
    )
    dupes = (
        typed.group_by("account_id", "adset_id", "date")
        .agg(pl.col("_row").sort().alias("rows"))
        .filter(pl.col("rows").list.len() > 1)
        .sort(pl.col("rows").list.first())
    )
    for account, adset, day, rows in dupes.head(MAX_REPORTED).iter_rows():
        p.add(
            f"{name} rows {', '.join(map(str, rows))}: duplicate rows for adset_id {adset!r} on {day} "
            f"(account {account!r}); expected one row per ad set per day"
        )
    p.count += max(dupes.height - MAX_REPORTED, 0)
    accounts = (
        typed.group_by("adset_id").agg(pl.col("account_id").unique().sort()).filter(pl.col("account_id").list.len() > 1)
    )
    for adset, accts in accounts.head(MAX_REPORTED).iter_rows():
        p.add(f"{name}: adset_id {adset!r} appears under several accounts {accts}; expected one")
    currencies = (
        typed.drop_nulls("currency")
        .group_by("account_id")
        .agg(pl.col("currency").unique().sort())
        .filter(pl.col("currency").list.len() > 1)
    )
    for account, curs in currencies.iter_rows():
        p.add(f"{name}: account {account!r} has several currencies {curs}; expected one")
    p.raise_if_any()
    return typed.drop("_row").with_columns(pl.col("currency").fill_null("INR"))


def validate_audiences(raw: pl.DataFrame, name: str = "audiences") -> pl.DataFrame:
    """Check and type an audiences file (all columns read as text)."""
    _require_columns(raw, name, AUDIENCES_REQUIRED)
    for col in AUDIENCES_OPTIONAL:
        if col not in raw.columns:
            raw = raw.with_columns(pl.lit(None, dtype=pl.Utf8).alias(col))
    p = _Problems(name, raw)
    p.check(_blank("adset_id"), "adset_id", "is missing: expected an id")
    kind = pl.col("audience_type").str.strip_chars().str.to_uppercase()
    p.check(
        ~kind.is_in(AUDIENCE_TYPES) | _blank("audience_type"),
        "audience_type",
        f"is not one of {', '.join(AUDIENCE_TYPES)}",
    )
    pct = _as_float("lookalike_pct")
    has_pct = ~_blank("lookalike_pct")
    p.check(has_pct & (pct.is_null() | pct.is_nan()), "lookalike_pct", "is not a number")
    p.check(has_pct & ((pct <= 0) | (pct > 20)), "lookalike_pct", "is outside 0-20 (a lookalike size in %)")
    quality = pl.col("source_quality").str.strip_chars().str.to_uppercase()
    p.check(
        ~_blank("source_quality") & ~quality.is_in(SOURCE_QUALITIES),
        "source_quality",
        f"is not one of {', '.join(SOURCE_QUALITIES)}",
    )
    p.check(
        ~_blank("launched_on") & _as_date("launched_on").is_null(), "launched_on", "is not a date (expected YYYY-MM-DD)"
    )
    _number_checks(p, "daily_budget", optional=True)
    p.check(
        ~_blank("last_budget_change_at") & _as_timestamp("last_budget_change_at").is_null(),
        "last_budget_change_at",
        "is not an ISO 8601 timestamp (expected e.g. 2026-11-20T14:30:00+05:30)",
    )
    p.raise_if_any()
    typed = raw.with_row_index("_row", offset=1).select(
        "_row",
        pl.col("adset_id").str.strip_chars(),
        kind.alias("audience_type"),
        _number("lookalike_pct").alias("lookalike_pct"),
        quality.replace("", None).alias("source_quality"),
        _as_date("launched_on").alias("launched_on"),
        _number("daily_budget").alias("daily_budget"),
        _as_timestamp("last_budget_change_at").alias("last_budget_change_at"),
    )
    dupes = typed.group_by("adset_id").agg(pl.col("_row").sort().alias("rows")).filter(pl.col("rows").list.len() > 1)
    for adset, rows in dupes.sort(pl.col("rows").list.first()).head(MAX_REPORTED).iter_rows():
        p.add(f"{name} rows {', '.join(map(str, rows))}: adset_id {adset!r} is listed more than once")
    p.raise_if_any()
    return typed.drop("_row")


def check_coverage(insights: pl.DataFrame, audiences: pl.DataFrame, insights_name: str, audiences_name: str) -> None:
    """Every ad set with insights needs an audience row: its type changes the rules."""
    missing = (
        insights.select("adset_id")
        .unique()
        .join(audiences.select("adset_id"), on="adset_id", how="anti")
        .sort("adset_id")
    )
    if missing.height:
        ids = ", ".join(repr(x) for x in missing["adset_id"].head(MAX_REPORTED))
        more = f" and {missing.height - MAX_REPORTED} more" if missing.height > MAX_REPORTED else ""
        raise InputError(
            f"{audiences_name}: {missing.height} ad set(s) in {insights_name} have no row here: {ids}{more}; "
            "expected one row per ad set with its audience_type"
        )
