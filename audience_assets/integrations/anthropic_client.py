"""The only place the anthropic SDK is imported: one call per batch of audiences.

Synchronous Messages for manual runs, the Message Batches API for scheduled ones. Retries
(429 / 529 with retry-after) are the SDK's; timeouts and errors come back as outcomes, never
as exceptions, so one failed batch only sends its audiences to the template explainer.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anthropic

# Refusals and other non-answers: the SDK reports them as stop reasons, not errors.
ACCEPTED_STOP = {"end_turn", "stop_sequence"}


@dataclass
class CallOutcome:
    """What one request produced: the text to validate (if any) and what to log."""

    key: str
    text: str | None = None
    request_id: str | None = None
    stop_reason: str | None = None
    usage: dict[str, int] = field(default_factory=dict)
    latency_ms: int = 0
    error: str | None = None

    @property
    def failure(self) -> str | None:
        """Why this outcome cannot be used, or None."""
        if self.error:
            return self.error
        if self.stop_reason not in ACCEPTED_STOP:
            return f"stop_reason {self.stop_reason}"
        if not self.text:
            return "empty answer"
        return None


def _usage(u: Any) -> dict[str, int]:
    if u is None:
        return {}
    names = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    return {n: int(getattr(u, n, 0) or 0) for n in names}


def _text(message: Any) -> str | None:
    parts = [b.text for b in message.content if getattr(b, "type", None) == "text"]
    return "".join(parts) if parts else None


def _error_text(err: Exception) -> str:
    if isinstance(err, anthropic.APITimeoutError):
        return "timeout"
    if isinstance(err, anthropic.APIStatusError):
        return f"http {err.status_code}: {type(err).__name__}"
    if isinstance(err, anthropic.APIConnectionError):
        return "connection error"
    return f"{type(err).__name__}"


class ClaudeClient:
    """A configured SDK client; never logs or returns the key."""

    def __init__(self, api_key: str, model: str, base_url: str | None, timeout: float, max_retries: int) -> None:
        self.model = model
        self._client = anthropic.Anthropic(
            api_key=api_key, base_url=base_url or None, timeout=timeout, max_retries=max_retries
        )

    def params(self, system: str, payload: str, schema: dict[str, Any], max_tokens: int) -> dict[str, Any]:
        """Request parameters: the static system prompt is marked for prompt caching."""
        return {
            "model": self.model,
            "max_tokens": max_tokens,
            "system": [{"type": "text", "text": system, "cache_control": {"type": "ephemeral"}}],
            "messages": [{"role": "user", "content": [{"type": "text", "text": payload}]}],
            "output_config": {"format": {"type": "json_schema", "schema": schema}},
        }

    def create(self, key: str, params: dict[str, Any]) -> CallOutcome:
        started = time.monotonic()
        try:
            message = self._client.messages.create(**params)
        except anthropic.AnthropicError as err:
            return CallOutcome(
                key,
                error=_error_text(err),
                request_id=getattr(err, "request_id", None),
                latency_ms=int((time.monotonic() - started) * 1000),
            )
        return CallOutcome(
            key,
            text=_text(message),
            request_id=getattr(message, "_request_id", None),
            stop_reason=message.stop_reason,
            usage=_usage(message.usage),
            latency_ms=int((time.monotonic() - started) * 1000),
        )

    def batch(
        self,
        requests: dict[str, dict[str, Any]],
        poll_seconds: float,
        max_wait_seconds: float,
        sleep: Callable[[float], None] = time.sleep,
    ) -> dict[str, CallOutcome]:
        """Submit every request as one Message Batch and wait for it, with backoff between polls."""
        started = time.monotonic()
        try:
            job = self._client.messages.batches.create(
                requests=[{"custom_id": key, "params": p} for key, p in requests.items()]
            )
            wait = poll_seconds
            while job.processing_status != "ended":
                if time.monotonic() - started > max_wait_seconds:
                    self._client.messages.batches.cancel(job.id)
                    return {k: CallOutcome(k, error="batch timed out") for k in requests}
                sleep(wait)
                wait = min(wait * 2, 60.0)
                job = self._client.messages.batches.retrieve(job.id)
            results = {entry.custom_id: entry for entry in self._client.messages.batches.results(job.id)}
        except anthropic.AnthropicError as err:
            return {k: CallOutcome(k, error=_error_text(err)) for k in requests}
        latency = int((time.monotonic() - started) * 1000)
        out: dict[str, CallOutcome] = {}
        for key in requests:
            entry = results.get(key)
            if entry is None:
                out[key] = CallOutcome(key, error="missing from batch results", latency_ms=latency)
            elif entry.result.type != "succeeded":
                out[key] = CallOutcome(
                    key, error=f"batch result {entry.result.type}", request_id=job.id, latency_ms=latency
                )
            else:
                m = entry.result.message
                out[key] = CallOutcome(
                    key,
                    text=_text(m),
                    request_id=job.id,
                    stop_reason=m.stop_reason,
                    usage=_usage(m.usage),
                    latency_ms=latency,
                )
        return out
