"""The only place slack_sdk and slack_bolt are imported: posting Block Kit messages (an incoming
webhook, or the Web API with a bot token) and serving Slack's interactivity requests (bolt, HTTP mode).

The adapter knows Slack, not our tables: what a click means is a callable handed in.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.webhook import WebhookClient

DEFAULT_API_URL = "https://slack.com/api/"


@dataclass(frozen=True)
class SlackSettings:
    webhook_url: str | None = None
    bot_token: str | None = None
    channel: str | None = None
    api_url: str | None = None
    max_retries: int = 3
    timeout_seconds: int = 15

    @property
    def configured(self) -> str | None:
        """How messages are posted ("bot" or "webhook"), or None when Slack is not configured."""
        if self.bot_token and self.channel:
            return "bot"
        if self.webhook_url:
            return "webhook"
        return None


def settings_from_env() -> SlackSettings:
    """Slack settings from the environment (the CLI; Dagster resolves the same names through EnvVar)."""
    env = os.environ.get
    return SlackSettings(env("SLACK_WEBHOOK_URL"), env("SLACK_BOT_TOKEN"), env("SLACK_CHANNEL"), env("SLACK_API_URL"))


@dataclass
class PostResult:
    ok: bool
    ts: str | None = None
    channel: str | None = None
    error: str | None = None


def _retries(n: int) -> list[Any]:
    return [
        ConnectionErrorRetryHandler(max_retry_count=n),
        RateLimitErrorRetryHandler(max_retry_count=n),
        ServerErrorRetryHandler(max_retry_count=n),
    ]


def _redact(text: str, settings: SlackSettings) -> str:
    for secret in (settings.bot_token, settings.webhook_url):
        if secret:
            text = text.replace(secret, "***")
    return text


class SlackPoster:
    """Posts messages; every failure comes back as a PostResult, never as an exception."""

    def __init__(self, settings: SlackSettings) -> None:
        self.settings = settings
        self.mode = settings.configured
        retries = _retries(settings.max_retries)
        if self.mode == "bot":
            self._web = WebClient(
                token=settings.bot_token, base_url=settings.api_url or DEFAULT_API_URL,
                timeout=settings.timeout_seconds, retry_handlers=retries,
            )  # fmt: skip
        elif self.mode == "webhook":
            self._hook = WebhookClient(
                str(settings.webhook_url), timeout=settings.timeout_seconds, retry_handlers=retries
            )

    def post(self, text: str, blocks: list[dict[str, Any]]) -> PostResult:
        try:
            if self.mode == "bot":
                answer = self._web.chat_postMessage(channel=str(self.settings.channel), text=text, blocks=blocks)
                return PostResult(True, ts=answer.get("ts"), channel=answer.get("channel"))
            if self.mode == "webhook":
                response = self._hook.send(text=text, blocks=blocks)
                if response.status_code == 200:
                    return PostResult(True)
                return PostResult(False, error=f"HTTP {response.status_code}: {response.body}")
        except SlackApiError as err:
            return PostResult(False, error=f"Slack error: {err.response.get('error')}")
        except (SlackClientError, OSError) as err:
            return PostResult(False, error=_redact(f"{type(err).__name__}: {err}", self.settings))
        return PostResult(False, error="Slack is not configured")

    def update(self, channel: str, ts: str, text: str, blocks: list[dict[str, Any]]) -> PostResult:
        if self.mode != "bot":
            return PostResult(False, error="updating a message needs a bot token")
        try:
            answer = self._web.chat_update(channel=channel, ts=ts, text=text, blocks=blocks)
            return PostResult(True, ts=answer.get("ts"), channel=channel)
        except SlackApiError as err:
            return PostResult(False, error=f"Slack error: {err.response.get('error')}")
        except (SlackClientError, OSError) as err:
            return PostResult(False, error=_redact(f"{type(err).__name__}: {err}", self.settings))


@dataclass(frozen=True)
class Click:
    """One button click from Slack: who, which button, its value, and the message it sits in."""

    user_id: str
    user_name: str
    action_id: str
    value: str
    channel: str | None
    ts: str | None
    blocks: list[dict[str, Any]]


def build_app(
    settings: SlackSettings,
    signing_secret: str,
    on_click: Callable[[Click], tuple[str, list[dict[str, Any]] | None]],
    action_ids: tuple[str, ...] = ("approve", "reject"),
) -> Any:
    """A bolt App (HTTP mode) that verifies every request (signature and timestamp: bolt refuses a
    forged or stale one with 401), acknowledges clicks at once, hands each to `on_click`, which
    returns (a reply for the user, the message's new blocks or None), and updates the message."""
    from slack_bolt import App

    client = WebClient(token=settings.bot_token, base_url=settings.api_url or DEFAULT_API_URL,
                       retry_handlers=_retries(settings.max_retries))  # fmt: skip
    # The decision is recorded before Slack gets its answer (well within its 3 s): a click either counts
    # or the user sees why not, never a silent background failure.
    app = App(
        signing_secret=signing_secret, client=client, token_verification_enabled=False, process_before_response=True
    )

    def handle(ack: Callable[..., Any], body: dict[str, Any], respond: Callable[..., Any]) -> None:
        ack()
        action = (body.get("actions") or [{}])[0]
        message = body.get("message") or {}
        click = Click(
            user_id=str((body.get("user") or {}).get("id", "")),
            user_name=str((body.get("user") or {}).get("username") or (body.get("user") or {}).get("name") or ""),
            action_id=str(action.get("action_id", "")), value=str(action.get("value", "")),
            channel=(body.get("channel") or {}).get("id"), ts=message.get("ts"), blocks=message.get("blocks") or [],
        )  # fmt: skip
        reply, blocks = on_click(click)
        if blocks is not None and click.channel and click.ts:
            client.chat_update(channel=click.channel, ts=click.ts, text=reply, blocks=blocks)
        respond(text=reply, response_type="ephemeral", replace_original=False)

    for action_id in action_ids:
        app.action(action_id)(handle)
    return app


def serve_app(app: Any, host: str, port: int) -> None:
    """Serve the interactivity request URL (POST /slack/events) with uvicorn through bolt's Starlette adapter."""
    import uvicorn
    from slack_bolt.adapter.starlette import SlackRequestHandler
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.routing import Route

    handler = SlackRequestHandler(app)

    async def events(request: Request) -> Any:
        return await handler.handle(request)

    web = Starlette(routes=[Route("/slack/events", endpoint=events, methods=["POST"])])
    uvicorn.run(web, host=host, port=port, log_level="warning")
