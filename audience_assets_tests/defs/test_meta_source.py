"""The asset graph on the meta source, against the fake Graph API: what lands in the warehouse and
what the engine decides from it (async initial loads, canonical purchases, minor units, CBO, lifetime
budgets, learning stage, audience types and the user mapping, currencies, no secrets stored)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from audience_assets_tests.conftest import (
    failure_messages,
    query,
    relations,
    scalar,
    summed_metadata,
)
from audience_assets_tests.fakes.graph_server import PURCHASE_ACTION_TYPES, FakeGraph, minor_unit_offset
from audience_assets_tests.meta_helpers import (
    DECISION,
    END,
    INR,
    JPY,
    JPY_RATE,
    LEARNING_TEXT,
    TOKEN,
    all_metadata_text,
    close,
    fake_days,
    fake_totals,
    run_meta,
    standard_accounts,
)

INITIAL_DAYS = 35  # MetaResource.initial_days default
FIRST = END - timedelta(days=INITIAL_DAYS - 1)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """Both accounts loaded once for DECISION (initial async pull, paged), with a mapping file. Read-only."""
    root = tmp_path_factory.mktemp("meta_base")
    setup = standard_accounts()
    mapping = root / "audiences.csv"
    mapping.write_text(f"adset_id,audience_type\n{setup.jpy_broad},interest\n")
    with FakeGraph([setup.inr, setup.jpy], page_size_cap=7, async_poll_rounds=2) as fake:
        db, out = root / "w.duckdb", root / "out"
        result = run_meta(db, fake, out_dir=out, audience_mapping_path=str(mapping))
        assert result.success, failure_messages(result)
        requests = list(fake.requests)
        runs = dict(fake.report_runs)
        yield type(
            "Base",
            (),
            {
                "setup": setup,
                "fake": fake,
                "db": db,
                "out": out,
                "result": result,
                "requests": requests,
                "runs": runs,
                "root": root,
            },
        )


def raw(db, account: str | None = None) -> pl.DataFrame:
    where = f"WHERE account_id = '{account}'" if account else ""
    return query(db, f"SELECT * FROM raw_insights {where} ORDER BY account_id, adset_id, date")


def meta_row(db, adset_id: str) -> dict:
    rows = query(db, "SELECT * FROM audience_metadata WHERE adset_id = ? AND decision_date = ?", [adset_id, DECISION])
    assert rows.height == 1, f"{adset_id}: {rows.height} metadata rows"
    return rows.to_dicts()[0]


def decision(db, adset_id: str) -> dict:
    rows = query(db, "SELECT * FROM decisions WHERE adset_id = ? AND decision_date = ?", [adset_id, DECISION])
    assert rows.height == 1
    return rows.to_dicts()[0]


def recommendation(db, adset_id: str) -> dict:
    rows = query(db, "SELECT * FROM recommendations WHERE audience_id = ? AND decision_date = ?", [adset_id, DECISION])
    assert rows.height == 1
    return rows.to_dicts()[0]


# --------------------------------------------------------------------------- the initial load


def test_initial_load_runs_one_async_report_per_account_and_reads_every_page(base):
    meta = summed_metadata(base.result, "raw_insights")
    assert meta["source"] == "meta"
    assert meta["meta_async_jobs"] == 2 and meta["meta_async_splits"] == 0
    assert meta["accounts_loaded"] == 2 and meta["accounts_failed"] == 0
    assert meta["first_day_loaded"] == FIRST.isoformat() and meta["last_day_loaded"] == END.isoformat()
    assert f"{INR}: full {INITIAL_DAYS} days" in meta["load"]
    posts = [r for r in base.requests if r["method"] == "POST"]
    assert sorted(r["path"] for r in posts) == [f"/v26.0/{INR}/insights", f"/v26.0/{JPY}/insights"]
    for p in posts:
        assert json.loads(p["params"]["time_range"]) == {"since": FIRST.isoformat(), "until": END.isoformat()}
    for run in base.runs.values():
        assert run.statuses == ["Job Running", "Job Running", "Job Completed"]
        pages = [r for r in base.requests if r["path"] == f"/v26.0/{run.id}/insights"]
        assert len(pages) > 5  # 7 rows a page
    # Account reads, the two POSTs, the polls and the result pages: each counted once (no retries here).
    ids = set(base.runs)
    insights_requests = [r for r in base.requests if r["method"] == "POST" or r["path"].split("/")[2] in ids]
    assert meta["meta_requests"] == len(insights_requests) + 2
    assert meta["meta_retries"] == 0 and meta["meta_throttle_pauses"] == 0


@pytest.mark.parametrize("account", [INR, JPY])
def test_every_fake_row_is_stored_exactly_once(base, account):
    acct = base.setup.inr if account == INR else base.setup.jpy
    frame = raw(base.db, account)
    totals = fake_totals(acct, FIRST, END)
    assert frame.height == totals["rows"]
    assert frame.select("adset_id", "date").n_unique() == frame.height
    assert set(zip(frame["adset_id"], frame["date"], strict=True)) == set(fake_days(acct, FIRST, END))
    assert close(frame["spend"].sum(), totals["spend"], 0.01)
    assert frame["impressions"].sum() == totals["impressions"]
    assert frame["clicks"].sum() == totals["clicks"]
    assert frame["purchases"].sum() == totals["purchases"]  # one canonical type, never 4x
    assert close(frame["purchase_value"].sum(), totals["purchase_value"], 0.05)
    assert set(frame["currency"]) == {acct.currency}
    assert set(frame["source"]) == {"meta"}


def test_rows_carry_canonical_purchases_and_the_raw_arrays(base):
    facts = fake_days(base.setup.inr, FIRST, END)
    frame = raw(base.db, INR)
    checked = 0
    for r in frame.to_dicts():
        f = facts[(r["adset_id"], r["date"])]
        assert r["purchases"] == f.total("purchase")
        assert close(r["purchase_value"], float(f.total_value("purchase")))
        assert r["inline_link_clicks"] == f.inline_link_clicks and r["reach"] == f.reach
        if f.total("purchase"):
            checked += 1
            assert r["purchase_action_type"] == "omni_purchase"
            actions = json.loads(r["actions_json"])
            types = [a["action_type"] for a in actions if a["action_type"] in PURCHASE_ACTION_TYPES]
            assert sorted(types) == sorted(PURCHASE_ACTION_TYPES)
            assert all(a["value"] == str(f.total("purchase")) for a in actions if a["action_type"] in types)
            assert json.loads(r["purchase_roas_json"])[0]["action_type"] == "omni_purchase"
    assert checked > 100


# --------------------------------------------------------------------------- audience metadata


def test_budgets_are_converted_from_minor_units_per_currency(base):
    s = base.setup
    assert meta_row(base.db, s.inr_interest)["daily_budget"] == 5000.0  # "500000" paise
    assert meta_row(base.db, s.jpy_interest)["daily_budget"] == 5000.0  # "5000" yen
    for acct in (s.inr, s.jpy):
        offset = minor_unit_offset(acct.currency)
        for a in acct.adsets:
            row = meta_row(base.db, a["id"])
            assert row["currency"] == acct.currency and row["account_id"] == acct.account_id
            daily = int(a.get("daily_budget") or 0)
            lifetime = int(a.get("lifetime_budget") or 0)
            assert row["daily_budget"] == (daily / offset if daily else None)
            assert row["lifetime_budget"] == (lifetime / offset if lifetime else None)


def test_campaign_budget_optimisation_is_flagged_and_never_scaled(base):
    s = base.setup
    for adset_id in (s.cbo, s.inr_cbo):
        row = meta_row(base.db, adset_id)
        assert row["is_cbo"] is True
        assert row["daily_budget"] is None and row["lifetime_budget"] is None
    others = query(base.db, "SELECT is_cbo FROM audience_metadata WHERE adset_id NOT IN (?, ?)", [s.cbo, s.inr_cbo])
    assert not any(others["is_cbo"])
    d = decision(base.db, s.cbo)
    assert d["matrix_action"] == "SCALE", "setup: the CBO ad set should be a clear winner"
    assert d["action"] == "HOLD" and d["guardrail"] == "campaign_budget"
    assert "campaign" in d["guardrail_reason"]
    rec = recommendation(base.db, s.cbo)
    assert rec["action"] == "HOLD" and rec["scale_percentage"] == 0
    assert scalar(base.db, "SELECT count(*) FROM decisions WHERE is_cbo AND action = 'SCALE'") == 0


def test_lifetime_budget_ad_set_is_never_scaled(base):
    s = base.setup
    row = meta_row(base.db, s.lifetime)
    assert row["daily_budget"] is None and row["lifetime_budget"] == 186000.0 and row["is_cbo"] is False
    d = decision(base.db, s.lifetime)
    assert d["matrix_action"] == "SCALE", "setup: the lifetime-budget ad set should be a clear winner"
    assert d["action"] == "HOLD" and d["guardrail"] == "lifetime_budget"
    assert recommendation(base.db, s.lifetime)["action"] == "HOLD"
    assert (
        scalar(
            base.db,
            "SELECT count(*) FROM decisions WHERE lifetime_budget IS NOT NULL AND daily_budget IS NULL AND action = 'SCALE'",
        )
        == 0
    )


def test_learning_stage_is_read_and_missing_info_is_null(base):
    s = base.setup
    for acct in (s.inr, s.jpy):
        for a in acct.adsets:
            expected = (a.get("learning_stage_info") or {}).get("status")
            assert meta_row(base.db, a["id"])["learning_stage"] == expected
    broad = meta_row(base.db, s.broad)
    assert broad["learning_stage"] is None
    rec = recommendation(base.db, s.broad)
    assert rec["eligible"] is True and rec["action"] in ("SCALE", "HOLD", "PAUSE", "RETEST")
    assert not any(LEARNING_TEXT in r for r in rec["risks"])


def test_learning_phase_risk_is_shown(base):
    s = base.setup
    assert meta_row(base.db, s.learning)["learning_stage"] == "LEARNING"
    rec = recommendation(base.db, s.learning)
    assert rec["eligible"] is True
    assert any(LEARNING_TEXT in r for r in rec["risks"]), rec["risks"]
    account = meta_row(base.db, s.learning)["account_id"]
    doc = json.loads((base.out / f"recommendations_{DECISION.isoformat()}_{account}.json").read_text())
    rec_json = next(r for r in doc["recommendations"] if r["audience_id"] == s.learning)
    assert any(LEARNING_TEXT in r for r in rec_json["risks"])


def test_audience_type_is_derived_from_targeting_and_the_mapping_wins(base):
    s = base.setup
    expected = {
        s.learning: ("LOOKALIKE", 1.0, "PURCHASERS"),  # "Lookalike (IN, 1%) - Purchasers"
        s.lifetime: ("CUSTOM", None, "VC"),  # "Website visitors 30d"
        s.inr_interest: ("INTEREST", None, None),  # flexible_spec interests
        s.broad: ("BROAD", None, None),
        s.jpy_lookalike_atc: ("LOOKALIKE", 2.0, "ATC"),  # "Lookalike (JP, 2%) - Add to cart 30d"
        s.cbo: ("LOOKALIKE", 3.0, "PURCHASERS"),
        s.jpy_broad: ("INTEREST", None, None),  # BROAD by targeting, INTEREST by the mapping file
    }
    for adset_id, (kind, pct, quality) in expected.items():
        row = meta_row(base.db, adset_id)
        assert (row["audience_type"], row["lookalike_pct"], row["source_quality"]) == (kind, pct, quality), adset_id
    assert decision(base.db, s.jpy_broad)["modifier_key"] == "INTEREST"
    assert decision(base.db, s.broad)["modifier_key"] == "BROAD"
    assert decision(base.db, s.learning)["modifier_key"] == "LOOKALIKE_1PCT"


def test_launch_date_and_last_budget_change_come_from_graph(base):
    s = base.setup
    a = next(x for x in s.inr.adsets if x["id"] == s.learning)
    created = datetime.strptime(a["created_time"], "%Y-%m-%dT%H:%M:%S%z")
    row = meta_row(base.db, s.learning)
    assert row["launched_on"] == created.date()  # the account's (Asia/Kolkata) day
    change = max(
        datetime.strptime(e["event_time"], "%Y-%m-%dT%H:%M:%S%z")
        for e in s.inr.activities
        if e["object_id"] == s.learning and "budget" in e["event_type"]
    )
    assert row["last_budget_change_at"] == change.astimezone(UTC).replace(tzinfo=None)
    assert meta_row(base.db, s.lifetime)["last_budget_change_at"] is None


def test_thresholds_are_per_account_currency(base):
    d = query(
        base.db,
        "SELECT DISTINCT account_id, currency, min_spend_acct FROM decisions WHERE decision_date = ?",
        [DECISION],
    )
    got = {r["account_id"]: (r["currency"], r["min_spend_acct"]) for r in d.to_dicts()}
    assert got == {INR: ("INR", 3000.0), JPY: ("JPY", pytest.approx(3000.0 * JPY_RATE))}


def test_recommend_never_writes_to_meta(base):
    methods = {(r["method"], r["path"].split("/")[-1] if r["method"] == "POST" else "") for r in base.requests}
    assert methods <= {("GET", ""), ("POST", "insights")}
    for r in base.requests:
        if r["method"] != "GET":
            assert r["path"] in (f"/v26.0/{INR}/insights", f"/v26.0/{JPY}/insights"), r["path"]
    assert not [r for r in base.fake.requests if r["path"].endswith("/copies")]


def test_access_token_is_sent_but_never_stored(base):
    assert all(r["access_token"] == TOKEN for r in base.requests)
    for table in relations(base.db):
        cols = query(base.db, f'DESCRIBE "{table}"')
        text_cols = [c for c, t in zip(cols["column_name"], cols["column_type"], strict=True) if "VARCHAR" in t]
        for col in text_cols:
            hits = scalar(
                base.db, f'SELECT count(*) FROM "{table}" WHERE CAST("{col}" AS VARCHAR) LIKE ?', [f"%{TOKEN[:16]}%"]
            )
            assert hits == 0, f"{table}.{col} holds the access token"
    assert TOKEN[:16] not in all_metadata_text(base.result)
    for path in base.out.glob("*.json"):
        assert TOKEN[:16] not in path.read_text()


# --------------------------------------------------------------------------- currencies without a rate


def test_without_a_rate_jpy_audiences_are_ineligible_and_inr_ones_unaffected(base, tmp_path):
    db = tmp_path / "w.duckdb"
    result = run_meta(db, base.fake, overrides={})
    assert result.success, failure_messages(result)
    jpy = query(db, "SELECT * FROM decisions WHERE account_id = ?", [JPY])
    assert jpy.height == len({a for a, _ in fake_days(base.setup.jpy, FIRST, END)})
    assert not any(jpy["eligible"])
    assert all("currency_rates.JPY" in r and "JPY" in r for r in jpy["filter_reason"])
    assert set(jpy["action"]) <= {"HOLD"}
    with_rate = query(
        base.db, "SELECT adset_id, eligible, action FROM decisions WHERE account_id = ? ORDER BY adset_id", [INR]
    )
    without = query(
        db, "SELECT adset_id, eligible, action FROM decisions WHERE account_id = ? ORDER BY adset_id", [INR]
    )
    assert with_rate.to_dicts() == without.to_dicts()
    assert set(query(db, "SELECT min_spend_acct FROM decisions WHERE account_id = ?", [INR])["min_spend_acct"]) == {
        3000.0
    }


def test_account_min_spend_sets_the_jpy_floor_without_a_rate(base, tmp_path):
    db = tmp_path / "w.duckdb"
    result = run_meta(db, base.fake, overrides={"account_min_spend": {JPY: 7000.0}})
    assert result.success, failure_messages(result)
    jpy = query(db, "SELECT min_spend_acct, eligible, filter_reason FROM decisions WHERE account_id = ?", [JPY])
    assert set(jpy["min_spend_acct"]) == {7000.0}
    assert not any("currency_rates" in (r or "") for r in jpy["filter_reason"])
    assert any(jpy["eligible"])
