"""Writes to the fake Meta Graph API, exercised only through the real facebook_business SDK.

Every state change is checked by reading it back through the SDK (``api_get``, ``get_activities``,
``get_ad_sets``), the way the execution layer will verify its own writes.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from facebook_business.adobjects.adaccount import AdAccount
from facebook_business.adobjects.adset import AdSet
from facebook_business.adobjects.campaign import Campaign
from facebook_business.api import FacebookAdsApi
from facebook_business.exceptions import FacebookRequestError
from facebook_business.session import FacebookSession

from audience_assets_tests.fakes.graph_server import (
    AccountData,
    Actor,
    FakeGraph,
    build_account,
    graph_error,
    sdk_session,
    throttle_error,
)

END = date(2026, 3, 1)
NOW = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
INR = "act_1001"
JPY = "act_2002"
READ_BACK = [
    "name",
    "daily_budget",
    "lifetime_budget",
    "effective_status",
    "configured_status",
    "status",
    "updated_time",
    "learning_stage_info",
    "campaign_id",
]
CAMPAIGN_EXPANSION = "campaign{daily_budget,lifetime_budget,status,effective_status}"
ACTIVITY_FIELDS = [
    "event_type",
    "event_time",
    "object_id",
    "object_name",
    "extra_data",
    "actor_name",
    "application_name",
]
VALIDATE_ONLY = {"execution_options": ["validate_only"]}

# The SDK warns about field expansions and off-type values it does not know; the wire is what matters here.
pytestmark = [
    pytest.mark.filterwarnings("ignore:.*does not allow field campaign"),
    pytest.mark.filterwarnings("ignore:value of .* might not be compatible"),
]


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, t: datetime) -> None:
        self.t = t

    def __call__(self) -> datetime:
        return self.t

    def advance(self, **delta: float) -> None:
        self.t += timedelta(**delta)


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
        JPY: build_account(JPY, "JPY", n_adsets=6, days=14, end_date=END, seed=8),
    }


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
def make(accounts, clock) -> Iterator[Callable[..., FakeGraph]]:
    """``make(**FakeGraph options) -> fake``; the SDK's default API points at it."""
    fakes: list[FakeGraph] = []
    with ExitStack() as stack:

        def _make(**opts: Any) -> FakeGraph:
            opts.setdefault("now", clock)
            fake = stack.enter_context(FakeGraph(accounts, **opts))
            stack.enter_context(sdk_session(fake))
            fakes.append(fake)
            return fake

        yield _make
    for fake in fakes:
        assert fake.errors == []


def adset_id(acct: AccountData, kind: str, nth: int = 0) -> str:
    """The id of the nth builder ad set of a kind: lookalike, custom (lifetime budget), interest, broad, cbo."""
    return [a["id"] for a in acct.adsets if a["name"].split(" | ")[1] == kind][nth]


def read(object_id: str, fields: list[str] = READ_BACK) -> dict[str, Any]:
    return AdSet(object_id).api_get(fields=fields).export_all_data()


def activities(account_id: str, object_id: str | None = None, since: datetime = NOW) -> list[dict[str, Any]]:
    """Activities at or after ``since`` (newest first), through the account's edge."""
    cursor = AdAccount(account_id).get_activities(
        fields=ACTIVITY_FIELDS, params={"since": int(since.timestamp()), "limit": 100}
    )
    return [a.export_all_data() for a in cursor if object_id is None or a["object_id"] == object_id]


def error_of(call: Callable[[], Any]) -> FacebookRequestError:
    with pytest.raises(FacebookRequestError) as err:
        call()
    return err.value


def codes(e: FacebookRequestError) -> tuple[int, int | None]:
    return e.api_error_code(), e.api_error_subcode()


# --------------------------------------------------------------------------- budgets, pauses, copies


def test_budget_update_on_an_inr_account_is_in_paise_and_read_back(make, accounts) -> None:
    fake = make()
    target = adset_id(accounts[INR], "lookalike")
    before = read(target)
    old = int(before["daily_budget"])
    new = old + old // 10  # +10 %: below the learning threshold
    AdSet(target).api_update(params={"daily_budget": new})

    post = fake.requests_to(rf"^/v26\.0/{target}/$", "POST")[-1]
    assert post["body"] == {"daily_budget": str(new)} and post["response"] == {"success": True}
    assert post["query"]["access_token"] == "tok" and "access_token" not in post["body"]
    after = read(target)
    assert after["daily_budget"] == str(new) and after["lifetime_budget"] == "0"
    assert after["updated_time"] == "2026-03-02T11:30:00+0530" != before["updated_time"]
    assert {k: v for k, v in after.items() if k not in ("daily_budget", "updated_time")} == {
        k: v for k, v in before.items() if k not in ("daily_budget", "updated_time")
    }
    (event,) = activities(INR, target)
    assert event["event_type"] == "update_ad_set_budget"
    assert json.loads(event["extra_data"]) == {
        "old_value": old,
        "new_value": new,
        "currency": "INR",
        "type": "payment_amount",
    }
    assert (event["actor_name"], event["application_name"]) == ("Fake System User", "Fake API App")
    assert event["event_time"] == "2026-03-02T06:00:00+0000"


def test_budget_update_on_a_jpy_account_is_in_whole_yen(make, accounts) -> None:
    make()
    target = adset_id(accounts[JPY], "lookalike")
    old = int(read(target)["daily_budget"])
    assert 1_000 <= old <= 100_000  # yen, no x100 minor unit
    AdSet(target).api_update(params={"daily_budget": old + 500})
    after = read(target)
    assert after["daily_budget"] == str(old + 500)
    assert after["updated_time"] == "2026-03-02T15:00:00+0900"
    (event,) = activities(JPY, target)
    extra = json.loads(event["extra_data"])
    assert (extra["old_value"], extra["new_value"], extra["currency"]) == (old, old + 500, "JPY")


def test_pause_follows_configured_and_effective_status(make, accounts) -> None:
    make()
    target = adset_id(accounts[INR], "lookalike")
    AdSet(target).api_update(params={"status": "PAUSED"})
    after = read(target)
    assert (after["status"], after["configured_status"], after["effective_status"]) == ("PAUSED",) * 3
    assert after["updated_time"] == "2026-03-02T11:30:00+0530"
    (event,) = activities(INR, target)
    assert event["event_type"] == "update_ad_set_run_status"
    assert json.loads(event["extra_data"]) == {"old_value": "Active", "new_value": "Paused"}
    paused = [a["id"] for a in AdAccount(INR).get_ad_sets(fields=["name"], params={"effective_status": ["PAUSED"]})]
    assert target in paused


def test_pausing_a_campaign_shows_on_its_ad_sets_effective_status(make, accounts) -> None:
    make()
    target = adset_id(accounts[INR], "lookalike")
    campaign_id = read(target)["campaign_id"]
    Campaign(campaign_id).api_update(params={"status": "PAUSED"})
    after = read(target)
    assert (after["configured_status"], after["effective_status"]) == ("ACTIVE", "CAMPAIGN_PAUSED")
    assert activities(INR, target) == []  # the ad set itself was not edited
    (event,) = activities(INR, campaign_id)
    assert event["event_type"] == "update_campaign_run_status"
    Campaign(campaign_id).api_update(params={"status": "ACTIVE"})
    assert read(target)["effective_status"] == "ACTIVE"


def test_copy_returns_a_new_paused_ad_set_and_leaves_the_original_alone(make, accounts) -> None:
    fake = make()
    source = adset_id(accounts[INR], "lookalike")
    before = read(source)
    count = len(list(AdAccount(INR).get_ad_sets(fields=["name"])))

    copy = AdSet(source).create_copy(params={"deep_copy": True, "status_option": "PAUSED"})

    new_id = copy["copied_adset_id"]
    assert new_id != source and new_id.isdigit()
    post = fake.requests_to(rf"^/v26\.0/{source}/copies$", "POST")[-1]
    assert post["body"] == {"deep_copy": True, "status_option": "PAUSED"}
    new = read(new_id)
    assert (new["status"], new["effective_status"]) == ("PAUSED", "PAUSED")
    assert new["name"] == before["name"] + " - Copy" and new["campaign_id"] == before["campaign_id"]
    assert new["daily_budget"] == before["daily_budget"]
    assert new["learning_stage_info"]["status"] == "LEARNING" and new["learning_stage_info"]["conversions"] == 0
    assert read(source) == before
    assert len(list(AdAccount(INR).get_ad_sets(fields=["name"]))) == count + 1
    (event,) = activities(INR, new_id)
    assert event["event_type"] == "create_ad_set"
    assert activities(INR, source) == []


# --------------------------------------------------------------------------- validate_only


DRY_RUNS = {
    "budget": lambda target: AdSet(target).api_update(params={"daily_budget": 1_000_000, **VALIDATE_ONLY}),
    "pause": lambda target: AdSet(target).api_update(params={"status": "PAUSED", **VALIDATE_ONLY}),
    "copy": lambda target: AdSet(target).create_copy(params={"deep_copy": True, **VALIDATE_ONLY}),
}


@pytest.mark.parametrize("write", list(DRY_RUNS))
def test_validate_only_answers_success_and_changes_nothing(make, accounts, write) -> None:
    fake = make()
    target = adset_id(accounts[INR], "lookalike")
    before = read(target)
    adsets_before = len(list(AdAccount(INR).get_ad_sets(fields=["name"])))
    DRY_RUNS[write](target)
    post = fake.requests[-1]
    assert post["method"] == "POST" and post["response"] == {"success": True}
    assert post["body"]["execution_options"] == ["validate_only"]
    assert json.loads(post["form"]["execution_options"]) == ["validate_only"]  # JSON-encoded on the wire
    assert read(target) == before
    assert activities(INR) == []
    assert len(list(AdAccount(INR).get_ad_sets(fields=["name"]))) == adsets_before


def test_dry_runs_do_not_count_against_the_hourly_limit(make, accounts) -> None:
    make()
    target = adset_id(accounts[INR], "lookalike")
    base = int(read(target)["daily_budget"])
    for step in range(1, 5):
        AdSet(target).api_update(params={"daily_budget": base + step * 100, **VALIDATE_ONLY})
    for step in range(1, 5):
        AdSet(target).api_update(params={"daily_budget": base + step * 100})
    assert read(target)["daily_budget"] == str(base + 400)
    # ... and a dry run of a fifth change fails exactly as the real one would
    dry = error_of(lambda: AdSet(target).api_update(params={"daily_budget": base, **VALIDATE_ONLY}))
    real = error_of(lambda: AdSet(target).api_update(params={"daily_budget": base}))
    assert codes(dry) == codes(real) == (17, 1885172)


INVALID_WRITES: dict[str, tuple[str, dict[str, Any], tuple[int, int | None]]] = {
    "cbo budget": ("cbo", {"daily_budget": 500_000}, (100, 1885621)),
    "under the minimum": ("lookalike", {"daily_budget": 4_199}, (100, 1885272)),
    "not an integer": ("lookalike", {"daily_budget": "5000.50"}, (100, None)),
    "unknown status": ("lookalike", {"status": "RUNNING"}, (100, None)),
    "daily on a lifetime ad set": ("custom", {"daily_budget": 500_000}, (100, None)),
    "both budgets": ("lookalike", {"daily_budget": 500_000, "lifetime_budget": 9_000_000}, (100, None)),
}


@pytest.mark.parametrize("case", list(INVALID_WRITES))
def test_validate_only_fails_exactly_like_the_real_write(make, accounts, case) -> None:
    make()
    kind, params, expected = INVALID_WRITES[case]
    target = adset_id(accounts[INR], kind)
    before = read(target)
    dry = error_of(lambda: AdSet(target).api_update(params={**params, **VALIDATE_ONLY}))
    real = error_of(lambda: AdSet(target).api_update(params=params))
    assert codes(dry) == codes(real) == expected
    assert dry.api_error_message() == real.api_error_message()
    assert dry.body()["error"].get("error_user_msg") == real.body()["error"].get("error_user_msg")
    assert read(target) == before and activities(INR) == []


def test_validate_only_on_a_campaign_budget(make, accounts) -> None:
    fake = make()
    cbo_campaign = read(adset_id(accounts[INR], "cbo"))["campaign_id"]
    fields = ["daily_budget", "lifetime_budget", "status", "updated_time"]
    before = Campaign(cbo_campaign).api_get(fields=fields).export_all_data()
    Campaign(cbo_campaign).api_update(params={"daily_budget": int(before["daily_budget"]) * 2, **VALIDATE_ONLY})
    assert fake.requests[-1]["response"] == {"success": True}
    assert Campaign(cbo_campaign).api_get(fields=fields).export_all_data() == before
    assert activities(INR) == []
    abo_campaign = read(adset_id(accounts[INR], "lookalike"))["campaign_id"]
    dry = error_of(lambda: Campaign(abo_campaign).api_update(params={"daily_budget": 5_000_000, **VALIDATE_ONLY}))
    assert codes(dry) == (100, 1885621)


def test_validate_only_copy_checks_the_status_option(make, accounts) -> None:
    make()
    source = adset_id(accounts[INR], "lookalike")
    params = {"status_option": "RUNNING"}
    dry = error_of(lambda: AdSet(source).create_copy(params={**params, **VALIDATE_ONLY}))
    real = error_of(lambda: AdSet(source).create_copy(params=params))
    assert codes(dry) == codes(real) == (100, None) and "status_option" in real.api_error_message()


# --------------------------------------------------------------------------- Meta's quirks and rules


def test_write_can_succeed_without_effect(make, accounts) -> None:
    fake = make()
    target = adset_id(accounts[INR], "lookalike")
    other = adset_id(accounts[INR], "interest")
    before = read(target)
    fake.writes_without_effect.add(target)
    answer = AdSet(target).api_update(params={"daily_budget": int(before["daily_budget"]) * 2})
    assert fake.requests[-1]["response"] == {"success": True} and answer.export_all_data() == {"id": target}
    assert read(target) == before and activities(INR, target) == []
    AdSet(other).api_update(params={"status": "PAUSED"})  # other objects still change
    assert read(other)["status"] == "PAUSED"
    # validations still run on a write without effect
    with pytest.raises(FacebookRequestError):
        AdSet(target).api_update(params={"status": "RUNNING"})
    fake.writes_without_effect.clear()
    AdSet(target).api_update(params={"daily_budget": int(before["daily_budget"]) * 2})
    assert read(target)["daily_budget"] == str(int(before["daily_budget"]) * 2)


def test_fifth_budget_change_in_an_hour_is_refused_with_code_17(make, accounts, clock) -> None:
    make()
    target = adset_id(accounts[INR], "lookalike")
    base = int(read(target)["daily_budget"])
    for step in range(1, 5):
        AdSet(target).api_update(params={"daily_budget": base + step * 1000})
        clock.advance(minutes=5)
    e = error_of(lambda: AdSet(target).api_update(params={"daily_budget": base + 5000}))
    assert codes(e) == (17, 1885172) and e.api_error_message() == "(#17) User request limit reached"
    assert e.api_transient_error() is True and e.api_blame_field_specs() == [["daily_budget"]]
    assert read(target)["daily_budget"] == str(base + 4000)
    AdSet(target).api_update(params={"status": "PAUSED"})  # a status change is not a budget change
    clock.advance(minutes=46)  # the first change is now more than an hour old
    AdSet(target).api_update(params={"daily_budget": base + 5000})
    assert read(target)["daily_budget"] == str(base + 5000)


def test_hourly_limit_is_configurable(make, accounts) -> None:
    make(budget_changes_per_hour=None)
    target = adset_id(accounts[JPY], "lookalike")
    base = int(read(target)["daily_budget"])
    for step in range(1, 8):
        AdSet(target).api_update(params={"daily_budget": base + step * 10})
    assert read(target)["daily_budget"] == str(base + 70)


def test_outside_edits_are_listed_and_count_towards_the_limit(make, accounts, clock) -> None:
    fake = make()
    target = adset_id(accounts[INR], "lookalike")
    base = int(read(target)["daily_budget"])
    jane_at = NOW + timedelta(minutes=10)
    clock.advance(minutes=20)
    fake.edit_outside(target, daily_budget=base + 7000, actor_name="Jane (Ads Manager)", at=jane_at)
    after = read(target)
    assert after["daily_budget"] == str(base + 7000)
    assert after["updated_time"] == "2026-03-02T11:40:00+0530"
    (jane,) = activities(INR, target)
    assert (jane["actor_name"], jane["event_type"], jane["event_time"]) == (
        "Jane (Ads Manager)",
        "update_ad_set_budget",
        "2026-03-02T06:10:00+0000",
    )
    assert json.loads(jane["extra_data"])["old_value"] == base
    by_adset = [a.export_all_data() for a in AdSet(target).get_activities(fields=ACTIVITY_FIELDS)]
    assert by_adset[0] == jane
    for step in range(1, 4):
        AdSet(target).api_update(params={"daily_budget": base + step * 1000})
    e = error_of(lambda: AdSet(target).api_update(params={"daily_budget": base}))
    assert e.api_error_code() == 17
    names = [a["actor_name"] for a in activities(INR, target)]
    assert names == ["Fake System User"] * 3 + ["Jane (Ads Manager)"]


def test_minimum_budgets_edge_and_refusal_per_currency(make, accounts) -> None:
    make()
    minimums = {}
    for account_id in (INR, JPY):
        entries = [m.export_all_data() for m in AdAccount(account_id).get_minimum_budgets()]
        assert all(
            set(e) == {"currency", *(f"min_daily_budget_{k}" for k in ("imp", "video_views", "high_freq", "low_freq"))}
            for e in entries
        )
        minimums[account_id] = {e["currency"]: e for e in entries}
    inr = minimums[INR]["INR"]["min_daily_budget_imp"]
    jpy = minimums[JPY]["JPY"]["min_daily_budget_imp"]
    assert (inr, jpy) == (4200, 150)  # INR 42.00 in paise; JPY 150 in whole yen
    assert minimums[INR]["USD"]["min_daily_budget_high_freq"] == 500

    for account_id, minimum, text in ((INR, inr, "INR42.00"), (JPY, jpy, "JPY150")):
        target = adset_id(accounts[account_id], "lookalike")  # billed on impressions
        before = read(target)
        e = error_of(lambda t=target, m=minimum: AdSet(t).api_update(params={"daily_budget": m - 1}))
        assert codes(e) == (100, 1885272) and e.api_blame_field_specs() == [["daily_budget"]]
        assert e.body()["error"]["error_user_title"] == "Your Budget Is Too Low"
        assert text in e.body()["error"]["error_user_msg"]
        assert read(target) == before
        AdSet(target).api_update(params={"daily_budget": minimum})
        assert read(target)["daily_budget"] == str(minimum)


def test_capped_bid_needs_five_times_the_bid_as_budget(make, accounts) -> None:
    make()
    target = adset_id(accounts[INR], "interest")  # COST_CAP with a bid_amount
    bid = int(AdSet(target).api_get(fields=["bid_amount", "bid_strategy"])["bid_amount"])
    e = error_of(lambda: AdSet(target).api_update(params={"daily_budget": 5 * bid - 1}))
    assert codes(e) == (100, 1885272)
    AdSet(target).api_update(params={"daily_budget": 5 * bid})
    assert read(target)["daily_budget"] == str(5 * bid)


def test_cbo_ad_set_budget_is_refused_and_the_campaign_budget_is_written(make, accounts) -> None:
    make()
    target = adset_id(accounts[INR], "cbo")
    before = read(target, [*READ_BACK, CAMPAIGN_EXPANSION])
    assert "daily_budget" not in before and int(before["campaign"]["daily_budget"]) > 0
    e = error_of(lambda: AdSet(target).api_update(params={"daily_budget": 500_000}))
    assert codes(e) == (100, 1885621) and e.api_blame_field_specs() == [["daily_budget"]]
    assert read(target, [*READ_BACK, CAMPAIGN_EXPANSION]) == before

    campaign_id = before["campaign_id"]
    new = int(before["campaign"]["daily_budget"]) * 2
    Campaign(campaign_id).api_update(params={"daily_budget": new})
    after = read(target, [*READ_BACK, CAMPAIGN_EXPANSION])
    assert after["campaign"]["daily_budget"] == str(new)
    assert after["learning_stage_info"]["last_sig_edit_ts"] == int(NOW.timestamp())  # +100 %: significant
    (event,) = activities(INR, campaign_id)
    assert event["event_type"] == "update_campaign_budget"

    abo = read(adset_id(accounts[INR], "lookalike"))["campaign_id"]
    e = error_of(lambda: Campaign(abo).api_update(params={"daily_budget": 5_000_000}))
    assert codes(e) == (100, 1885621)


# --------------------------------------------------------------------------- learning phase


def test_significant_budget_change_resets_learning(make, accounts) -> None:
    make()
    target = adset_id(accounts[INR], "lookalike")
    before = read(target)
    assert before["learning_stage_info"]["last_sig_edit_ts"] < int(NOW.timestamp()) - 86_400
    AdSet(target).api_update(params={"daily_budget": int(before["daily_budget"]) * 3 // 2})  # +50 %
    info = read(target)["learning_stage_info"]
    assert info["status"] == "LEARNING" and info["conversions"] == 0
    assert info["last_sig_edit_ts"] == int(NOW.timestamp())
    assert info["attribution_windows"] == before["learning_stage_info"]["attribution_windows"]


def test_small_budget_change_keeps_the_learning_stage(make, accounts) -> None:
    make()
    target = adset_id(accounts[INR], "lookalike")
    before = read(target)
    AdSet(target).api_update(params={"daily_budget": int(before["daily_budget"]) * 115 // 100})  # +15 %
    assert read(target)["learning_stage_info"] == before["learning_stage_info"]


def test_learning_threshold_is_a_parameter(make, accounts) -> None:
    make(significant_budget_change_pct=10.0)
    target = adset_id(accounts[INR], "lookalike")
    before = read(target)
    AdSet(target).api_update(params={"daily_budget": int(before["daily_budget"]) * 115 // 100})  # +15 % > 10 %
    assert read(target)["learning_stage_info"]["last_sig_edit_ts"] == int(NOW.timestamp())


def test_unpausing_resets_learning_and_a_broad_ad_set_gets_learning_info(make, accounts) -> None:
    make()
    paused = adset_id(accounts[INR], "lookalike", 1)  # the builder's paused ad set
    before = read(paused)
    assert before["status"] == before["effective_status"] == "PAUSED"
    AdSet(paused).api_update(params={"status": "ACTIVE"})
    after = read(paused)
    assert after["effective_status"] == "ACTIVE"
    assert after["learning_stage_info"]["last_sig_edit_ts"] == int(NOW.timestamp())
    AdSet(paused).api_update(params={"status": "PAUSED"})  # pausing is not a significant edit
    assert read(paused)["learning_stage_info"] == after["learning_stage_info"]

    broad = adset_id(accounts[INR], "broad")
    assert "learning_stage_info" not in read(broad)
    AdSet(broad).api_update(params={"daily_budget": int(read(broad)["daily_budget"]) * 2})
    assert read(broad)["learning_stage_info"]["status"] == "LEARNING"


# --------------------------------------------------------------------------- read-back


def test_read_back_with_the_campaign_expansion(make, accounts) -> None:
    fake = make()
    abo = adset_id(accounts[INR], "lookalike")
    got = AdSet(abo).api_get(fields=[*READ_BACK, CAMPAIGN_EXPANSION])
    sent = fake.requests[-1]["query"]["fields"]
    assert sent == ",".join([*READ_BACK, CAMPAIGN_EXPANSION])
    data = got.export_all_data()
    assert isinstance(got["campaign"], Campaign)  # the SDK types the nested object
    assert data["campaign"] == {"id": data["campaign_id"], "status": "ACTIVE", "effective_status": "ACTIVE"}
    assert fake.requests[-1]["response"]["campaign"] == data["campaign"]
    assert set(data) == {"id", "campaign", *READ_BACK}
    assert data["configured_status"] == data["status"] == "ACTIVE"
    assert data["updated_time"] == AdSet(abo).api_get(fields=["created_time"])["created_time"]  # never edited

    plain = AdSet(abo).api_get(fields=["campaign"]).export_all_data()
    assert plain["campaign"] == {"id": data["campaign_id"]}
    e = error_of(lambda: AdSet(abo).api_get(fields=["campaign{daily_budget,no_such_field}"]))
    assert e.api_error_code() == 100 and "no_such_field" in e.api_error_message()


# --------------------------------------------------------------------------- errors on writes

INJECTED = [
    (4, None, True),
    (17, None, True),
    (613, None, True),
    (80004, 2446079, True),
    (190, None, False),
    (200, None, False),
    (100, None, False),
]


@pytest.mark.parametrize("write", ["update", "copy"])
@pytest.mark.parametrize(("code", "subcode", "transient"), INJECTED)
def test_injected_errors_on_writes(make, accounts, write, code, subcode, transient) -> None:
    fake = make()
    target = adset_id(accounts[INR], "lookalike")
    before = read(target)
    rate_limit = transient
    reply = throttle_error(code, INR, pct=100, regain_minutes=7) if rate_limit else graph_error(code)
    path = rf"^/v26\.0/{target}/$" if write == "update" else rf"^/v26\.0/{target}/copies$"
    fake.inject(path, reply, method="POST")

    def do() -> Any:
        if write == "update":
            return AdSet(target).api_update(params={"status": "PAUSED"})
        return AdSet(target).create_copy(params={"status_option": "PAUSED"})

    e = error_of(do)
    assert codes(e) == (code, subcode) and e.api_transient_error() is transient
    if rate_limit:
        usage = json.loads(e.http_headers()["x-business-use-case-usage"])["1001"][0]
        assert (usage["call_count"], usage["estimated_time_to_regain_access"]) == (100, 7)
        assert json.loads(e.http_headers()["x-ad-account-usage"])["acc_id_util_pct"] == 100
    assert read(target) == before and activities(INR) == []  # an injected error changed nothing
    assert fake.pending_injections == 0
    do()  # one-shot: the retry goes through
    assert activities(INR)


def test_injected_613_on_a_budget_post_then_retry(make, accounts) -> None:
    fake = make()
    target = adset_id(accounts[INR], "lookalike")
    old = int(read(target)["daily_budget"])
    fake.inject(rf"/{target}/$", throttle_error(613, INR, regain_minutes=2), method="POST")
    e = error_of(lambda: AdSet(target).api_update(params={"daily_budget": old + 100}))
    assert e.api_error_code() == 613 and e.http_status() == 400
    assert read(target)["daily_budget"] == str(old)  # GETs are not consumed by a POST injection
    AdSet(target).api_update(params={"daily_budget": old + 100})
    assert read(target)["daily_budget"] == str(old + 100)
    assert [r["status"] for r in fake.requests_to(rf"/{target}/$", "POST")] == [400, 200]


# --------------------------------------------------------------------------- concurrency


def test_two_clients_writing_at_once_do_not_corrupt_state(accounts, clock) -> None:
    rounds = 12
    with FakeGraph(accounts, now=clock, budget_changes_per_hour=None) as fake, ExitStack() as stack:
        apis = {}
        for token, name in (("tok-a", "Client A"), ("tok-b", "Client B")):
            fake.token_actors[token] = Actor("1", name, "2", f"app {name}")
            apis[token] = stack.enter_context(sdk_session(fake, access_token=token, set_default=False))
        targets = {"tok-a": adset_id(accounts[INR], "lookalike"), "tok-b": adset_id(accounts[JPY], "lookalike")}
        bases = {
            t: int(AdSet(a, api=apis[t]).api_get(fields=["daily_budget"])["daily_budget"]) for t, a in targets.items()
        }
        copies: dict[str, list[str]] = {t: [] for t in targets}
        failures: list[BaseException] = []
        barrier = threading.Barrier(2)

        def work(token: str) -> None:
            api, target = apis[token], targets[token]
            try:
                barrier.wait()
                for i in range(rounds):
                    AdSet(target, api=api).api_update(params={"daily_budget": bases[token] + (i + 1) * 10})
                    AdSet(target, api=api).api_update(params={"status": "PAUSED" if i % 2 == 0 else "ACTIVE"})
                    copy = AdSet(target, api=api).create_copy(params={"status_option": "PAUSED"})
                    copies[token].append(copy["copied_adset_id"])
            except BaseException as exc:  # noqa: BLE001 - reported below
                failures.append(exc)

        threads = [threading.Thread(target=work, args=(t,)) for t in targets]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert failures == [] and fake.errors == []

        for token, target in targets.items():
            api = apis[token]
            got = AdSet(target, api=api).api_get(fields=["daily_budget", "status"])
            assert (got["daily_budget"], got["status"]) == (str(bases[token] + rounds * 10), "ACTIVE")
            account_id = INR if token == "tok-a" else JPY
            events = [
                a.export_all_data()
                for a in AdAccount(account_id, api=api).get_activities(
                    fields=ACTIVITY_FIELDS, params={"since": int(NOW.timestamp()), "limit": 500}
                )
            ]
            kinds = sorted(e["event_type"] for e in events if e["object_id"] == target)
            assert kinds == ["update_ad_set_budget"] * rounds + ["update_ad_set_run_status"] * rounds
            created = {e["object_id"] for e in events if e["event_type"] == "create_ad_set"}
            assert created == set(copies[token]) and len(created) == rounds
            assert {e["actor_name"] for e in events} == {"Client A" if token == "tok-a" else "Client B"}
            listed = {
                a["id"] for a in AdAccount(account_id, api=api).get_ad_sets(fields=["name"], params={"limit": 100})
            }
            assert set(copies[token]) <= listed
        assert not set(copies["tok-a"]) & set(copies["tok-b"])
