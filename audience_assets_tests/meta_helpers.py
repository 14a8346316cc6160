"""Helpers for the Meta ingestion tests: fake accounts, run config for the meta source, expectations.

Everything talks to `audience_assets_tests.fakes.graph_server.FakeGraph` on 127.0.0.1 through the
real facebook_business SDK; sleeps are zero (run config) or recorded (unit tests).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl

from audience_assets_tests.conftest import JOB, DayRuns, run_config, run_day
from audience_assets_tests.fakes.graph_server import (
    AccountData,
    FakeGraph,
    InsightDay,
    build_account,
    minor_unit_offset,
)

DECISION = date(2026, 11, 26)  # the partition every graph test decides on
END = DECISION - timedelta(days=1)  # newest complete day the fake serves
INR = "act_1001"
JPY = "act_2002"
TOKEN = "EAAB-test-token-do-not-leak-7f3a"
JPY_RATE = 1.8
LEARNING_TEXT = "In Meta's learning phase"


# --------------------------------------------------------------------------- fake accounts


def two_accounts(days: int = 45, inr_adsets: int = 6, jpy_adsets: int = 6) -> tuple[AccountData, AccountData]:
    """An INR account beside a zero-decimal JPY one, deterministic."""
    inr = build_account(INR, "INR", n_adsets=inr_adsets, days=days, end_date=END, seed=1)
    jpy = build_account(JPY, "JPY", n_adsets=jpy_adsets, days=days, end_date=END, seed=2)
    return inr, jpy


def boost(acct: AccountData, adset_id: str, factor: float) -> None:
    """Scale an ad set's purchases (every window, count and value) on every day: makes a clear winner."""
    for row in acct.insights:
        if row.adset_id != adset_id:
            continue
        counts = row.events.get("purchase", {})
        row.events["purchase"] = {k: int(round(v * factor)) for k, v in counts.items()}
        values = row.event_values.get("purchase", {})
        quantum = Decimal(1) if minor_unit_offset(acct.currency) == 1 else Decimal("0.01")
        row.event_values["purchase"] = {
            k: (Decimal(v) * Decimal(str(factor))).quantize(quantum) for k, v in values.items()
        }


def make_winner(acct: AccountData, adset_id: str, multiple: float) -> None:
    """Give an ad set a steady ROAS of `multiple` x the account's average, every day (a clear, stable winner)."""
    rows = [r for r in acct.insights if r.total("purchase")]
    spend = sum(float(r.spend) for r in rows)
    value = sum(float(r.total_value("purchase")) for r in rows)
    count = sum(r.total("purchase") for r in rows)
    roas, aov = value / spend * multiple, value / count
    quantum = Decimal(1) if minor_unit_offset(acct.currency) == 1 else Decimal("0.01")
    for row in acct.insights:
        if row.adset_id != adset_id:
            continue
        n = max(1, int(round(float(row.spend) * roas / aov)))
        view = n // 10
        c7 = n - view
        row.events["purchase"] = {"1d_click": c7, "7d_click": c7, "28d_click": c7, "1d_view": view, "1d_ev": 0}
        unit = Decimal(str(float(row.spend) * roas / n))
        row.event_values["purchase"] = {k: (unit * v).quantize(quantum) for k, v in row.events["purchase"].items()}


def adset_by_kind(acct: AccountData, kind: str) -> dict[str, Any]:
    """The first ad set of a builder kind: lookalike, custom, interest, broad, cbo."""
    return next(a for a in acct.adsets if a["name"].split(" | ")[1] == kind)


def lifetime_adset(acct: AccountData) -> dict[str, Any]:
    return next(a for a in acct.adsets if int(a.get("lifetime_budget") or 0) > 0)


def fake_days(acct: AccountData, since: date, until: date) -> dict[tuple[str, date], InsightDay]:
    """The (ad set, day) facts the fake serves for a range: rows with impressions only, as Graph does."""
    return {(r.adset_id, r.day): r for r in acct.insights if since <= r.day <= until and r.impressions > 0}


def fake_totals(acct: AccountData, since: date, until: date) -> dict[str, float]:
    rows = fake_days(acct, since, until).values()
    return {
        "rows": len(rows),
        "spend": float(sum((r.spend for r in rows), Decimal(0))),
        "impressions": sum(r.impressions for r in rows),
        "clicks": sum(r.clicks for r in rows),
        "purchases": sum(r.total("purchase") for r in rows),
        "purchase_value": float(sum((r.total_value("purchase") for r in rows), Decimal(0))),
    }


def time_ranges(fake: FakeGraph, account_id: str) -> list[dict[str, str]]:
    """Every insights time_range the fake saw for an account (sync GETs and async POSTs, first pages only)."""
    out = []
    for r in fake.requests_to(rf"/{account_id}/insights$"):
        if r["params"].get("after"):
            continue
        tr = r["params"].get("time_range")
        if tr:
            out.append(json.loads(tr))
    return out


# --------------------------------------------------------------------------- sleeps


@dataclass
class SleepRecorder:
    """Stands in for time.sleep: records each requested pause and how many requests the fake had seen."""

    fake: FakeGraph | None = None
    calls: list[float] = field(default_factory=list)
    at_request: list[int] = field(default_factory=list)

    def __call__(self, seconds: float) -> None:
        self.calls.append(float(seconds))
        self.at_request.append(len(self.fake.requests) if self.fake is not None else -1)


# --------------------------------------------------------------------------- graph runs


def meta_resource_config(fake: FakeGraph, accounts: Iterable[str] = (INR, JPY), **extra: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "access_token": TOKEN,
        "ad_account_ids": ",".join(accounts),
        "graph_url": fake.base_url,
        "async_poll_seconds": 0.0,
        "backoff_seconds": 0.0,
        "throttle_pause_seconds": 0.0,
        "page_size": 50,
    }
    cfg.update(extra)
    return cfg


def meta_run_config(
    db: Path | str,
    fake: FakeGraph,
    *,
    overrides: dict[str, Any] | None = None,
    out_dir: Path | str | None = None,
    accounts: Iterable[str] = (INR, JPY),
    **meta: Any,
) -> dict[str, Any]:
    rules = {"currency_rates": {"JPY": JPY_RATE}} if overrides is None else overrides
    cfg = run_config(db, out_dir=out_dir, source={"kind": "meta"}, overrides=rules)
    cfg["resources"]["meta"] = {"config": meta_resource_config(fake, accounts, **meta)}
    return cfg


def run_meta(
    db: Path | str,
    fake: FakeGraph,
    partition: date = DECISION,
    *,
    overrides: dict[str, Any] | None = None,
    out_dir: Path | str | None = None,
    accounts: Iterable[str] = (INR, JPY),
    assets: list[str] | None = None,
    **meta: Any,
) -> DayRuns:
    """The real job of the real Definitions, in process, on the meta source pointed at the fake.

    `assets` limits the run to some assets (e.g. ["raw_insights"]) where decisions do not matter.
    """
    cfg = meta_run_config(db, fake, overrides=overrides, out_dir=out_dir, accounts=accounts, **meta)
    selection = [dg.AssetKey(a) for a in assets] if assets else None
    return run_day(JOB, partition, cfg, asset_selection=selection)


def all_metadata_text(result: dg.ExecuteInProcessResult) -> str:
    """Every materialisation's metadata and every event message of a run, as one text."""
    parts = []
    for event in result.all_events:
        parts.append(str(event.message or ""))
        data = event.event_specific_data
        if data is not None:
            parts.append(repr(data))
    for event in result.get_asset_materialization_events():
        for key, value in event.materialization.metadata.items():
            parts.append(f"{key}={value.value!r}")
    return "\n".join(parts)


def close(a: float, b: float, tol: float = 0.005) -> bool:
    return math.isclose(a, b, abs_tol=tol, rel_tol=1e-9)


def frame_key(frame: pl.DataFrame) -> dict[tuple[str, date], dict[str, Any]]:
    return {(r["adset_id"], r["date"]): r for r in frame.to_dicts()}


# --------------------------------------------------------------------------- the standard setup


@dataclass(frozen=True)
class Setup:
    """Two accounts shaped for the graph tests; ids of the ad sets each test looks at."""

    inr: AccountData
    jpy: AccountData
    cbo: str  # JPY ad set under campaign budget optimisation, boosted to a winner
    inr_cbo: str  # INR ad set under campaign budget optimisation (left as built)
    lifetime: str  # INR ad set on a lifetime budget, boosted to a winner
    learning: str  # INR lookalike in LEARNING, boosted so it is eligible
    broad: str  # INR broad ad set: no learning_stage_info
    inr_interest: str  # daily_budget "500000" (INR, offset 100)
    jpy_interest: str  # daily_budget "5000" (JPY, offset 1)
    jpy_lookalike_atc: str  # targeting: a 2 % lookalike named after add-to-cart, no lookalike_spec
    jpy_broad: str  # overridden to INTEREST by the mapping file in the graph tests


def standard_accounts(days: int = 45) -> Setup:
    inr, jpy = two_accounts(days=days)
    cbo = adset_by_kind(jpy, "cbo")["id"]
    lifetime = lifetime_adset(inr)["id"]
    learning = adset_by_kind(inr, "lookalike")
    learning["learning_stage_info"] = {**learning["learning_stage_info"], "status": "LEARNING", "conversions": 12}
    broad = adset_by_kind(inr, "broad")
    assert "learning_stage_info" not in broad
    make_winner(jpy, cbo, 2.0)
    make_winner(inr, lifetime, 3.0)  # a custom audience: the marginal ROAS of its next step is 0.65x
    make_winner(inr, learning["id"], 1.8)
    inr_interest = adset_by_kind(inr, "interest")
    inr_interest["daily_budget"] = "500000"
    jpy_interest = adset_by_kind(jpy, "interest")
    jpy_interest["daily_budget"] = "5000"
    jpy_la = adset_by_kind(jpy, "lookalike")
    jpy_la["targeting"]["custom_audiences"] = [{"id": "23840000999", "name": "Lookalike (JP, 2%) - Add to cart 30d"}]
    return Setup(
        inr=inr,
        jpy=jpy,
        cbo=cbo,
        inr_cbo=adset_by_kind(inr, "cbo")["id"],
        lifetime=lifetime,
        learning=learning["id"],
        broad=broad["id"],
        inr_interest=inr_interest["id"],
        jpy_interest=jpy_interest["id"],
        jpy_lookalike_atc=jpy_la["id"],
        jpy_broad=adset_by_kind(jpy, "broad")["id"],
    )
