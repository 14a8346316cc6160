"""The HTML report of one decision date: what a media buyer looks at instead of the JSON.

`render_report(ReportData) -> str` is a pure function: one self-contained HTML file (inline CSS,
inline SVG drawn here, one small inline script for the filters; nothing is fetched, so it works
offline and as an e-mail attachment). `report_data(...)` builds the input from the
recommendations document and a frame of daily metrics, for the code that wires this in.

Safety: every piece of user text (ad-set and campaign names, audience types, reasons, risks,
explanations: they come from users or from an LLM) goes through `esc`, which shows control,
bidirectional and invisible characters as visible escapes (as the CLI does) and then
HTML-escapes the result. User text is only ever element content or a double-quoted attribute
value; the script is a constant that reads data-attributes, and a Content-Security-Policy
allows only that script (by hash), inline styles and data: images, so even a mistake here could
neither run code nor reach the network.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import html
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, field_validator

from audience_assets.engine.recommend import decisive_reason

Action = Literal["SCALE", "HOLD", "PAUSE", "RETEST"]
Confidence = Literal["HIGH", "MEDIUM", "LOW"]

# Display order: what to act on first.
ACTION_ORDER: tuple[str, ...] = ("SCALE", "PAUSE", "RETEST", "HOLD")
ACTION_LABEL = {
    "SCALE": "Raise the daily budget",
    "PAUSE": "Pause the ad set",
    "RETEST": "Duplicate and relaunch",
    "HOLD": "Leave as is",
}

# Kept equal to audience_assets.engine.fmt (not imported: this module depends only on the
# standard library, pydantic and polars).
_SYMBOLS = {"INR": "₹", "USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥"}
ZERO_DECIMAL = frozenset({"JPY", "KRW", "TWD", "CLP", "COP", "HUF", "IDR", "VND", "ISK", "PYG", "CRC"})

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


# --------------------------------------------------------------------------------------------
# Input: the contract the wiring fills
# --------------------------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(allow_inf_nan=False, extra="ignore")


def _nan_is_missing(v: Any) -> Any:
    """A NaN where a ratio is optional means 'no value' (as NULL does), not a number."""
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


class DailyPoint(_Model):
    """One day of spend and revenue (an account's total or one audience's)."""

    date: dt.date = Field(description="the calendar day (account time zone)")
    spend: float = Field(ge=0, description="spend that day, in the account's currency units")
    revenue: float = Field(ge=0, description="purchase value that day, in the account's currency units")
    roas: float | None = Field(
        default=None, ge=0, description="revenue / spend that day; None when nothing was spent (drawn as a gap)"
    )

    _nan = field_validator("roas", mode="before")(_nan_is_missing)


class AudienceRow(_Model):
    """One audience (ad set) and its recommendation: the fields of the recommendations JSON a person reads."""

    audience_id: str = Field(description="the ad set id")
    audience_name: str = Field(description="the ad set name (user text, shown escaped)")
    campaign_name: str | None = Field(default=None, description="the campaign's name (user text, shown escaped)")
    audience_type: str | None = Field(
        default=None, description="BROAD, INTEREST, LOOKALIKE or CUSTOM; None when unknown (filterable)"
    )
    lookalike_pct: float | None = Field(default=None, description="lookalike size in percent, for LOOKALIKE")
    action: Action = Field(description="the recommendation: SCALE, HOLD, PAUSE or RETEST")
    scale_percentage: int = Field(default=0, ge=0, le=100, description="budget step of a SCALE, in percent")
    confidence: Confidence = Field(description="HIGH, MEDIUM or LOW")
    bucket: str | None = Field(default=None, description="WINNER, AVERAGE or LOSER; None when not eligible")
    trend: str | None = Field(
        default=None, description="STABLE, IMPROVING, DECLINING or VOLATILE; None when not eligible"
    )
    eligible: bool = Field(default=True, description="passed the noise filter (enough spend, purchases and age)")
    rank: int = Field(ge=1, description="rank by composite score within the decision date (1 is best)")
    current_daily_budget: float | None = Field(default=None, ge=0, description="daily budget now; None when unknown")
    new_daily_budget: float | None = Field(
        default=None, ge=0, description="daily budget after the action (a SCALE raises it)"
    )
    roas: float | None = Field(default=None, ge=0, description="ROAS over the decision window")
    normalized_roas: float | None = Field(
        default=None, ge=0, description="ROAS over the window divided by the account average (1.0 = average)"
    )
    spend: float | None = Field(default=None, ge=0, description="spend over the decision window")
    purchases: float | None = Field(default=None, ge=0, description="purchases over the decision window")
    reasons: list[str] = Field(default_factory=list, description="why: every rule that decided, with its figures")
    risks: list[str] = Field(default_factory=list, description="what could go wrong if acted on")
    explanation: str | None = Field(default=None, description="plain-English rationale (Claude's or the template's)")
    explanation_source: str | None = Field(default=None, description="who wrote the explanation: claude or template")
    needs_review: bool = Field(default=False, description="the analysis disagrees with the rules: a person should look")
    daily: list[DailyPoint] = Field(
        default_factory=list, description="the audience's own daily series over the same days as the account's"
    )

    _nan = field_validator("roas", "normalized_roas", mode="before")(_nan_is_missing)


class AccountSection(_Model):
    """One ad account: its totals, its daily series and its audiences."""

    account_id: str = Field(description="the ad account id (act_...)")
    currency: str = Field(
        pattern=r"^[A-Z]{3}$", description="ISO 4217 code of the account's currency (INR, USD, JPY, ...)"
    )
    window_days: int = Field(
        default=7, ge=1, description="days the spend, revenue, ROAS and purchases below cover (the decision window)"
    )
    spend: float = Field(ge=0, description="the account's spend over the decision window")
    revenue: float = Field(ge=0, description="the account's purchase value over the decision window")
    roas: float | None = Field(default=None, ge=0, description="revenue / spend over the window; None without spend")
    purchases: float = Field(ge=0, description="purchases over the decision window")
    counts: dict[Action, int] = Field(
        default_factory=dict, description="audiences per action (all of them, also HOLDs left out of the table)"
    )
    budget_added: float = Field(
        default=0.0, description="daily budget the SCALEs add: sum of new - current daily budget over SCALEs"
    )
    budget_paused: float = Field(
        default=0.0, ge=0, description="daily budget the PAUSEs free: sum of the current daily budgets of PAUSEs"
    )
    daily: list[DailyPoint] = Field(
        default_factory=list, description="the account's daily spend, revenue and ROAS, e.g. the last 28 days"
    )
    audiences: list[AudienceRow] = Field(default_factory=list, description="one row per audience (ad set)")
    eligible: int | None = Field(
        default=None, ge=0, description="audiences with enough data, all of them (None: count `audiences`)"
    )
    left_out: int = Field(
        default=0, ge=0, description="audiences beyond the page's limit, not in `audiences` (still in `counts`)"
    )

    _nan = field_validator("roas", mode="before")(_nan_is_missing)

    @field_validator("currency", mode="before")
    @classmethod
    def _upper(cls, v: Any) -> Any:
        return v.strip().upper() if isinstance(v, str) else v


class ReportData(_Model):
    """Everything the report of one decision date shows."""

    decision_date: date = Field(description="the decision date: decisions use the complete days before it")
    generated_at: str = Field(description="when the recommendations were generated (ISO 8601)")
    config_hash: str = Field(description="hash of the rule configuration that made the decisions")
    accounts: list[AccountSection] = Field(default_factory=list, description="one section per ad account")
    recommendations_file: str | None = Field(
        default=None,
        description="where the full recommendations JSON of this date is (named by the note on left-out HOLD rows)",
    )


# --------------------------------------------------------------------------------------------
# Text and numbers
# --------------------------------------------------------------------------------------------

# C0 controls (tab and newline are handled apart), DEL, C1 controls; bidirectional embeddings,
# overrides and isolates; invisible marks that reorder or hide text; lone surrogates;
# non-characters. Shown as visible escapes, as the CLI shows them.
_UNSAFE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff\ufff9-\ufffb\ufffe\uffff"
    "\ud800-\udfff]"
)
_UNSAFE_INLINE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u202a-\u202e\u2028\u2029\u2060-\u2069\ufeff\ufff9-\ufffb\ufffe\uffff"
    "\ud800-\udfff]"
)


def _visible(match: re.Match[str]) -> str:
    ch = match.group(0)
    if ch == "\t":
        return " "
    if ch in "\r\n\u2028\u2029":
        return "⏎"
    code = ord(ch)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def esc(text: object, *, inline: bool = True) -> str:
    """User text made inert for HTML element content and double-quoted attribute values.

    Control, bidirectional-override and invisible characters become visible escapes (`\\u202e`);
    `inline` also shows newlines as ⏎ (names), otherwise they are kept (explanations).
    """
    s = "" if text is None else str(text)
    if not inline:
        s = s.replace("\r\n", "\n")
    s = (_UNSAFE_INLINE if inline else _UNSAFE).sub(_visible, s)
    return html.escape(s, quote=True)


def currency_prefix(code: str) -> str:
    """The sign written before an amount: ₹ $ € £ ¥, else the ISO code and a space (CHF 12)."""
    code = (code or "").strip().upper()
    return _SYMBOLS.get(code, f"{code} " if code else "")


def money_places(code: str) -> int:
    """Decimals of the currency's minor unit: 0 for JPY and the other zero-decimal currencies, else 2."""
    return 0 if (code or "").strip().upper() in ZERO_DECIMAL else 2


def _round_half_up(value: float, places: int) -> Decimal:
    q = Decimal(1).scaleb(-places)
    d = Decimal(repr(value)).quantize(q, rounding=ROUND_HALF_UP)
    return d if d != 0 else abs(d)  # no "-0"


def _finite(value: float | None) -> bool:
    return value is not None and isinstance(value, int | float) and math.isfinite(value)


def fmt_money(value: float | None, currency: str, *, exact: bool = False, signed: bool = False) -> str:
    """An amount in the account's currency with thousands separators: ₹30,750, ¥1,234,567.

    `exact` keeps the minor unit (budgets: ₹5,947.50; never decimals for zero-decimal currencies);
    otherwise whole units (totals). `signed` adds "+" to positive amounts. None: an en dash.
    """
    if not _finite(value):
        return "–"
    places = money_places(currency) if exact else 0
    d = _round_half_up(float(value), places)  # type: ignore[arg-type]
    sign = "-" if d < 0 else ("+" if signed and d > 0 else "")
    return f"{sign}{currency_prefix(currency)}{abs(d):,.{places}f}"


def fmt_money_compact(value: float, currency: str) -> str:
    """An axis label: ₹800, ₹12k, ₹1.5M (no decimals for zero-decimal currencies under 1,000)."""
    v = abs(value)
    sign = "-" if value < 0 else ""
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if v >= limit:
            text = f"{v / limit:.1f}".removesuffix(".0")
            return f"{sign}{currency_prefix(currency)}{text}{suffix}"
    if v == int(v) or money_places(currency) == 0:
        return f"{sign}{currency_prefix(currency)}{_round_half_up(v, 0):,.0f}"
    return f"{sign}{currency_prefix(currency)}" + f"{_round_half_up(v, 2):,.2f}".rstrip("0").rstrip(".")


def fmt_count(value: float | None) -> str:
    """A count: 1,234; a fractional one with one decimal (12.5)."""
    if not _finite(value):
        return "–"
    if float(value) == round(float(value)):  # type: ignore[arg-type]
        return f"{_round_half_up(float(value), 0):,.0f}"  # type: ignore[arg-type]
    return f"{_round_half_up(float(value), 1):,.1f}"  # type: ignore[arg-type]


def fmt_ratio(value: float | None, places: int = 2) -> str:
    """A ratio such as ROAS: 2.54."""
    if not _finite(value):
        return "–"
    return f"{_round_half_up(float(value), places):,.{places}f}"  # type: ignore[arg-type]


def fmt_day(d: date, *, year: bool = False) -> str:
    """3 Nov (or 3 Nov 2026): the same in every locale."""
    return f"{d.day} {_MONTHS[d.month - 1]}" + (f" {d.year}" if year else "")


def _pct(value: float) -> str:
    return f"{value:.1f}".removesuffix(".0") + "%"


def _n(v: float) -> str:
    """An SVG coordinate: one decimal, no trailing .0."""
    return f"{v:.1f}".removesuffix(".0")


def type_label(row: AudienceRow) -> str:
    """LOOKALIKE 1%, INTEREST, ... (unescaped)."""
    t = row.audience_type or "unknown type"
    if row.lookalike_pct is not None and math.isfinite(row.lookalike_pct):
        return f"{t} {_pct(row.lookalike_pct)}"
    return t


def _is_template_join(explanation: str, reasons: Sequence[str]) -> bool:
    """The template's explanation is the reasons joined; showing it again would repeat them."""

    def norm(s: str) -> str:
        return re.sub(r"\s+", " ", s).strip().rstrip(".")

    return bool(reasons) and norm(explanation) == norm(". ".join(r.rstrip(".") for r in reasons))


# --------------------------------------------------------------------------------------------
# Ordering and the HOLD cap
# --------------------------------------------------------------------------------------------


_ACTION_POS = {a: i for i, a in enumerate(ACTION_ORDER)}


def page_order(action: str, rank: int, audience_id: str) -> tuple[int, int, str]:
    """The sort key of the page: actionable first (SCALE, PAUSE, RETEST, then HOLD), by rank, then id."""
    return _ACTION_POS.get(action, len(ACTION_ORDER)), rank, audience_id


def order_rows(rows: Iterable[AudienceRow]) -> list[AudienceRow]:
    """Actionable first: SCALE, PAUSE, RETEST, then HOLD; by rank (then id) within each."""
    return sorted(rows, key=lambda r: page_order(r.action, r.rank, r.audience_id))


def visible_rows(rows: Iterable[AudienceRow], max_hold_rows: int) -> tuple[list[AudienceRow], int]:
    """The rows the table shows (ordered) and how many HOLDs were left out (beyond the best-ranked `max_hold_rows`)."""
    ordered = order_rows(rows)
    out: list[AudienceRow] = []
    holds = left_out = 0
    for r in ordered:
        if r.action == "HOLD":
            holds += 1
            if holds > max_hold_rows:
                left_out += 1
                continue
        out.append(r)
    return out, left_out


# --------------------------------------------------------------------------------------------
# Charts (inline SVG)
# --------------------------------------------------------------------------------------------


def _domain(account: AccountSection) -> list[date]:
    """Every calendar day from the first to the last with data (the account's, else the audiences')."""
    days = [p.date for p in account.daily]
    if not days:
        days = [p.date for a in account.audiences for p in a.daily]
    if not days:
        return []
    first, last = min(days), max(days)
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def _nice_step(span: float, ticks: int = 4) -> float:
    raw = span / ticks if span > 0 else 1.0
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


def _nice_top(vmax: float, ticks: int = 4) -> tuple[float, float]:
    """An axis top at or above vmax, on a 1-2-2.5-5 step: (top, step)."""
    if vmax <= 0 or not math.isfinite(vmax):
        return 1.0, 0.25
    step = _nice_step(vmax, ticks)
    top = math.ceil(vmax / step - 1e-9) * step
    return top, step


def _segments(points: Sequence[tuple[float, float] | None]) -> str:
    """An SVG path through the points, broken at None (a gap, never a zero); a lone point is a dot."""
    parts: list[str] = []
    run: list[tuple[float, float]] = []

    def flush() -> None:
        if not run:
            return
        x0, y0 = run[0]
        parts.append(f"M{_n(x0)} {_n(y0)}")
        if len(run) == 1:
            parts.append("h0")
        parts.extend(f"L{_n(x)} {_n(y)}" for x, y in run[1:])
        run.clear()

    for p in points:
        if p is None:
            flush()
        else:
            run.append(p)
    flush()
    return "".join(parts)


class _Chart:
    """Geometry shared by the two account charts and the sparklines of one account."""

    def __init__(self, days: list[date], left: float, right: float) -> None:
        self.days = days
        self.index = {d: i for i, d in enumerate(days)}
        self.left, self.right = left, right

    def x(self, i: float) -> float:
        n = len(self.days)
        if n <= 1:
            return (self.left + self.right) / 2
        return self.left + (self.right - self.left) * i / (n - 1)

    def slot(self) -> float:
        n = max(len(self.days), 1)
        return (self.right - self.left) / max(n - 1, 1) if n > 1 else (self.right - self.left) / 2


_CW, _CH = 480, 210  # account chart viewBox
_CL, _CR, _CT, _CB = 46, 470, 18, 178  # plot area


def _window_band(ch: _Chart, window_days: int, top: float, bottom: float) -> str:
    n = len(ch.days)
    if n < 2 or window_days >= n:
        return ""
    half = ch.slot() / 2
    x0 = ch.x(n - window_days) - half
    x1 = ch.right + min(half, 6)
    return f'<rect class="wb" x="{_n(x0)}" y="{_n(top)}" width="{_n(x1 - x0)}" height="{_n(bottom - top)}"/>'


def _x_labels(ch: _Chart) -> str:
    n = len(ch.days)
    if n == 0:
        return ""
    step = 7 if n > 10 else (2 if n > 5 else 1)
    idx = list(range(n - 1, -1, -step))[::-1]  # always label the last day
    out = []
    for i in idx:
        x = ch.x(i)
        anchor = "end" if i == n - 1 and n > 1 else "middle"
        out.append(f'<text x="{_n(x)}" y="{_CB + 16}" text-anchor="{anchor}">{fmt_day(ch.days[i])}</text>')
        out.append(f'<line class="tk" x1="{_n(x)}" x2="{_n(x)}" y1="{_CB}" y2="{_CB + 4}"/>')
    return "".join(out)


def _y_grid(top: float, step: float, label: Callable[[float], str]) -> str:
    out = []
    v = 0.0
    while v <= top + 1e-9:
        y = _CB - (_CB - _CT) * (v / top)
        out.append(f'<line class="gl" x1="{_CL}" x2="{_CR}" y1="{_n(y)}" y2="{_n(y)}"/>')
        out.append(f'<text x="{_CL - 5}" y="{_n(y + 4)}" text-anchor="end">{esc(label(v))}</text>')
        v += step
    return "".join(out)


def _roas_chart(account: AccountSection, ch: _Chart, uid: str) -> str:
    pts = {p.date: p for p in account.daily}
    vals = [p.roas for p in account.daily if p.roas is not None]
    spend = sum(p.spend for p in account.daily)
    avg = sum(p.revenue for p in account.daily) / spend if spend > 0 else None
    top, step = _nice_top(max(vals + ([avg] if avg else []), default=0.0))

    def y(v: float) -> float:
        return _CB - (_CB - _CT) * (v / top)

    coords = []
    dots = []
    for i, d in enumerate(ch.days):
        p = pts.get(d)
        if p is None or p.roas is None:
            coords.append(None)
            continue
        xy = (ch.x(i), y(p.roas))
        coords.append(xy)
        dots.append(
            f'<circle cx="{_n(xy[0])}" cy="{_n(xy[1])}" r="2.6"><title>{fmt_day(d, year=True)}: ROAS '
            f"{fmt_ratio(p.roas)} ({esc(fmt_money(p.revenue, account.currency))} on "
            f"{esc(fmt_money(p.spend, account.currency))})</title></circle>"
        )
    gaps = sum(1 for c in coords if c is None)
    avg_line = avg_label = ""
    if avg is not None:
        ya = y(avg)
        avg_line = f'<line class="avg" x1="{_CL}" x2="{_CR}" y1="{_n(ya)}" y2="{_n(ya)}"/>'
        avg_label = (
            f'<text class="al" x="{_CR}" y="{_n(ya - 5)}" text-anchor="end">{len(ch.days)}-day average '
            f"{fmt_ratio(avg)}</text>"
        )
    label = (
        f"Daily ROAS from {fmt_day(ch.days[0])} to {fmt_day(ch.days[-1])}: "
        + (f"lowest {fmt_ratio(min(vals))}, highest {fmt_ratio(max(vals))}, " if vals else "no ROAS on any day, ")
        + (f"average {fmt_ratio(avg)}" if avg is not None else "no spend")
        + (f"; {gaps} day(s) without spend left as gaps" if gaps else "")
    )
    return (
        f'<svg class="ch" viewBox="0 0 {_CW} {_CH}" role="img" aria-labelledby="{uid}-t">'
        f'<title id="{uid}-t">{esc(label)}</title>'
        + _window_band(ch, account.window_days, _CT, _CB)
        + _y_grid(top, step, lambda v: f"{v:.2f}".rstrip("0").rstrip(".") if v else "0")
        + _x_labels(ch)
        + f'<line class="ax" x1="{_CL}" x2="{_CR}" y1="{_CB}" y2="{_CB}"/>'
        + avg_line
        + f'<path class="rl" d="{_segments(coords)}"/>'
        + "".join(dots)
        + avg_label
        + "</svg>"
    )


def _spend_chart(account: AccountSection, ch: _Chart, uid: str) -> str:
    pts = {p.date: p for p in account.daily}
    top, step = _nice_top(max((p.spend for p in account.daily), default=0.0))
    width = max(min(ch.slot() * 0.7, 28), 1.5)
    bars = []
    for i, d in enumerate(ch.days):
        p = pts.get(d)
        if p is None or p.spend <= 0:
            continue
        h = (_CB - _CT) * (p.spend / top)
        x = ch.x(i) - width / 2
        bars.append(
            f'<rect x="{_n(x)}" y="{_n(_CB - h)}" width="{_n(width)}" height="{_n(h)}"><title>'
            f"{fmt_day(d, year=True)}: spend {esc(fmt_money(p.spend, account.currency))}</title></rect>"
        )
    total = sum(p.spend for p in account.daily)
    label = (
        f"Daily spend from {fmt_day(ch.days[0])} to {fmt_day(ch.days[-1])}: "
        f"{fmt_money(total, account.currency)} in total, highest "
        f"{fmt_money(max((p.spend for p in account.daily), default=0.0), account.currency)} a day"
    )
    cur = account.currency
    return (
        f'<svg class="ch" viewBox="0 0 {_CW} {_CH}" role="img" aria-labelledby="{uid}-t">'
        f'<title id="{uid}-t">{esc(label)}</title>'
        + _window_band(ch, account.window_days, _CT, _CB)
        + _y_grid(top, step, lambda v: fmt_money_compact(v, cur))
        + _x_labels(ch)
        + '<g class="sb">'
        + "".join(bars)
        + "</g>"
        + f'<line class="ax" x1="{_CL}" x2="{_CR}" y1="{_CB}" y2="{_CB}"/>'
        + "</svg>"
    )


_SW, _SH = 120, 32  # sparkline size in px


class _Spark:
    """The sparklines of one account: same days, same ROAS scale; the account's dashed line is drawn once."""

    def __init__(self, account: AccountSection, days: list[date], rows: Sequence[AudienceRow], uid: str) -> None:
        self.ch = _Chart(days, 2, _SW - 2)
        self.uid = uid
        self.currency = account.currency
        acct = [p.roas for p in account.daily if p.roas is not None]
        aud = sorted(p.roas for r in rows for p in r.daily if p.roas is not None and p.date in self.ch.index)
        p90 = aud[int(0.9 * (len(aud) - 1))] if aud else 0.0
        self.cap = max(max(acct, default=0.0), p90) or 1.0
        self.acct_path = _segments(self._coords({p.date: p.roas for p in account.daily}))

    def y(self, v: float) -> float:
        return _SH - 3 - (_SH - 6) * min(v, self.cap) / self.cap

    def _coords(self, by_day: Mapping[date, float | None]) -> list[tuple[float, float] | None]:
        out: list[tuple[float, float] | None] = []
        for i, d in enumerate(self.ch.days):
            v = by_day.get(d)
            out.append(None if v is None else (self.ch.x(i), self.y(v)))
        return out

    def defs(self, window_days: int) -> str:
        band = ""
        n = len(self.ch.days)
        if 2 <= n and window_days < n:
            x0 = self.ch.x(n - window_days) - self.ch.slot() / 2
            band = f'<rect x="{_n(x0)}" y="0" width="{_n(_SW - x0)}" height="{_SH}" fill="#eef3fb"/>'
        line = (
            f'<path d="{self.acct_path}" fill="none" stroke="#8c959f" stroke-width="1.2" '
            'stroke-dasharray="3 2" stroke-linecap="round"/>'
        )
        return f'<g id="{self.uid}">{band}{line}</g>'

    def svg(self, row: AudienceRow) -> str:
        pts = [p for p in row.daily if p.date in self.ch.index]
        vals = [(p.date, p.roas) for p in pts if p.roas is not None]
        if vals:
            last_d, last_v = max(vals)
            lo, hi = min(v for _, v in vals), max(v for _, v in vals)
            title = (
                f"Daily ROAS {fmt_day(self.ch.days[0])}–{fmt_day(self.ch.days[-1])}: "
                f"latest {fmt_ratio(last_v)} ({fmt_day(last_d)}), range {fmt_ratio(lo)}–{fmt_ratio(hi)} "
                f"on {len(vals)} day(s); dashed: account"
            )
            if hi > self.cap:
                title += f"; scale tops out at {fmt_ratio(self.cap)}"
            path = _segments(self._coords({p.date: p.roas for p in pts}))
            body = f'<path class="l" d="{path}"/>'
        else:
            title = "No daily ROAS for this audience in the window; dashed: account"
            body = f'<text x="{_SW // 2}" y="{_SH // 2 + 4}" text-anchor="middle">no data</text>'
        return (
            f'<svg class="sp" width="{_SW}" height="{_SH}" viewBox="0 0 {_SW} {_SH}" role="img">'
            f'<title>{esc(title)}</title><use href="#{self.uid}"/>{body}</svg>'
        )


# --------------------------------------------------------------------------------------------
# HTML
# --------------------------------------------------------------------------------------------

_CSS = """
:root{--fg:#1f2328;--mu:#59636e;--bd:#d1d9e0;--bg:#fff;--pn:#f6f8fa;
--SCALE:#1a7f37;--SCALEb:#dafbe1;--PAUSE:#cf222e;--PAUSEb:#ffebe9;--RETEST:#8250df;--RETESTb:#fbefff;
--HOLD:#59636e;--HOLDb:#eff2f5;--rv:#9a6700;--rvb:#fff8c5;--acc:#0969da}
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans","Liberation Sans","DejaVu Sans",
Arial,sans-serif;color:var(--fg);background:var(--bg)}
[hidden]{display:none!important}
header.top,main,footer{max-width:1280px;margin:0 auto;padding:0 20px}
header.top{padding-top:18px}
h1{font-size:22px;margin:0 0 2px}
h2{font-size:19px;margin:26px 0 10px;padding-top:12px;border-top:2px solid var(--fg)}
h2 small{font-weight:400;color:var(--mu);font-size:14px}
h3{font-size:15px;margin:18px 0 8px}
.meta,.note{color:var(--mu);margin:0}
.meta code{font-size:12px}
nav.accts a{margin-right:10px}
a{color:var(--acc)}
.kp{display:grid;grid-template-columns:repeat(auto-fill,minmax(150px,1fr));gap:8px;margin:0;padding:0}
.kp div{background:var(--pn);border:1px solid var(--bd);border-radius:8px;padding:8px 10px;margin:0}
.kp dt{color:var(--mu);font-size:12px}
.kp dd{margin:0;font-size:19px;font-weight:650;font-variant-numeric:tabular-nums;white-space:nowrap}
.kp dd small{display:block;font-size:12px;font-weight:400;color:var(--mu);white-space:normal}
.kp .up dd{color:var(--SCALE)}.kp .dn dd{color:var(--PAUSE)}
.mix{display:flex;flex-wrap:wrap;gap:6px;margin:10px 0 0;padding:0;list-style:none}
.mix li{border-radius:999px;padding:2px 10px;font-weight:600;font-variant-numeric:tabular-nums}
.charts{display:grid;grid-template-columns:1fr 1fr;gap:14px}
figure{margin:0;border:1px solid var(--bd);border-radius:8px;padding:8px 8px 4px}
figcaption{font-weight:600;font-size:13px}
figcaption span{font-weight:400;color:var(--mu)}
svg.ch{display:block;width:100%;height:auto;font-size:11px;fill:var(--mu)}
.ch .gl{stroke:#eaeef2}.ch .ax,.ch .tk{stroke:#8c959f}
.ch .wb{fill:#eef3fb}.ch .rl{fill:none;stroke:var(--acc);stroke-width:2;stroke-linejoin:round;stroke-linecap:round}
.ch circle{fill:var(--acc)}.ch .sb rect{fill:#54aeff}
.ch .avg{stroke:#8c959f;stroke-dasharray:5 3}
.ch .al{fill:var(--mu);font-size:10px;paint-order:stroke;stroke:#fff;stroke-width:3px;stroke-linejoin:round}
.ch .yt{font-weight:600;fill:var(--fg)}
.lg{font-size:12px;color:var(--mu);margin:4px 0 0}
.lg i{display:inline-block;width:18px;height:0;border-top:2px solid var(--acc);vertical-align:middle;margin-right:4px}
.lg i.d{border-top:2px dashed #8c959f}.lg i.w{height:10px;border:0;background:#eef3fb}
details.dt{margin-top:8px}
details.dt table{border-collapse:collapse;font-variant-numeric:tabular-nums;margin-top:6px}
details.dt th,details.dt td{padding:2px 12px 2px 0;text-align:right;border-bottom:1px solid #eaeef2}
summary{cursor:pointer}
.fl{position:sticky;top:0;z-index:2;background:var(--bg);padding:8px 0;border-bottom:1px solid var(--bd);
display:flex;flex-wrap:wrap;gap:8px 16px;align-items:center}
.fl [role=group]{display:flex;flex-wrap:wrap;gap:4px;align-items:center}
.fl .gl{font-size:12px;color:var(--mu);margin-right:2px}
.fl button{font:inherit;font-size:13px;border:1px solid var(--bd);background:var(--bg);border-radius:999px;
padding:3px 10px;cursor:pointer;color:var(--fg)}
.fl button[aria-pressed=true]{background:var(--fg);color:#fff;border-color:var(--fg)}
.fl button .c{font-variant-numeric:tabular-nums;color:inherit;opacity:.75;margin-left:3px}
.fl input[type=search]{font:inherit;font-size:13px;padding:3px 8px;border:1px solid var(--bd);border-radius:6px;
min-width:220px}
.fl .st{margin-left:auto;color:var(--mu);font-size:13px}
.cap{background:var(--rvb);border:1px solid #d4a72c;border-radius:8px;padding:8px 12px;margin:10px 0}
.empty{padding:16px;text-align:center;color:var(--mu);border:1px dashed var(--bd);border-radius:8px}
table.au{width:100%;border-collapse:collapse;margin-top:6px}
.au th{background:var(--pn);text-align:left;font-size:12px;color:var(--mu);font-weight:600;padding:6px 8px;
border-bottom:1px solid var(--bd)}
.au .w-a{width:23%}.au td.bu{min-width:10.5em}.au td.mt{min-width:9em}.au .w-s{width:136px}
.au td{padding:8px;border-bottom:1px solid #eaeef2;vertical-align:top;font-variant-numeric:tabular-nums}
@media (min-width:721px){.au td.why{width:25%}}
.au tbody tr{border-left:4px solid var(--HOLD)}
.au td.rk{color:var(--mu);text-align:right;width:3em}
.nm{font-weight:600;display:block;overflow-wrap:anywhere;unicode-bidi:isolate}
.cp{display:block;color:var(--mu);font-size:12px;overflow-wrap:anywhere;unicode-bidi:isolate}
.id{display:block;color:var(--mu);font-size:11px;font-family:ui-monospace,"DejaVu Sans Mono",monospace;
overflow-wrap:anywhere}
.ty{font-family:system-ui,sans-serif;border:1px solid var(--bd);border-radius:4px;padding:0 4px;margin-left:4px}
.rv{display:inline-block;margin-top:3px;background:var(--rvb);color:var(--rv);border:1px solid #d4a72c;
border-radius:4px;padding:0 5px;font-size:12px;font-weight:600}
.ac{display:inline-block;white-space:nowrap;font-weight:700;border-radius:6px;padding:2px 8px;font-size:13px;
color:var(--HOLD);background:var(--HOLDb)}
.ac::before{content:"●";margin-right:4px}
.ac small{display:block;font-size:11px;font-weight:400}
.cf{display:block;margin-top:6px;white-space:nowrap;font-size:12px;font-weight:600}
.cf small{font-weight:400;color:var(--mu)}
.cf::before{content:"";display:inline-block;width:28px;height:8px;margin-right:5px;border-radius:2px;
background:linear-gradient(90deg,var(--fg) var(--w),#d1d9e0 var(--w))}
.cf.c3{--w:100%}.cf.c2{--w:66%}.cf.c1{--w:33%}
.bu b{font-weight:650}.bu small,.mt small{display:block;color:var(--mu);font-size:12px}
.bu .up{color:var(--SCALE)}.bu .dn{color:var(--PAUSE)}
.mt b{font-size:15px}
.ne{color:var(--rv)}
svg.sp{display:block;overflow:visible}
.sp .l{fill:none;stroke:var(--HOLD);stroke-width:1.8;stroke-linecap:round;stroke-linejoin:round}
.sp text{font-size:10px;fill:var(--mu)}
.why{overflow-wrap:anywhere}
.why summary{unicode-bidi:isolate}
.why .k{color:var(--mu);font-size:12px;white-space:nowrap}
.why .k b{color:var(--PAUSE);font-weight:600}
.why ol,.why ul{margin:6px 0;padding-left:20px}
.why li{margin:2px 0}
.why ul.rk2 li{color:#953800}
.why h4{margin:8px 0 2px;font-size:12px;color:var(--mu);text-transform:uppercase;letter-spacing:.03em}
.why p{margin:4px 0;white-space:pre-line}
.src{font-size:11px;color:var(--mu)}
tr[data-a=SCALE]{border-left-color:var(--SCALE)!important}
tr[data-a=PAUSE]{border-left-color:var(--PAUSE)!important}
tr[data-a=RETEST]{border-left-color:var(--RETEST)!important}
tr[data-a=SCALE] .ac,.mix .SCALE{color:var(--SCALE);background:var(--SCALEb)}
tr[data-a=PAUSE] .ac,.mix .PAUSE{color:var(--PAUSE);background:var(--PAUSEb)}
tr[data-a=RETEST] .ac,.mix .RETEST{color:var(--RETEST);background:var(--RETESTb)}
.mix .HOLD{color:var(--HOLD);background:var(--HOLDb)}
tr[data-a=SCALE] .ac::before{content:"▲"}
tr[data-a=PAUSE] .ac::before{content:"■"}
tr[data-a=RETEST] .ac::before{content:"↻"}
tr[data-a=SCALE] .sp .l{stroke:var(--SCALE)}tr[data-a=PAUSE] .sp .l{stroke:var(--PAUSE)}
tr[data-a=RETEST] .sp .l{stroke:var(--RETEST)}
.vh{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}
footer{margin-top:30px;padding-bottom:30px;color:var(--mu);font-size:12px;border-top:1px solid var(--bd)}
@media (max-width:900px){.charts{grid-template-columns:1fr}.fl .st{margin-left:0}}
@media (max-width:720px){
header.top,main,footer{padding:0 12px}header.top{padding-top:12px}
.fl{position:static}.fl input[type=search]{min-width:0;width:100%}
.au thead{display:none}
.au,.au tbody,.au tr,.au td{display:block;width:auto}
.au tbody tr{border:1px solid var(--bd);border-left-width:5px;border-radius:8px;margin:10px 0;padding:4px 0}
.au td{border:0;padding:4px 10px}
.au td.rk{text-align:left;width:auto;font-size:12px;padding-bottom:0}.au td.rk::before{content:"Rank "}
.au td:nth-child(n+3){position:relative;padding-left:112px;min-height:28px}
.au td:nth-child(n+3)::before{position:absolute;left:10px;top:5px;width:96px;color:var(--mu);font-size:12px}
.au td:nth-child(7){padding-left:10px}.au td:nth-child(7)::before{position:static;display:block}
.au td:nth-child(3)::before{content:"Action"}.au td:nth-child(4)::before{content:"Daily budget"}
.au td:nth-child(5)::before{content:"Decision window"}.au td:nth-child(6)::before{content:"Daily ROAS"}
.au td:nth-child(7)::before{content:"Why"}.cf{margin-top:4px}
.why{max-width:none}svg.ch{font-size:16px}
}
@media print{.fl{display:none}}
"""

# The only script: reads data-attributes and button values, writes counts with textContent.
# It never reads user text into HTML (no innerHTML), and no user text is ever inside it.
_JS = """(function(){"use strict";
var fmt=function(n){return n.toLocaleString("en-US");};
document.querySelectorAll("section.acct").forEach(function(sec){
var tb=sec.querySelector("tbody.rows");if(!tb)return;
var rows=Array.prototype.slice.call(tb.rows);
var txt=rows.map(function(r){return r.cells[1].textContent.toLowerCase();});
var ab=sec.querySelectorAll("button[data-f=a]"),tbs=sec.querySelectorAll("button[data-f=t]");
var rv=sec.querySelector("input[data-f=r]"),q=sec.querySelector("input[data-f=q]");
var shown=sec.querySelector(".st b"),empty=sec.querySelector(".empty");
var st={a:"",t:"",r:!!(rv&&rv.checked),q:q?q.value.trim().toLowerCase():""};
function apply(){
var ca={"":0},ct={"":0},cr=0,n=0;
for(var i=0;i<rows.length;i++){
var d=rows[i].dataset,oa=!st.a||d.a===st.a,ot=!st.t||d.t===st.t,orv=!st.r||d.r==="1",
oq=!st.q||txt[i].indexOf(st.q)>=0;
if(ot&&orv&&oq){ca[d.a]=(ca[d.a]||0)+1;ca[""]++;}
if(oa&&orv&&oq){ct[d.t]=(ct[d.t]||0)+1;ct[""]++;}
if(oa&&ot&&oq&&d.r==="1")cr++;
var show=oa&&ot&&orv&&oq;rows[i].hidden=!show;if(show)n++;}
ab.forEach(function(b){b.setAttribute("aria-pressed",String(b.dataset.v===st.a));
b.querySelector(".c").textContent=fmt(ca[b.dataset.v]||0);});
tbs.forEach(function(b){b.setAttribute("aria-pressed",String(b.dataset.v===st.t));
b.querySelector(".c").textContent=fmt(ct[b.dataset.v]||0);});
if(rv)rv.parentNode.querySelector(".c").textContent=fmt(cr);
if(shown)shown.textContent=fmt(n);
if(empty)empty.hidden=n>0;}
ab.forEach(function(b){b.addEventListener("click",function(){st.a=b.dataset.v;apply();});});
tbs.forEach(function(b){b.addEventListener("click",function(){st.t=b.dataset.v;apply();});});
if(rv)rv.addEventListener("change",function(){st.r=rv.checked;apply();});
if(q)q.addEventListener("input",function(){st.q=q.value.trim().toLowerCase();apply();});
apply();});})();"""

_JS_HASH = base64.b64encode(hashlib.sha256(_JS.encode()).digest()).decode()
CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    f"script-src 'sha256-{_JS_HASH}'; base-uri 'none'; form-action 'none'"
)

_CONF = {"HIGH": "c3", "MEDIUM": "c2", "LOW": "c1"}


def _budget_cell(r: AudienceRow, cur: str) -> str:
    now, new = r.current_daily_budget, r.new_daily_budget
    if r.action == "SCALE" and now is not None and new is not None:
        return (
            f"{esc(fmt_money(now, cur, exact=True))} → <b>{esc(fmt_money(new, cur, exact=True))}</b>"
            f'<small class="up">{esc(fmt_money(new - now, cur, exact=True, signed=True))}/day</small>'
        )
    if now is None:
        return '<span class="ne">unknown</span>'
    if r.action == "PAUSE":
        return (
            f"{esc(fmt_money(now, cur, exact=True))} → <b>paused</b>"
            f'<small class="dn">frees {esc(fmt_money(now, cur, exact=True))}/day</small>'
        )
    if r.action == "RETEST":
        return f"{esc(fmt_money(now, cur, exact=True))}<small>relaunch as a new ad set</small>"
    return f"{esc(fmt_money(now, cur, exact=True))}<small>unchanged</small>"


def _metrics_cell(r: AudienceRow, cur: str) -> str:
    parts = []
    if r.roas is not None:
        rel = f" <small>{fmt_ratio(r.normalized_roas)}× account</small>" if r.normalized_roas is not None else ""
        parts.append(f"<b>{fmt_ratio(r.roas)}</b> ROAS{rel}")
    else:
        parts.append("<b>–</b> ROAS <small>no spend</small>")
    parts.append(
        f"<small>{esc(fmt_money(r.spend, cur))} spent</small><small>{fmt_count(r.purchases)} purchases</small>"
    )
    if r.bucket or r.trend:
        parts.append(f"<small>{esc(' · '.join(x for x in (r.bucket, r.trend) if x))}</small>")
    if not r.eligible:
        parts.append('<small class="ne">not enough data</small>')
    return "".join(parts)


def _why_cell(r: AudienceRow) -> str:
    head = decisive_reason(r.reasons) or ACTION_LABEL[r.action]
    nrisk = len(r.risks)
    count = f"{len(r.reasons)} reason{'s' if len(r.reasons) != 1 else ''}"
    if nrisk:
        count += f" · <b>{nrisk} risk{'s' if nrisk != 1 else ''}</b>"
    body = []
    if r.reasons:
        body.append("<h4>Reasons</h4><ol>" + "".join(f"<li>{esc(x, inline=False)}</li>" for x in r.reasons) + "</ol>")
    if r.risks:
        body.append(
            '<h4>Risks</h4><ul class="rk2">' + "".join(f"<li>{esc(x, inline=False)}</li>" for x in r.risks) + "</ul>"
        )
    src = esc(r.explanation_source or "unknown source")
    if r.explanation and r.explanation.strip():
        if r.explanation_source == "template" and _is_template_join(r.explanation, r.reasons):
            body.append(f'<p class="src">Explanation ({src}): the reasons above, as one paragraph.</p>')
        else:
            body.append(
                f'<h4>Explanation <span class="src">({src})</span></h4><p>{esc(r.explanation, inline=False)}</p>'
            )
    return f'<details><summary>{esc(head)} <span class="k">{count}</span></summary>{"".join(body)}</details>'


def _row(r: AudienceRow, cur: str, spark: _Spark) -> str:
    t = esc(r.audience_type or "")
    action = r.action + (f" +{r.scale_percentage}%" if r.action == "SCALE" and r.scale_percentage else "")
    campaign = f'<span class="cp">{esc(r.campaign_name)}</span>' if r.campaign_name else ""
    review = '<span class="rv" title="The analysis disagrees with the rules: check before acting">⚑ needs review</span>'
    return (
        f'<tr data-a="{r.action}" data-t="{t}" data-r="{int(r.needs_review)}">'
        f'<td class="rk">{r.rank}</td>'
        f'<td><span class="nm">{esc(r.audience_name)}</span>{campaign}'
        f'<span class="id">{esc(r.audience_id)}<span class="ty">{esc(type_label(r))}</span></span>'
        f"{review if r.needs_review else ''}</td>"
        f'<td><span class="ac">{action}<small>{ACTION_LABEL[r.action]}</small></span>'
        f'<span class="cf {_CONF[r.confidence]}">{r.confidence}<small> confidence</small></span></td>'
        f'<td class="bu">{_budget_cell(r, cur)}</td>'
        f'<td class="mt">{_metrics_cell(r, cur)}</td>'
        f"<td>{spark.svg(r)}</td>"
        f'<td class="why">{_why_cell(r)}</td>'
        "</tr>"
    )


def _counts(account: AccountSection) -> dict[str, int]:
    if account.counts:
        return {a: int(account.counts.get(a, 0)) for a in ACTION_ORDER}  # type: ignore[call-overload,arg-type]
    c = Counter(r.action for r in account.audiences)
    return {a: c.get(a, 0) for a in ACTION_ORDER}


def _summary(account: AccountSection) -> str:
    cur = account.currency
    counts = _counts(account)
    total = sum(counts.values()) or len(account.audiences)
    eligible = account.eligible if account.eligible is not None else sum(1 for r in account.audiences if r.eligible)
    w = account.window_days
    kpis = [
        ("", f"Spend, last {w} days", esc(fmt_money(account.spend, cur)), ""),
        ("", f"Revenue, last {w} days", esc(fmt_money(account.revenue, cur)), ""),
        ("", "ROAS", fmt_ratio(account.roas), "revenue / spend"),
        ("", "Purchases", fmt_count(account.purchases), ""),
        ("", "Audiences", fmt_count(total), f"{fmt_count(eligible)} with enough data"),
        (
            "up",
            "Budget added by SCALEs",
            esc(fmt_money(account.budget_added, cur, signed=True)),
            f"a day, over {fmt_count(counts['SCALE'])} SCALE{'s' if counts['SCALE'] != 1 else ''}",
        ),
        (
            "dn",
            "Budget freed by PAUSEs",
            esc(fmt_money(account.budget_paused, cur)),
            f"a day, over {fmt_count(counts['PAUSE'])} PAUSE{'s' if counts['PAUSE'] != 1 else ''}",
        ),
    ]
    dl = "".join(
        f"<div{f' class={cls}' if cls else ''}><dt>{k}</dt><dd>{v}{f'<small>{s}</small>' if s else ''}</dd></div>"
        for cls, k, v, s in kpis
    )
    mix = "".join(f'<li class="{a}">{a} {fmt_count(counts[a])}</li>' for a in ACTION_ORDER)
    return f'<dl class="kp">{dl}</dl><ul class="mix" aria-label="Audiences per action">{mix}</ul>'


def _charts(account: AccountSection, days: list[date], uid: str) -> str:
    if not account.daily:
        return '<p class="empty">No daily figures for this account.</p>'
    ch = _Chart(days, _CL + 10, _CR - 10)
    cur = account.currency
    first, last = days[0], days[-1]
    n = len(days)
    legend = (
        '<p class="lg"><i></i>daily ROAS (gaps: no spend) <i class="d"></i>average over the period '
        f'<i class="w"></i>decision window (last {account.window_days} days)</p>'
    )
    table_rows = "".join(
        f"<tr><th scope=row>{fmt_day(p.date, year=True)}</th><td>{esc(fmt_money(p.spend, cur))}</td>"
        f"<td>{esc(fmt_money(p.revenue, cur))}</td><td>{fmt_ratio(p.roas)}</td></tr>"
        for p in sorted(account.daily, key=lambda p: p.date)
    )
    return (
        f"<h3>Last {n} day{'s' if n != 1 else ''} <small class=note>({fmt_day(first, year=True)} – "
        f"{fmt_day(last, year=True)})</small></h3>"
        '<div class="charts">'
        f"<figure><figcaption>ROAS per day <span>(revenue / spend)</span></figcaption>"
        f"{_roas_chart(account, ch, uid + '-r')}{legend}</figure>"
        f"<figure><figcaption>Spend per day <span>({esc(cur)})</span></figcaption>"
        f"{_spend_chart(account, ch, uid + '-s')}</figure>"
        "</div>"
        '<details class="dt"><summary>Daily figures</summary><table><thead><tr><th scope=col>Day</th>'
        "<th scope=col>Spend</th><th scope=col>Revenue</th><th scope=col>ROAS</th></tr></thead>"
        f"<tbody>{table_rows}</tbody></table></details>"
    )


def _filters(rows: Sequence[AudienceRow], total_rendered: int) -> str:
    ca = Counter(r.action for r in rows)
    ct = Counter(r.audience_type or "" for r in rows)
    nr = sum(1 for r in rows if r.needs_review)

    def btn(kind: str, value: str, label: str, count: int, pressed: bool) -> str:
        return (
            f'<button type="button" data-f="{kind}" data-v="{esc(value)}" aria-pressed="{str(pressed).lower()}">'
            f'{label}<span class="c">{fmt_count(count)}</span></button>'
        )

    actions = [btn("a", "", "All", len(rows), True)] + [
        btn("a", a, a, ca.get(a, 0), False) for a in ACTION_ORDER if ca.get(a, 0)
    ]
    types = [btn("t", "", "All", len(rows), True)] + [
        btn("t", t, esc(t) if t else "unknown", n, False) for t, n in sorted(ct.items(), key=lambda kv: (-kv[1], kv[0]))
    ]
    return (
        '<div class="fl" role="search">'
        f'<div role="group" aria-label="Filter by action"><span class="gl">Action</span>{"".join(actions)}</div>'
        f'<div role="group" aria-label="Filter by audience type"><span class="gl">Type</span>{"".join(types)}</div>'
        f'<label><input type="checkbox" data-f="r"> needs review (<span class="c">{fmt_count(nr)}</span>)</label>'
        '<input type="search" data-f="q" placeholder="Search name, campaign or id" aria-label="Search audiences">'
        f'<p class="st" aria-live="polite"><b>{fmt_count(total_rendered)}</b> of {fmt_count(total_rendered)} '
        "rows shown</p></div>"
    )


def _audiences(account: AccountSection, days: list[date], uid: str, max_hold_rows: int, json_name: str) -> str:
    if not account.audiences:
        return '<h3>Audiences</h3><p class="empty">No audiences for this account on this decision date.</p>'
    rows, left_out = visible_rows(account.audiences, max_hold_rows)
    spark = _Spark(account, days, rows, uid + "-sp")
    cap = ""
    if left_out:
        holds = left_out + sum(1 for r in rows if r.action == "HOLD")
        cap = (
            f'<p class="cap" role="note"><strong>{fmt_count(left_out)} HOLD row{"s" if left_out != 1 else ""} '
            f"left out.</strong> This page lists the {fmt_count(holds - left_out)} best-ranked of the "
            f"{fmt_count(holds)} HOLD audiences of this account (every SCALE, PAUSE and RETEST is listed). "
            f"All {fmt_count(len(account.audiences))} audiences, with their reasons, are in the recommendations "
            f"JSON: <code>{esc(json_name)}</code>.</p>"
        )
    if account.left_out:
        shown = len(account.audiences)
        cap += (
            f'<p class="cap" role="note"><strong>{fmt_count(account.left_out)} more audience'
            f"{'s' if account.left_out != 1 else ''} not on this page.</strong> It lists the first "
            f"{fmt_count(shown)} in the order below; all of them, with their reasons, are in the recommendations "
            f"JSON: <code>{esc(json_name)}</code>.</p>"
        )
    defs = (
        f'<svg class="vh" width="0" height="0" aria-hidden="true"><defs>{spark.defs(account.window_days)}</defs></svg>'
    )
    body = "".join(_row(r, account.currency, spark) for r in rows)
    head = (
        '<thead><tr><th scope=col>#</th><th scope=col class="w-a">Audience</th><th scope=col>Action, confidence</th>'
        '<th scope=col class="w-b">Daily budget</th>'
        f'<th scope=col class="w-m">Last {account.window_days} days</th>'
        '<th scope=col class="w-s">Daily ROAS <span class=note>(dashed: account)</span></th><th scope=col>Why</th>'
        "</tr></thead>"
    )
    return (
        f"<h3>Audiences <small class=note>(actionable first: SCALE, PAUSE, RETEST, then HOLD, each by rank)</small>"
        f"</h3>{cap}{_filters(rows, len(rows))}{defs}"
        f'<table class="au"><caption class="vh">Audiences of account {esc(account.account_id)}</caption>{head}'
        f'<tbody class="rows">{body}</tbody></table>'
        '<p class="empty" hidden>No audience matches these filters.</p>'
    )


def _account(account: AccountSection, k: int, max_hold_rows: int, json_name: str) -> str:
    uid = f"a{k}"
    days = _domain(account)
    return (
        f'<section class="acct" id="acct-{k}" aria-labelledby="{uid}-h">'
        f'<h2 id="{uid}-h">Account <bdi>{esc(account.account_id)}</bdi> <small>{esc(account.currency)}</small></h2>'
        f"{_summary(account)}{_charts(account, days, uid)}"
        f"{_audiences(account, days, uid, max_hold_rows, json_name)}</section>"
    )


def render_report(data: ReportData, max_hold_rows: int = 500) -> str:
    """The report of one decision date as one self-contained HTML document.

    Per account: a summary, the daily ROAS and spend charts, and one row per audience
    (SCALE, PAUSE, RETEST, then HOLD, each by rank) with client-side filters. HOLD rows beyond
    the best-ranked `max_hold_rows` of an account are left out, with a note naming the JSON that
    has them all.
    """
    if max_hold_rows < 0:
        raise ValueError("max_hold_rows must be >= 0")
    day = data.decision_date.isoformat()
    json_name = data.recommendations_file or f"recommendations_{day}.json"
    through = data.decision_date - timedelta(days=1)
    nav = ""
    if len(data.accounts) > 1:
        links = " ".join(
            f'<a href="#acct-{k}"><bdi>{esc(a.account_id)}</bdi></a>' for k, a in enumerate(data.accounts, 1)
        )
        nav = f'<nav class="accts" aria-label="Accounts">Accounts: {links}</nav>'
    sections = "".join(_account(a, k, max_hold_rows, json_name) for k, a in enumerate(data.accounts, 1))
    if not data.accounts:
        sections = '<p class="empty">No accounts in this report.</p>'
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="color-scheme" content="light"><meta name="referrer" content="no-referrer">'
        '<link rel="icon" href="data:,">'
        f"<title>Audience recommendations · {day}</title><style>{_CSS}</style></head><body>"
        f'<header class="top"><h1>Audience recommendations for {fmt_day(data.decision_date, year=True)}</h1>'
        f'<p class="meta">Decision date {day}: decided on complete days up to {fmt_day(through, year=True)} · '
        f"generated {esc(data.generated_at)} · rules <code>{esc(data.config_hash)}</code></p>{nav}</header>"
        f"<main>{sections}</main>"
        "<footer><p>SCALE raises the daily budget by the step shown; PAUSE stops the ad set; RETEST duplicates "
        "a proven audience whose delivery stalled; HOLD leaves it as is. Confidence is the probability that "
        "acting is on the right side of break-even for a SCALE or PAUSE, and that the audience is in its bucket "
        "otherwise (HIGH ≥ 90%, MEDIUM ≥ 70%). "
        "Nothing here changes an ad account: a change needs a person's approval and <code>audience-engine execute --apply</code>. Names, reasons and explanations are shown as written, as text.</p>"
        f"</footer><script>{_JS}</script></body></html>"
    )


# --------------------------------------------------------------------------------------------
# Building the input from the recommendations document and daily metrics
# --------------------------------------------------------------------------------------------


def _series(frame: pl.DataFrame) -> list[DailyPoint]:
    return [
        DailyPoint(date=d, spend=s, revenue=r, roas=(r / s if s > 0 else None))
        for d, s, r in frame.select("date", "spend", "revenue").iter_rows()
    ]


def _page_rows(rows: Sequence[Mapping[str, Any]], max_rows: int | None) -> list[Mapping[str, Any]]:
    """An account's rows in page order (actionable first, by rank), the first `max_rows` of them."""
    ordered = sorted(rows, key=lambda r: page_order(str(r["action"]), int(r.get("rank") or 0), str(r["audience_id"])))
    return ordered if max_rows is None else ordered[:max_rows]


def _account_section(
    account_id: str,
    rows: list[Mapping[str, Any]],
    per_account: pl.DataFrame,
    adset_series: Mapping[str, list[DailyPoint]],
    looks: Mapping[str, float | None],
    last: date,
    max_rows: int | None = None,
) -> AccountSection:
    """One account's section: its audiences with their series, totals, and the daily account series.

    With `max_rows`, only the first that many audiences (actionable first, by rank) become rows of
    the page; the totals, counts and budgets still cover all of them."""
    kept = _page_rows(rows, max_rows)
    audiences = []
    for rec in kept:
        m = rec.get("metrics") or {}
        fields = {k: rec[k] for k in AudienceRow.model_fields if k in rec}
        fields.update(
            roas=m.get("roas"),
            normalized_roas=m.get("normalized_roas"),
            spend=m.get("spend"),
            purchases=m.get("purchases"),
            lookalike_pct=looks.get(str(rec["audience_id"]), rec.get("lookalike_pct")),
            daily=adset_series.get(str(rec["audience_id"]), []),
        )
        audiences.append(AudienceRow(**fields))
    acct_days = per_account.filter(pl.col("account_id") == account_id)
    series: list[DailyPoint] = []
    if acct_days.height:
        have = {p.date: p for p in _series(acct_days)}
        first = min(have)
        series = [
            have.get(first + timedelta(days=i))
            or DailyPoint(date=first + timedelta(days=i), spend=0.0, revenue=0.0, roas=None)
            for i in range((last - first).days + 1)
        ]

    def total(key: str) -> float:
        return sum(float((r.get("metrics") or {}).get(key) or 0.0) for r in rows)

    spend, revenue = total("spend"), total("revenue")
    windows = {int((r.get("metrics") or {}).get("window_days") or 7) for r in rows}
    counts = Counter(str(r["action"]) for r in rows)

    def budget(action: str, new: bool) -> float:
        picked = [r for r in rows if r["action"] == action and r.get("current_daily_budget") is not None]
        if new:
            picked = [r for r in picked if r.get("new_daily_budget") is not None]
            return sum(float(r["new_daily_budget"]) - float(r["current_daily_budget"]) for r in picked)
        return sum(float(r["current_daily_budget"]) for r in picked)

    return AccountSection(
        account_id=account_id,
        currency=str(rows[0].get("currency") or "INR"),
        window_days=max(windows) if windows else 7,
        spend=spend,
        revenue=revenue,
        roas=revenue / spend if spend > 0 else None,
        purchases=total("purchases"),
        counts={a: counts.get(a, 0) for a in ACTION_ORDER},
        budget_added=budget("SCALE", new=True),
        budget_paused=budget("PAUSE", new=False),
        daily=series,
        audiences=audiences,
        eligible=sum(1 for r in rows if r.get("eligible")),
        left_out=len(rows) - len(kept),
    )


def report_data(
    document: Mapping[str, Any],
    daily: pl.DataFrame,
    *,
    lookalike_pct: Mapping[str, float | None] | None = None,
    days: int = 28,
    recommendations_file: str | None = None,
    max_rows: int | None = None,
) -> ReportData:
    """ReportData from the recommendations document (the JSON file, as a dict) and daily metrics.

    `daily` has one row per ad set and day: `account_id, adset_id, date, spend, revenue` (the
    warehouse's `daily_metrics`; other columns are ignored). Only the `days` days before the
    decision date are used; ROAS is recomputed per day as revenue / spend, None without spend.
    The account's daily series runs from its first day with data in that window to the day
    before the decision date (days without rows are zero spend, gaps in ROAS); an audience's
    series has the days it has rows for. `lookalike_pct` maps ad-set ids to the lookalike size
    (the recommendations document does not carry it).
    """
    decision = date.fromisoformat(str(document["decision_date"]))
    start = decision - timedelta(days=days)
    last = decision - timedelta(days=1)
    recs: list[Mapping[str, Any]] = list(document.get("recommendations") or [])
    looks = dict(lookalike_pct or {})

    by_account: dict[str, list[Mapping[str, Any]]] = {}
    for rec in recs:
        by_account.setdefault(str(rec["account_id"]), []).append(rec)
    # Daily series only for the audiences the page lists (and every account's totals).
    listed = [str(r["audience_id"]) for rows in by_account.values() for r in _page_rows(rows, max_rows)]
    d = (
        daily.lazy()
        .select(
            pl.col("account_id").cast(pl.Utf8),
            pl.col("adset_id").cast(pl.Utf8),
            pl.col("date").cast(pl.Date),
            pl.col("spend").cast(pl.Float64).fill_null(0.0),
            pl.col("revenue").cast(pl.Float64).fill_null(0.0),
        )
        .filter(pl.col("date").is_between(start, last))
    )
    per_adset = (
        d.group_by("account_id", "adset_id", "date").agg(pl.col("spend").sum(), pl.col("revenue").sum()).collect()
    )
    per_account = (
        per_adset.group_by("account_id", "date").agg(pl.col("spend").sum(), pl.col("revenue").sum()).sort("date")
    )
    per_adset = per_adset.filter(pl.col("adset_id").is_in(listed))
    adset_series = {k[0]: _series(g.sort("date")) for k, g in per_adset.partition_by("adset_id", as_dict=True).items()}

    accounts = [
        _account_section(account_id, by_account[account_id], per_account, adset_series, looks, last, max_rows)
        for account_id in sorted(by_account)
    ]
    return ReportData(
        decision_date=decision,
        generated_at=str(document.get("generated_at") or ""),
        config_hash=str(document.get("config_hash") or ""),
        accounts=accounts,
        recommendations_file=recommendations_file,
    )
