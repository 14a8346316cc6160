"""The feedback commands of `audience-engine`: outcomes (the rule scorecard over stored outcomes) and
replay (stored decision dates recomputed with candidate rules, both scored on the same outcomes)."""

from __future__ import annotations

import argparse
import json
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl

from audience_assets.cli_common import add_warehouse, parse_date
from audience_assets.engine.config import load_config, parse_overrides
from audience_assets.engine.fmt import currency_symbol
from audience_assets.feedback import ReplayError
from audience_assets.terminal import Column, render_table, say, terminal_width
from audience_assets.warehouse import connect, require_database, table_exists, warehouse_lock, write_atomically

CARD_TABLE = (
    Column("h", "h", right=True),
    Column("branch", "rule branch", flex=2, min_width=18),
    Column("type", "type"),
    Column("n", "n", right=True),
    Column("labels", "good/fp/missed/bad/inc", drop=2),
    Column("hit", "hit rate [90%]", right=True),
    Column("net", "net [90%]", right=True, flex=1, min_width=16),
)
SIDE_TABLE = (
    Column("group", "audience type"),
    Column("b_n", "labelled", right=True),
    Column("b_hit", "hit rate", right=True),
    Column("b_net", "net", right=True),
    Column("c_n", "labelled'", right=True),
    Column("c_hit", "hit rate'", right=True),
    Column("c_net", "net'", right=True),
    Column("delta", "net' - net", right=True),
)


class FeedbackError(ValueError):
    """Nothing to judge, or a request that cannot be answered; the message says what to do."""


def _money(value: float | None, currency: str | None) -> str:
    if value is None:
        return "-"
    return f"{'-' if value < 0 else ''}{currency_symbol(currency)}{abs(value):,.0f}"


def _rate(hit: float | None, lo: float | None, hi: float | None) -> str:
    if hit is None:
        return "-"
    return f"{hit:.0%} [{lo:.0%}-{hi:.0%}]" if lo is not None and hi is not None else f"{hit:.0%}"


def print_card(card: pl.DataFrame) -> None:
    from audience_assets.engine.outcomes import LABELS  # scipy: only when used

    rows = [
        {
            "h": r["horizon_days"],
            "branch": r["rule_branch"],
            "type": r["audience_type"] or "-",
            "n": r["decisions"],
            "labels": "/".join(str(r[k]) for k in LABELS),
            "hit": _rate(r["hit_rate"], r["hit_rate_lo"], r["hit_rate_hi"]),
            "net": f"{_money(r['net'], r['currency'])} [{_money(r['net_lo'], r['currency'])}, {_money(r['net_hi'], r['currency'])}]",
        }
        for r in card.iter_rows(named=True)
    ]
    if rows:
        say(render_table(rows, CARD_TABLE, terminal_width()))


def _filter(frame: pl.DataFrame, date_from: date | None, date_to: date | None) -> pl.DataFrame:
    if date_from:
        frame = frame.filter(pl.col("decision_date") >= date_from)
    if date_to:
        frame = frame.filter(pl.col("decision_date") <= date_to)
    return frame


def _records(frame: pl.DataFrame) -> list[dict[str, Any]]:
    return json.loads(frame.write_json())


def cmd_outcomes(args) -> int:
    from audience_assets.engine.outcomes import LABELS, OutcomeSettings, scorecard  # scipy: only when used

    require_database(args.db)
    with warehouse_lock(args.db, "audience-engine outcomes", args.lock_timeout), connect(args.db) as conn:
        if not table_exists(conn, "outcomes"):
            raise FeedbackError(f"no outcomes in {args.db} yet: run the graph on decision dates with days after them")
        outcomes = _filter(conn.execute("SELECT * FROM outcomes").pl(), args.date_from, args.date_to)
    if args.horizon:
        outcomes = outcomes.filter(pl.col("horizon_days") == args.horizon)
    if outcomes.is_empty():
        raise FeedbackError("no matured outcomes in that range: a horizon needs its days in the warehouse")
    card = scorecard(outcomes, OutcomeSettings())
    print_card(card)
    counts = {k: int((outcomes["label"] == k).sum()) for k in LABELS}
    dates = outcomes["decision_date"]
    say(
        f"\n{outcomes.height} outcomes of decisions from {dates.min()} to {dates.max()}: "
        + ", ".join(f"{v} {k}" for k, v in counts.items())
    )
    if args.json:
        doc = {"from": str(dates.min()), "to": str(dates.max()), "labels": counts, "scorecard": _records(card)}
        write_atomically(Path(args.json), json.dumps(doc, indent=1, default=str) + "\n")
        say(f"scorecard written to {args.json}")
    return 0


def _summary(outcomes: pl.DataFrame) -> dict[str, dict[str, Any]]:
    """Per audience type (and in total): labelled decisions, hit rate and net money."""
    out = {}
    for group, rows in [*outcomes.group_by("audience_type"), (("all",), outcomes)]:
        labelled = rows.filter(pl.col("label") != "inconclusive")
        hit = float((labelled["label"] == "good_call").mean()) if labelled.height else None
        name = group[0] if isinstance(group, tuple) else group
        out[str(name or "-")] = {
            "labelled": labelled.height,
            "hit": hit,
            "net": float((rows["gained"] - rows["lost"]).sum()),
        }
    return out


def print_side_by_side(baseline: pl.DataFrame, candidate: pl.DataFrame, currency: str | None) -> None:
    b, c = _summary(baseline), _summary(candidate)
    rows = [
        {
            "group": g,
            "b_n": b[g]["labelled"],
            "b_hit": _rate(b[g]["hit"], None, None),
            "b_net": _money(b[g]["net"], currency),
            "c_n": c.get(g, {}).get("labelled", 0),
            "c_hit": _rate(c.get(g, {}).get("hit"), None, None),
            "c_net": _money(c.get(g, {}).get("net", 0.0), currency),
            "delta": _money(c.get(g, {}).get("net", 0.0) - b[g]["net"], currency),
        }  # fmt: skip
        for g in sorted(b, key=lambda k: (k == "all", k))
    ]
    say(render_table(rows, SIDE_TABLE, terminal_width()))


def cmd_replay(args) -> int:
    from audience_assets.engine.outcomes import OutcomeSettings  # scipy: only when used

    require_database(args.db)
    from audience_assets.feedback.replay import replay

    settings = OutcomeSettings(horizons=(args.horizon,)) if args.horizon else OutcomeSettings(horizons=(7,))
    with warehouse_lock(args.db, "audience-engine replay", args.lock_timeout), connect(args.db) as conn:
        result = replay(
            conn, args.date_from, args.date_to, config_path=args.config, overrides=parse_overrides(args.set or []),
            judge_cfg=load_config(None), settings=settings,
        )  # fmt: skip
    h = settings.horizons[0]
    currency = next(iter(result.baseline["currency"].drop_nulls().unique().to_list()), None)
    say(f"Replayed {len(result.dates)} decision dates ({result.dates[0]} to {result.dates[-1]}), judged over {h} days.")
    say("Stored rules (left) and candidate rules (right, '), on the same outcomes:\n")
    print_side_by_side(result.baseline, result.candidate, currency)
    say(f"\n{result.changed.height} decisions changed.")
    for r in result.changed.head(10).iter_rows(named=True):
        say(f"  {r['decision_date']}  {r['adset_id']}  {r['stored_action']} -> {r['candidate_action']}")
    if result.changed.height > 10:
        say(f"  ... and {result.changed.height - 10} more (see --json)")
    if args.json:
        doc = {
            "dates": [str(d) for d in result.dates],
            "horizon_days": h,
            "baseline": _records(result.baseline_card),
            "candidate": _records(result.candidate_card),
            "changed_decisions": _records(result.changed),
        }
        write_atomically(Path(args.json), json.dumps(doc, indent=1, default=str) + "\n")
        say(f"replay written to {args.json}")
    return 0


def _claude_client() -> Any | None:
    """The Claude client from the environment, or None without ANTHROPIC_API_KEY (the template answers)."""
    import os

    key = os.environ.get("ANTHROPIC_API_KEY")
    if not key:
        return None
    from audience_assets.engine.analysis import DEFAULT_MODEL
    from audience_assets.integrations.anthropic_client import ClaudeClient

    model = os.environ.get("AUDIENCE_ENGINE_CLAUDE_MODEL") or DEFAULT_MODEL
    return ClaudeClient(
        api_key=key, model=model, base_url=os.environ.get("ANTHROPIC_BASE_URL"), timeout=60.0, max_retries=3
    )


def cmd_feedback(args) -> int:
    from audience_assets.engine.outcomes import OutcomeSettings, scorecard  # scipy: only when used

    require_database(args.db)
    from audience_assets.engine.feedback_analysis import FEEDBACK_KEYS
    from audience_assets.feedback.advice import advise

    horizon = args.horizon or 7
    with warehouse_lock(args.db, "audience-engine feedback", args.lock_timeout), connect(args.db) as conn:
        if not table_exists(conn, "outcomes"):
            raise FeedbackError(f"no outcomes in {args.db} yet: run the graph on decision dates with days after them")
        outcomes = _filter(
            conn.execute("SELECT * FROM outcomes WHERE horizon_days = ?", [horizon]).pl(), args.date_from, args.date_to
        )
    if outcomes.is_empty():
        raise FeedbackError(f"no matured {horizon}-day outcomes in that range")
    dates = outcomes["decision_date"]
    card = scorecard(outcomes, OutcomeSettings(horizons=(horizon,)), keys=FEEDBACK_KEYS)
    advice = advise(card, load_config(args.config), str(dates.min()), str(dates.max()), _claude_client())
    doc = advice.as_dict()
    say(
        f"Feedback on {outcomes.height} decisions from {doc['from']} to {doc['to']} ({horizon}-day outcomes), by {doc['source']}:"
    )
    if doc["fallback_reason"]:
        say(f"  ({doc['fallback_reason']})")
    for p in doc["patterns"]:
        say(f"\n- {p['summary']}")
    for p in doc["proposals"]:
        say(
            f"\nProposal: {p['parameter']} {p['current_value']} -> {p['proposed_value']}\n  {p['evidence']}\n  test it: {p['replay']}"
        )
    for d in doc["dropped"]:
        say(f"\n(dropped: {d})")
    say("\nNothing was applied: replay a proposal, then change your rules file if the history supports it.")
    if args.json:
        write_atomically(Path(args.json), json.dumps(doc, indent=1, default=str) + "\n")
        say(f"feedback written to {args.json}")
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--from", dest="date_from", type=parse_date, help="first decision date (default: the first stored)")
    p.add_argument("--to", dest="date_to", type=parse_date, help="last decision date (default: the last stored)")
    p.add_argument("--horizon", type=int, help="judge over this horizon only (days)")
    p.add_argument("--json", metavar="OUT", help="also write the result as JSON")
    add_warehouse(p)


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "outcomes",
        help="the rule scorecard: how decisions turned out",
        description="Print the rule scorecard over stored outcomes: per horizon, rule branch and audience type, counts per label, the hit rate and the money gained, saved and lost, with 90% intervals.",
    )
    _common(p)
    p.set_defaults(func=cmd_outcomes)
    p = sub.add_parser(
        "replay",
        help="replay stored decision dates with candidate rules",
        description="Recompute every stored decision date in the range with candidate rules (the stored rules, or --config, with --set on top) on the stored inputs, without touching the stored decisions, and score both on the same outcomes (default horizon 7 days).",
    )
    p.add_argument("--config", help="rules file (TOML) to start from instead of each date's stored rules")
    p.add_argument(
        "--set", action="append", metavar="KEY=VALUE", help="override one rule, e.g. --set min_confidence_to_act=HIGH"
    )
    _common(p)
    p.set_defaults(func=cmd_replay)
    p = sub.add_parser(
        "feedback",
        help="patterns in the misses and rule changes to replay (Claude, or a template offline)",
        description="Claude reads the rule scorecard (by reference: no names, no ids) and answers with patterns in the misses and rule changes as data, each checked against the input and given its replay command; without ANTHROPIC_API_KEY a template answers. Nothing is applied.",
    )
    p.add_argument("--config", help="rules file (TOML) the proposals start from (default: the defaults)")
    _common(p)
    p.set_defaults(func=cmd_feedback)


USER_ERRORS = (FeedbackError, ReplayError)
