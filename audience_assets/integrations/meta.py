"""The only place the facebook-business SDK is imported: reading ad accounts (never writing).

One `MetaClient` per run: an explicit session and API object (no global default, no crash
reporter), paging every cursor, retrying transient errors per page with backoff and jitter,
slowing down when the usage headers approach the limit, and running long ranges as async
report runs that are split in halves when Meta fails or skips them.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import requests
from facebook_business.adobjects.adaccount import AdAccount
from facebook_business.adobjects.adreportrun import AdReportRun
from facebook_business.api import FacebookAdsApi, FacebookSession
from facebook_business.exceptions import FacebookBadObjectError, FacebookRequestError

from audience_assets.integrations.call_slots import CallSlots, default_folder, meta_call_limit

DEFAULT_GRAPH = "https://graph.facebook.com"
# The SDK parses a non-JSON error body (an HTML 502) into a TypeError: retried like a 5xx.
TRANSPORT_ERRORS = (requests.RequestException, TypeError, json.JSONDecodeError, FacebookBadObjectError)
TRANSIENT_CODES = {1, 2, 4, 17, 32, 341, 613} | set(range(80000, 80015))
FATAL_CODES = {
    190: "the access token is invalid or expired (code 190): create a new token with ads_read",
    200: "the token lacks a permission for this account (code 200): it needs ads_read on {account}",
    100: "Meta rejected a parameter (code 100)",
}
INSIGHT_FIELDS = [
    "account_id",
    "account_currency",
    "campaign_id",
    "campaign_name",
    "adset_id",
    "adset_name",
    "date_start",
    "date_stop",
    "spend",
    "impressions",
    "clicks",
    "inline_link_clicks",
    "reach",
    "frequency",
    "actions",
    "action_values",
    "purchase_roas",
]
ADSET_FIELDS = [
    "id",
    "name",
    "campaign_id",
    "status",
    "effective_status",
    "created_time",
    "daily_budget",
    "lifetime_budget",
    "bid_strategy",
    "targeting",
    "learning_stage_info",
]
CAMPAIGN_FIELDS = ["id", "name", "daily_budget", "lifetime_budget", "bid_strategy"]
TOO_MUCH_DATA = 1487534
USAGE_HEADERS = ("x-business-use-case-usage", "x-ad-account-usage", "x-app-usage", "x-fb-ads-insights-throttle")


_SECRET_PARAMS = re.compile(r"(access_token|appsecret_proof|client_secret)=[^&\s'\"]+")


def redact(text: str, *secrets: str | None) -> str:
    """Error text without tokens: requests puts the full URL, query string included, in its messages."""
    out = _SECRET_PARAMS.sub(r"\1=***", text)
    for secret in secrets:
        if secret:
            out = out.replace(secret, "***")
    return out


class MetaError(RuntimeError):
    """A Meta API failure a user must act on (token, permission, parameter) or that outlasted retries;
    `code` is Meta's error code when Meta answered with one."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class MetaTooLarge(MetaError):
    """Meta asks for less data in one synchronous read (code 100, subcode 1487534)."""


@dataclass
class MetaSettings:
    access_token: str
    api_version: str = "v26.0"
    graph_url: str | None = None
    app_secret: str | None = None
    page_size: int = 500
    attribution_windows: tuple[str, ...] = ("7d_click", "1d_view")
    async_after_days: int = 8
    max_retries: int = 6
    backoff_seconds: float = 2.0
    max_backoff_seconds: float = 300.0
    throttle_at_pct: float = 75.0
    throttle_pause_seconds: float = 60.0
    async_poll_seconds: float = 2.0
    async_timeout_seconds: float = 3600.0
    timeout_seconds: float = 120.0


@dataclass
class MetaStats:
    """What the client did: for metadata and the throughput benchmark."""

    retries: int = 0
    throttle_pauses: int = 0
    slept_seconds: float = 0.0
    async_jobs: int = 0
    async_splits: int = 0
    max_usage_pct: float = 0.0
    errors: list[str] = field(default_factory=list)


def _max_usage(headers: dict[str, str]) -> tuple[float, float]:
    """Highest usage percentage in Meta's throttling headers, and any wait Meta asks for (s)."""
    lower = {k.lower(): v for k, v in (headers or {}).items()}
    pct, wait = 0.0, 0.0

    def walk(node: Any) -> None:
        nonlocal pct, wait
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "estimated_time_to_regain_access" and isinstance(value, (int, float)):
                    wait = max(wait, float(value) * 60.0)  # Meta gives minutes
                elif key in ("call_count", "total_cputime", "total_time") or key.endswith("_util_pct"):
                    if isinstance(value, (int, float)):
                        pct = max(pct, float(value))
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    for name in USAGE_HEADERS:
        raw = lower.get(name)
        if not raw:
            continue
        try:
            walk(json.loads(raw))
        except (json.JSONDecodeError, TypeError):
            continue
    return pct, wait


class MetaClient:
    """Reads one or more ad accounts through the real SDK."""

    def __init__(
        self,
        settings: MetaSettings,
        sleep: Callable[[float], None] = time.sleep,
        seed: int | None = None,
        slots: CallSlots | None = None,
    ):
        self.settings = settings
        self.stats = MetaStats()
        # Every request holds one of the machine-wide slots: account runs in parallel processes
        # share AUDIENCE_ENGINE_META_MAX_CALLS concurrent calls between them.
        self.slots = slots or CallSlots(meta_call_limit(), default_folder("meta"))
        self._sleep = sleep
        self._rng = random.Random(seed)
        session = FacebookSession(
            access_token=settings.access_token, app_secret=settings.app_secret, timeout=settings.timeout_seconds
        )
        # A class attribute in the SDK: set on this session only, so nothing global changes.
        session.GRAPH = (settings.graph_url or DEFAULT_GRAPH).rstrip("/")
        self.api = FacebookAdsApi(session, api_version=settings.api_version)

    def redact(self, text: str) -> str:
        """Text without this client's token or app secret."""
        return redact(text, self.settings.access_token, self.settings.app_secret)

    # Retries, throttling --------------------------------------------------------------------
    def _wait(self, seconds: float) -> None:
        self.stats.slept_seconds += seconds
        self._sleep(seconds)

    def _observe(self, headers: Any) -> None:
        pct, wait = _max_usage(dict(headers or {}))
        self.stats.max_usage_pct = max(self.stats.max_usage_pct, pct)
        if pct >= self.settings.throttle_at_pct or wait > 0:
            self.stats.throttle_pauses += 1
            self._wait(max(wait, self.settings.throttle_pause_seconds * pct / 100.0))

    def _back_off(self, attempt: int) -> None:
        """Exponential backoff with jitter (0.5x-1.5x of the step) before retry number `attempt`."""
        self.stats.retries += 1
        delay = min(self.settings.max_backoff_seconds, self.settings.backoff_seconds * 2 ** (attempt - 1))
        self._wait(delay * (0.5 + self._rng.random()))

    def _on_error(self, err: FacebookRequestError, attempt: int, account: str) -> None:
        """Sleep before a retry of a transient error; raise MetaError for anything else."""
        code = err.api_error_code()
        self._observe(err.http_headers())
        if code == 100 and (
            err.api_error_subcode() == TOO_MUCH_DATA or "reduce the amount" in (err.api_error_message() or "")
        ):
            raise MetaTooLarge(f"{account}: Meta asks to reduce the amount of data in one read")
        if code in FATAL_CODES:
            message = redact(str(err.api_error_message()), self.settings.access_token, self.settings.app_secret)
            raise MetaError(f"{account}: " + FATAL_CODES[code].format(account=account) + f": {message}", code)
        transient = code in TRANSIENT_CODES or err.api_transient_error() or (err.http_status() or 0) >= 500
        if not transient or attempt >= self.settings.max_retries:
            raise MetaError(
                f"{account}: Meta error code {code} (subcode {err.api_error_subcode()}, HTTP {err.http_status()})"
                f" after {attempt} attempt(s): "
                + redact(str(err.api_error_message()), self.settings.access_token, self.settings.app_secret),
                code,
            )
        self._back_off(attempt)

    def _on_transport_error(self, err: Exception, attempt: int, account: str) -> None:
        """Connection drops, timeouts and non-JSON 5xx bodies (the SDK raises TypeError on those)."""
        if attempt >= self.settings.max_retries:
            message = redact(str(err), self.settings.access_token, self.settings.app_secret)
            raise MetaError(
                f"{account}: request failed after {attempt} attempt(s): {type(err).__name__}: {message}"
            ) from None
        self._back_off(attempt)

    def _call(self, fn: Callable[[], Any], account: str) -> Any:
        attempt = 0
        while True:
            attempt += 1
            try:
                with self.slots.held():
                    return fn()
            except FacebookRequestError as err:
                self._on_error(err, attempt, account)
            except TRANSPORT_ERRORS as err:
                self._on_transport_error(err, attempt, account)

    def _rows(self, make_cursor: Callable[[], Any], account: str) -> Iterator[dict[str, Any]]:
        """Every row of a cursor. A failed page is asked for again from the same position: the
        cursor's paging state is restored first, since the SDK may have moved it before failing."""
        cursor = self._call(make_cursor, account)  # the SDK loads the first page here
        self._observe(cursor.headers() if hasattr(cursor, "headers") else {})
        attempt = 0
        while True:
            while cursor._queue:
                item = cursor._queue.pop(0)
                yield item.export_all_data() if hasattr(item, "export_all_data") else dict(item)
            if cursor._finished_iteration:
                return
            saved = dict(cursor.params)
            try:
                with self.slots.held():
                    cursor.load_next_page()
            except (FacebookRequestError, *TRANSPORT_ERRORS) as err:
                cursor.params, cursor._finished_iteration, cursor._queue = saved, False, []
                attempt += 1
                if isinstance(err, FacebookRequestError):
                    self._on_error(err, attempt, account)
                else:
                    self._on_transport_error(err, attempt, account)
                continue
            attempt = 0
            self._observe(cursor.headers())

    @property
    def requests_made(self) -> int:
        """HTTP requests the SDK attempted (retries included)."""
        return int(getattr(self.api, "_num_requests_attempted", 0))

    # Reads ---------------------------------------------------------------------------------------
    def account(self, account_id: str) -> dict[str, Any]:
        acct = AdAccount(account_id, api=self.api)
        data = self._call(lambda: acct.api_get(fields=["account_id", "name", "currency", "timezone_name"]), account_id)
        return data.export_all_data()

    def adsets(self, account_id: str) -> list[dict[str, Any]]:
        acct = AdAccount(account_id, api=self.api)
        params = {"limit": self.settings.page_size}
        return list(self._rows(lambda: acct.get_ad_sets(fields=ADSET_FIELDS, params=params), account_id))

    def campaigns(self, account_id: str) -> list[dict[str, Any]]:
        acct = AdAccount(account_id, api=self.api)
        params = {"limit": self.settings.page_size}
        return list(self._rows(lambda: acct.get_campaigns(fields=CAMPAIGN_FIELDS, params=params), account_id))

    def budget_changes(self, account_id: str, since: date) -> list[dict[str, Any]]:
        """Budget-update events from the account's activity log since a date."""
        acct = AdAccount(account_id, api=self.api)
        params = {
            "limit": self.settings.page_size,
            "since": since.isoformat(),
            "fields": "event_type,event_time,object_id,object_type,extra_data",
        }
        rows = self._rows(lambda: acct.get_activities(params=params), account_id)
        return [r for r in rows if "budget" in str(r.get("event_type", ""))]

    def _insight_params(self, since: date, until: date) -> dict[str, Any]:
        return {
            "level": "adset",
            "time_increment": 1,
            "time_range": {"since": since.isoformat(), "until": until.isoformat()},
            "action_attribution_windows": list(self.settings.attribution_windows),
            "limit": self.settings.page_size,
        }

    def insights(self, account_id: str, since: date, until: date) -> list[dict[str, Any]]:
        """Daily ad-set rows for [since, until]: synchronous for short ranges, async report runs for long."""
        days = (until - since).days + 1
        if days <= self.settings.async_after_days:
            return self._sync_insights(account_id, since, until)
        return self._async_insights(account_id, since, until)

    def _sync_insights(self, account_id: str, since: date, until: date) -> list[dict[str, Any]]:
        acct = AdAccount(account_id, api=self.api)
        params = self._insight_params(since, until)
        try:
            return list(self._rows(lambda: acct.get_insights(fields=INSIGHT_FIELDS, params=params), account_id))
        except MetaTooLarge:
            if since == until:
                raise
            return self._split(account_id, since, until, "too much data for one read")

    def _async_insights(self, account_id: str, since: date, until: date) -> list[dict[str, Any]]:
        acct = AdAccount(account_id, api=self.api)
        params = self._insight_params(since, until)
        self.stats.async_jobs += 1
        job = self._call(lambda: acct.get_insights(fields=INSIGHT_FIELDS, params=params, is_async=True), account_id)
        started = time.monotonic()
        wait = self.settings.async_poll_seconds
        status = None
        while True:
            job = self._call(job.api_get, account_id)
            status = job.get(AdReportRun.Field.async_status)
            if status == "Job Completed":
                break
            if status in ("Job Failed", "Job Skipped"):
                return self._split(account_id, since, until, status)
            if time.monotonic() - started > self.settings.async_timeout_seconds:
                return self._split(account_id, since, until, "timed out")
            self._wait(wait)
            wait = min(wait * 1.5, 60.0)
        report = job
        return list(self._rows(lambda: report.get_result(params={"limit": self.settings.page_size}), account_id))

    def _split(self, account_id: str, since: date, until: date, why: str) -> list[dict[str, Any]]:
        """A failed or skipped report run is retried as two halves, down to synchronous single days."""
        self.stats.async_splits += 1
        self.stats.errors.append(f"{account_id} {since}..{until}: {why}; split")
        if since == until:
            return self._sync_insights(account_id, since, until)
        middle = since + timedelta(days=(until - since).days // 2)
        left = self.insights(account_id, since, middle)
        right = self.insights(account_id, middle + timedelta(days=1), until)
        return left + right
