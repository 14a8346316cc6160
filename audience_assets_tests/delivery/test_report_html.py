"""The HTML report (audience_assets.delivery.report): the renderer in Python, then the page in real Chromium.

The demo fixture runs the real CLI demo into tmp_path and builds ReportData from its
recommendations JSON and the warehouse's `daily_metrics` (read-only). The browser tests need
Debian's Chromium and playwright (see chromium.py): they skip without them, and fail instead
when AUDIENCE_ENGINE_REQUIRE_CHROMIUM=1. AUDIENCE_ENGINE_UPDATE_SCREENSHOT=1 rewrites
docs/report.png from the demo report.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import random
import re
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest

from audience_assets.delivery import report as R
from audience_assets.delivery.report import (
    AccountSection,
    AudienceRow,
    DailyPoint,
    ReportData,
    esc,
    fmt_count,
    fmt_money,
    fmt_money_compact,
    order_rows,
    render_report,
    report_data,
    visible_rows,
)
from audience_assets_tests.conftest import REPO_ROOT, VENV_BIN
from audience_assets_tests.delivery import chromium
from audience_assets_tests.delivery.chromium import is_blank, open_page, screenshot_stats

DEMO_MAX_BYTES = 1_000_000  # the demo (120 audiences) renders to about 0.27 MB
BIG_AUDIENCES = 2_000
BIG_MAX_BYTES = 4_000_000  # 2,000 audiences (1,320 rows with 500 HOLDs shown) render to about 2.8 MB
SCREENSHOT = REPO_ROOT / "docs" / "report.png"
END = date(2026, 11, 25)
DECISION = END + timedelta(days=1)

HOSTILE = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "'><svg onload=alert(2)>",
    "</script><script>alert(3)</script>",
    "evil\x1b[31mred\x07 \x00nul",
    "\u202egnp.exe",
    "two\nlines\u2028here",
    "&lt;not an entity&gt; &amp;",
    "javascript:alert(4)",
]


# ---- input builders ---------------------------------------------------------------------------


def _series(rng: random.Random, days: int, *, start_gap: int = 0, zero_every: int = 0) -> list[DailyPoint]:
    out = []
    for i in range(start_gap, days):
        d = END - timedelta(days=days - 1 - i)
        spend = 0.0 if zero_every and i % zero_every == 3 else round(rng.uniform(200, 6000), 2)
        revenue = round(spend * rng.uniform(0.5, 6.0), 2)
        out.append(DailyPoint(date=d, spend=spend, revenue=revenue, roas=revenue / spend if spend else None))
    return out


def _row(i: int, action: str, rng: random.Random, currency: str = "INR", **kw) -> AudienceRow:
    kinds = ["BROAD", "INTEREST", "LOOKALIKE", "CUSTOM"]
    budget = float(rng.randrange(500, 12000))
    sym = R.currency_prefix(currency)
    step = 20 if action == "SCALE" else 0
    reasons = [
        f"ROAS {rng.uniform(0.5, 7):.2f} is {rng.uniform(0.3, 3):.2f}x the account average of 2.54 over 7 days",
        f"Spend {sym}{rng.randrange(3000, 90000):,} and {rng.randrange(2, 130)} purchases over 7 days, above the noise "
        f"thresholds ({sym}3,000, 2 purchases, 2 days old)",
        "WINNER bucket on the INTEREST thresholds: at least 1.20x the account average",
        "No trend: ROAS -7% over the last 4 days versus the 3 before, within the 15% that counts as a change",
        ">99% probability that true ROAS is at least 1.20x the account average (confidence HIGH)",
        f"Decision matrix: WINNER + STABLE -> {action}",
        f"Raise the daily budget {step}%: {sym}{budget:,.0f} -> {sym}{budget * 1.2:,.0f}",
    ]
    risks = ["Custom audience: results depend strongly on the creative; check creative fatigue before changing budget"]
    claude = i % 5 == 0
    fields = dict(
        audience_id=f"1202150{i:08d}",
        audience_name=f"Prospecting | Interest {i} Yoga & Fitness | IN 25-44",
        campaign_name=f"Evergreen | Smartwatch | Sales #{i % 9}",
        audience_type=kinds[i % 4],
        lookalike_pct=1.0 if kinds[i % 4] == "LOOKALIKE" else None,
        action=action,
        scale_percentage=step,
        confidence=["HIGH", "MEDIUM", "LOW"][i % 3] if action == "HOLD" else "HIGH",
        bucket="WINNER",
        trend="STABLE",
        eligible=True,
        rank=i + 1,
        current_daily_budget=budget,
        new_daily_budget=round(budget * 1.2, 2) if action == "SCALE" else budget,
        roas=rng.uniform(0.5, 7),
        normalized_roas=rng.uniform(0.2, 3),
        spend=rng.uniform(3000, 90000),
        purchases=float(rng.randrange(2, 130)),
        reasons=reasons,
        risks=risks,
        explanation=(
            "ROAS has held well above the account average for a week on enough purchases to trust it, and the "
            "budget step stays inside the cooldown and the ceiling. Watch creative fatigue."
            if claude
            else ". ".join(reasons)
        ),
        explanation_source="claude" if claude else "template",
        needs_review=i % 17 == 0,
        daily=_series(rng, 28, start_gap=i % 11, zero_every=9),
    )
    fields.update(kw)
    return AudienceRow(**fields)


def _account(rows: list[AudienceRow], *, currency: str = "INR", account_id: str = "act_synth", days: int = 28):
    rng = random.Random(7)
    daily = _series(rng, days, zero_every=0)
    spend = sum(r.spend or 0 for r in rows)
    counts = {a: sum(1 for r in rows if r.action == a) for a in R.ACTION_ORDER}
    return AccountSection(
        account_id=account_id,
        currency=currency,
        spend=spend,
        revenue=spend * 2.5,
        roas=2.5 if spend else None,
        purchases=sum(r.purchases or 0 for r in rows),
        counts=counts,
        budget_added=sum(
            (r.new_daily_budget or 0) - (r.current_daily_budget or 0) for r in rows if r.action == "SCALE"
        ),
        budget_paused=sum(r.current_daily_budget or 0 for r in rows if r.action == "PAUSE"),
        daily=daily,
        audiences=rows,
    )


def synthetic_account(n: int, *, currency: str = "INR", account_id: str = "act_synth", seed: int = 1):
    """n audiences: 15% SCALE, 25% PAUSE, 3% RETEST, the rest HOLD; realistic reasons and 28-day series."""
    rng = random.Random(seed)
    actions = ["SCALE"] * 15 + ["PAUSE"] * 25 + ["RETEST"] * 3 + ["HOLD"] * 57
    rows = [_row(i, rng.choice(actions), rng, currency) for i in range(n)]
    return _account(rows, currency=currency, account_id=account_id)


def report(*accounts: AccountSection, **kw) -> ReportData:
    fields = {"decision_date": DECISION, "generated_at": "2026-11-26T06:00:00+00:00", "config_hash": "abc123"}
    return ReportData(**{**fields, **kw}, accounts=list(accounts))


def hostile_report() -> ReportData:
    rng = random.Random(3)
    rows = []
    for i, text in enumerate(HOSTILE):
        rows.append(
            _row(
                i,
                ["SCALE", "PAUSE", "HOLD", "RETEST"][i % 4],
                rng,
                audience_name=text,
                campaign_name=HOSTILE[-1 - i],
                audience_type='x" data-a="SCALE' if i % 2 else "BROAD",
                reasons=[text, "plain <b>bold</b> reason"],
                risks=[HOSTILE[-1 - i]],
                explanation=f"Claude says: {text}",
                explanation_source="claude",
            )
        )
    return report(
        _account(rows, account_id="act_<b>x</b>"),
        generated_at="<script>alert(5)</script>",
        config_hash='"><img src=x onerror=alert(6)>',
        recommendations_file="</code><script>alert(7)</script>",
    )


# ---- the demo, run by the real CLI ------------------------------------------------------------


def _cli() -> list[str]:
    exe = Path(sys.executable).with_name("audience-engine")
    return [str(exe if exe.exists() else VENV_BIN / "audience-engine")]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """(ReportData, the recommendations document) of the CLI demo in tmp_path."""
    root = tmp_path_factory.mktemp("report-demo")
    db, out = root / "w.duckdb", root / "recs.json"
    env = {**os.environ, "DAGSTER_HOME": str(root / "dagster")}
    (root / "dagster").mkdir()
    proc = subprocess.run(
        [*_cli(), "demo", "--history-weeks", "0", "--db", str(db), "--out", str(out), "--quiet"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out.read_text(encoding="utf-8"))
    with duckdb.connect(str(db), read_only=True) as conn:
        daily = conn.sql("select account_id, adset_id, date, spend, revenue from daily_metrics").pl()
        looks = dict(
            conn.execute(
                "select adset_id, lookalike_pct from audience_metadata where decision_date = ?", [doc["decision_date"]]
            ).fetchall()
        )
    return report_data(doc, daily, lookalike_pct=looks, recommendations_file=str(out)), doc


# ---- formatting and escaping ------------------------------------------------------------------


def test_money_is_formatted_in_the_accounts_currency():
    assert fmt_money(2932510.49, "INR") == "₹2,932,510"
    assert fmt_money(5947.5, "INR", exact=True) == "₹5,947.50"
    assert fmt_money(1189.5, "INR", exact=True, signed=True) == "+₹1,189.50"
    assert fmt_money(1234.5, "USD") == "$1,235"  # half up, as a person rounds
    assert fmt_money(12.5, "EUR", exact=True) == "€12.50"
    assert fmt_money(-3.25, "GBP", exact=True) == "-£3.25"
    assert fmt_money(1234567.6, "JPY", exact=True) == "¥1,234,568"  # zero-decimal: never decimals
    assert fmt_money(9876.5, "KRW", exact=True) == "KRW 9,877"
    assert fmt_money(12.5, "chf", exact=True) == "CHF 12.50"
    assert fmt_money(-0.001, "INR", exact=True) == "₹0.00"  # no "-0"
    assert fmt_money(None, "INR") == "–"
    assert fmt_money(float("nan"), "INR") == "–"
    assert fmt_money_compact(600_000, "INR") == "₹600k"
    assert fmt_money_compact(1_500_000, "JPY") == "¥1.5M"
    assert fmt_money_compact(250, "USD") == "$250"
    assert fmt_count(5251.0) == "5,251"
    assert fmt_count(12.5) == "12.5"


def test_user_text_is_escaped_and_made_visible():
    assert esc("<script>alert(1)</script>") == "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert esc('"><img src=x onerror=alert(1)>') == "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"
    assert esc("it's") == "it&#x27;s"
    assert esc("a\x1b[31mb\x00") == "a\\x1b[31mb\\x00"
    assert esc("\u202egnp.exe") == "\\u202egnp.exe"
    assert esc("a\u200bb\ufeff") == "a\\u200bb\\ufeff"
    assert esc("a\nb") == "a⏎b"
    assert esc("a\r\nb\tc", inline=False) == "a\nb\tc"  # multi-line text keeps its lines
    assert esc("\ud800") == "\\ud800"  # a lone surrogate could not even be written as UTF-8
    assert esc(None) == ""


def _rows_of(actions_ranks):
    rng = random.Random(0)
    return [_row(i, a, rng, rank=rank, daily=[]) for i, (a, rank) in enumerate(actions_ranks)]


def test_rows_are_ordered_actionable_first_then_hold_by_rank():
    rows = _rows_of([("HOLD", 1), ("PAUSE", 9), ("SCALE", 5), ("RETEST", 2), ("SCALE", 3), ("HOLD", 4), ("PAUSE", 6)])
    ordered = order_rows(rows)
    assert [(r.action, r.rank) for r in ordered] == [
        ("SCALE", 3),
        ("SCALE", 5),
        ("PAUSE", 6),
        ("PAUSE", 9),
        ("RETEST", 2),
        ("HOLD", 1),
        ("HOLD", 4),
    ]
    html = render_report(report(_account(rows)))
    ids = re.findall(r'<span class="id">(\d+)<', html)
    assert ids == [r.audience_id for r in ordered]


def test_hold_rows_beyond_the_cap_are_left_out_with_a_note():
    rows = _rows_of([("HOLD", r) for r in (7, 3, 5, 1, 9)] + [("PAUSE", 2), ("SCALE", 8)])
    shown, left_out = visible_rows(rows, 2)
    assert left_out == 3
    assert [(r.action, r.rank) for r in shown] == [("SCALE", 8), ("PAUSE", 2), ("HOLD", 1), ("HOLD", 3)]
    html = render_report(report(_account(rows), recommendations_file="data/recommendations/r.json"), max_hold_rows=2)
    assert html.count("<tr data-a=") == 4
    note = re.search(r'<p class="cap" role="note">(.*?)</p>', html).group(1)
    assert "3 HOLD rows" in note and "2 best-ranked of the 5 HOLD" in note and "data/recommendations/r.json" in note
    assert 'class="cap"' not in render_report(report(_account(rows)))  # no cap, no note
    assert render_report(report(_account(rows)), max_hold_rows=0).count("<tr data-a=") == 2
    with pytest.raises(ValueError):
        render_report(report(_account(rows)), max_hold_rows=-1)


def test_hostile_text_never_becomes_markup_or_script():
    data = hostile_report()
    html = render_report(data)
    for s in HOSTILE:
        if "<" in s or '"' in s:
            assert s not in html, s
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;" in html
    assert "\\u202egnp.exe" in html and "\u202e" not in html and "\x1b" not in html and "\x00" not in html
    assert "evil\\x1b[31mred\\x07 \\x00nul" in html
    # exactly one script element, the constant one, allowed by hash in the CSP
    scripts = re.findall(r"<script\b[^>]*>(.*?)</script>", html, flags=re.S)
    assert scripts == [R._JS]
    digest = base64.b64encode(hashlib.sha256(scripts[0].encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in html
    # no event-handler attribute anywhere: every ` on...=` in the markup is inside escaped text
    assert not re.search(r"<[^>]*\son[a-z]+\s*=", html)
    assert not re.search(r"<(img|svg onload|iframe|object|embed)\b", html)


def test_the_file_is_self_contained():
    html = render_report(synthetic_report_small())
    links = re.findall(r'\b(?:src|href)\s*=\s*"([^"]*)"', html)
    assert len(links) == len(re.findall(r"\b(?:src|href)\s*=", html))  # every one quoted, so every one seen
    assert links and all(v.startswith(("#", "data:")) for v in links), links
    assert "url(" not in html and "@import" not in html and "http://" not in html and "https://" not in html
    assert html.startswith("<!DOCTYPE html>") and html.endswith("</html>")
    assert "<title>Audience recommendations · 2026-11-26</title>" in html
    assert "<table" in html and "<thead>" in html and "scope=col" in html and "<h1>" in html


def synthetic_report_small() -> ReportData:
    return report(synthetic_account(40))


def test_missing_data_renders_as_gaps_and_messages():
    assert R._segments([(0, 0), (1, 1), None, (3, 3), None, (5, 5)]) == "M0 0L1 1M3 3h0M5 5h0"
    rng = random.Random(1)
    gap = [
        DailyPoint(date=END - timedelta(days=2), spend=100, revenue=300, roas=3.0),
        DailyPoint(date=END - timedelta(days=1), spend=0, revenue=0, roas=None),
        DailyPoint(date=END, spend=100, revenue=200, roas=2.0),
    ]
    rows = [_row(0, "HOLD", rng, daily=[]), _row(1, "SCALE", rng, daily=gap)]
    acct = _account(rows)
    acct.daily = gap
    html = render_report(report(acct, _account([], account_id="act_empty")))
    assert "no data</text>" in html  # the audience without daily points still has its row
    assert html.count("<tr data-a=") == 2
    assert "No audiences for this account on this decision date." in html
    # the account ROAS line has two pieces around the day without spend, not a dip to zero
    roas_path = re.search(r'<path class="rl" d="([^"]+)"', html).group(1)
    assert roas_path.count("M") == 2
    assert "1 day(s) without spend left as gaps" in html
    # an account without any daily data says so instead of drawing empty axes
    none = _account([_row(2, "PAUSE", random.Random(2), daily=[])], account_id="act_nodaily")
    none.daily = []
    assert "No daily figures for this account." in render_report(report(none))


def test_report_data_from_the_demo_matches_the_json(demo):
    data, doc = demo
    (acct,) = data.accounts
    recs = doc["recommendations"]
    assert acct.counts == {a: doc["summary"][a] for a in R.ACTION_ORDER}
    assert len(acct.audiences) == len(recs)
    scale = [r for r in recs if r["action"] == "SCALE"]
    assert acct.budget_added == pytest.approx(sum(r["new_daily_budget"] - r["current_daily_budget"] for r in scale))
    assert acct.budget_added > 0 and acct.budget_paused > 0
    assert acct.roas == pytest.approx(recs[0]["metrics"]["account_avg_roas"], abs=1e-3)
    assert len(acct.daily) == 28 and acct.daily[-1].date == date.fromisoformat(doc["decision_date"]) - timedelta(days=1)
    assert all(p.roas == pytest.approx(p.revenue / p.spend) for p in acct.daily if p.spend)
    assert sum(1 for a in acct.audiences if a.lookalike_pct is not None) > 0
    html = render_report(data)
    assert len(html.encode()) < DEMO_MAX_BYTES
    assert "₹" in html and html.count("<tr data-a=") == len(recs)


def _rec(adset: str, account: str, action: str, rank: int, now: float, new: float, currency: str) -> dict:
    return {
        "audience_id": adset,
        "audience_name": f"name {adset}",
        "campaign_name": "c",
        "account_id": account,
        "action": action,
        "scale_percentage": 20 if action == "SCALE" else 0,
        "confidence": "HIGH",
        "rank": rank,
        "audience_type": "BROAD",
        "eligible": True,
        "bucket": "WINNER",
        "trend": "STABLE",
        "currency": currency,
        "current_daily_budget": now,
        "new_daily_budget": new,
        "reasons": ["r"],
        "risks": [],
        "explanation": "r",
        "explanation_source": "template",
        "needs_review": False,
        "metrics": {"window_days": 7, "spend": 100.0, "purchases": 2.0, "revenue": 250.0, "roas": 2.5},
    }


def test_report_data_builds_series_totals_and_budgets():
    doc = {
        "decision_date": "2026-11-26",
        "generated_at": "2026-11-26T06:00:00+00:00",
        "config_hash": "h",
        "recommendations": [
            _rec("s1", "act_b", "SCALE", 1, 1000.0, 1200.0, "USD"),
            _rec("p1", "act_b", "PAUSE", 2, 300.0, 300.0, "USD"),
            _rec("h1", "act_a", "HOLD", 3, 50.0, 50.0, "jpy"),
        ],
    }
    rows = [
        ("act_a", "h1", date(2026, 10, 1), 10.0, 30.0),  # before the 28-day window: ignored
        ("act_a", "h1", date(2026, 11, 20), 10.0, 30.0),
        ("act_a", "h1", date(2026, 11, 22), 0.0, 0.0),  # no spend: a gap, not a zero ROAS
        ("act_b", "s1", date(2026, 11, 25), 20.0, 50.0),
        ("act_b", "p1", date(2026, 11, 25), 5.0, 0.0),
        ("act_b", "s1", date(2026, 11, 26), 99.0, 99.0),  # the decision date itself: not a complete day
    ]
    daily = pl.DataFrame(rows, schema=["account_id", "adset_id", "date", "spend", "revenue"], orient="row")
    data = report_data(doc, daily, lookalike_pct={"h1": 2.0})
    a, b = data.accounts
    assert (a.account_id, a.currency, b.account_id, b.currency) == ("act_a", "JPY", "act_b", "USD")
    assert [p.date.day for p in a.daily] == [20, 21, 22, 23, 24, 25]  # from its first day to the last complete one
    assert [p.roas for p in a.daily] == [3.0, None, None, None, None, None]
    assert [p.spend for p in a.daily] == [10.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    assert [(p.date.day, p.roas) for p in a.audiences[0].daily] == [(20, 3.0), (22, None)]
    assert a.audiences[0].lookalike_pct == 2.0
    assert [(p.date.day, p.spend, p.roas) for p in b.daily] == [(25, 25.0, 2.0)]
    assert b.counts == {"SCALE": 1, "PAUSE": 1, "RETEST": 0, "HOLD": 0}
    assert (b.budget_added, b.budget_paused) == (200.0, 300.0)
    assert (b.spend, b.revenue, b.roas, b.purchases) == (200.0, 500.0, 2.5, 4.0)
    assert a.audiences[0].spend == 100.0 and a.audiences[0].roas == 2.5


def test_a_jpy_account_has_no_decimals():
    html = render_report(report(synthetic_account(30, currency="JPY")))
    amounts = re.findall(r"¥[\d,]+(?:\.\d+)?", html)
    assert amounts and all("." not in a for a in amounts)
    assert "₹" not in html


def test_size_of_a_2000_audience_account():
    data = report(synthetic_account(BIG_AUDIENCES))
    t = time.perf_counter()
    html = render_report(data)
    seconds = time.perf_counter() - t
    size = len(html.encode())
    assert size < BIG_MAX_BYTES, f"{size:,} bytes"
    assert seconds < 10
    holds = sum(1 for r in data.accounts[0].audiences if r.action == "HOLD")
    assert html.count("<tr data-a=") == BIG_AUDIENCES - holds + 500


# ---- the Chromium helper ----------------------------------------------------------------------


def test_missing_chromium_skips_or_fails_by_environment(monkeypatch):
    monkeypatch.setattr(chromium, "find_chromium", lambda: None)
    monkeypatch.delenv(chromium.REQUIRE_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match="Chromium not found"):
        chromium.require_chromium()
    monkeypatch.setenv(chromium.REQUIRE_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match="AUDIENCE_ENGINE_REQUIRE_CHROMIUM=1 requires"):
        chromium.require_chromium()


def test_blank_screenshots_are_told_from_drawn_ones():
    image = pytest.importorskip("PIL.Image")
    draw = pytest.importorskip("PIL.ImageDraw")

    def png(img) -> bytes:
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        return buf.getvalue()

    blank = image.new("RGB", (400, 300), "white")
    assert is_blank(png(blank))
    drawn = blank.copy()
    pen = draw.Draw(drawn)
    for i in range(40):
        pen.rectangle([10 + i * 9, 20, 16 + i * 9, 40 + i * 6], fill=(i * 6, 120, 255 - i * 6))
    assert not is_blank(png(drawn))
    assert screenshot_stats(png(drawn))[0] > screenshot_stats(png(blank))[0]


# ---- in Chromium ------------------------------------------------------------------------------


def _write(tmp_path: Path, html: str, name: str = "report.html") -> Path:
    path = tmp_path / name
    path.write_text(html, encoding="utf-8")
    return path


VISIBLE_ROWS = "Array.from(document.querySelectorAll('tbody.rows tr')).filter(r => r.offsetParent !== null)"


def _visible(page, attr: str) -> list[str]:
    return page.evaluate(f"{VISIBLE_ROWS}.map(r => r.dataset.{attr})")


def _count_on(page, selector: str) -> str:
    return page.locator(selector).locator(".c").inner_text()


def test_demo_report_draws_cleanly_in_chromium(demo, tmp_path):
    data, doc = demo
    path = _write(tmp_path, render_report(data))
    with open_page(path, width=1280) as s:
        page = s.page
        assert page.title() == f"Audience recommendations · {doc['decision_date']}"
        assert page.locator("tbody.rows tr").count() == len(doc["recommendations"])
        boxes = page.evaluate(
            "Array.from(document.querySelectorAll('svg.ch'))"
            ".map(e => e.getBoundingClientRect()).map(b => b.width * b.height)"
        )
        assert len(boxes) == 2 and min(boxes) > 100 * 100
        sparks = page.evaluate(
            "Array.from(document.querySelectorAll('svg.sp'))"
            ".map(e => e.getBoundingClientRect()).filter(b => b.width > 50 && b.height > 20).length"
        )
        assert sparks == len(doc["recommendations"])
        # the lines are drawn: the account's ROAS line, each audience's own line, the shared dashed account line
        assert page.evaluate("document.querySelector('svg.ch path.rl').getTotalLength()") > 200
        with_lines = sum(1 for a in data.accounts[0].audiences if sum(p.roas is not None for p in a.daily) >= 2)
        drawn = page.evaluate(
            "Array.from(document.querySelectorAll('svg.sp path.l')).filter(p => p.getBBox().width > 0).length"
        )
        assert drawn == with_lines > 100
        assert page.evaluate("document.querySelector('svg.sp use').getBBox().width") > 50
        assert page.evaluate("document.documentElement.scrollWidth") <= 1280  # nothing wider than the window
        assert "₹" in page.locator("dl.kp").inner_text()
        rec = s.report(clip={"x": 0, "y": 0, "width": 1280, "height": 1600})
        assert rec.problems() == []
        share, colours = screenshot_stats(rec.screenshot)
        assert not is_blank(rec.screenshot), (share, colours)
        if os.environ.get("AUDIENCE_ENGINE_UPDATE_SCREENSHOT") == "1":
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            SCREENSHOT.write_bytes(rec.screenshot)


def test_filters_by_action_and_type_with_counts(demo, tmp_path):
    data, doc = demo
    recs = doc["recommendations"]
    pauses = [r for r in recs if r["action"] == "PAUSE"]
    path = _write(tmp_path, render_report(data))
    with open_page(path) as s:
        page = s.page
        assert len(_visible(page, "a")) == len(recs)
        page.click("button[data-f=a][data-v=PAUSE]")
        assert _visible(page, "a") == ["PAUSE"] * len(pauses)
        assert page.locator(".st b").inner_text() == str(len(pauses))
        assert page.get_attribute("button[data-f=a][data-v=PAUSE]", "aria-pressed") == "true"
        # the type buttons now count PAUSE rows only
        for kind in {r["audience_type"] for r in pauses}:
            expected = sum(1 for r in pauses if r["audience_type"] == kind)
            assert _count_on(page, f"button[data-f=t][data-v={kind}]") == str(expected)
        page.click("button[data-f=t][data-v=INTEREST]")
        both = [r for r in pauses if r["audience_type"] == "INTEREST"]
        assert len(both) > 0
        assert _visible(page, "t") == ["INTEREST"] * len(both)
        assert _visible(page, "a") == ["PAUSE"] * len(both)
        # the action buttons now count INTEREST rows only
        scale_interest = sum(1 for r in recs if r["action"] == "SCALE" and r["audience_type"] == "INTEREST")
        assert _count_on(page, "button[data-f=a][data-v=SCALE]") == str(scale_interest)
        page.click("button[data-f=a][data-v='']")
        page.click("button[data-f=t][data-v='']")
        assert len(_visible(page, "a")) == len(recs)
        # search narrows by name, campaign or id
        page.fill("input[data-f=q]", recs[0]["audience_id"])
        assert len(_visible(page, "a")) == 1
        page.fill("input[data-f=q]", "no audience is called this")
        assert _visible(page, "a") == [] and page.locator("p.empty").is_visible()
        assert s.report().problems() == []


def test_hostile_names_render_as_inert_text(tmp_path):
    data = hostile_report()
    html = render_report(data)
    csp = re.search(r'<meta http-equiv="Content-Security-Policy"[^>]*>', html).group(0)
    # with the shipped CSP and without it: escaping alone must keep everything inert
    for name, page_html in (("with-csp.html", html), ("without-csp.html", html.replace(csp, ""))):
        path = _write(tmp_path, page_html, name)
        with open_page(path) as s:
            page = s.page
            names = page.locator("tbody.rows .nm").all_inner_texts()
            assert "<script>alert(1)</script>" in names
            assert '"><img src=x onerror=alert(1)>' in names
            assert "evil\\x1b[31mred\\x07 \\x00nul" in names
            assert "\\u202egnp.exe" in names
            assert "two⏎lines⏎here" in names
            assert "<script>alert(5)</script>" in page.locator("header").inner_text()
            page.hover("tbody.rows tr:first-child")
            for d in page.locator("tbody.rows details").all():
                d.locator("summary").click()
            assert "Claude says: <script>alert(1)</script>" in page.locator("tbody.rows").inner_text()
            injected = page.evaluate(
                """() => ({
                scripts: document.scripts.length,
                media: document.querySelectorAll('img, iframe, object, embed, svg[onload]').length,
                handlers: Array.from(document.querySelectorAll('*')).filter(
                    e => Array.from(e.attributes).some(a => a.name.startsWith('on'))).length,
                bolds: document.querySelectorAll('tbody b').length
                    - document.querySelectorAll('td.bu b, td.mt b, .k b').length,
            })"""
            )
            assert injected == {"scripts": 1, "media": 0, "handlers": 0, "bolds": 0}
            # the hostile type value still filters exactly its rows
            page.click("""button[data-f=t][data-v='x" data-a="SCALE']""")
            kinds = _visible(page, "t")
            assert kinds and set(kinds) == {'x" data-a="SCALE'}
            rec = s.report()
            assert rec.dialogs == [] and rec.page_errors == [] and rec.external_requests == []
            assert rec.console == [], rec.console


def test_inr_and_jpy_accounts_in_one_report(tmp_path):
    data = report(
        synthetic_account(20, currency="INR", account_id="act_in"),
        synthetic_account(20, currency="JPY", account_id="act_jp", seed=2),
    )
    path = _write(tmp_path, render_report(data))
    with open_page(path) as s:
        page = s.page
        inr, jpy = page.locator("section.acct").all()
        inr_text, jpy_text = inr.inner_text(), jpy.inner_text()
        assert "₹" in inr_text and "¥" not in inr_text
        assert re.search(r"₹[\d,]+\.\d\d", inr_text)  # budgets keep the paise
        yen = re.findall(r"¥[\d,]+(?:\.\d+)?", jpy_text)
        assert len(yen) > 20 and all("." not in a for a in yen)
        assert "₹" not in jpy_text
        assert page.locator("nav.accts a").count() == 2
        # each account filters its own table
        jpy.locator("button[data-f=a][data-v=SCALE]").click()
        assert inr.locator("tbody.rows tr:visible").count() == 20
        assert set(jpy.locator("tbody.rows tr:visible").evaluate_all("rs => rs.map(r => r.dataset.a)")) == {"SCALE"}
        assert s.report().problems() == []


def test_2000_audiences_with_the_hold_cap(tmp_path):
    data = report(synthetic_account(BIG_AUDIENCES))
    html = render_report(data)
    assert len(html.encode()) < BIG_MAX_BYTES
    rows = data.accounts[0].audiences
    holds = sum(1 for r in rows if r.action == "HOLD")
    path = _write(tmp_path, html)
    with open_page(path) as s:
        page = s.page
        note = page.locator("p.cap")
        assert note.is_visible()
        assert f"{holds - 500:,} HOLD rows left out" in note.inner_text()
        assert "recommendations_2026-11-26.json" in note.inner_text()
        assert page.locator("tbody.rows tr").count() == len(rows) - holds + 500
        t = time.perf_counter()
        page.click("button[data-f=a][data-v=PAUSE]")
        assert page.locator(".st b").inner_text() == f"{sum(1 for r in rows if r.action == 'PAUSE'):,}"
        assert time.perf_counter() - t < 2  # instant enough, even with a browser round trip
        rec = s.report(full_page=False)
        assert rec.problems() == [] and not is_blank(rec.screenshot)


def test_narrow_phone_screen(demo, tmp_path):
    data, _ = demo
    path = _write(tmp_path, render_report(data))
    with open_page(path, width=390, height=844) as s:
        page = s.page
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        assert not page.locator("table.au thead").is_visible()  # rows become cards
        first = page.locator("tbody.rows tr").first
        assert first.bounding_box()["width"] <= 390
        rec = s.report(full_page=False)
        assert rec.problems() == [] and not is_blank(rec.screenshot)


def test_empty_report_and_empty_account_in_chromium(tmp_path):
    acct = _account([], account_id="act_empty")
    acct.daily = []
    path = _write(tmp_path, render_report(report(acct)))
    with open_page(path) as s:
        assert s.page.get_by_text("No audiences for this account on this decision date.").is_visible()
        assert s.page.get_by_text("No daily figures for this account.").is_visible()
        assert s.report().problems() == []
    path = _write(tmp_path, render_report(report()), "none.html")
    with open_page(path) as s:
        assert s.page.get_by_text("No accounts in this report.").is_visible()
        assert s.report().problems() == []


def test_demo_writes_the_report_prints_its_path_and_it_draws(tmp_path):
    """From the demo as a user runs it: the path printed, the file there, the page drawn in Chromium."""
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "dagster")}
    proc = subprocess.run([*_cli(), "demo", "--history-weeks", "0", "--top", "0"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    printed = next(line for line in proc.stderr.splitlines() if line.startswith("Report: "))
    path = tmp_path / printed.removeprefix("Report: ").split("  (")[0]
    assert path == tmp_path / "data" / "reports" / "report_2026-11-26.html" and path.is_file()
    again = tmp_path / "again.html"
    made = subprocess.run([*_cli(), "report", "--out", str(again)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert made.returncode == 0, made.stderr
    for html_path in (path, again):
        with open_page(html_path, width=1280) as s:
            assert s.page.title() == "Audience recommendations · 2026-11-26"
            assert s.page.locator("tbody.rows tr").count() == 120
            rec = s.report(clip={"x": 0, "y": 0, "width": 1280, "height": 1200})
            assert rec.problems() == [] and not is_blank(rec.screenshot)
