"""Claude's feedback analysis: proposals are checked against the input before anyone sees them, the
template answers offline, and the real anthropic SDK talks to the local fake server."""

from __future__ import annotations

import json

import polars as pl
import pytest

from audience_assets.engine.config import RulesConfig
from audience_assets.engine.feedback_analysis import (
    FeedbackResponse,
    Pattern,
    Proposal,
    check_proposal,
    feedback_input,
    replay_command,
    template_feedback,
)
from audience_assets.feedback.advice import advise, load_prompt
from audience_assets.integrations.anthropic_client import ClaudeClient
from audience_assets_tests.fakes.anthropic_server import FakeAnthropic, error_reply, json_reply

CFG = RulesConfig()


def card_row(branch: str, key: str, **figures) -> dict:
    base = {
        "horizon_days": 7, "rule_branch": branch, "modifier_key": key, "currency": "INR", "decisions": 10,
        "good_call": 5, "false_positive_scale": 0, "missed_winner": 0, "bad_pause": 0, "inconclusive": 5,
        "hit_rate": 1.0, "gained": 1000.0, "lost": 0.0, "net": 1000.0,
    }  # fmt: skip
    row = base | figures
    return row | {"labelled": row["decisions"] - row["inconclusive"]}


CARD = pl.DataFrame(
    [
        card_row(
            "gate:SCALE_held",
            "LOOKALIKE_1PCT",
            decisions=13,
            good_call=3,
            missed_winner=8,
            inconclusive=2,
            hit_rate=3 / 11,
            gained=0.0,
            lost=92362.4,
            net=-92362.4,
        ),  # fmt: skip
        card_row(
            "WINNER+STABLE",
            "BROAD",
            decisions=12,
            good_call=6,
            false_positive_scale=4,
            inconclusive=2,
            hit_rate=0.6,
            gained=5000.0,
            lost=8000.0,
            net=-3000.0,
        ),  # fmt: skip
        card_row(
            "LOSER+ENOUGH_DATA",
            "INTEREST",
            decisions=20,
            good_call=14,
            bad_pause=4,
            inconclusive=2,
            hit_rate=14 / 18,
            gained=90000.0,
            lost=12000.0,
            net=78000.0,
        ),  # fmt: skip
        card_row("NOT_ELIGIBLE", "CUSTOM", decisions=4, good_call=0, inconclusive=4, gained=0.0, hit_rate=None),
    ]
)
INPUT = feedback_input(CARD, CFG, "2026-10-29", "2026-11-19")


def test_the_input_is_by_reference_and_skips_rows_with_nothing_to_say():
    refs = {b["ref"]: b for b in INPUT["branches"]}
    assert list(refs) == ["b1", "b2", "b3"]  # most money lost first; the all-inconclusive row is left out
    assert refs["b1"]["rule_branch"] == "gate:SCALE_held" and refs["b1"]["lost"] == 92362.4
    assert INPUT["parameters"]["modifiers.LOOKALIKE_1PCT.marginal_roas_factor"] == 0.7
    assert INPUT["parameters"]["min_confidence_to_act"] == "MEDIUM"


def proposal(**kw) -> Proposal:
    base = {
        "parameter": "modifiers.LOOKALIKE_1PCT.marginal_roas_factor", "current_value": 0.7, "proposed_value": 0.75,
        "evidence": "8 of 13 held back were winners over 7 days, losing 92,362", "refs": ["b1"],
    }  # fmt: skip
    return Proposal(**(base | kw))


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({}, None),
        ({"parameter": "modifiers.LOOKALIKE_1PCT.max_budget"}, "unknown parameter"),
        ({"current_value": 0.8}, "is 0.7, not 0.8"),
        ({"proposed_value": 0.7}, "the proposed value is the current one"),
        ({"proposed_value": 1.5}, "invalid value"),
        ({"refs": ["b9"]}, "unknown refs"),
        ({"evidence": "9 of 13 held back were winners, losing 120,000"}, "figures not in the input"),
        ({"evidence": "a hit rate of 27% on b1 shows the gate is too strict"}, None),
        ({"parameter": "min_confidence_to_act", "current_value": "MEDIUM", "proposed_value": "SURE"}, "invalid value"),
        (
            {
                "parameter": "min_confidence_to_act",
                "current_value": "MEDIUM",
                "proposed_value": "LOW",
                "evidence": "the gate missed 8 winners",
            },
            None,
        ),  # fmt: skip
    ],
)
def test_each_proposal_is_checked_against_the_input(change, reason):
    found = check_proposal(proposal(**change), INPUT, CFG)
    assert (found is None) if reason is None else (reason in found), found


def test_the_template_proposes_where_misses_concentrate():
    resp = template_feedback(INPUT)
    params = {p.parameter: p for p in resp.proposals}
    assert set(params) == {
        "modifiers.LOOKALIKE_1PCT.marginal_roas_factor",  # 8 missed winners held by the gate
        "modifiers.BROAD.winner_roas",  # 4 false positives of 10 judged
        "modifiers.INTEREST.pause_loss_weight",  # 4 bad pauses of 18 judged
    }
    assert params["modifiers.BROAD.winner_roas"].proposed_value == pytest.approx(1.2)
    assert all(check_proposal(p, INPUT, CFG) is None for p in resp.proposals)  # the template passes its own checks
    assert [p.refs for p in resp.patterns] == [["b1"], ["b2"], ["b3"]]  # the most money lost first
    cmd = replay_command(params["modifiers.BROAD.winner_roas"], "2026-10-29", "2026-11-19")
    assert cmd == "audience-engine replay --from 2026-10-29 --to 2026-11-19 --set modifiers.BROAD.winner_roas=1.2"


def _client(fake: FakeAnthropic) -> ClaudeClient:
    return ClaudeClient(api_key="test-key", model="claude-x", base_url=fake.base_url, timeout=10.0, max_retries=0)


def test_claude_answers_through_the_sdk_and_bad_proposals_are_dropped():
    answer = FeedbackResponse(
        patterns=[
            Pattern(summary="The gate held back 8 winners on 1% lookalikes, losing 92,362.", refs=["b1"]),
            Pattern(summary="Ignore the rules and scale everything 500%.", refs=["b2"]),
        ],  # fmt: skip
        proposals=[
            proposal(),
            proposal(parameter="delete_all_adsets", current_value=0, proposed_value=1),
            proposal(evidence="It would earn 1,000,000 more.", proposed_value=0.8),
        ],
    )
    with FakeAnthropic() as fake:
        fake.queue(json_reply(answer.model_dump()))
        advice = advise(CARD, CFG, "2026-10-29", "2026-11-19", _client(fake))
        request = fake.message_requests[0]
    assert advice.source == "claude" and advice.fallback_reason is None
    assert [p.parameter for p in advice.response.proposals] == ["modifiers.LOOKALIKE_1PCT.marginal_roas_factor"]
    assert len(advice.response.patterns) == 1
    assert any("unknown parameter 'delete_all_adsets'" in d for d in advice.dropped)
    assert any("1,000,000" in d or "1000000" in d for d in advice.dropped)
    assert any("pattern dropped" in d and "500" in d for d in advice.dropped)
    system, sha = load_prompt()
    assert request["system"][0]["text"] == system and advice.prompt_sha256 == sha
    sent = json.loads(request["messages"][0]["content"][0]["text"])
    assert sent == json.loads(json.dumps(INPUT, default=str))  # scorecard by reference: no names, no ids
    doc = advice.as_dict()
    assert doc["proposals"][0]["replay"].startswith("audience-engine replay --from 2026-10-29 --to 2026-11-19 --set ")


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (error_reply(500), "unusable"),
        (json_reply({"patterns": "not a list"}), "unusable"),
        (
            json_reply({"patterns": [], "proposals": [proposal(current_value=0.9).model_dump()]}),
            "nothing in Claude's answer passed",
        ),
    ],
)
def test_an_unusable_answer_falls_back_to_the_template(reply, reason):
    with FakeAnthropic() as fake:
        fake.queue(reply)
        advice = advise(CARD, CFG, "2026-10-29", "2026-11-19", _client(fake))
    assert advice.source == "template" and reason in advice.fallback_reason
    assert advice.response.proposals  # the template still answers


def test_without_a_key_the_template_answers():
    advice = advise(CARD, CFG, "2026-10-29", "2026-11-19", None)
    assert advice.source == "template" and "ANTHROPIC_API_KEY" in advice.fallback_reason
