"""Vectorised number formatting for reasons and risks (polars expressions, no row loops)."""

from __future__ import annotations

import polars as pl

_SYMBOLS = {"INR": "₹", "USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥"}
# Currencies whose minor unit is the unit itself (Meta's offset 1); every other has cents (100).
ZERO_DECIMAL = frozenset({"JPY", "KRW", "TWD", "CLP", "COP", "HUF", "IDR", "VND", "ISK", "PYG", "CRC"})


def minor_unit_offset(currency: str) -> int:
    """Minor units per currency unit as Meta counts them: 1 for zero-decimal currencies, else 100."""
    return 1 if currency.upper() in ZERO_DECIMAL else 100


def currency_symbol(code: str | None) -> str:
    """The sign of a currency (₹), or its code and a space when it has no common sign."""
    code = (code or "").strip().upper()
    return _SYMBOLS.get(code, f"{code} " if code else "")


def _zero_decimal(currency: pl.Expr | None) -> pl.Expr:
    cur = pl.col("currency") if currency is None else currency
    return cur.fill_null("").str.to_uppercase().is_in(list(ZERO_DECIMAL))


def round_money(x: pl.Expr, currency: pl.Expr | None = None) -> pl.Expr:
    """Money rounded to the currency's minor unit (whole units for JPY and the like)."""
    return pl.when(_zero_decimal(currency)).then(x.round(0)).otherwise(x.round(2))


def floor_money(x: pl.Expr, currency: pl.Expr | None = None) -> pl.Expr:
    """Money rounded down to the minor unit: a budget step never exceeds its percentage.

    A millionth of a minor unit absorbs binary noise (0.29 * 100 is 28.999999999999996)."""
    cents = (x * 100 + 1e-6).floor() / 100
    return pl.when(_zero_decimal(currency)).then((x + 1e-6).floor()).otherwise(cents)


def minor_unit(currency: pl.Expr | None = None) -> pl.Expr:
    """The size of one minor unit in currency units: 1 or 0.01."""
    return pl.when(_zero_decimal(currency)).then(1.0).otherwise(0.01)


def _grouped_int(x: pl.Expr) -> pl.Expr:
    """An integer expression as text with thousands separators (1,234,567)."""
    x = x.cast(pl.Int64)
    a = x.abs()
    sign = pl.when(x < 0).then(pl.lit("-")).otherwise(pl.lit(""))

    def part(div: int) -> pl.Expr:
        return ((a // div) % 1000).cast(pl.Utf8).str.zfill(3)

    body = (
        pl.when(a >= 1_000_000_000)
        .then(pl.format("{},{},{},{}", (a // 1_000_000_000).cast(pl.Utf8), part(1_000_000), part(1000), part(1)))
        .when(a >= 1_000_000)
        .then(pl.format("{},{},{}", (a // 1_000_000).cast(pl.Utf8), part(1000), part(1)))
        .when(a >= 1000)
        .then(pl.format("{},{}", (a // 1000).cast(pl.Utf8), part(1)))
        .otherwise(a.cast(pl.Utf8))
    )
    return pl.concat_str([sign, body])


def symbol(currency: pl.Expr | None = None) -> pl.Expr:
    """A currency symbol from the currency code column (code plus a space when unknown)."""
    cur = pl.col("currency") if currency is None else currency
    code = cur.fill_null("").str.strip_chars()
    return (
        pl.when(code == "")
        .then(pl.lit(""))
        .otherwise(code.replace_strict(_SYMBOLS, default=None, return_dtype=pl.Utf8).fill_null(code + " "))
    )


def money(x: pl.Expr, currency: pl.Expr | None = None) -> pl.Expr:
    """Whole currency units with the symbol: ₹18,400."""
    return pl.concat_str([symbol(currency), _grouped_int(x.round(0))])


def num(x: pl.Expr) -> pl.Expr:
    """A count: whole numbers without decimals, fractions with one."""
    return pl.when(x == x.round(0)).then(_grouped_int(x.round(0))).otherwise(x.round(1).cast(pl.Utf8))


def dec(x: pl.Expr, places: int = 2) -> pl.Expr:
    """A ratio with fixed decimals: 3.55."""
    scale = 10**places
    v = (x * scale).round(0).cast(pl.Int64)
    a = v.abs()
    sign = pl.when(v < 0).then(pl.lit("-")).otherwise(pl.lit(""))
    return pl.format("{}{}.{}", sign, (a // scale).cast(pl.Utf8), (a % scale).cast(pl.Utf8).str.zfill(places))


def pct(x: pl.Expr, signed: bool = False) -> pl.Expr:
    """A fraction as a whole percentage: 0.234 -> 23% (or +23%)."""
    text = (x * 100).round(0).cast(pl.Int64).cast(pl.Utf8)
    if signed:
        return (
            pl.when(x >= 0)
            .then(pl.concat_str([pl.lit("+"), text, pl.lit("%")]))
            .otherwise(pl.concat_str([text, pl.lit("%")]))
        )
    return pl.concat_str([text, pl.lit("%")])
