"""Claude's feedback analysis on the warehouse: the scorecard in, patterns and proposals out, each
proposal checked and given its replay command; the template answers without a key or when Claude's
answer is unusable. Nothing is ever applied."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from audience_assets.engine.config import RulesConfig
from audience_assets.engine.feedback_analysis import (
    FeedbackResponse,
    feedback_input,
    parse,
    payload,
    replay_command,
    response_schema,
    screen,
    template_feedback,
)
from audience_assets.warehouse import resource_dir

PROMPT_TASK = "feedback_analysis"
PROMPT_VERSION = "v1"


@dataclass
class Advice:
    response: FeedbackResponse
    source: str  # claude | template
    date_from: str
    date_to: str
    dropped: list[str] = field(default_factory=list)
    fallback_reason: str | None = None
    prompt_sha256: str = ""

    def as_dict(self) -> dict[str, Any]:
        proposals = [
            {**p.model_dump(), "replay": replay_command(p, self.date_from, self.date_to)}
            for p in self.response.proposals
        ]
        return {
            "source": self.source,
            "prompt": f"{PROMPT_TASK}/{PROMPT_VERSION}",
            "prompt_sha256": self.prompt_sha256,
            "from": self.date_from,
            "to": self.date_to,
            "patterns": [p.model_dump() for p in self.response.patterns],
            "proposals": proposals,
            "dropped": self.dropped,
            "fallback_reason": self.fallback_reason,
        }


def load_prompt() -> tuple[str, str]:
    text = (resource_dir("prompts") / PROMPT_TASK / f"{PROMPT_VERSION}.md").read_text()
    return text, hashlib.sha256(text.encode()).hexdigest()


def advise(card: pl.DataFrame, cfg: RulesConfig, date_from: str, date_to: str, client: Any | None,
           max_tokens: int = 4096) -> Advice:  # fmt: skip
    """Claude's patterns and proposals when a client is given and its answer passes the checks (what
    fails is dropped, with the reason); else the template's."""
    inp = feedback_input(card, cfg, date_from, date_to)
    system, sha = load_prompt()
    template = Advice(template_feedback(inp), "template", date_from, date_to, prompt_sha256=sha)
    if client is None:
        template.fallback_reason = "no ANTHROPIC_API_KEY: the template answered"
        return template
    outcome = client.create("feedback", client.params(system, payload(inp), response_schema(), max_tokens))
    failure = outcome.failure
    resp, why = (None, failure) if failure else parse(outcome.text)
    if resp is None:
        template.fallback_reason = f"Claude's answer was unusable ({why}): the template answered"
        return template
    kept, dropped = screen(resp, inp, cfg)
    if not kept.patterns and not kept.proposals:
        template.fallback_reason = "nothing in Claude's answer passed the checks: the template answered"
        template.dropped = dropped
        return template
    return Advice(kept, "claude", date_from, date_to, dropped=dropped, prompt_sha256=sha)
