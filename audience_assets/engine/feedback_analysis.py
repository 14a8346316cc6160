"""Claude's feedback analysis, the pure part: what it is shown (the scorecard by reference, the tunable
rules and their values), the structured answer it must give (patterns in the misses, rule changes as
data), the checks that answer must pass (known parameters and refs, true current values, valid
proposed values, every figure found in the input), and the template that answers offline.

Nothing here changes a rule: each proposal comes with the replay command that tests it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from audience_assets.engine.analysis import unfaithful_numbers
from audience_assets.engine.config import ConfigError, RulesConfig, apply_overrides, override

TYPE_FIELDS = ("winner_roas", "loser_roas", "marginal_roas_factor", "pause_loss_weight")
GLOBAL_FIELDS = ("min_confidence_to_act", "min_confidence_to_pause", "scale_step_pct", "cooldown_hours")
BRANCH_FIGURES = [
    "horizon_days", "decisions", "labelled", "good_call", "false_positive_scale", "missed_winner", "bad_pause", "inconclusive", "hit_rate",
    "gained", "lost", "net",
]  # fmt: skip


class Pattern(BaseModel):
    model_config = ConfigDict(extra="forbid")

    summary: str = Field(max_length=500, description="a pattern in the misses, in plain English")
    refs: list[str] = Field(min_length=1, max_length=12, description="the branch refs (b1, b2, ...) it rests on")


class Proposal(BaseModel):
    model_config = ConfigDict(extra="forbid")

    parameter: str = Field(description="one of the input's parameters, e.g. modifiers.LOOKALIKE.winner_roas")
    current_value: float | str
    proposed_value: float | str
    evidence: str = Field(max_length=700, description="why, quoting only figures from the referenced branches")
    refs: list[str] = Field(min_length=1, max_length=12)


class FeedbackResponse(BaseModel):
    model_config = ConfigDict(extra="forbid")

    patterns: list[Pattern] = Field(default_factory=list, max_length=8)
    proposals: list[Proposal] = Field(default_factory=list, max_length=6)


def response_schema() -> dict[str, Any]:
    return FeedbackResponse.model_json_schema()


def parameters(cfg: RulesConfig) -> dict[str, Any]:
    """The rules the analysis may propose to change, with their current (resolved) values."""
    out: dict[str, Any] = {name: getattr(cfg, name) for name in GLOBAL_FIELDS}
    for key in sorted(cfg.modifiers):
        for name in TYPE_FIELDS:
            out[f"modifiers.{key}.{name}"] = cfg.resolved(key, name)
    return out


FEEDBACK_KEYS = ["horizon_days", "rule_branch", "modifier_key", "currency"]


def feedback_input(card: pl.DataFrame, cfg: RulesConfig, date_from: str, date_to: str) -> dict[str, Any]:
    """The scorecard rows (grouped by `FEEDBACK_KEYS`: the modifier key is what a rule change targets)
    that carry a judgement or money, by reference (no names, no ids)."""
    rows = card.filter((pl.col("decisions") - pl.col("inconclusive") > 0) | (pl.col("gained") + pl.col("lost") > 0))
    rows = rows.sort(["lost", "rule_branch", "modifier_key"], descending=[True, False, False])
    branches = []
    for i, r in enumerate(rows.iter_rows(named=True), start=1):
        figures = {k: (round(r[k], 4) if isinstance(r[k], float) else r[k]) for k in BRANCH_FIGURES}
        branches.append({"ref": f"b{i}", "rule_branch": r["rule_branch"], "modifier_key": r["modifier_key"],
                         "currency": r["currency"], **figures})  # fmt: skip
    return {"from": date_from, "to": date_to, "branches": branches, "parameters": parameters(cfg)}


def payload(inp: dict[str, Any]) -> str:
    return json.dumps(inp, sort_keys=True, separators=(",", ":"), default=str)


def _figures(inp: dict[str, Any], refs: list[str]) -> dict[str, Any]:
    """The figures a text may quote: the referenced branches' and every parameter value."""
    by_ref = {b["ref"]: b for b in inp["branches"]}
    metrics: dict[str, Any] = {}
    for ref in refs:
        for k in BRANCH_FIGURES:
            metrics[f"{ref}.{k}"] = by_ref[ref][k]
    for k, v in inp["parameters"].items():
        if isinstance(v, (int, float)):
            metrics[k] = v
    return {"metrics": metrics}


def _rates(inp: dict[str, Any], refs: list[str]) -> list[float]:
    """Hit rates may be quoted as percentages."""
    by_ref = {b["ref"]: b for b in inp["branches"]}
    return [by_ref[r]["hit_rate"] * 100 for r in refs if r in by_ref and by_ref[r]["hit_rate"] is not None]


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return abs(float(a) - float(b)) <= 1e-9 + 1e-6 * abs(float(b))
    return str(a) == str(b)


def check_proposal(p: Proposal, inp: dict[str, Any], cfg: RulesConfig) -> str | None:
    """None when the proposal is usable, else why not."""
    params = inp["parameters"]
    refs = {b["ref"] for b in inp["branches"]}
    if p.parameter not in params:
        return f"unknown parameter {p.parameter!r}"
    if not _same(p.current_value, params[p.parameter]):
        return f"{p.parameter} is {params[p.parameter]}, not {p.current_value}"
    if _same(p.proposed_value, params[p.parameter]):
        return "the proposed value is the current one"
    missing = [r for r in p.refs if r not in refs]
    if missing:
        return f"unknown refs {missing}"
    try:
        apply_overrides(cfg, override(p.parameter, p.proposed_value), p.parameter)
    except ConfigError as err:
        return f"invalid value: {str(err).splitlines()[-1].strip()}"
    extra = [float(v) for v in (p.current_value, p.proposed_value) if isinstance(v, (int, float))]
    bad = unfaithful_numbers(p.evidence, _figures(inp, p.refs), extra + _rates(inp, p.refs))
    return f"evidence quotes figures not in the input: {', '.join(bad[:5])}" if bad else None


def check_pattern(p: Pattern, inp: dict[str, Any]) -> str | None:
    refs = {b["ref"] for b in inp["branches"]}
    missing = [r for r in p.refs if r not in refs]
    if missing:
        return f"unknown refs {missing}"
    bad = unfaithful_numbers(p.summary, _figures(inp, p.refs), _rates(inp, p.refs))
    return f"quotes figures not in the input: {', '.join(bad[:5])}" if bad else None


def parse(text: str | None) -> tuple[FeedbackResponse | None, str | None]:
    try:
        return FeedbackResponse.model_validate(json.loads(text or "")), None
    except (json.JSONDecodeError, TypeError) as err:
        return None, f"not JSON: {err}"
    except ValidationError as err:
        first = err.errors()[0]
        return None, f"{'.'.join(str(x) for x in first['loc'])}: {first['msg']}"


def screen(resp: FeedbackResponse, inp: dict[str, Any], cfg: RulesConfig) -> tuple[FeedbackResponse, list[str]]:
    """Keep what passes the checks; list what was dropped and why."""
    dropped: list[str] = []
    patterns, proposals = [], []
    for p in resp.patterns:
        why = check_pattern(p, inp)
        if why:
            dropped.append(f"pattern dropped: {why}")
        else:
            patterns.append(p)
    for p in resp.proposals:
        why = check_proposal(p, inp, cfg)
        if why:
            dropped.append(f"proposal {p.parameter} dropped: {why}")
        else:
            proposals.append(p)
    return FeedbackResponse(patterns=patterns, proposals=proposals), dropped


def replay_command(p: Proposal, date_from: str, date_to: str) -> str:
    """The one command that tests a proposal on the stored history."""
    return f"audience-engine replay --from {date_from} --to {date_to} --set {p.parameter}={p.proposed_value}"


@dataclass(frozen=True)
class _Rule:
    """A rule of thumb: when a scorecard row's misses are frequent enough, step one parameter."""

    field: str  # the modifier field it steps
    step: float
    upper: float | None
    applies: Callable[[dict[str, Any]], bool]
    evidence: str  # formatted with the row's figures and `t` (the modifier key), `labelled`


_RULES = (
    _Rule(
        "marginal_roas_factor", 0.05, 1.0,
        lambda b: b["rule_branch"] == "gate:SCALE_held" and b["missed_winner"] >= 3,
        "{missed_winner} of {decisions} {t} audiences the gate held back were winners over the next {horizon_days} "
        "days, losing {lost:,.0f}; a higher factor lowers the bar a SCALE must clear",
    ),
    _Rule(
        "winner_roas", 0.1, None,
        lambda b: b["false_positive_scale"] >= 2 and b["false_positive_scale"] >= 0.3 * b["labelled"],
        "{false_positive_scale} of {labelled} judged {t} decisions in {rule_branch} were scales that fell below the "
        "account average over {horizon_days} days, losing {lost:,.0f}",
    ),
    _Rule(
        "pause_loss_weight", 2.0, None,
        lambda b: b["bad_pause"] >= 2 and b["bad_pause"] >= 0.2 * b["labelled"],
        "{bad_pause} of {labelled} judged {t} decisions in {rule_branch} paused audiences that stayed above the "
        "account average over {horizon_days} days",
    ),
)  # fmt: skip


def _template_proposal(b: dict[str, Any], params: dict[str, Any]) -> Proposal | None:
    """The first rule of thumb that applies to one scorecard row and can still move its parameter."""
    for rule in _RULES:
        name = f"modifiers.{b['modifier_key']}.{rule.field}"
        if name not in params or not rule.applies(b):
            continue
        current = params[name]
        proposed = round(current + rule.step, 2)
        if rule.upper is not None:
            proposed = min(proposed, rule.upper)
        if proposed == current:
            continue
        evidence = rule.evidence.format(t=b["modifier_key"], **b)
        return Proposal(
            parameter=name, current_value=current, proposed_value=proposed, evidence=evidence, refs=[b["ref"]]
        )
    return None


def template_feedback(inp: dict[str, Any]) -> FeedbackResponse:
    """Offline: the branches that lost the most, and rules of thumb where misses concentrate."""
    losing = [b for b in inp["branches"] if b["lost"] > 0][:3]
    patterns = [
        Pattern(
            summary=(
                f"{b['rule_branch']} on {b['modifier_key']}: {b['missed_winner']} missed winners, "
                f"{b['false_positive_scale']} false positives, {b['bad_pause']} bad pauses of {b['decisions']} "
                f"decisions; lost {b['lost']:,.0f}"
            ),  # fmt: skip
            refs=[b["ref"]],
        )
        for b in losing
    ]
    proposals: dict[str, Proposal] = {}
    for b in inp["branches"]:
        p = _template_proposal(b, inp["parameters"])
        if p is not None and p.parameter not in proposals:
            proposals[p.parameter] = p
    return FeedbackResponse(patterns=patterns, proposals=list(proposals.values())[:6])
