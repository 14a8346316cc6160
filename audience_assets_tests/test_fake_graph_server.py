"""The fake Meta Graph API, exercised only through the real facebook_business SDK."""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from facebook_business.adobjects.adaccount import AdAccount
from facebook_business.adobjects.adreportrun import AdReportRun
from facebook_business.adobjects.adset import AdSet
from facebook_business.adobjects.campaign import Campaign
from facebook_business.adobjects.customaudience import CustomAudience
from facebook_business.api import FacebookAdsApi
from facebook_business.exceptions import FacebookRequestError
from facebook_business.session import FacebookSession

from audience_assets_tests.fakes.graph_server import (
    PURCHASE_ACTION_TYPES,
    AccountData,
    FakeGraph,
    build_account,
    graph_error,
    minor_unit_offset,
    raw_reply,
    sdk_session,
    throttle_headers,
    usage_reply,
)

END = date(2026, 3, 1)
NOW = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
INR = "act_1001"
JPY = "act_2002"
FIELDS = [
    "account_id",
    "account_currency",
    "campaign_id",
    "campaign_name",
    "adset_id",
    "adset_name",
    "spend",
    "impressions",
    "clicks",
    "inline_link_clicks",
    "reach",
    "frequency",
    "ctr",
    "actions",
    "action_values",
    "purchase_roas",
]
ADSET_FIELDS = [
    "name",
    "campaign_id",
    "status",
    "effective_status",
    "created_time",
    "daily_budget",
    "lifetime_budget",
    "bid_strategy",
    "targeting",
    "learning_stage_info",
]


def insight_params(since: date, until: date, windows=("7d_click", "1d_view"), **extra: Any) -> dict[str, Any]:
    return {
        "level": "adset",
        "time_increment": 1,
        "time_range": {"since": since.isoformat(), "until": until.isoformat()},
        "action_attribution_windows": list(windows),
        "limit": 500,
        **extra,
    }


def plain(objs) -> list[dict[str, Any]]:
    return [o.export_all_data() for o in objs]


def by_type(entries: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {e["action_type"]: e for e in entries}


@pytest.fixture(autouse=True)
def sdk_globals_untouched() -> Iterator[None]:
    before = (FacebookAdsApi.get_default_api(), FacebookAdsApi.get_default_account_id())
    yield
    assert (FacebookAdsApi.get_default_api(), FacebookAdsApi.get_default_account_id()) == before
    assert FacebookSession.GRAPH == "https://graph.facebook.com"


@pytest.fixture
def accounts() -> dict[str, AccountData]:
    return {
        INR: build_account(INR, "INR", n_adsets=6, days=14, end_date=END, seed=7),
        JPY: build_account(JPY, "JPY", n_adsets=5, days=7, end_date=END, seed=8),
    }


@pytest.fixture
def make(accounts) -> Iterator[Callable[..., tuple[FakeGraph, Any]]]:
    """``make(**FakeGraph options) -> (fake, api)``; the SDK's default API points at the fake."""
    fakes: list[FakeGraph] = []
    with ExitStack() as stack:

        def _make(**opts: Any) -> tuple[FakeGraph, Any]:
            opts.setdefault("now", NOW)
            fake = stack.enter_context(FakeGraph(accounts, **opts))
            api = stack.enter_context(sdk_session(fake))
            fakes.append(fake)
            return fake, api

        yield _make
    for fake in fakes:
        assert fake.errors == []


def test_sync_insights_page_through_every_row_as_strings(make, accounts) -> None:
    fake, _ = make(page_size_cap=10)
    acct = accounts[INR]
    since = END - timedelta(days=13)
    rows = plain(
        AdAccount(INR).get_insights(
            fields=FIELDS, params=insight_params(since, END, ("7d_click", "1d_view", "7d_view"))
        )
    )

    facts = [r for r in acct.insights if since <= r.day <= END]
    assert len(rows) == len(facts) > 60  # the paused ad set has no rows for its last days
    calls = fake.requests_to(r"^/v26\.0/act_1001/insights$")
    assert len(calls) == math.ceil(len(facts) / 10)
    first = calls[0]["query"]
    assert first["fields"] == ",".join(FIELDS)
    assert json.loads(first["time_range"]) == {"since": since.isoformat(), "until": END.isoformat()}
    assert (first["level"], first["time_increment"], first["limit"]) == ("adset", "1", "500")
    assert first["access_token"] == "tok" and "after" not in first and "summary" not in first
    assert all(c["query"]["after"] for c in calls[1:])
    assert all("next" in c["response"]["paging"] for c in calls[:-1])
    assert "next" not in calls[-1]["response"]["paging"]

    for row in rows:
        fact = acct.insight(row["date_start"], row["adset_id"])
        assert row["date_start"] == row["date_stop"]
        assert (row["account_id"], row["account_currency"]) == ("1001", "INR")
        assert re.fullmatch(r"\d+\.\d\d", row["spend"]) and Decimal(row["spend"]) == fact.spend
        assert row["impressions"] == str(fact.impressions) and row["clicks"].isdigit()
        purchases = {t: e for t, e in by_type(row["actions"]).items() if t in PURCHASE_ACTION_TYPES}
        values = {t: e for t, e in by_type(row["action_values"]).items() if t in PURCHASE_ACTION_TYPES}
        assert set(purchases) == set(values) == set(PURCHASE_ACTION_TYPES)
        assert len({json.dumps(e | {"action_type": ""}, sort_keys=True) for e in purchases.values()}) == 1
        assert len({e["value"] for e in values.values()}) == 1
        omni = purchases["omni_purchase"]
        assert int(omni["value"]) == fact.total("purchase")
        assert int(omni["7d_click"]) + int(omni.get("1d_view", 0)) == int(omni["value"])
        assert Decimal(values["omni_purchase"]["value"]) == fact.total_value("purchase")
        assert {"link_click", "add_to_cart"} <= set(by_type(row["actions"]))
        assert all("7d_view" not in e and "28d_click" not in e for e in row["actions"])
        roas = by_type(row["purchase_roas"])["omni_purchase"]
        assert float(roas["value"]) == pytest.approx(float(fact.total_value("purchase") / fact.spend), abs=1e-5)


def test_sync_request_for_too_much_data_is_refused(make) -> None:
    make(sync_row_limit=20)
    with pytest.raises(FacebookRequestError) as err:
        list(AdAccount(INR).get_insights(fields=FIELDS, params=insight_params(END - timedelta(days=13), END)))
    assert (err.value.api_error_code(), err.value.api_error_subcode()) == (100, 1487534)
    assert err.value.api_transient_error() is False


def test_async_report_run_runs_then_completes_and_pages(make) -> None:
    fake, _ = make(async_poll_rounds=2, page_size_cap=20)
    since = END - timedelta(days=13)
    job = AdAccount(INR).get_insights(fields=FIELDS, params=insight_params(since, END), is_async=True)

    assert isinstance(job, AdReportRun) and job["id"] == job["report_run_id"]
    post = fake.requests_to(r"^/v26\.0/act_1001/insights$", "POST")[0]
    assert json.loads(post["form"]["fields"]) == FIELDS  # the async path JSON-encodes the list
    assert "is_async" not in post["params"] and "access_token" not in post["form"]
    assert post["query"]["access_token"] == "tok"

    seen = []
    for _ in range(10):
        job.api_get()
        seen.append((job[AdReportRun.Field.async_status], job[AdReportRun.Field.async_percent_completion]))
        if seen[-1][0] == "Job Completed":
            break
    assert [s for s, _ in seen] == ["Job Running", "Job Running", "Job Completed"]
    percents = [p for _, p in seen]
    assert percents == sorted(set(percents)) and percents[-1] == 100

    rows = plain(job.get_result(params={"limit": 500}))
    pages = fake.requests_to(rf"^/v26\.0/{job['id']}/insights$")
    assert len(pages) == math.ceil(len(rows) / 20) > 1
    sync = plain(AdAccount(INR).get_insights(fields=FIELDS, params=insight_params(since, END)))
    assert rows == sync


def test_failed_async_job_can_be_split_by_campaign(make, accounts) -> None:
    fake, _ = make(fail_async_when=lambda p: "filtering" not in p)
    since = END - timedelta(days=13)
    job = AdAccount(INR).get_insights(fields=FIELDS, params=insight_params(since, END), is_async=True)
    statuses = [job.api_get()[AdReportRun.Field.async_status] for _ in range(2)]
    assert statuses == ["Job Running", "Job Failed"]
    assert job[AdReportRun.Field.async_percent_completion] < 100
    with pytest.raises(FacebookRequestError) as err:
        list(job.get_result(params={"limit": 500}))
    assert err.value.api_error_code() == 2601

    rows: list[dict[str, Any]] = []
    for camp in accounts[INR].campaigns:
        flt = [{"field": "campaign.id", "operator": "IN", "value": [camp["id"]]}]
        part = AdAccount(INR).get_insights(
            fields=FIELDS, params=insight_params(since, END, filtering=flt), is_async=True
        )
        while part.api_get()[AdReportRun.Field.async_status] == "Job Running":
            pass
        assert part[AdReportRun.Field.async_status] == "Job Completed"
        got = plain(part.get_result(params={"limit": 500}))
        assert {r["campaign_id"] for r in got} == {camp["id"]}
        rows += got
    assert len(rows) == len([r for r in accounts[INR].insights if since <= r.day <= END])

    fake.fail_async_when = lambda p: "Job Skipped"
    skipped = AdAccount(INR).get_insights(fields=FIELDS, params=insight_params(since, END), is_async=True)
    assert [skipped.api_get()[AdReportRun.Field.async_status] for _ in range(2)] == ["Job Running", "Job Skipped"]


def test_ad_sets_carry_targeting_budgets_and_learning_stage(make, accounts) -> None:
    fake, _ = make(page_size_cap=4)
    cursor = AdAccount(INR).get_ad_sets(fields=ADSET_FIELDS, params={"limit": 100})
    adsets = {a["name"].split(" | ")[1] + a["name"][-2:]: a for a in plain(cursor)}
    assert len(adsets) == 6 and cursor.total() == 6
    first = fake.requests_to(r"/act_1001/adsets$")[0]["query"]
    assert first["summary"] == "true" and first["fields"] == ",".join(ADSET_FIELDS)

    lal = adsets["lookalike01"]
    audience = lal["targeting"]["custom_audiences"][0]
    assert audience["name"] == "Lookalike (IN, 1%) - Purchasers"
    ca = CustomAudience(audience["id"]).api_get(fields=["name", "subtype", "lookalike_spec"])
    assert ca["subtype"] == "LOOKALIKE"
    assert (ca["lookalike_spec"]["ratio"], ca["lookalike_spec"]["country"]) == (0.01, "IN")
    assert "LOOKALIKE" not in {
        c["subtype"]
        for c in plain(AdAccount(INR).get_custom_audiences(fields=["subtype"]))
        if c["id"] == adsets["custom02"]["targeting"]["custom_audiences"][0]["id"]
    }
    interests = adsets["interest03"]["targeting"]["flexible_spec"][0]["interests"]
    assert len(interests) == 2 and all(i["id"].isdigit() for i in interests)
    broad = adsets["broad04"]
    assert "custom_audiences" not in broad["targeting"] and "flexible_spec" not in broad["targeting"]
    assert "learning_stage_info" not in broad
    for key, a in adsets.items():
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+0530", a["created_time"])
        if key != "broad04":
            assert a["learning_stage_info"]["status"] in {"LEARNING", "SUCCESS", "FAIL"}
            assert a["learning_stage_info"]["conversions"] >= 0
    assert adsets["custom02"]["daily_budget"] == "0" and int(adsets["custom02"]["lifetime_budget"]) > 0
    assert int(lal["daily_budget"]) % 100 == 0 and lal["lifetime_budget"] == "0"
    assert adsets["lookalike06"]["effective_status"] == "PAUSED"

    one = AdSet(lal["id"]).api_get(fields=["daily_budget", "targeting"])
    assert one["daily_budget"] == lal["daily_budget"]


def test_cbo_campaign_holds_the_budget(make, accounts) -> None:
    make()
    campaigns = plain(AdAccount(INR).get_campaigns(fields=["name", "daily_budget", "lifetime_budget", "bid_strategy"]))
    cbo = [c for c in campaigns if "daily_budget" in c]
    assert len(cbo) == 1 and int(cbo[0]["daily_budget"]) > 0 and cbo[0]["bid_strategy"] == "LOWEST_COST_WITHOUT_CAP"
    assert all("daily_budget" not in c and "lifetime_budget" not in c for c in campaigns if c not in cbo)
    under = plain(Campaign(cbo[0]["id"]).get_ad_sets(fields=["name", "daily_budget", "lifetime_budget"]))
    assert [a["name"] for a in under] == ["IN | cbo | 05"]
    assert "daily_budget" not in under[0] and "lifetime_budget" not in under[0]
    assert accounts[INR].is_cbo(under[0]["id"])


def test_account_currency_and_timezone_inr_and_jpy(make, accounts) -> None:
    make()
    inr = AdAccount(INR).api_get(fields=["currency", "timezone_name", "account_id", "name"])
    jpy = AdAccount(JPY).api_get(fields=["currency", "timezone_name", "account_id", "name"])
    assert (inr["currency"], inr["timezone_name"], inr["account_id"]) == ("INR", "Asia/Kolkata", "1001")
    assert (jpy["currency"], jpy["timezone_name"], jpy["account_id"]) == ("JPY", "Asia/Tokyo", "2002")
    assert minor_unit_offset("JPY") == 1 and minor_unit_offset("INR") == 100

    jpy_rows = plain(AdAccount(JPY).get_insights(fields=["spend", "action_values"], params=insight_params(END, END)))
    assert jpy_rows and all(re.fullmatch(r"\d+", r["spend"]) for r in jpy_rows)
    yen = [
        int(a["daily_budget"])
        for a in plain(AdAccount(JPY).get_ad_sets(fields=["daily_budget"]))
        if "daily_budget" in a
    ]
    assert yen and all(1000 <= b <= 100_000 for b in yen if b)  # whole yen: no x100 minor unit


def test_activities_default_to_a_week_and_filter_by_time(make, accounts) -> None:
    make()
    acct = accounts[INR]
    default = plain(AdAccount(INR).get_activities(fields=["event_type", "event_time", "object_id", "extra_data"]))
    week_ago = NOW - timedelta(days=7)
    expected = [a for a in acct.activities if datetime.strptime(a["event_time"], "%Y-%m-%dT%H:%M:%S%z") >= week_ago]
    assert len(default) == len(expected) < len(acct.activities)

    everything = plain(
        AdAccount(INR).get_activities(
            fields=["event_type", "event_time", "object_id", "extra_data"],
            params={"since": (END - timedelta(days=30)).isoformat(), "until": int(NOW.timestamp()), "limit": 2},
        )
    )
    assert len(everything) == len(acct.activities)
    times = [e["event_time"] for e in everything]
    assert times == sorted(times, reverse=True)
    budget = [e for e in everything if e["event_type"] == "update_ad_set_budget"]
    assert budget
    for event in budget:
        extra = json.loads(event["extra_data"])
        assert extra["new_value"] == int(acct.adset(event["object_id"])["daily_budget"]) > extra["old_value"]
        assert extra["currency"] == "INR"
    assert any(e["event_type"] == "update_campaign_budget" for e in everything)


@pytest.mark.parametrize(
    ("code", "subcode", "status", "transient"),
    [
        (80000, 2446079, 400, True),
        (17, 2446079, 400, True),
        (4, None, 400, True),
        (613, None, 400, True),
        (2, None, 503, True),
        (1, 99, 500, True),
        (100, None, 400, False),
        (190, 463, 400, False),
        (200, None, 400, False),
    ],
)
def test_error_reply_raises_facebook_request_error(make, code, subcode, status, transient) -> None:
    fake, _ = make()
    fake.inject(r"/act_1001/insights$", graph_error(code, subcode, headers=throttle_headers(INR, 95, regain_minutes=4)))
    with pytest.raises(FacebookRequestError) as err:
        list(AdAccount(INR).get_insights(fields=FIELDS, params=insight_params(END, END)))
    e = err.value
    assert (e.api_error_code(), e.api_error_subcode(), e.api_transient_error()) == (code, subcode, transient)
    assert e.http_status() == status and e.api_error_type() == "OAuthException"
    headers = e.http_headers()
    buc = json.loads(headers["x-business-use-case-usage"])["1001"][0]
    assert (buc["call_count"], buc["estimated_time_to_regain_access"]) == (95, 4)
    assert json.loads(headers["x-ad-account-usage"])["acc_id_util_pct"] == 95
    assert json.loads(headers["x-fb-ads-insights-throttle"])["acc_id_util_pct"] == 95
    assert json.loads(headers["X-App-Usage"])["call_count"] == 95
    # one-shot: the retry succeeds
    assert list(AdAccount(INR).get_insights(fields=FIELDS, params=insight_params(END, END)))


def test_usage_headers_on_successful_pages(make, accounts) -> None:
    fake, _ = make()
    cursor = AdAccount(INR).get_insights(fields=["spend"], params=insight_params(END, END))
    assert json.loads(cursor.headers()["x-fb-ads-insights-throttle"]) == {
        "app_id_util_pct": 10,
        "acc_id_util_pct": 10,
        "ads_api_access_tier": "standard_access",
    }
    fake.inject(r"/insights$", usage_reply(INR, 90, regain_minutes=2))
    cursor = AdAccount(INR).get_insights(fields=["spend"], params=insight_params(END, END))
    assert len(list(cursor)) == len([r for r in accounts[INR].insights if r.day == END])
    usage = json.loads(cursor.headers()["x-business-use-case-usage"])["1001"][0]
    assert (usage["type"], usage["call_count"], usage["estimated_time_to_regain_access"]) == ("ads_insights", 90, 2)
    assert fake.pending_injections == 0


def test_token_is_required_and_checked(accounts) -> None:
    with FakeGraph(accounts, tokens={"good"}) as fake:
        with sdk_session(fake, access_token=None) as api:
            with pytest.raises(FacebookRequestError) as err:
                AdAccount(INR, api=api).api_get(fields=["currency"])
        assert (err.value.api_error_code(), err.value.api_error_type()) == (190, "OAuthException")
        assert err.value.http_status() == 400 and fake.requests[-1]["access_token"] is None
        with sdk_session(fake, access_token="stolen") as api, pytest.raises(FacebookRequestError) as err:
            AdAccount(INR, api=api).api_get(fields=["currency"])
        assert err.value.api_error_code() == 190
        with sdk_session(fake, access_token="good", set_default=False) as api:
            assert AdAccount(INR, api=api).api_get(fields=["currency"])["currency"] == "INR"
        assert fake.errors == []


def test_appsecret_proof_is_recorded_and_verified(accounts) -> None:
    with FakeGraph(accounts, app_secret="s3cret") as fake:
        with sdk_session(fake, access_token="tok", app_id="42", app_secret="s3cret") as api:
            assert AdAccount(INR, api=api).api_get(fields=["currency"])["currency"] == "INR"
        proof = hmac.new(b"s3cret", b"tok", hashlib.sha256).hexdigest()
        assert fake.requests[-1]["appsecret_proof"] == proof
        with sdk_session(fake, access_token="tok") as api, pytest.raises(FacebookRequestError) as err:
            AdAccount(INR, api=api).api_get(fields=["currency"])
        assert err.value.api_error_code() == 100


def test_restated_values_show_on_the_second_pull(make, accounts) -> None:
    fake, _ = make()
    since = END - timedelta(days=2)
    first = plain(AdAccount(INR).get_insights(fields=FIELDS, params=insight_params(since, END)))
    adset_id = accounts[INR].adsets[0]["id"]
    day = END - timedelta(days=1)
    before = next(r for r in first if r["adset_id"] == adset_id and r["date_start"] == day.isoformat())
    old_purchases = int(by_type(before["actions"])["omni_purchase"]["value"])
    old_value = Decimal(by_type(before["action_values"])["omni_purchase"]["value"])

    fake.restate(INR, day, adset_id, purchases=old_purchases + 3, purchase_value=old_value + 1500)

    second = plain(AdAccount(INR).get_insights(fields=FIELDS, params=insight_params(since, END)))
    after = next(r for r in second if r["adset_id"] == adset_id and r["date_start"] == day.isoformat())
    for t in PURCHASE_ACTION_TYPES:
        assert int(by_type(after["actions"])[t]["value"]) == old_purchases + 3
        assert Decimal(by_type(after["action_values"])[t]["value"]) == old_value + 1500
    assert after["spend"] == before["spend"]
    assert [r for r in second if r is not after] == [r for r in first if r is not before]


def test_writes_update_budgets_copy_ad_sets_and_refuse_cbo(make, accounts) -> None:
    fake, _ = make()
    acct = accounts[INR]
    target = acct.adsets[0]["id"]
    for step in range(4):
        AdSet(target).api_update(params={"daily_budget": 500000 + step * 10000})
    assert fake.requests_to(rf"^/v26\.0/{target}/$", "POST")[0]["form"]["daily_budget"] == "500000"
    assert acct.adset(target)["daily_budget"] == "530000"
    with pytest.raises(FacebookRequestError) as err:
        AdSet(target).api_update(params={"daily_budget": 600000})
    assert err.value.api_error_code() == 17
    cbo_adset = next(a["id"] for a in acct.adsets if acct.is_cbo(a["id"]))
    with pytest.raises(FacebookRequestError) as err:
        AdSet(cbo_adset).api_update(params={"daily_budget": 500000})
    assert err.value.api_error_code() == 100
    copy = AdSet(target).create_copy(params={"deep_copy": True, "status_option": "PAUSED"})
    new = acct.adset(copy["copied_adset_id"])
    assert new["status"] == "PAUSED" and new["learning_stage_info"]["status"] == "LEARNING"


def test_bad_requests_answer_like_graph(make) -> None:
    make()
    with pytest.raises(FacebookRequestError) as err:
        list(AdAccount(INR).get_ad_sets(fields=["name", "no_such_field"]))
    assert err.value.api_error_code() == 100 and "no_such_field" in err.value.api_error_message()
    with pytest.raises(FacebookRequestError) as err:
        AdAccount("act_999").api_get(fields=["currency"])
    assert (err.value.api_error_code(), err.value.api_error_subcode()) == (100, 33)
    assert err.value.api_error_type() == "GraphMethodException"


def test_non_json_5xx_is_not_a_request_error_in_the_sdk(make) -> None:
    fake, _ = make()
    # FacebookResponse.is_success() reads only the body, not the status: an HTML 502 passes as success
    # and the SDK then fails while parsing it, with a TypeError rather than FacebookRequestError.
    fake.inject(r"^/v26\.0/act_1001/$", raw_reply(502, "<html>Bad Gateway</html>"))  # node reads end in "/"
    with pytest.raises(TypeError):
        AdAccount(INR).api_get(fields=["currency"])
    fake.inject(r"/act_1001/adsets$", raw_reply(502, "<html>Bad Gateway</html>"))
    with pytest.raises(TypeError):
        list(AdAccount(INR).get_ad_sets(fields=["name"]))
    assert [r["status"] for r in fake.requests] == [502, 502]


def test_builder_is_deterministic_and_covers_every_audience_kind() -> None:
    a = build_account(INR, "INR", n_adsets=10, days=5, end_date=END, seed=3)
    assert a == build_account(INR, "INR", n_adsets=10, days=5, end_date=END, seed=3)
    assert a.insights != build_account(INR, "INR", n_adsets=10, days=5, end_date=END, seed=4).insights
    targeting = [s["targeting"] for s in a.adsets]
    assert any("flexible_spec" in t for t in targeting)
    assert any(c["name"].startswith("Lookalike (IN, ") for t in targeting for c in t.get("custom_audiences", []))
    assert any(not c["name"].startswith("Lookalike") for t in targeting for c in t.get("custom_audiences", []))
    assert any("custom_audiences" not in t and "flexible_spec" not in t for t in targeting)
    assert sum(a.is_cbo(s["id"]) for s in a.adsets) == 2
    with pytest.raises(ValueError, match="n_adsets"):
        build_account(INR, "INR", n_adsets=4)


def test_sdk_session_points_one_instance_at_the_fake(accounts) -> None:
    with FakeGraph(accounts) as fake:
        before = FacebookAdsApi.get_default_api()
        with sdk_session(fake) as api:
            assert FacebookAdsApi.get_default_api() is api
            assert api._session.GRAPH == fake.base_url and fake.base_url.startswith("http://127.0.0.1:")
        assert FacebookAdsApi.get_default_api() is before
