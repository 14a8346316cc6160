"""A local fake of the Anthropic Messages API and Message Batches API, for tests.

A stdlib ``ThreadingHTTPServer`` on 127.0.0.1 (ephemeral port) that answers the real ``anthropic`` SDK:

    with FakeAnthropic() as fake:
        fake.queue(json_reply({"ok": True}), error_reply(429), text_reply("hi"))
        client = anthropic.Anthropic(api_key="test-key", base_url=fake.base_url, max_retries=2)
        ...
        assert fake.requests[0]["json"]["model"] == "claude-x"

Replies for ``POST /v1/messages`` (and for every request of a batch, when the batch ends) come from
the queue first, then from ``responder(request_json)``; with neither, the fake answers
500 ``api_error`` "no reply queued" so a test notices.

Matched to anthropic SDK 2.14 (the version in .venv):
- the SDK sends ``api_key`` as ``Authorization: Bearer <key>`` (not ``x-api-key``); both are accepted,
  a request with neither gets 401 ``authentication_error``;
- ``retry-after-ms`` wins over ``retry-after``; any positive value is honoured (no upper cap), so
  429/529 error replies default to ``retry-after-ms: 5`` to keep retries fast;
- ``messages.batches.results(id)`` first GETs the batch itself (a retrieve, which counts as a poll
  here) and then GETs its absolute ``results_url`` with ``Accept: application/binary``, streaming
  the JSONL body (content type not checked; lines split on newlines).
"""

from __future__ import annotations

import itertools
import json
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from .loopback import LoopbackHandler, LoopbackServer

__all__ = [
    "BatchResultReply",
    "DelayReply",
    "ErrorReply",
    "FakeAnthropic",
    "MessageReply",
    "RawReply",
    "batch_canceled",
    "batch_error",
    "batch_expired",
    "delay_reply",
    "error_reply",
    "json_reply",
    "message_reply",
    "raw_reply",
    "refusal_reply",
    "text_reply",
    "tool_reply",
]

DEFAULT_MODEL = "claude-fake"
FAST_RETRY_HEADERS = {"retry-after-ms": "5"}
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}


# --------------------------------------------------------------------------- replies


@dataclass
class MessageReply:
    """A 200 Message. ``usage`` is merged over the computed usage; ``extra`` over the whole message."""

    content: list[dict[str, Any]]
    stop_reason: str | None = "end_turn"
    usage: Mapping[str, Any] | None = None
    model: str | None = None
    stop_sequence: str | None = None
    stop_details: Mapping[str, Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class ErrorReply:
    """An error status with the real body ``{"type": "error", "error": {"type", "message"}, "request_id"}``."""

    status: int
    error_type: str
    message: str
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass
class DelayReply:
    """Wait ``seconds`` before answering with ``then`` (ignored inside batches: no delay there)."""

    seconds: float
    then: Any


@dataclass
class RawReply:
    """Any status, body and headers, sent as given (for malformed or unusual answers)."""

    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass
class BatchResultReply:
    """A non-succeeded batch result (errored / expired / canceled); only valid inside a batch."""

    result: dict[str, Any]


def message_reply(
    content: list[dict[str, Any]],
    stop_reason: str | None = "end_turn",
    usage: Mapping[str, Any] | None = None,
    *,
    model: str | None = None,
    stop_sequence: str | None = None,
    stop_details: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> MessageReply:
    """A Message with the given content blocks (dicts in the API's shape)."""
    return MessageReply(
        content=list(content),
        stop_reason=stop_reason,
        usage=usage,
        model=model,
        stop_sequence=stop_sequence,
        stop_details=stop_details,
        headers=dict(headers or {}),
    )


def text_reply(
    text: str,
    stop_reason: str | None = "end_turn",
    usage: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> MessageReply:
    """One text block; native structured output arrives this way (the JSON document as text)."""
    return message_reply([{"type": "text", "text": text}], stop_reason, usage, **kwargs)


def json_reply(obj: Any, stop_reason: str | None = "end_turn", usage: Mapping[str, Any] | None = None, **kwargs: Any):
    """``text_reply(json.dumps(obj))``."""
    return text_reply(json.dumps(obj), stop_reason, usage, **kwargs)


def tool_reply(
    name: str,
    input_dict: Mapping[str, Any],
    *,
    text: str | None = None,
    tool_id: str | None = None,
    stop_reason: str | None = "tool_use",
    usage: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> MessageReply:
    """A ``tool_use`` block (after an optional text block); ``tool_id`` defaults to ``toolu_<n>``."""
    block: dict[str, Any] = {"type": "tool_use", "id": tool_id, "name": name, "input": dict(input_dict)}
    content = ([{"type": "text", "text": text}] if text else []) + [block]
    return message_reply(content, stop_reason, usage, **kwargs)


def refusal_reply(text: str = "", *, category: str | None = None, explanation: str | None = None, **kwargs: Any):
    """``stop_reason: "refusal"`` with ``stop_details`` (content is one text block, or empty for ``text=""``)."""
    content = [{"type": "text", "text": text}] if text else []
    details = {"type": "refusal", "category": category, "explanation": explanation}
    return message_reply(content, "refusal", stop_details=details, **kwargs)


def error_reply(
    status: int,
    error_type: str | None = None,
    message: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> ErrorReply:
    """An error response. ``error_type`` defaults from the status (429 -> rate_limit_error, ...).

    For 429 and 529, ``headers=None`` means ``{"retry-after-ms": "5"}`` so SDK retries are fast;
    pass ``headers={}`` to send no retry hint (the SDK then backs off 0.5 s, 1 s, ...).
    """
    if error_type is None:
        error_type = ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    if headers is None:
        headers = FAST_RETRY_HEADERS if status in (429, 529) else {}
    return ErrorReply(status, error_type, message or f"fake {error_type}", dict(headers))


def delay_reply(seconds: float, then_reply: Any) -> DelayReply:
    """Sleep ``seconds`` before answering ``then_reply`` (to trigger client timeouts)."""
    return DelayReply(seconds, then_reply)


def raw_reply(
    status: int,
    body: bytes | str | Mapping[str, Any] | list[Any],
    headers: Mapping[str, str] | None = None,
) -> RawReply:
    """Send exactly this; a dict/list body is JSON-encoded (content-type application/json by default)."""
    hdrs = {k.lower(): v for k, v in (headers or {}).items()}
    if isinstance(body, Mapping | list):
        body = json.dumps(body)
        hdrs.setdefault("content-type", "application/json")
    if isinstance(body, str):
        body = body.encode()
    hdrs.setdefault("content-type", "text/plain")
    return RawReply(status, body, hdrs)


def batch_error(error_type: str = "invalid_request_error", message: str | None = None) -> BatchResultReply:
    """An ``errored`` batch result with the real nested ErrorResponse."""
    err = {"type": "error", "error": {"type": error_type, "message": message or f"fake {error_type}"}}
    return BatchResultReply({"type": "errored", "error": err})


def batch_expired() -> BatchResultReply:
    """An ``expired`` batch result."""
    return BatchResultReply({"type": "expired"})


def batch_canceled() -> BatchResultReply:
    """A ``canceled`` batch result."""
    return BatchResultReply({"type": "canceled"})


def _coerce(reply: Any) -> Any:
    """Accept plain values as replies: a str is a text reply, a dict a Message template."""
    if isinstance(reply, str):
        return text_reply(reply)
    if isinstance(reply, Mapping):
        d = dict(reply)
        return MessageReply(
            content=list(d.pop("content", [])),
            stop_reason=d.pop("stop_reason", "end_turn"),
            usage=d.pop("usage", None),
            model=d.pop("model", None),
            stop_sequence=d.pop("stop_sequence", None),
            stop_details=d.pop("stop_details", None),
            extra=d,
        )
    return reply


# --------------------------------------------------------------------------- server


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(dt: datetime | None) -> str | None:
    return None if dt is None else dt.isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass
class _Response:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class _Batch:
    id: str
    requests: list[dict[str, Any]]
    created_at: datetime
    poll_rounds: int
    polls: int = 0
    status: str = "in_progress"
    results: list[dict[str, Any]] | None = None
    ended_at: datetime | None = None
    cancel_initiated_at: datetime | None = None


_Handler = LoopbackHandler


class FakeAnthropic(LoopbackServer):
    """The fake server; a context manager (``start()``/``close()`` also work).

    Attributes:
        base_url: ``http://127.0.0.1:<port>`` (for ``Anthropic(base_url=...)`` / ANTHROPIC_BASE_URL).
        requests: every request received, in order: ``{"method", "path", "query", "headers"
            (lower-cased), "json" (parsed body or None), "time", "request_id", "status"}``.
        responder: ``responder(request_json) -> reply``, used when the queue is empty.
        poll_rounds: how many retrieves of a new batch answer ``in_progress`` before it ends.
        errors: exceptions raised by the responder (each also answered as 500 api_error).
    """

    def __init__(
        self,
        responder: Callable[[dict[str, Any]], Any] | None = None,
        *,
        poll_rounds: int = 1,
    ) -> None:
        self.responder = responder
        self.poll_rounds = poll_rounds
        self.requests: list[dict[str, Any]] = []
        self.errors: list[BaseException] = []
        super().__init__()
        self._queue: deque[Any] = deque()
        self._lock = threading.Lock()
        self._batch_lock = threading.RLock()
        self._ids = {kind: itertools.count(1) for kind in ("req", "msg", "toolu", "msgbatch")}
        self._cache: set[tuple[str, str]] = set()
        self._batches: dict[str, _Batch] = {}
        self._stop = threading.Event()

    # ---- lifecycle

    thread_name = "fake-anthropic"

    def _before_close(self) -> None:
        self._stop.set()  # wakes delayed replies

    # ---- test API

    def queue(self, *replies: Any) -> None:
        """Append replies, consumed in order by POST /v1/messages and by batch requests."""
        with self._lock:
            self._queue.extend(replies)

    @property
    def pending(self) -> int:
        """Replies still queued."""
        with self._lock:
            return len(self._queue)

    @property
    def message_requests(self) -> list[dict[str, Any]]:
        """The JSON bodies of POST /v1/messages requests (retries included)."""
        return [r["json"] for r in self.requests if r["method"] == "POST" and r["path"] == "/v1/messages"]

    @property
    def api_keys(self) -> list[str | None]:
        """The key each request carried (x-api-key, or the Bearer token of Authorization), in order."""
        return [_api_key(r["headers"]) for r in self.requests]

    # ---- request handling

    def _next_id(self, kind: str) -> str:
        with self._lock:
            n = next(self._ids[kind])
        return f"{kind}_{n:04d}"

    def _handle(self, h: _Handler) -> None:
        url = urlsplit(h.path)
        raw = h.read_body()
        headers = {k.lower(): v for k, v in h.headers.items()}
        body: Any = None
        bad_json = False
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                bad_json = True
        rid = self._next_id("req")
        entry: dict[str, Any] = {
            "method": h.command,
            "path": url.path,
            "query": url.query,
            "headers": headers,
            "json": body,
            "time": time.time(),
            "request_id": rid,
            "status": None,
        }
        with self._lock:
            self.requests.append(entry)

        try:
            if _api_key(headers) is None:
                resp = self._error(401, "authentication_error", "x-api-key header is required", rid)
            elif bad_json:
                resp = self._error(400, "invalid_request_error", "request body is not valid JSON", rid)
            else:
                resp = self._route(h.command, url.path, body, len(raw), rid)
        except Exception as exc:  # a bug in the fake or the responder: answer, do not hang
            self.errors.append(exc)
            resp = self._error(500, "api_error", f"fake server error: {exc!r}", rid)

        entry["status"] = resp.status
        out = {"request-id": rid, "content-type": "application/json", **resp.headers}
        try:
            h.send_response(resp.status)
            for k, v in out.items():
                h.send_header(k, v)
            h.send_header("content-length", str(len(resp.body)))
            h.end_headers()
            h.wfile.write(resp.body)
            h.wfile.flush()
        except OSError:  # the client gave up (timeout) or the fake is closing
            h.close_connection = True

    def _route(self, method: str, path: str, body: Any, raw_len: int, rid: str) -> _Response:
        parts = [p for p in path.split("/") if p]
        if method == "POST" and parts == ["v1", "messages"]:
            return self._messages(body, raw_len, rid)
        if method == "POST" and parts == ["v1", "messages", "count_tokens"]:
            if not isinstance(body, dict) or "messages" not in body:
                return self._error(400, "invalid_request_error", "messages: Field required", rid)
            return _json_response(200, {"input_tokens": max(1, raw_len // 4)})
        if parts[:3] == ["v1", "messages", "batches"]:
            return self._batches_route(method, parts[3:], body, rid)
        return self._error(404, "not_found_error", f"Not found: {method} {path}", rid)

    def _error(self, status: int, error_type: str, message: str, rid: str, headers=None) -> _Response:
        body = {"type": "error", "error": {"type": error_type, "message": message}, "request_id": rid}
        return _json_response(status, body, dict(headers or {}))

    def _next_reply(self, params: dict[str, Any]) -> Any:
        """The next reply: the queue first, then the responder; None when there is neither."""
        with self._lock:
            if self._queue:
                return _coerce(self._queue.popleft())
        if self.responder is None:
            return None
        try:
            return _coerce(self.responder(params))
        except Exception as exc:
            self.errors.append(exc)
            return ErrorReply(500, "api_error", f"responder raised {exc!r}")

    # ---- /v1/messages

    def _messages(self, body: Any, raw_len: int, rid: str) -> _Response:
        missing = _missing_message_fields(body)
        if missing:
            return self._error(400, "invalid_request_error", missing, rid)
        if body.get("stream"):
            return self._error(400, "invalid_request_error", "the fake does not support stream=true", rid)
        reply = self._next_reply(body)
        while isinstance(reply, DelayReply):
            if self._stop.wait(reply.seconds):
                return self._error(500, "api_error", "fake is closing", rid)
            reply = _coerce(reply.then)
        if reply is None:
            return self._error(500, "api_error", "no reply queued", rid)
        if isinstance(reply, MessageReply):
            return _json_response(200, self._message_json(reply, body, raw_len), dict(reply.headers))
        if isinstance(reply, ErrorReply):
            return self._error(reply.status, reply.error_type, reply.message, rid, reply.headers)
        if isinstance(reply, RawReply):
            return _Response(reply.status, reply.body, dict(reply.headers))
        if isinstance(reply, BatchResultReply):
            return self._error(500, "api_error", "a batch-only reply was queued for /v1/messages", rid)
        raise TypeError(f"not a reply: {reply!r}")

    def _message_json(self, reply: MessageReply, params: dict[str, Any], raw_len: int) -> dict[str, Any]:
        content = []
        for block in reply.content:
            block = dict(block)
            if block.get("type") == "tool_use" and not block.get("id"):
                block["id"] = self._next_id("toolu")
            content.append(block)
        model = reply.model or params.get("model") or DEFAULT_MODEL
        msg: dict[str, Any] = {
            "id": self._next_id("msg"),
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": reply.stop_reason,
            "stop_sequence": reply.stop_sequence,
            "usage": self._usage(params, raw_len, content, reply, model),
        }
        if reply.stop_details is not None:
            msg["stop_details"] = dict(reply.stop_details)
        msg.update(reply.extra)
        return msg

    def _usage(self, params, raw_len, content, reply: MessageReply, model: str) -> dict[str, Any]:
        """Rough token counts (chars / 4) and simulated prompt caching of the system prompt."""
        input_tokens = max(1, raw_len // 4)
        created = read = 0
        prefix, ttl = _cache_prefix(params)
        if prefix:
            cached = max(1, len(prefix) // 4)
            key = (model, prefix)
            with self._lock:
                seen = key in self._cache
                self._cache.add(key)
            if seen:
                read = cached
            else:
                created = cached
            input_tokens = max(1, input_tokens - cached)
        out_chars = 0
        for block in content:
            if block.get("type") == "text":
                out_chars += len(block.get("text", ""))
            elif block.get("type") == "tool_use":
                out_chars += len(json.dumps(block.get("input", {})))
            elif block.get("type") == "thinking":
                out_chars += len(block.get("thinking", ""))
        output_tokens = max(1, math.ceil(out_chars / 4))
        if reply.stop_reason == "max_tokens" and isinstance(params.get("max_tokens"), int):
            output_tokens = params["max_tokens"]
        usage: dict[str, Any] = {
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "cache_creation_input_tokens": created,
            "cache_read_input_tokens": read,
            "cache_creation": {
                "ephemeral_5m_input_tokens": 0 if ttl == "1h" else created,
                "ephemeral_1h_input_tokens": created if ttl == "1h" else 0,
            },
        }
        usage.update(reply.usage or {})
        return usage

    # ---- /v1/messages/batches

    def _batches_route(self, method: str, rest: list[str], body: Any, rid: str) -> _Response:
        if method == "POST" and not rest:
            return self._create_batch(body, rid)
        if method == "GET" and not rest:
            with self._batch_lock:
                data = [self._batch_json(b) for b in reversed(self._batches.values())]
            first = data[0]["id"] if data else None
            last = data[-1]["id"] if data else None
            return _json_response(200, {"data": data, "has_more": False, "first_id": first, "last_id": last})
        batch = self._batches.get(rest[0]) if rest else None
        if batch is None:
            return self._error(404, "not_found_error", f"no batch {rest[0] if rest else ''!r}", rid)
        with self._batch_lock:
            if method == "GET" and len(rest) == 1:
                self._advance(batch)
                return _json_response(200, self._batch_json(batch))
            if method == "GET" and rest[1:] == ["results"]:
                if batch.results is None:
                    return self._error(400, "invalid_request_error", "batch has not ended", rid)
                lines = "".join(json.dumps(r) + "\n" for r in batch.results).encode()
                return _Response(200, lines, {"content-type": "application/binary"})
            if method == "POST" and rest[1:] == ["cancel"]:
                if batch.status == "in_progress":
                    batch.status = "canceling"
                    batch.cancel_initiated_at = _now()
                return _json_response(200, self._batch_json(batch))
        return self._error(404, "not_found_error", f"Not found: {method} batches/{'/'.join(rest)}", rid)

    def _create_batch(self, body: Any, rid: str) -> _Response:
        reqs = body.get("requests") if isinstance(body, dict) else None
        if not isinstance(reqs, list) or not reqs:
            return self._error(400, "invalid_request_error", "requests: must be a non-empty list", rid)
        ids = []
        for i, r in enumerate(reqs):
            if (
                not isinstance(r, dict)
                or not isinstance(r.get("custom_id"), str)
                or not isinstance(r.get("params"), dict)
            ):
                return self._error(400, "invalid_request_error", f"requests.{i}: needs custom_id and params", rid)
            missing = _missing_message_fields(r["params"])
            if missing:
                return self._error(400, "invalid_request_error", f"requests.{i}.params.{missing}", rid)
            ids.append(r["custom_id"])
        if len(set(ids)) != len(ids):
            return self._error(400, "invalid_request_error", "requests: custom_id values must be unique", rid)
        batch = _Batch(self._next_id("msgbatch"), [dict(r) for r in reqs], _now(), self.poll_rounds)
        with self._batch_lock:
            self._batches[batch.id] = batch
            return _json_response(200, self._batch_json(batch))

    def _advance(self, batch: _Batch) -> None:
        """One retrieve: the first ``poll_rounds`` say in_progress, then the batch ends."""
        if batch.status == "canceling":
            self._end(batch)
        elif batch.status == "in_progress":
            if batch.polls >= batch.poll_rounds:
                self._end(batch)
            else:
                batch.polls += 1

    def _end(self, batch: _Batch) -> None:
        results = []
        for r in batch.requests:
            if batch.cancel_initiated_at is not None:
                result: dict[str, Any] = {"type": "canceled"}
            else:
                result = self._batch_result(r["params"])
            results.append({"custom_id": r["custom_id"], "result": result})
        batch.results = results
        batch.status = "ended"
        batch.ended_at = _now()

    def _batch_result(self, params: dict[str, Any]) -> dict[str, Any]:
        reply = self._next_reply(params)
        while isinstance(reply, DelayReply):  # no waiting inside a batch
            reply = _coerce(reply.then)
        if isinstance(reply, MessageReply):
            message = self._message_json(reply, params, len(json.dumps(params)))
            message["usage"].setdefault("service_tier", "batch")
            return {"type": "succeeded", "message": message}
        if isinstance(reply, BatchResultReply):
            return json.loads(json.dumps(reply.result))
        if reply is None:
            error_type, message_text = "api_error", "no reply queued"
        elif isinstance(reply, ErrorReply):
            error_type, message_text = reply.error_type, reply.message
        else:
            error_type, message_text = "api_error", f"reply not supported in a batch: {type(reply).__name__}"
        err = {"type": "error", "error": {"type": error_type, "message": message_text}}
        return {"type": "errored", "error": err}

    def _batch_json(self, b: _Batch) -> dict[str, Any]:
        counts = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        if b.results is None:
            counts["processing"] = len(b.requests)
        else:
            for r in b.results:
                counts[r["result"]["type"]] += 1
        return {
            "id": b.id,
            "type": "message_batch",
            "processing_status": b.status,
            "request_counts": counts,
            "created_at": _iso(b.created_at),
            "expires_at": _iso(b.created_at + timedelta(hours=24)),
            "ended_at": _iso(b.ended_at),
            "cancel_initiated_at": _iso(b.cancel_initiated_at),
            "archived_at": None,
            "results_url": f"{self.base_url}/v1/messages/batches/{b.id}/results" if b.status == "ended" else None,
        }


# --------------------------------------------------------------------------- helpers


def _json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> _Response:
    return _Response(status, json.dumps(body).encode(), {"content-type": "application/json", **(headers or {})})


def _api_key(headers: Mapping[str, str]) -> str | None:
    if headers.get("x-api-key"):
        return headers["x-api-key"]
    auth = headers.get("authorization") or ""
    scheme, _, token = auth.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


def _missing_message_fields(body: Any) -> str | None:
    if not isinstance(body, dict):
        return "body: must be a JSON object"
    if not isinstance(body.get("model"), str):
        return "model: Field required"
    if not isinstance(body.get("max_tokens"), int):
        return "max_tokens: Field required"
    if not isinstance(body.get("messages"), list):
        return "messages: Field required"
    return None


def _cache_prefix(params: dict[str, Any]) -> tuple[str | None, str | None]:
    """The system text up to the last block marked ``cache_control`` (or all of it with top-level
    ``cache_control``), and that marker's ttl. Tools and messages are not simulated."""
    system = params.get("system")
    if isinstance(system, str):
        blocks = [{"type": "text", "text": system}]
    elif isinstance(system, list):
        blocks = [b for b in system if isinstance(b, dict)]
    else:
        return None, None
    marked = [i for i, b in enumerate(blocks) if isinstance(b.get("cache_control"), dict)]
    if marked:
        last, control = marked[-1], blocks[marked[-1]]["cache_control"]
    elif isinstance(params.get("cache_control"), dict) and blocks:
        last, control = len(blocks) - 1, params["cache_control"]
    else:
        return None, None
    prefix = "".join(str(b.get("text", "")) for b in blocks[: last + 1])
    return (prefix or None), control.get("ttl")
