"""Shared setup of the execution tests: two fake ad accounts (INR, zero-decimal JPY) shaped so the real
graph decides SCALE, PAUSE and RETEST on them today, a warehouse holding those decisions, and the real
SDK writer pointed at a fresh fake Graph API per test (so one test's writes never reach another)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from audience_assets.engine.execution import ExecutionSettings
from audience_assets.execution.approvals import decide
from audience_assets.execution.runner import execute
from audience_assets.integrations.meta import MetaSettings
from audience_assets.integrations.meta_writer import MetaWriter
from audience_assets_tests.fakes.graph_server import AccountData, FakeGraph, build_account
from audience_assets_tests.meta_helpers import INR, JPY, TOKEN, adset_by_kind, make_winner, run_meta

TODAY = datetime.now(UTC).date()  # decisions are made today: execution refuses decisions over 2 days old
END = TODAY - timedelta(days=1)


@dataclass(frozen=True)
class Ids:
    inr_scale: str  # INR interest ad set, a steady 2.5x winner: SCALE 1,240,000 -> 1,488,000 paise
    jpy_scale: str  # JPY interest ad set, a 2.5x winner: SCALE 11,000 -> 13,200 yen
    inr_pause: str  # INR broad ad set, a loser: PAUSE
    retest: str  # INR interest ad set that won for weeks and then stalled: RETEST


def build_accounts() -> tuple[AccountData, AccountData, Ids]:
    inr = build_account(INR, "INR", n_adsets=8, days=45, end_date=END, seed=1)
    jpy = build_account(JPY, "JPY", n_adsets=6, days=45, end_date=END, seed=2)
    ids = Ids(
        inr_scale=adset_by_kind(inr, "interest")["id"],
        jpy_scale=adset_by_kind(jpy, "interest")["id"],
        inr_pause=adset_by_kind(inr, "broad")["id"],
        retest=next(a["id"] for a in inr.adsets if a["name"] == "IN | interest | 08"),
    )
    make_winner(inr, ids.inr_scale, 2.5)
    make_winner(jpy, ids.jpy_scale, 2.5)
    make_winner(inr, ids.retest, 2.5)
    for row in inr.insights:  # the last week: almost no delivery, no purchases
        if row.adset_id == ids.retest and row.day > END - timedelta(days=7):
            row.spend = Decimal("5.00")
            row.events["purchase"] = dict.fromkeys(row.events.get("purchase", {}), 0)
            row.event_values["purchase"] = {k: Decimal(0) for k in row.event_values.get("purchase", {})}
    return inr, jpy, ids


def make_template(folder: Path) -> tuple[Path, Ids]:
    """A warehouse with today's decisions on the shaped accounts (the real graph, the meta source)."""
    inr, jpy, ids = build_accounts()
    db = folder / "template.duckdb"
    with FakeGraph([inr, jpy]) as fake:
        result = run_meta(db, fake, TODAY)
    assert result.success
    return db, ids


@dataclass
class Env:
    db: Path
    fake: FakeGraph
    ids: Ids
    inr: AccountData
    jpy: AccountData

    def writer(self, **settings: Any) -> MetaWriter:
        opts = {"backoff_seconds": 0.0, "throttle_pause_seconds": 0.0, "max_retries": 2, **settings}
        return MetaWriter(MetaSettings(access_token=TOKEN, graph_url=self.fake.base_url, **opts), sleep=lambda _s: None)

    def approve(self, *adset_ids: str, now: datetime | None = None, verdict: str = "approved") -> pl.DataFrame:
        with duckdb.connect(str(self.db)) as conn:
            return decide(
                conn, TODAY, list(adset_ids), verdict, by="tester", note="test", now=now or datetime.now(UTC),
                settings=ExecutionSettings(),
            )  # fmt: skip

    def execute(self, apply: bool, *, writer: bool = True, clock=None, **settings: Any) -> pl.DataFrame:
        with duckdb.connect(str(self.db)) as conn:
            return execute(
                conn, self.writer() if writer else None, day=TODAY, apply=apply,
                settings=ExecutionSettings(**settings), run_id=f"test-{datetime.now(UTC).timestamp()}", clock=clock,
            )  # fmt: skip

    def posts(self, adset_id: str | None = None, *, validate_only: bool | None = None) -> list[dict[str, Any]]:
        """POST requests the fake saw (to one ad set or its copies edge), optionally only real writes or only
        validations."""
        out = []
        for r in self.fake.requests:
            if r["method"] != "POST" or "/insights" in r["path"]:
                continue
            if adset_id is not None and f"/{adset_id}/" not in r["path"] + "/":
                continue
            is_validation = "validate_only" in (r["body"].get("execution_options") or [])
            if validate_only is None or validate_only == is_validation:
                out.append(r)
        return out

    def adset(self, adset_id: str) -> dict[str, Any]:
        for acct in (self.inr, self.jpy):
            found = acct.adset(adset_id)
            if found is not None:
                return found
        raise KeyError(adset_id)

    def log(self) -> pl.DataFrame:
        with duckdb.connect(str(self.db)) as conn:
            return conn.execute("SELECT * FROM action_log ORDER BY started_at").pl()


@contextmanager
def environment(template: Path, ids: Ids, folder: Path, **fake_options: Any) -> Iterator[Env]:
    """A copy of the template warehouse and a fresh fake holding the accounts as they were decided on."""
    db = folder / "warehouse.duckdb"
    shutil.copy(template, db)
    inr, jpy, _ = build_accounts()
    with FakeGraph([inr, jpy], **fake_options) as fake:
        yield Env(db=db, fake=fake, ids=ids, inr=inr, jpy=jpy)
    assert fake.errors == []


def day_of(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))
