"""MetaClient against the fake Graph API through the real SDK: paging, async report runs and
splitting, retries with backoff and jitter, fail-fast codes, throttling, appsecret_proof, parsing."""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import sys
from datetime import date, timedelta

import pytest
from facebook_business.api import FacebookAdsApi

from audience_assets.integrations.meta import MetaClient, MetaError, MetaSettings
from audience_assets.sources.meta import insights_frame
from audience_assets_tests.fakes.graph_server import (
    PURCHASE_ACTION_TYPES,
    FakeGraph,
    build_account,
    graph_error,
    raw_reply,
    usage_reply,
)
from audience_assets_tests.meta_helpers import END, INR, JPY, TOKEN, SleepRecorder, fake_days, fake_totals

WEEK = (END - timedelta(days=6), END)  # sync: 7 days <= async_after_days
LONG = (END - timedelta(days=19), END)  # async: 20 days
CAP = 7  # fake page size cap: every range spans several pages
HTML_502 = "<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>"


@pytest.fixture(scope="module")
def accounts():
    inr = build_account(INR, "INR", n_adsets=6, days=30, end_date=END, seed=11)
    jpy = build_account(JPY, "JPY", n_adsets=5, days=30, end_date=END, seed=12)
    return {INR: inr, JPY: jpy}


@pytest.fixture
def fake(accounts):
    with FakeGraph(dict(accounts), page_size_cap=CAP) as graph:
        yield graph


def client(fake: FakeGraph, recorder: SleepRecorder | None = None, **settings) -> MetaClient:
    values = {"access_token": TOKEN, "graph_url": fake.base_url, "backoff_seconds": 1.0, "seed": None}
    values.update(settings)
    seed = values.pop("seed")
    return MetaClient(
        MetaSettings(**values), sleep=recorder or SleepRecorder(fake), seed=seed if seed is not None else 5
    )


def keys(rows: list[dict]) -> list[tuple[str, str]]:
    return [(r["adset_id"], r["date_start"]) for r in rows]


def canonical(rows: list[dict]) -> list[str]:
    """Rows as sorted JSON: equal lists mean the same rows, each once."""
    return sorted(json.dumps(r, sort_keys=True) for r in rows)


def page_requests(fake: FakeGraph, path: str) -> list[dict]:
    return fake.requests_to(path, "GET")


def expected_keys(acct, since: date, until: date) -> set[tuple[str, str]]:
    return {(a, d.isoformat()) for a, d in fake_days(acct, since, until)}


def assert_complete(rows: list[dict], acct, since: date, until: date) -> None:
    got = keys(rows)
    assert len(got) == len(set(got)), "a row was delivered twice"
    assert set(got) == expected_keys(acct, since, until)
    totals = fake_totals(acct, since, until)
    assert math.isclose(sum(float(r["spend"]) for r in rows), totals["spend"], abs_tol=0.005)
    assert sum(int(r["impressions"]) for r in rows) == totals["impressions"]


# --------------------------------------------------------------------------- paging


def test_sync_insights_read_every_page_once(fake, accounts):
    c = client(fake, page_size=50)
    rows = c.insights(INR, *WEEK)
    n = len(expected_keys(accounts[INR], *WEEK))
    assert n > 3 * CAP  # the point: several pages
    assert_complete(rows, accounts[INR], *WEEK)
    pages = page_requests(fake, rf"/{INR}/insights$")
    assert len(pages) == math.ceil(n / CAP)
    assert not pages[0]["params"].get("after")
    assert all(p["params"].get("after") for p in pages[1:])
    assert len({p["params"]["after"] for p in pages[1:]}) == len(pages) - 1  # each cursor asked for once
    assert pages[0]["params"]["limit"] == "50"
    assert json.loads(pages[0]["params"]["time_range"]) == {"since": WEEK[0].isoformat(), "until": WEEK[1].isoformat()}
    assert pages[0]["params"]["level"] == "adset" and pages[0]["params"]["time_increment"] == "1"
    assert json.loads(pages[0]["params"]["action_attribution_windows"]) == ["7d_click", "1d_view"]
    assert not fake.requests_to(r"/insights$", "POST")


def test_adsets_and_campaigns_are_paged(accounts):
    with FakeGraph(dict(accounts), page_size_cap=2) as fake:
        c = client(fake)
        adsets = c.adsets(INR)
        campaigns = c.campaigns(INR)
    assert sorted(a["id"] for a in adsets) == sorted(a["id"] for a in accounts[INR].adsets)
    assert sorted(x["id"] for x in campaigns) == sorted(x["id"] for x in accounts[INR].campaigns)
    assert len(fake.requests_to(rf"/{INR}/adsets$")) == math.ceil(len(accounts[INR].adsets) / 2)


# --------------------------------------------------------------------------- async report runs


def test_long_range_runs_as_async_report_run_polled_until_complete(accounts):
    with FakeGraph(dict(accounts), page_size_cap=CAP, async_poll_rounds=3) as fake:
        rec = SleepRecorder(fake)
        c = client(fake, rec, async_poll_seconds=1.0)
        rows = c.insights(INR, *LONG)
        posts = fake.requests_to(rf"/{INR}/insights$", "POST")
        assert len(posts) == 1
        assert not fake.requests_to(rf"/{INR}/insights$", "GET")  # nothing read synchronously
        (run,) = fake.report_runs.values()
        assert run.statuses == ["Job Running"] * 3 + ["Job Completed"]
        result_pages = fake.requests_to(rf"/{run.id}/insights$", "GET")
    assert_complete(rows, accounts[INR], *LONG)
    assert len(result_pages) == math.ceil(len(rows) / CAP) > 1
    assert all(p["params"].get("after") for p in result_pages[1:])
    assert rec.calls == [1.0, 1.5, 2.25]  # polled with a growing wait, never a real sleep
    assert c.stats.async_jobs == 1 and c.stats.async_splits == 0


def _range_of(params: dict) -> tuple[str, str]:
    tr = json.loads(params["time_range"])
    return tr["since"], tr["until"]


@pytest.mark.parametrize("verdict", [True, "Job Skipped"], ids=["failed", "skipped"])
def test_failed_or_skipped_report_run_is_split_in_halves(accounts, verdict):
    whole = (LONG[0].isoformat(), LONG[1].isoformat())

    def fail_whole(params: dict) -> bool | str:
        return verdict if _range_of(params) == whole else False

    with FakeGraph(dict(accounts), page_size_cap=CAP, async_poll_rounds=2, fail_async_when=fail_whole) as fake:
        c = client(fake, async_poll_seconds=0.0)
        rows = c.insights(INR, *LONG)
        posted = [_range_of(p["params"]) for p in fake.requests_to(rf"/{INR}/insights$", "POST")]
        statuses = {rr.params["time_range"]: rr.statuses[-1] for rr in fake.report_runs.values()}
    mid = LONG[0] + timedelta(days=((LONG[1] - LONG[0]).days) // 2)
    assert posted == [whole, (LONG[0].isoformat(), mid.isoformat()), ((mid + timedelta(days=1)).isoformat(), whole[1])]
    expected_status = "Job Failed" if verdict is True else "Job Skipped"
    assert sorted(statuses.values()) == sorted([expected_status, "Job Completed", "Job Completed"])
    assert_complete(rows, accounts[INR], *LONG)
    assert c.stats.async_jobs == 3
    assert c.stats.async_splits == 1
    assert any("split" in e and INR in e for e in c.stats.errors)


def test_report_runs_that_always_fail_end_as_short_sync_reads(accounts):
    with FakeGraph(dict(accounts), page_size_cap=CAP, fail_async_when=lambda p: True) as fake:
        c = client(fake, async_poll_seconds=0.0, async_after_days=8)
        rows = c.insights(JPY, *LONG)
        syncs = [
            _range_of(p["params"])
            for p in fake.requests_to(rf"/{JPY}/insights$", "GET")
            if not p["params"].get("after")
        ]
    assert_complete(rows, accounts[JPY], *LONG)
    # 20 days -> 10 + 10 (async, failed again) -> 5 + 5 + 5 + 5 synchronous reads.
    assert len(syncs) == 4
    for since, until in syncs:
        assert (date.fromisoformat(until) - date.fromisoformat(since)).days + 1 <= 8
    assert c.stats.async_jobs == 3 and c.stats.async_splits == 3


# --------------------------------------------------------------------------- numbers and purchases


def test_numbers_arrive_as_strings_and_are_parsed(fake, accounts):
    c = client(fake)
    rows = c.insights(JPY, *WEEK)
    assert all(isinstance(r["spend"], str) and isinstance(r["impressions"], str) for r in rows)
    frame = insights_frame(rows, JPY, ("omni_purchase", "offsite_conversion.fb_pixel_purchase"))
    facts = fake_days(accounts[JPY], *WEEK)
    assert frame.height == len(facts)
    for r in frame.to_dicts():
        f = facts[(r["adset_id"], r["date"])]
        assert r["spend"] == float(f.spend)
        assert r["impressions"] == f.impressions and r["clicks"] == f.clicks
        assert r["inline_link_clicks"] == f.inline_link_clicks and r["reach"] == f.reach
        assert r["frequency"] == pytest.approx(f.impressions / f.reach, abs=1e-5)
        assert r["currency"] == "JPY" and r["account_id"] == JPY


def test_overlapping_purchase_types_are_never_summed(fake, accounts):
    c = client(fake)
    rows = c.insights(INR, *WEEK)
    # The fake sends every purchase type with the same value: the trap the canonical type avoids.
    sample = next(r for r in rows if any(a["action_type"] == "omni_purchase" for a in r.get("actions", [])))
    types = {a["action_type"] for a in sample["actions"]}
    assert set(PURCHASE_ACTION_TYPES) <= types
    frame = insights_frame(rows, INR, ("omni_purchase", "offsite_conversion.fb_pixel_purchase"))
    facts = fake_days(accounts[INR], *WEEK)
    with_purchases = 0
    for r in frame.to_dicts():
        f = facts[(r["adset_id"], r["date"])]
        assert r["purchases"] == f.total("purchase")
        assert r["purchase_value"] == pytest.approx(float(f.total_value("purchase")), abs=0.005)
        if f.total("purchase"):
            with_purchases += 1
            assert r["purchase_action_type"] == "omni_purchase"
            raw = json.loads(r["actions_json"])
            purchase_entries = [a for a in raw if a["action_type"] in PURCHASE_ACTION_TYPES]
            assert len(purchase_entries) == len(PURCHASE_ACTION_TYPES)  # raw array kept whole for audit
            assert {a["value"] for a in purchase_entries} == {str(f.total("purchase"))}
            assert "7d_click" in purchase_entries[0] or "1d_view" in purchase_entries[0]
            values = json.loads(r["action_values_json"])
            assert {a["action_type"] for a in values} >= set(PURCHASE_ACTION_TYPES)
        else:
            assert r["purchase_action_type"] is None
    assert with_purchases > 10
    total = fake_totals(accounts[INR], *WEEK)
    assert frame["purchases"].sum() == total["purchases"]  # one type's value, not 4x


def test_configured_priority_picks_the_pixel_purchase(fake, accounts):
    c = client(fake)
    rows = c.insights(INR, *WEEK)
    frame = insights_frame(rows, INR, ("offsite_conversion.fb_pixel_purchase", "omni_purchase"))
    chosen = set(frame.filter(frame["purchases"] > 0)["purchase_action_type"].to_list())
    assert chosen == {"offsite_conversion.fb_pixel_purchase"}
    assert frame["purchases"].sum() == fake_totals(accounts[INR], *WEEK)["purchases"]


def test_account_without_omni_purchase_falls_back_to_the_next_type():
    acct = build_account(
        INR,
        "INR",
        n_adsets=5,
        days=7,
        end_date=END,
        seed=3,
        purchase_action_types=("purchase", "onsite_web_purchase", "offsite_conversion.fb_pixel_purchase"),
    )
    with FakeGraph([acct], page_size_cap=CAP) as fake:
        rows = client(fake).insights(INR, *WEEK)
    frame = insights_frame(rows, INR, ("omni_purchase", "offsite_conversion.fb_pixel_purchase", "purchase"))
    assert set(frame.filter(frame["purchases"] > 0)["purchase_action_type"].to_list()) == {
        "offsite_conversion.fb_pixel_purchase"
    }
    assert frame["purchases"].sum() == fake_totals(acct, *WEEK)["purchases"]


# --------------------------------------------------------------------------- transient errors


def _second_page_once(reply):
    """An injection that answers the first insights page normally and fails the second one once."""
    return [None, reply]


TRANSIENT = [
    pytest.param(graph_error(1), id="code1-http500"),
    pytest.param(graph_error(2), id="code2-http503"),
    pytest.param(graph_error(4), id="code4"),
    pytest.param(graph_error(17, subcode=2446079), id="code17"),
    pytest.param(graph_error(32), id="code32"),
    pytest.param(graph_error(613, subcode=1487742), id="code613"),
    pytest.param(graph_error(80004, subcode=2446079), id="code80004"),
    pytest.param(graph_error(341), id="code341"),
    pytest.param(graph_error(9999, status=502, transient=False, message="gateway"), id="http502-json"),
    pytest.param(graph_error(9998, status=400, transient=True, message="try again"), id="is_transient"),
]


@pytest.mark.parametrize("reply", TRANSIENT)
def test_transient_error_on_a_page_is_retried_without_losing_or_duplicating_rows(fake, accounts, reply):
    clean = client(fake).insights(INR, *WEEK)
    before = len(fake.requests)
    fake.inject(rf"/{INR}/insights$", *_second_page_once(reply))
    rec = SleepRecorder(fake)
    c = client(fake, rec, backoff_seconds=2.0)
    rows = c.insights(INR, *WEEK)
    assert fake.pending_injections == 0
    assert canonical(rows) == canonical(clean)
    statuses = [r["status"] for r in fake.requests[before:]]
    assert statuses.count(reply.status) == 1 and reply.status != 200
    assert c.stats.retries == 1
    assert len(rec.calls) == 1 and 1.0 <= rec.calls[0] < 3.0  # 2 s step, jittered by 0.5-1.5x


def test_backoff_grows_exponentially_with_jitter(fake, accounts):
    clean = client(fake).insights(INR, *WEEK)
    fake.inject(rf"/{INR}/insights$", None, *[graph_error(2)] * 4)
    rec = SleepRecorder(fake)
    c = client(fake, rec, backoff_seconds=1.0, max_retries=6, seed=1234)
    rows = c.insights(INR, *WEEK)
    assert canonical(rows) == canonical(clean)
    assert len(rec.calls) == 4
    factors = [s / 2**k for k, s in enumerate(rec.calls)]
    assert all(0.5 <= f < 1.5 for f in factors), rec.calls
    assert len({round(f, 6) for f in factors}) > 1, "no jitter"
    assert rec.calls[2] > rec.calls[0] and rec.calls[3] > rec.calls[1]
    assert c.stats.retries == 4


def test_backoff_is_capped(fake):
    fake.inject(rf"/{INR}/insights$", *[graph_error(2)] * 3)
    rec = SleepRecorder(fake)
    client(fake, rec, backoff_seconds=100.0, max_backoff_seconds=150.0).insights(INR, *WEEK)
    assert len(rec.calls) == 3
    assert all(s < 150.0 * 1.5 for s in rec.calls)
    assert rec.calls[2] >= 75.0  # 400 s step capped to 150 s before jitter


def test_transient_errors_that_outlast_retries_fail_with_code_and_account(fake):
    fake.inject(rf"/{INR}/insights$", *[graph_error(2)] * 10)
    rec = SleepRecorder(fake)
    with pytest.raises(MetaError) as info:
        client(fake, rec, max_retries=3).insights(INR, *WEEK)
    msg = str(info.value)
    assert INR in msg and "code 2" in msg and "3 attempt" in msg
    assert len(fake.requests_to(rf"/{INR}/insights$")) == 3
    assert len(rec.calls) == 2


@pytest.mark.parametrize(
    ("code", "words"),
    [(190, "access token"), (200, "permission"), (100, "parameter")],
    ids=["190-token", "200-permission", "100-parameter"],
)
@pytest.mark.parametrize("page", [0, 1], ids=["first-page", "later-page"])
def test_fatal_codes_fail_fast_with_a_clear_message(fake, code, words, page):
    fake.inject(rf"/{INR}/insights$", *([None] * page), graph_error(code), graph_error(code))
    rec = SleepRecorder(fake)
    c = client(fake, rec)
    with pytest.raises(MetaError) as info:
        c.insights(INR, *WEEK)
    msg = str(info.value)
    assert f"code {code}" in msg and INR in msg and words in msg
    assert len(fake.requests_to(rf"/{INR}/insights$")) == page + 1  # no retry
    assert rec.calls == [] and c.stats.retries == 0
    assert TOKEN not in msg


def test_fatal_code_on_account_read_fails_fast(fake):
    fake.inject(rf"^/v26\.0/{JPY}/$", graph_error(190))
    with pytest.raises(MetaError, match=r"act_2002: .*code 190"):
        client(fake).account(JPY)
    assert len(fake.requests) == 1


# --------------------------------------------------------------------------- non-JSON bodies


@pytest.mark.parametrize("page", [0, 1, 2], ids=["first-page", "second-page", "third-page"])
def test_non_json_502_on_an_insights_page_is_retried(fake, page):
    """An HTML 502 from a proxy: retried like a 5xx, rows identical to a clean read."""
    clean = client(fake).insights(INR, *WEEK)
    fake.inject(rf"/{INR}/insights$", *([None] * page), raw_reply(502, HTML_502))
    rec = SleepRecorder(fake)
    c = client(fake, rec)
    rows = c.insights(INR, *WEEK)
    assert canonical(rows) == canonical(clean)
    assert c.stats.retries == 1 and len(rec.calls) == 1


def test_non_json_502_whose_body_mentions_data_on_a_later_page_loses_no_rows(fake):
    """The SDK raises TypeError on such a body (retried), but its cursor has already marked itself finished."""
    clean = client(fake).insights(INR, *WEEK)
    fake.inject(rf"/{INR}/insights$", None, raw_reply(502, "<html><body>502: upstream sent no data</body></html>"))
    c = client(fake)
    rows = c.insights(INR, *WEEK)
    assert c.stats.retries == 1
    assert len(rows) == len(clean), f"{len(clean) - len(rows)} of {len(clean)} rows silently lost"
    assert canonical(rows) == canonical(clean)


def test_non_json_502_on_a_later_adsets_page_loses_no_ad_set(accounts):
    with FakeGraph(dict(accounts), page_size_cap=2) as fake:
        fake.inject(rf"/{INR}/adsets$", None, raw_reply(502, HTML_502))
        adsets = client(fake).adsets(INR)
    assert sorted(a["id"] for a in adsets) == sorted(a["id"] for a in accounts[INR].adsets)


def test_non_json_502_on_account_read_is_retried(fake):
    fake.inject(rf"^/v26\.0/{INR}/$", raw_reply(502, HTML_502))
    info = client(fake).account(INR)
    assert info["currency"] == "INR"


# --------------------------------------------------------------------------- throttling


def test_high_usage_pauses_before_the_next_request(fake, accounts):
    fake.inject(rf"/{INR}/insights$", None, usage_reply(INR, 90))  # the second page reports 90 %
    rec = SleepRecorder(fake)
    c = client(fake, rec, throttle_pause_seconds=60.0, throttle_at_pct=75.0)
    rows = c.insights(INR, *WEEK)
    assert_complete(rows, accounts[INR], *WEEK)
    assert rec.calls == [pytest.approx(54.0)]  # 60 s x 90 %
    pages = fake.requests_to(rf"/{INR}/insights$")
    second = fake.requests.index(pages[1])
    # The pause happened after the throttled page arrived and before the third page was asked for.
    assert rec.at_request == [second + 1]
    assert c.stats.throttle_pauses == 1
    assert c.stats.max_usage_pct == 90.0
    assert c.stats.retries == 0


def test_regain_access_time_is_honoured(fake, accounts):
    fake.inject(rf"/{INR}/insights$", None, usage_reply(INR, 40, regain_minutes=3))
    rec = SleepRecorder(fake)
    c = client(fake, rec, throttle_pause_seconds=60.0)
    rows = c.insights(INR, *WEEK)
    assert_complete(rows, accounts[INR], *WEEK)
    assert rec.calls == [180.0]
    assert c.stats.throttle_pauses == 1


def test_one_throttled_first_page_pauses_once(fake, accounts):
    """One response over the limit is one pause, wherever it is in the cursor."""
    fake.inject(rf"/{INR}/insights$", usage_reply(INR, 90))
    rec = SleepRecorder(fake)
    c = client(fake, rec, throttle_pause_seconds=60.0)
    rows = c.insights(INR, *WEEK)
    assert_complete(rows, accounts[INR], *WEEK)
    assert c.stats.throttle_pauses == 1
    assert rec.calls == [pytest.approx(54.0)]


def test_normal_usage_never_pauses(fake):
    rec = SleepRecorder(fake)
    c = client(fake, rec, throttle_pause_seconds=60.0)
    c.insights(INR, *WEEK)
    c.adsets(INR)
    assert rec.calls == [] and c.stats.throttle_pauses == 0
    assert c.stats.max_usage_pct == 10.0


def test_throttle_error_with_usage_headers_retries_and_pauses(fake, accounts):
    headers = {
        "x-business-use-case-usage": json.dumps({"1001": [{"call_count": 100, "estimated_time_to_regain_access": 2}]})
    }
    fake.inject(rf"/{INR}/insights$", None, graph_error(80004, headers=headers))
    rec = SleepRecorder(fake)
    c = client(fake, rec, backoff_seconds=1.0, throttle_pause_seconds=60.0)
    rows = c.insights(INR, *WEEK)
    assert_complete(rows, accounts[INR], *WEEK)
    assert c.stats.throttle_pauses == 1 and c.stats.retries == 1
    assert 120.0 in rec.calls  # the regain time, before the backoff retry


# --------------------------------------------------------------------------- session


def test_appsecret_proof_is_sent_when_an_app_secret_is_configured(accounts):
    secret = "app-secret-xyz"
    proof = hmac.new(secret.encode(), TOKEN.encode(), hashlib.sha256).hexdigest()
    with FakeGraph(dict(accounts), page_size_cap=CAP, app_secret=secret) as fake:
        c = client(fake, app_secret=secret)
        c.account(INR)
        c.insights(INR, *WEEK)
        c.adsets(INR)
        c.insights(INR, *LONG)  # async POST too
        assert fake.requests
        assert all(r["appsecret_proof"] == proof for r in fake.requests)
        assert all(r["access_token"] == TOKEN for r in fake.requests)
        assert fake.requests_to(r"/insights$", "POST")


def test_without_app_secret_no_proof_is_sent_and_a_server_that_needs_one_fails_fast(accounts):
    with FakeGraph(dict(accounts)) as fake:
        client(fake).account(INR)
        assert fake.requests[0]["appsecret_proof"] is None
    with FakeGraph(dict(accounts), app_secret="needed") as fake:
        rec = SleepRecorder(fake)
        with pytest.raises(MetaError, match="code 100"):
            client(fake, rec).account(INR)
        assert len(fake.requests) == 1 and rec.calls == []


def test_client_leaves_sdk_globals_alone(fake):
    default_api = FacebookAdsApi.get_default_api()
    hook = sys.excepthook
    c = client(fake)
    c.account(INR)
    assert FacebookAdsApi.get_default_api() is default_api
    assert sys.excepthook is hook  # no crash reporter installed
    assert c.api._session.GRAPH == fake.base_url
    from facebook_business.session import FacebookSession

    assert FacebookSession.GRAPH == "https://graph.facebook.com"


def test_requests_made_counts_retries(fake):
    fake.inject(rf"/{INR}/insights$", graph_error(2))
    c = client(fake)
    c.insights(INR, *WEEK)
    assert c.requests_made == len(fake.requests)


def test_money_parsed_exactly_for_zero_decimal_and_two_decimal_currencies(fake, accounts):
    c = client(fake)
    for act in (INR, JPY):
        frame = insights_frame(c.insights(act, *WEEK), act, ("omni_purchase",))
        assert frame["spend"].sum() == pytest.approx(fake_totals(accounts[act], *WEEK)["spend"], abs=0.01)
    jpy = insights_frame(c.insights(JPY, *WEEK), JPY, ("omni_purchase",))
    assert all(float(x).is_integer() for x in jpy["spend"])  # JPY has no minor unit


def test_a_report_run_that_never_finishes_times_out_and_is_split(accounts):
    with FakeGraph(dict(accounts), page_size_cap=50, async_poll_rounds=10**9) as fake:
        c = client(fake, async_poll_seconds=0.0, async_timeout_seconds=0.3)
        rows = c.insights(INR, *LONG)
        posts = fake.requests_to(rf"/{INR}/insights$", "POST")
    assert_complete(rows, accounts[INR], *LONG)
    assert len(posts) == 3  # the whole range, then its two halves (still async), each timed out
    assert c.stats.async_splits == 3
    assert len(c.stats.errors) == 3 and all("split" in e for e in c.stats.errors)


def test_a_synchronous_read_meta_finds_too_large_is_split_not_failed(accounts):
    """Graph answers code 100 / subcode 1487534 ("reduce the amount of data") to a too-large sync read;
    connectors split the range (or go async) instead of failing the account."""
    with FakeGraph(dict(accounts), page_size_cap=50, sync_row_limit=15) as fake:
        c = client(fake)
        rows = c.insights(INR, *WEEK)
    assert_complete(rows, accounts[INR], *WEEK)
