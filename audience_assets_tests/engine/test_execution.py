"""The pure rules of execution: minor units, the plan digest and the approval seal, the checks on live
state before a write, and the verifier of the action log. Tables of cases."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest

from audience_assets.engine.execution import (
    BudgetEvent,
    ExecutionSettings,
    LiveAdSet,
    Plan,
    WriteContext,
    decision_too_old,
    plan_digest,
    reconciled,
    refusals,
    seal,
    to_minor,
    verify_action_log,
)

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
PLAN = Plan(
    decision_date=date(2026, 11, 29), account_id="act_1", adset_id="9", action="SCALE", currency="INR",
    budget_from_minor=100_000, budget_to_minor=120_000, config_hash="abc",
)  # fmt: skip
LIVE = LiveAdSet(adset_id="9", status="ACTIVE", effective_status="ACTIVE", daily_budget=100_000)
CTX = WriteContext(now=NOW, decided_at=NOW - timedelta(hours=6), cooldown_hours=72, account_cap_minor=500_000)


@pytest.mark.parametrize(
    ("amount", "currency", "floor", "expected"),
    [
        (4758.0, "INR", False, 475_800),
        (5947.5, "INR", True, 594_750),
        (0.29, "USD", True, 29),  # 0.29 * 100 is 28.999999999999996 in binary floating point
        (13200.0, "JPY", True, 13_200),  # zero-decimal: the unit is the minor unit
        (13200.9, "JPY", True, 13_200),  # a target is rounded down, never up
        (12.345, "USD", False, 1_235),
        (None, "USD", False, None),
    ],
)
def test_to_minor(amount, currency, floor, expected):
    assert to_minor(amount, currency, floor=floor) == expected


@pytest.mark.parametrize(
    "change",
    [
        {"budget_to_minor": 120_001},
        {"budget_from_minor": 99_999},
        {"action": "PAUSE"},
        {"config_hash": "abd"},
        {"adset_id": "10"},
        {"decision_date": date(2026, 11, 28)},
    ],
)
def test_every_field_of_the_plan_changes_its_digest(change):
    assert plan_digest(PLAN.model_copy(update=change)) != plan_digest(PLAN)
    assert plan_digest(PLAN.model_copy()) == plan_digest(PLAN)


def test_the_seal_covers_the_decision_and_the_key():
    base = seal("d", "approved", "maria", NOW, NOW + timedelta(hours=24))
    assert base == seal("d", "approved", "maria", NOW, NOW + timedelta(hours=24))
    for other in (
        seal("d", "approved", "mallory", NOW, NOW + timedelta(hours=24)),
        seal("d", "approved", "maria", NOW, NOW + timedelta(hours=48)),
        seal("d", "rejected", "maria", NOW, NOW + timedelta(hours=24)),
        seal("e", "approved", "maria", NOW, NOW + timedelta(hours=24)),
        seal("d", "approved", "maria", NOW, NOW + timedelta(hours=24), key=b"secret"),
    ):
        assert other != base


def event(hours_ago: float, actor: str = "Priya", app: str = "Ads Manager") -> BudgetEvent:
    return BudgetEvent(at=NOW - timedelta(hours=hours_ago), actor=actor, application=app)


REFUSAL_CASES = [
    ("clean", {}, [], {}, []),
    ("budget edited", {"daily_budget": 110_000}, [], {}, ["differs from the 100,000"]),
    ("paused since", {"status": "PAUSED"}, [], {}, ["no longer ACTIVE"]),
    ("campaign paused", {"effective_status": "CAMPAIGN_PAUSED"}, [], {}, ["no longer ACTIVE"]),
    ("cooldown", {}, [event(10)], {}, ["10.0 h ago by Priya via Ads Manager, inside the 72 h cooldown"]),
    ("cooldown over", {}, [event(73)], {}, []),
    ("hourly limit", {}, [event(0.1), event(0.2), event(0.3), event(0.4)], {}, ["0.1 h ago", "limit of 4 budget changes"]),
    ("into learning", {"learning_status": "LEARNING"}, [], {}, ["learning phase"]),
    (
        "back into learning",
        {"learning_status": "LEARNING", "last_significant_edit_at": NOW - timedelta(hours=1)},
        [], {"decision_learning": "LEARNING"}, ["learning phase"],
    ),
    (
        "still learning, no new edit",
        {"learning_status": "LEARNING", "last_significant_edit_at": NOW - timedelta(hours=30)},
        [], {"decision_learning": "LEARNING"}, [],
    ),
    ("cbo", {"campaign_daily_budget": 900_000}, [], {}, ["campaign budget optimisation"]),
    ("lifetime", {"lifetime_budget": 3_000_000}, [], {}, ["lifetime budget"]),
    ("cap", {}, [], {"applied_today_minor": 490_000}, ["daily increase cap of 500,000"]),
    ("cap exactly", {}, [], {"applied_today_minor": 480_000}, []),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "live", "events", "ctx", "expected"), REFUSAL_CASES, ids=[c[0] for c in REFUSAL_CASES]
)
def test_refusals_before_a_scale(name, live, events, ctx, expected):
    found = refusals(PLAN, LIVE.model_copy(update=live), events, CTX.model_copy(update=ctx), ExecutionSettings())
    assert len(found) == len(expected), found
    for text, want in zip(found, expected, strict=True):
        assert want in text


def test_a_pause_ignores_budget_limits_but_not_state():
    pause = PLAN.model_copy(update={"action": "PAUSE", "budget_to_minor": None})
    assert refusals(pause, LIVE, [event(1)] * 5, CTX, ExecutionSettings()) == []
    assert refusals(pause, LIVE.model_copy(update={"daily_budget": 1}), [], CTX, ExecutionSettings())
    retest = PLAN.model_copy(update={"action": "RETEST", "budget_from_minor": None, "budget_to_minor": None})
    assert refusals(retest, LIVE.model_copy(update={"status": "PAUSED"}), [], CTX, ExecutionSettings()) == []
    assert refusals(retest, LIVE.model_copy(update={"status": "DELETED"}), [], CTX, ExecutionSettings())


def test_reconciled_means_meta_already_holds_the_target():
    assert reconciled(PLAN, LIVE.model_copy(update={"daily_budget": 120_000}))
    assert not reconciled(PLAN, LIVE)
    pause = PLAN.model_copy(update={"action": "PAUSE"})
    assert reconciled(pause, LIVE.model_copy(update={"status": "PAUSED"})) and not reconciled(pause, LIVE)


@pytest.mark.parametrize(("age", "refused"), [(0, False), (2, False), (3, True)])
def test_decision_age(age, refused):
    today = date(2026, 11, 29)
    assert (decision_too_old(today - timedelta(days=age), today, ExecutionSettings()) is not None) == refused


def _log(**row) -> dict:
    base = {
        "action_id": "a1", "idempotency_key": "k1", "approval_id": "p1", "decision_date": date(2026, 11, 29),
        "account_id": "act_1", "adset_id": "9", "action": "SCALE", "mode": "apply", "outcome": "applied",
        "budget_from_minor": 100_000, "budget_to_minor": 120_000, "approval_seal": "s1",
        "started_at": datetime(2026, 11, 29, 12), "reverts_action_id": None,
    }  # fmt: skip
    return base | row


APPROVAL = {
    "approval_id": "p1", "status": "approved", "seal": "s1", "action": "SCALE", "budget_from_minor": 100_000,
    "budget_to_minor": 120_000, "decided_at": datetime(2026, 11, 29, 9), "expires_at": datetime(2026, 11, 30, 9),
}  # fmt: skip
CAPS = pl.DataFrame({"account_id": ["act_1"], "decision_date": [date(2026, 11, 29)], "account_cap_minor": [50_000]})

VERIFY_CASES = [
    ("clean", [_log()], [APPROVAL], []),
    ("a dry run needs no approval", [_log(mode="dry_run", approval_id="x")], [], []),
    ("a skipped row wrote nothing", [_log(outcome="skipped", approval_id="x")], [], []),
    ("no approval", [_log(approval_id="x")], [APPROVAL], ["no approved approval"]),
    ("rejected", [_log()], [APPROVAL | {"status": "rejected"}], ["no approved approval"]),
    ("resealed", [_log()], [APPROVAL | {"seal": "s2"}], ["seal differs"]),
    ("other target", [_log(budget_to_minor=125_000)], [APPROVAL], ["plan differs"]),
    ("after expiry", [_log(started_at=datetime(2026, 11, 30, 10))], [APPROVAL], ["outside the approval's validity"]),
    (
        "step too big",
        [_log(budget_to_minor=140_000)], [APPROVAL | {"budget_to_minor": 140_000}], ["budget step above 30%"],
    ),
    ("twice", [_log(), _log(action_id="a2")], [APPROVAL], ["applied twice", "applied twice"]),
    ("interrupted counts", [_log(outcome="started"), _log(action_id="a2")], [APPROVAL], ["applied twice", "applied twice"]),
    (
        "over the account cap",
        [_log(budget_to_minor=130_000), _log(action_id="a2", idempotency_key="k2", approval_id="p2", adset_id="8", budget_to_minor=130_000)],
        [APPROVAL | {"budget_to_minor": 130_000}, APPROVAL | {"approval_id": "p2", "budget_to_minor": 130_000}],
        ["cap was exceeded"],
    ),
    (
        "revert of an applied action",
        [_log(), _log(action_id="r1", action="REVERT_SCALE", reverts_action_id="a1", approval_id=None)], [APPROVAL], [],
    ),
    (
        "revert of nothing",
        [_log(action_id="r1", action="REVERT_SCALE", reverts_action_id="zz", approval_id=None)], [], ["a revert of no applied action"],
    ),
]  # fmt: skip


@pytest.mark.parametrize(("name", "log", "approvals", "expected"), VERIFY_CASES, ids=[c[0] for c in VERIFY_CASES])
def test_verify_action_log(name, log, approvals, expected):
    schema = {"decided_at": pl.Datetime, "expires_at": pl.Datetime}
    approvals_frame = pl.DataFrame(approvals or [APPROVAL | {"approval_id": "none"}], schema_overrides=schema)
    found = verify_action_log(pl.DataFrame(log, infer_schema_length=None), approvals_frame, CAPS, 30.0)
    got = sorted(found["violation"].to_list())
    assert len(got) == len(expected), got
    for text, want in zip(got, sorted(expected), strict=True):
        assert want in text
