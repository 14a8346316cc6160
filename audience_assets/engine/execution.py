"""Approval-gated execution, the pure part: plans in minor units, the digest that seals an approval,
the checks run on an ad set's live state before a write, and the verifier of the action log.

Nothing here talks to Meta or the warehouse: `execution/` reads and writes, this decides.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import date, datetime, timedelta
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal
from typing import Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from audience_assets.engine.fmt import minor_unit_offset

WRITTEN_ACTIONS = ("SCALE", "PAUSE", "RETEST")
# Meta's rate-limit codes and the codes no retry can fix (a bad token, a missing permission).
RATE_LIMIT_CODES = frozenset({4, 17, 613, 80004})
AUTH_CODES = frozenset({190, 200})
OUTCOMES = ("planned", "validated", "applied", "skipped", "failed", "started")
APPROVAL_STATUSES = ("pending", "approved", "rejected", "superseded")


class ExecutionSettings(BaseModel):
    """How execution behaves; the limits Meta imposes and the ones we add."""

    model_config = ConfigDict(extra="forbid")

    approval_ttl_hours: float = Field(24.0, gt=0, description="an approval expires this long after it was given")
    max_decision_age_days: int = Field(2, ge=0, description="a decision older than this (days) is not executed")
    budget_changes_per_hour: int = Field(4, ge=1, description="Meta's limit of budget changes per ad set per hour")
    breaker_errors: int = Field(3, ge=1, description="rate-limit errors in one run before it stops writing")
    writes_enabled: bool = Field(True, description="False stops every write (as AUDIENCE_ENGINE_WRITES=off does)")


class Plan(BaseModel):
    """The exact change an approval binds: what, on which ad set, from which budget to which."""

    model_config = ConfigDict(frozen=True)

    decision_date: date
    account_id: str
    adset_id: str
    action: Literal["SCALE", "PAUSE", "RETEST"]
    currency: str
    budget_from_minor: int | None
    budget_to_minor: int | None
    config_hash: str


def to_minor(amount: float | None, currency: str, *, floor: bool = False) -> int | None:
    """An amount in currency units as Meta's integer minor units (cents; whole yen for JPY and the like).

    Targets are rounded down so a step never exceeds its percentage; a current budget converts exactly."""
    if amount is None:
        return None
    value = Decimal(str(amount)) * minor_unit_offset(currency)
    return int(value.quantize(Decimal(1), rounding=ROUND_FLOOR if floor else ROUND_HALF_UP))


def from_minor(value: int | str | None, currency: str) -> float | None:
    """Meta's integer minor units (an int, or the string Meta sends) as currency units, in Decimal arithmetic."""
    return None if value is None else float(Decimal(str(value)) / minor_unit_offset(currency))


def plan_digest(plan: Plan) -> str:
    """sha256 of the plan's canonical JSON: two plans share a digest only when every field is equal."""
    text = json.dumps(plan.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def idempotency_key(digest: str) -> str:
    """One key per plan: the same approved change is applied at most once, whatever re-runs it."""
    return hashlib.sha256(f"execute:{digest}".encode()).hexdigest()[:24]


def seal(
    digest: str,
    status: str,
    decided_by: str | None,
    decided_at: datetime | None,
    expires_at: datetime | None,
    key: bytes | None = None,
) -> str:
    """The approval's seal over the plan digest and the decision on it: an HMAC with the configured key,
    else a plain sha256 (which still catches a row edited without recomputing the seal)."""
    stamp = lambda t: t.isoformat(timespec="seconds") if t else ""  # noqa: E731
    text = "|".join([digest, status, decided_by or "", stamp(decided_at), stamp(expires_at)])
    if key:
        return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()
    return hashlib.sha256(text.encode()).hexdigest()


class LiveAdSet(BaseModel):
    """An ad set as Meta holds it right now (budgets in minor units)."""

    adset_id: str
    name: str = ""
    campaign_id: str | None = None
    status: str | None = None
    effective_status: str | None = None
    daily_budget: int | None = None
    lifetime_budget: int | None = None
    campaign_daily_budget: int | None = None
    campaign_lifetime_budget: int | None = None
    learning_status: str | None = None
    last_significant_edit_at: datetime | None = None


class BudgetEvent(BaseModel):
    """A budget change from the ad set's activity log: who made it, with which application, when."""

    at: datetime
    actor: str = ""
    application: str = ""


class WriteContext(BaseModel):
    """What the checks need besides the live state: the decision's moment and the limits that apply."""

    now: datetime
    decided_at: datetime | None = None
    decision_learning: str | None = None
    cooldown_hours: float
    account_cap_minor: int | None = None
    applied_today_minor: int = 0


def reconciled(plan: Plan, live: LiveAdSet) -> bool:
    """Whether Meta already holds what the plan asks for (an absolute target makes this checkable)."""
    if plan.action == "SCALE":
        return live.daily_budget == plan.budget_to_minor
    if plan.action == "PAUSE":
        return live.status == "PAUSED"
    return False


def refusals(
    plan: Plan, live: LiveAdSet, events: list[BudgetEvent], ctx: WriteContext, settings: ExecutionSettings
) -> list[str]:
    """Every reason not to write this plan now; empty when the write may go ahead."""
    if plan.action == "RETEST":
        gone = live.status in ("DELETED", "ARCHIVED")
        return [f"the ad set is {live.status}: nothing to duplicate"] if gone else []
    out = _state_refusals(plan, live, ctx)
    if plan.action == "SCALE":
        out += _budget_refusals(plan, live, events, ctx, settings)
    return out


def _money(value: int | None, currency: str) -> str:
    return "none" if value is None else f"{value:,} minor units ({currency})"


def _state_refusals(plan: Plan, live: LiveAdSet, ctx: WriteContext) -> list[str]:
    out = []
    if live.status != "ACTIVE" or live.effective_status not in (None, "ACTIVE"):
        out.append(f"the ad set is no longer ACTIVE (status {live.status}, effective {live.effective_status})")
    if live.daily_budget != plan.budget_from_minor:
        out.append(
            f"the live daily budget {_money(live.daily_budget, plan.currency)} differs from the "
            f"{_money(plan.budget_from_minor, plan.currency)} the approval was computed from: edited since the decision"
        )
    if live.learning_status == "LEARNING":
        edited = live.last_significant_edit_at
        since = ctx.decided_at is not None and edited is not None and edited > ctx.decided_at
        if ctx.decision_learning != "LEARNING" or since:
            out.append("the ad set went (back) into Meta's learning phase since the decision")
    return out


def _budget_refusals(
    plan: Plan, live: LiveAdSet, events: list[BudgetEvent], ctx: WriteContext, settings: ExecutionSettings
) -> list[str]:
    out = []
    if live.campaign_daily_budget or live.campaign_lifetime_budget:
        out.append("the campaign uses campaign budget optimisation: the budget lives on the campaign")
    if live.lifetime_budget:
        out.append("the ad set runs on a lifetime budget: a daily budget cannot be set")
    window = timedelta(hours=ctx.cooldown_hours)
    recent = [e for e in events if ctx.now - e.at < window]
    if recent:
        last = max(recent, key=lambda e: e.at)
        hours = (ctx.now - last.at).total_seconds() / 3600
        who = last.actor or "someone"
        via = f" via {last.application}" if last.application else ""
        out.append(
            f"the budget was changed {hours:.1f} h ago by {who}{via}, inside the {ctx.cooldown_hours:g} h cooldown"
        )
    hour = [e for e in events if ctx.now - e.at < timedelta(hours=1)]
    if len(hour) >= settings.budget_changes_per_hour:
        out.append(f"Meta's limit of {settings.budget_changes_per_hour} budget changes per ad set per hour is reached")
    increase = (plan.budget_to_minor or 0) - (plan.budget_from_minor or 0)
    if ctx.account_cap_minor is not None and ctx.applied_today_minor + increase > ctx.account_cap_minor:
        out.append(
            f"the account's daily increase cap of {ctx.account_cap_minor:,} minor units would be exceeded "
            f"({ctx.applied_today_minor:,} already applied today, {increase:,} more asked)"
        )
    return out


def decision_too_old(decision_date: date, today: date, settings: ExecutionSettings) -> str | None:
    age = (today - decision_date).days
    if age > settings.max_decision_age_days:
        return (
            f"the decision of {decision_date} is {age} days old (max_decision_age_days "
            f"{settings.max_decision_age_days}): decide again on fresh data"
        )
    return None


# --------------------------------------------------------------------------- the verifier


def verify_action_log(
    log: pl.DataFrame, approvals: pl.DataFrame, caps: pl.DataFrame, max_scale_pct: float
) -> pl.DataFrame:
    """Violations of the execution rules in the action log, re-derived from the tables alone.

    `log`: action_log rows; `approvals`: the approvals table; `caps`: account_id, decision_date,
    account_cap_minor. Every write (an `applied` or interrupted `started` row in apply mode) must carry
    an approval that was approved, unexpired at the write and for exactly the written plan; no budget
    step may exceed `max_scale_pct`; no account may gain more than its cap in one day; no plan may be
    applied twice; a revert must undo an applied action."""
    log = log.with_columns(pl.col("approval_id", "reverts_action_id", "action_id").cast(pl.Utf8))
    writes = log.filter((pl.col("mode") == "apply") & pl.col("outcome").is_in(["applied", "started"]))
    forward = writes.filter(pl.col("reverts_action_id").is_null())
    joined = forward.join(
        approvals.select(
            "approval_id",
            pl.col("status").alias("_status"),
            pl.col("seal").alias("_seal"),
            pl.col("action").alias("_action"),
            pl.col("budget_from_minor").alias("_from"),
            pl.col("budget_to_minor").alias("_to"),
            pl.col("decided_at").alias("_decided_at"),
            pl.col("expires_at").alias("_expires_at"),
        ),
        on="approval_id",
        how="left",
    )
    rules = {
        "no approved approval for this write": pl.col("_status").is_null() | (pl.col("_status") != "approved"),
        "the approval's seal differs from the one recorded at the write": pl.col("_seal") != pl.col("approval_seal"),
        "the written plan differs from the approved one": pl.col("_status").is_not_null()
        & (
            (pl.col("_action") != pl.col("action"))
            | pl.col("_from").ne_missing(pl.col("budget_from_minor"))
            | pl.col("_to").ne_missing(pl.col("budget_to_minor"))
        ),
        "written outside the approval's validity": (pl.col("started_at") < pl.col("_decided_at"))
        | (pl.col("started_at") > pl.col("_expires_at")),
        f"budget step above {max_scale_pct:g}% or not an increase": (pl.col("action") == "SCALE")
        & (
            (pl.col("budget_to_minor") <= pl.col("budget_from_minor"))
            | (pl.col("budget_to_minor") > (pl.col("budget_from_minor") * (1 + max_scale_pct / 100.0)).floor())
        ),
    }
    found = [
        joined.filter(rule.fill_null(False)).select("action_id", "adset_id", pl.lit(name).alias("violation"))
        for name, rule in rules.items()
    ]
    found.append(_twice(forward))
    found.append(_over_cap(forward, caps))
    found.append(_orphan_reverts(log, writes))
    return pl.concat(found, how="vertical_relaxed")


def _twice(forward: pl.DataFrame) -> pl.DataFrame:
    dup = forward.filter(pl.len().over("idempotency_key") > 1)
    return dup.select("action_id", "adset_id", pl.lit("the same approved plan was applied twice").alias("violation"))


def _over_cap(forward: pl.DataFrame, caps: pl.DataFrame) -> pl.DataFrame:
    scales = forward.filter(pl.col("action") == "SCALE").with_columns(
        pl.col("started_at").dt.date().alias("_day"),
        (pl.col("budget_to_minor") - pl.col("budget_from_minor")).alias("_increase"),
    )
    per_day = scales.group_by("account_id", "_day", "decision_date").agg(
        pl.col("_increase").sum(), pl.col("action_id").first(), pl.col("adset_id").first()
    )
    over = per_day.join(caps, on=["account_id", "decision_date"], how="left").filter(
        pl.col("_increase") > pl.col("account_cap_minor")
    )
    return over.select(
        "action_id", "adset_id", pl.lit("the account's daily increase cap was exceeded").alias("violation")
    )


def _orphan_reverts(log: pl.DataFrame, writes: pl.DataFrame) -> pl.DataFrame:
    reverts = writes.filter(pl.col("reverts_action_id").is_not_null())
    applied = log.filter((pl.col("mode") == "apply") & (pl.col("outcome") == "applied"))["action_id"]
    orphan = reverts.filter(~pl.col("reverts_action_id").is_in(applied.to_list()))
    return orphan.select("action_id", "adset_id", pl.lit("a revert of no applied action").alias("violation"))
