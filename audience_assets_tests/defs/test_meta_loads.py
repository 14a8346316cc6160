"""Repeated and failing meta loads: restatement measured, incremental lookback windows, one failing
account isolated, errors and throttling survived, days that are the account's own, no leaked token."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import polars as pl
import pytest

from audience_assets.integrations.meta import MetaClient
from audience_assets_tests.conftest import (
    failed_steps,
    failure_messages,
    materialisation_metadata,
    query,
    summed_metadata,
)
from audience_assets_tests.fakes.graph_server import FakeGraph, build_account, graph_error, usage_reply
from audience_assets_tests.meta_helpers import (
    DECISION,
    END,
    INR,
    JPY,
    TOKEN,
    close,
    fake_days,
    fake_totals,
    run_meta,
    two_accounts,
)

RAW = ["raw_insights"]
FIRST = END - timedelta(days=34)  # initial_days 35
LOOKBACK_START = END - timedelta(days=6)  # rules lookback_days 7


def raw(db, account: str | None = None) -> pl.DataFrame:
    where = f"WHERE account_id = '{account}'" if account else ""
    return query(db, f"SELECT * FROM raw_insights {where} ORDER BY account_id, adset_id, date")


def new_ranges(fake: FakeGraph, account: str, since_request: int) -> list[tuple[str, str, str]]:
    """(method, since, until) of first insights pages an account was asked for after a request index."""
    out = []
    for r in fake.requests[since_request:]:
        if r["path"] == f"/v26.0/{account}/insights" and not r["params"].get("after"):
            tr = json.loads(r["params"]["time_range"])
            out.append((r["method"], tr["since"], tr["until"]))
    return out


def assert_matches_fake(db, acct, since: date, until: date) -> None:
    frame = raw(db, acct.account_id)
    totals = fake_totals(acct, since, until)
    assert frame.height == totals["rows"]
    assert frame.select("adset_id", "date").n_unique() == frame.height
    assert set(zip(frame["adset_id"], frame["date"], strict=True)) == set(fake_days(acct, since, until))
    assert close(frame["spend"].sum(), totals["spend"], 0.01)
    assert frame["purchases"].sum() == totals["purchases"]
    assert close(frame["purchase_value"].sum(), totals["purchase_value"], 0.05)


@pytest.fixture
def accounts():
    return two_accounts(days=45, inr_adsets=5, jpy_adsets=5)


# --------------------------------------------------------------------------- restatement


def test_restated_days_replace_old_values_and_the_change_is_measured(tmp_path, accounts):
    inr, jpy = accounts
    db = tmp_path / "w.duckdb"
    with FakeGraph([inr, jpy], page_size_cap=10) as fake:
        first = run_meta(db, fake, assets=RAW)
        assert first.success, failure_messages(first)
        before = raw(db)
        load1 = materialisation_metadata(first, "raw_insights")["load_id"]

        adset = inr.adsets[0]["id"]
        recent, old_day = END - timedelta(days=1), END - timedelta(days=20)
        fact = inr.insight(recent, adset)
        old_p, old_v = fact.total("purchase"), fact.total_value("purchase")
        fake.restate(INR, recent, adset, purchases=old_p + 5, purchase_value=old_v + 1000)
        new_v = inr.insight(recent, adset).total_value("purchase")
        stale = inr.insight(old_day, adset)
        stale_p = stale.total("purchase")
        fake.restate(INR, old_day, adset, purchases=stale_p + 50)  # outside the lookback: not re-pulled

        mark = len(fake.requests)
        second = run_meta(db, fake, assets=RAW)
        assert second.success, failure_messages(second)
        for account in (INR, JPY):
            assert new_ranges(fake, account, mark) == [("GET", LOOKBACK_START.isoformat(), END.isoformat())]
        assert not [r for r in fake.requests[mark:] if r["method"] == "POST"]

        third_mark = len(fake.requests)
        third = run_meta(db, fake, assets=RAW, lookback_days=3)
        assert third.success, failure_messages(third)
        assert new_ranges(fake, INR, third_mark) == [("GET", (END - timedelta(days=2)).isoformat(), END.isoformat())]

    after = raw(db)
    assert after.height == before.height
    assert after.select("account_id", "adset_id", "date").n_unique() == after.height
    row = after.filter((pl.col("adset_id") == adset) & (pl.col("date") == recent)).to_dicts()[0]
    assert row["purchases"] == old_p + 5
    assert close(row["purchase_value"], float(new_v))
    kept = after.filter((pl.col("adset_id") == adset) & (pl.col("date") == old_day)).to_dicts()[0]
    assert kept["purchases"] == stale_p and kept["load_id"] == load1
    # Days before the lookback window are untouched: same rows, same load.
    older_before = before.filter(pl.col("date") < LOOKBACK_START)
    older_after = after.filter(pl.col("date") < LOOKBACK_START)
    assert older_after.equals(older_before)

    # One run per account: INR's load holds the restatement, JPY's changed nothing.
    meta, jpy_meta = (materialisation_metadata(r, "raw_insights") for r in second.results)
    assert meta["restated_purchases_delta"] == 5 and jpy_meta["restated_purchases_delta"] == 0
    assert meta["restated_revenue_delta"] == pytest.approx(float(new_v - old_v), abs=0.01)
    assert meta["restated_spend_delta"] == 0
    for m in (meta, jpy_meta):
        assert m["days_loaded"] == 7 and m["days_restated"] == 7
        assert m["rows_replaced"] == m["rows_inserted"]
        assert m["meta_async_jobs"] == 0
    assert (meta["load"], jpy_meta["load"]) == (f"{INR}: lookback 7 days", f"{JPY}: lookback 7 days")
    assert materialisation_metadata(third, "raw_insights")["restated_purchases_delta"] == 0


def test_missed_days_are_not_left_as_a_gap(tmp_path):
    """A run after a pause of two weeks must not leave the days in between empty."""
    inr = build_account(INR, "INR", n_adsets=5, days=60, end_date=END, seed=4)
    db = tmp_path / "w.duckdb"
    earlier = DECISION - timedelta(days=14)
    with FakeGraph([inr], page_size_cap=50) as fake:
        assert run_meta(db, fake, earlier, accounts=[INR], assets=RAW).success
        assert run_meta(db, fake, DECISION, accounts=[INR], assets=RAW).success
    days = set(query(db, "SELECT DISTINCT date FROM raw_insights")["date"])
    first = min(days)
    missing = sorted(
        first + timedelta(days=i) for i in range((END - first).days + 1) if first + timedelta(days=i) not in days
    )
    assert not missing, f"{len(missing)} days never loaded: {missing[0]} .. {missing[-1]}"


# --------------------------------------------------------------------------- failing accounts


def test_one_failing_account_keeps_the_others_and_its_own_stored_rows(tmp_path, accounts):
    inr, jpy = accounts
    db = tmp_path / "w.duckdb"
    with FakeGraph([inr, jpy], page_size_cap=10) as fake:
        assert run_meta(db, fake, assets=RAW).success
        before = raw(db)
        recent = END - timedelta(days=1)
        for acct in (inr, jpy):
            fact = acct.insight(recent, acct.adsets[0]["id"])
            fake.restate(acct.account_id, recent, acct.adsets[0]["id"], purchases=fact.total("purchase") + 3)
        fake.inject(rf"/{JPY}/insights$", *[graph_error(200)] * 5, method=None)
        result = run_meta(db, fake)
    assert not result.success
    assert "raw_insights" in failed_steps(result)
    text = " ".join(failure_messages(result))
    assert JPY in text and "code 200" in text and "permission" in text
    assert "nothing of it stored" in text and f"{INR}:" not in text  # only act_2002 reported failed
    after = raw(db)
    # act_2002: exactly as stored before, load ids included.
    assert after.filter(pl.col("account_id") == JPY).equals(before.filter(pl.col("account_id") == JPY))
    # act_1001: re-pulled and saved despite the other account's failure.
    inr_after = after.filter(pl.col("account_id") == INR)
    assert inr_after.height == before.filter(pl.col("account_id") == INR).height
    row = inr_after.filter((pl.col("adset_id") == inr.adsets[0]["id"]) & (pl.col("date") == recent)).to_dicts()[0]
    assert row["purchases"] == inr.insight(recent, inr.adsets[0]["id"]).total("purchase")
    assert_matches_fake(db, inr, FIRST, END)


def test_an_account_that_failed_its_first_load_gets_a_full_load_later(tmp_path, accounts):
    inr, jpy = accounts
    db = tmp_path / "w.duckdb"
    with FakeGraph([inr, jpy], page_size_cap=10) as fake:
        fake.inject(rf"/{JPY}/insights$", graph_error(190), method=None)
        first = run_meta(db, fake, assets=RAW)
        assert not first.success
        assert "code 190" in " ".join(failure_messages(first))
        assert raw(db, JPY).height == 0
        assert_matches_fake(db, inr, FIRST, END)
        mark = len(fake.requests)
        second = run_meta(db, fake, assets=RAW)
        assert second.success, failure_messages(second)
        assert new_ranges(fake, INR, mark) == [("GET", LOOKBACK_START.isoformat(), END.isoformat())]
        assert new_ranges(fake, JPY, mark) == [("POST", FIRST.isoformat(), END.isoformat())]
    assert_matches_fake(db, jpy, FIRST, END)
    assert_matches_fake(db, inr, FIRST, END)


# --------------------------------------------------------------------------- errors and throttling in a run


def test_transient_errors_and_throttling_are_survived_without_duplicates(tmp_path, accounts, monkeypatch):
    inr, jpy = accounts
    db = tmp_path / "w.duckdb"
    # Meta's regain time is honoured whatever the settings: record the pauses instead of sleeping.
    pauses: list[float] = []

    def record(self, seconds: float) -> None:
        self.stats.slept_seconds += seconds
        pauses.append(seconds)

    monkeypatch.setattr(MetaClient, "_wait", record)
    with FakeGraph([inr, jpy], page_size_cap=10, async_poll_rounds=1) as fake:
        fake.inject(r"^/v26\.0/6090\d+/insights$", None, usage_reply(INR, 90), graph_error(613), graph_error(1))
        fake.inject(rf"^/v26\.0/{JPY}/$", graph_error(2, status=503))
        fake.inject(rf"/{JPY}/insights$", graph_error(80004), method="POST")
        first = run_meta(db, fake, assets=RAW)
        assert first.success, failure_messages(first)
        assert fake.pending_injections == 0
        meta = summed_metadata(first, "raw_insights")
        assert meta["meta_retries"] == 4
        assert meta["meta_throttle_pauses"] >= 1 and meta["meta_max_usage_pct"] == 90.0
        assert_matches_fake(db, inr, FIRST, END)
        assert_matches_fake(db, jpy, FIRST, END)

        # An incremental (synchronous) pull: a throttled first page asking for a wait, then a 5xx.
        fake.inject(rf"/{INR}/insights$", usage_reply(INR, 50, regain_minutes=1), graph_error(2))
        second = run_meta(db, fake, assets=RAW)
        assert second.success, failure_messages(second)
        meta = summed_metadata(second, "raw_insights")
        assert meta["meta_retries"] == 1 and meta["meta_throttle_pauses"] >= 1
        assert 60.0 in pauses  # estimated_time_to_regain_access: 1 minute
    assert_matches_fake(db, inr, FIRST, END)
    assert_matches_fake(db, jpy, FIRST, END)


def test_report_runs_that_fail_are_split_inside_a_run(tmp_path, accounts):
    inr, jpy = accounts
    db = tmp_path / "w.duckdb"

    def fail_whole(params):
        tr = json.loads(params["time_range"])
        if (tr["since"], tr["until"]) == (FIRST.isoformat(), END.isoformat()):
            return True if params["node_id"] == INR else "Job Skipped"
        return False

    with FakeGraph([inr, jpy], page_size_cap=10, fail_async_when=fail_whole) as fake:
        result = run_meta(db, fake, assets=RAW)
    assert result.success, failure_messages(result)
    meta = summed_metadata(result, "raw_insights")
    assert meta["meta_async_splits"] == 2
    assert meta["meta_async_jobs"] == 6  # 2 whole + 2 x 2 halves (18 and 17 days, still async)
    assert_matches_fake(db, inr, FIRST, END)
    assert_matches_fake(db, jpy, FIRST, END)


# --------------------------------------------------------------------------- the account's own day


def test_a_day_is_stored_only_once_it_is_over_in_the_accounts_timezone(tmp_path):
    """An account in Los Angeles: the partition for tomorrow (UTC) must not store LA's unfinished today."""
    now = datetime.now(UTC)
    la_today = now.astimezone(ZoneInfo("America/Los_Angeles")).date()
    usd = build_account("act_3003", "USD", n_adsets=5, days=12, end_date=now.date(), seed=9)
    assert usd.timezone_name == "America/Los_Angeles"
    partition = now.date() + timedelta(days=1)  # admitted: the partitions end tomorrow (UTC)
    db = tmp_path / "w.duckdb"
    with FakeGraph([usd], page_size_cap=50) as fake:
        result = run_meta(db, fake, partition, accounts=["act_3003"], assets=RAW, initial_days=7)
        assert result.success, failure_messages(result)
    newest = query(db, "SELECT max(date) AS d FROM raw_insights")["d"][0]
    assert newest < la_today, f"stored {newest}, a day not yet over in America/Los_Angeles (today there: {la_today})"


# --------------------------------------------------------------------------- secrets


def test_app_secret_adds_appsecret_proof_in_a_run(tmp_path):
    inr = build_account(INR, "INR", n_adsets=5, days=10, end_date=END, seed=5)
    secret = "graph-app-secret"
    proof = hmac.new(secret.encode(), TOKEN.encode(), hashlib.sha256).hexdigest()
    db = tmp_path / "w.duckdb"
    with FakeGraph([inr], app_secret=secret) as fake:
        result = run_meta(
            db,
            fake,
            accounts=[INR],
            assets=["raw_insights", "stg_insights", "daily_metrics", "window_metrics", "audience_metadata"],
            app_secret=secret,
        )
        assert result.success, failure_messages(result)
        assert fake.requests and all(r["appsecret_proof"] == proof for r in fake.requests)
    assert query(db, "SELECT count(*) AS n FROM audience_metadata")["n"][0] == 5
    assert secret not in " ".join(str(v) for v in materialisation_metadata(result, "raw_insights").values())


def test_a_connection_failure_does_not_leak_the_token(tmp_path):
    """requests puts the URL (with ?access_token=...) in its error text; it must not reach run logs."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now

    class Closed:
        base_url = f"http://127.0.0.1:{port}"

    db = tmp_path / "w.duckdb"
    result = run_meta(db, Closed, accounts=[INR], assets=RAW, max_retries=2)  # type: ignore[arg-type]
    assert not result.success
    text = " ".join(failure_messages(result))
    assert INR in text and "ConnectionError" in text
    assert TOKEN not in text, "the access token is in the failure message"
