"""A local fake of Slack for tests: incoming webhooks and the Web API methods the engine uses.

A ``ThreadingHTTPServer`` on 127.0.0.1 answering the real ``slack_sdk`` clients:

- ``POST /services/<...>`` (an incoming webhook URL: ``f"{fake.base_url}/services/T000/B000/XXXX"``):
  200 ``ok`` as text, as Slack does; 400 ``invalid_blocks`` / ``too_many_blocks`` for a message
  over Slack's limits (50 blocks, 3,000 characters of section text, 150 of header text);
- ``POST /api/<method>`` for ``auth.test``, ``chat.postMessage``, ``chat.update``: JSON
  ``{"ok": true, ...}``; a bot token must be sent as ``Authorization: Bearer xoxb-...``
  (``invalid_auth`` otherwise, and ``not_authed`` without one). Set the SDK client's ``base_url`` to
  ``f"{fake.base_url}/api/"``.

``fail_next(*replies)`` queues replies for the next requests (``(status, body, headers)``: e.g.
``(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "0"})`` or ``(500, "oops", {})``).
Every request is recorded in ``requests`` as ``{"path", "headers", "body" (text), "json" (parsed or
None), "form"}``; ``messages`` keeps the posted and updated messages by ``ts``.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections import deque
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .loopback import LoopbackHandler, LoopbackServer

MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3000
MAX_HEADER_TEXT = 150


def blocks_problem(blocks: list[dict[str, Any]] | None) -> str | None:
    """Why Slack would refuse these blocks, or None."""
    if not blocks:
        return None
    if len(blocks) > MAX_BLOCKS:
        return "too_many_blocks"
    for b in blocks:
        text = (b.get("text") or {}).get("text", "")
        if b.get("type") == "header" and len(text) > MAX_HEADER_TEXT:
            return "invalid_blocks"
        if b.get("type") == "section" and len(text) > MAX_SECTION_TEXT:
            return "invalid_blocks"
        for f in b.get("fields") or []:
            if len(f.get("text", "")) > 2000:
                return "invalid_blocks"
        if b.get("type") == "actions" and len(b.get("elements") or []) > 25:
            return "invalid_blocks"
    return None


class FakeSlack(LoopbackServer):
    thread_name = "fake-slack"

    def __init__(self, bot_token: str = "xoxb-test-token") -> None:
        super().__init__()
        self.bot_token = bot_token
        self.requests: list[dict[str, Any]] = []
        self.messages: dict[str, dict[str, Any]] = {}
        self._replies: deque[tuple[int, Any, dict[str, str]]] = deque()
        self._ts = itertools.count(1)
        self._lock = threading.Lock()

    @property
    def webhook_url(self) -> str:
        return f"{self.base_url}/services/T000/B000/XXXXXXXX"

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api/"

    def fail_next(self, *replies: tuple[int, Any, dict[str, str]]) -> None:
        with self._lock:
            self._replies.extend(replies)

    def posts(self, kind: str = "") -> list[dict[str, Any]]:
        """Recorded requests whose path contains `kind` (e.g. "services", "chat.postMessage")."""
        return [r for r in self.requests if kind in r["path"]]

    def _handle(self, h: LoopbackHandler) -> None:
        path = urlsplit(h.path).path
        raw = h.read_body().decode("utf-8", "replace")
        ctype = (h.headers.get("content-type") or "").lower()
        parsed: Any = None
        form: dict[str, str] = {}
        if "json" in ctype:
            try:
                parsed = json.loads(raw)
            except json.JSONDecodeError:
                parsed = None
        elif raw:
            form = {k: v[0] for k, v in parse_qs(raw).items()}
            parsed = {k: (json.loads(v) if k in ("blocks", "attachments") else v) for k, v in form.items()}
        entry = {"path": path, "headers": {k.lower(): v for k, v in h.headers.items()}, "body": raw, "json": parsed}
        with self._lock:
            self.requests.append(entry)
            injected = self._replies.popleft() if self._replies else None
        status, body, headers = injected or self._answer(path, entry)
        payload = body if isinstance(body, str) else json.dumps(body)
        h.send_response(status)
        h.send_header("content-type", "text/plain" if isinstance(body, str) else "application/json")
        for k, v in headers.items():
            h.send_header(k, v)
        data = payload.encode()
        h.send_header("content-length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    def _answer(self, path: str, entry: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        body = entry["json"] or {}
        if path.startswith("/services/"):
            problem = blocks_problem(body.get("blocks"))
            return (400, problem, {}) if problem else (200, "ok", {})
        if not path.startswith("/api/"):
            return 404, "not found", {}
        auth = entry["headers"].get("authorization", "")
        if not auth:
            return 200, {"ok": False, "error": "not_authed"}, {}
        if auth != f"Bearer {self.bot_token}":
            return 200, {"ok": False, "error": "invalid_auth"}, {}
        method = path.removeprefix("/api/")
        if method == "auth.test":
            return 200, {"ok": True, "user_id": "UBOT", "team_id": "T000", "bot_id": "B000", "user": "engine"}, {}
        problem = blocks_problem(body.get("blocks"))
        if problem:
            return 200, {"ok": False, "error": problem}, {}
        if method == "chat.postMessage":
            ts = f"1700000000.{next(self._ts):06d}"
            with self._lock:
                self.messages[ts] = {
                    "channel": body.get("channel"),
                    "blocks": body.get("blocks"),
                    "text": body.get("text"),
                }
            return 200, {"ok": True, "channel": body.get("channel"), "ts": ts}, {}
        if method == "chat.update":
            ts = body.get("ts")
            with self._lock:
                if ts not in self.messages:
                    return 200, {"ok": False, "error": "message_not_found"}, {}
                self.messages[ts] = {
                    "channel": body.get("channel"),
                    "blocks": body.get("blocks"),
                    "text": body.get("text"),
                }
            return 200, {"ok": True, "channel": body.get("channel"), "ts": ts}, {}
        return 200, {"ok": False, "error": "unknown_method"}, {}
