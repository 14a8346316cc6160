"""Writes to Meta ad sets through the real facebook-business SDK: live reads before a write, the write
itself (or Meta's `validate_only` dry run), and the read-back after it.

Reads retry like every read of `MetaClient`. A write is sent once and never retried here: a second
copy of an ad set cannot be undone by reconciling, and a budget or status write is verified by
reading the ad set back, which tells an applied write from a lost one.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from facebook_business.adobjects.adset import AdSet
from facebook_business.adobjects.campaign import Campaign
from facebook_business.exceptions import FacebookRequestError

from audience_assets.integrations.meta import TRANSPORT_ERRORS, MetaClient, MetaError, MetaSettings, redact

STATE_FIELDS = [
    "id",
    "name",
    "campaign_id",
    "status",
    "effective_status",
    "daily_budget",
    "lifetime_budget",
    "learning_stage_info",
]
CAMPAIGN_STATE_FIELDS = ["id", "daily_budget", "lifetime_budget", "status"]
BUDGET_EVENTS = ("update_ad_set_budget",)
COPY_EVENTS = ("create_ad_set",)


class MetaWriteError(MetaError):
    """A write (or the read around it) that Meta refused or that did not reach Meta."""

    def __init__(self, message: str, code: int | None = None, subcode: int | None = None, trace_id: str = "") -> None:
        super().__init__(message, code)
        self.subcode = subcode
        self.trace_id = trace_id


@dataclass
class WriteResult:
    """What Meta answered to one write: the JSON body and its trace id (the request id Meta support asks for)."""

    body: dict[str, Any]
    trace_id: str = ""
    sent: dict[str, Any] = field(default_factory=dict)


def _int(value: Any) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def graph_time(text: str) -> datetime:
    """Graph's `2026-11-20T10:15:00+0530` as an aware datetime."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S%z")


def live_state(raw: dict[str, Any]) -> dict[str, Any]:
    """The fields the pre-write checks read, from an ad set node (budgets as integers in minor units)."""
    campaign = raw.get("campaign") or {}
    learning = raw.get("learning_stage_info") or {}
    edited = learning.get("last_sig_edit_ts")
    return {
        "adset_id": str(raw.get("id", "")),
        "name": raw.get("name") or "",
        "campaign_id": raw.get("campaign_id"),
        "status": raw.get("status"),
        "effective_status": raw.get("effective_status"),
        "daily_budget": _int(raw.get("daily_budget")),
        "lifetime_budget": _int(raw.get("lifetime_budget")),
        "campaign_daily_budget": _int(campaign.get("daily_budget")),
        "campaign_lifetime_budget": _int(campaign.get("lifetime_budget")),
        "learning_status": learning.get("status"),
        "last_significant_edit_at": datetime.fromtimestamp(int(edited), UTC) if edited else None,
    }


class MetaWriter:
    """One SDK session for an execution run; `token_can_write` is Meta's answer, not an assumption."""

    def __init__(self, settings: MetaSettings, sleep: Callable[[float], None] = time.sleep) -> None:
        self.settings = settings
        self.reader = MetaClient(settings, sleep=sleep)
        self.api = self.reader.api

    def redact(self, text: str) -> str:
        return redact(text, self.settings.access_token, self.settings.app_secret)

    def adset(self, adset_id: str) -> dict[str, Any]:
        """The ad set's live state (see `live_state`) plus the raw nodes, for the log: the ad set, then
        its campaign (whose budget means campaign budget optimisation)."""
        node = AdSet(adset_id, api=self.api)
        raw = self.reader._call(lambda: node.api_get(fields=STATE_FIELDS), adset_id).export_all_data()
        if raw.get("campaign_id"):
            campaign = Campaign(str(raw["campaign_id"]), api=self.api)
            got = self.reader._call(lambda: campaign.api_get(fields=CAMPAIGN_STATE_FIELDS), adset_id)
            raw["campaign"] = got.export_all_data()
        return {"state": live_state(raw), "raw": raw}

    def events(self, adset_id: str, since: datetime, kinds: tuple[str, ...] = BUDGET_EVENTS) -> list[dict[str, Any]]:
        """Activities of the ad set since a moment: event type, time, actor and application."""
        node = AdSet(adset_id, api=self.api)
        params = {
            "since": since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+0000"),
            "fields": "event_type,event_time,actor_name,application_name,extra_data,object_id",
            "limit": self.settings.page_size,
        }
        rows = self.reader._rows(lambda: node.get_activities(params=params), adset_id)
        return [r for r in rows if r.get("event_type") in kinds]

    def copies_named(self, campaign_id: str, suffix: str) -> list[dict[str, Any]]:
        """Ad sets of a campaign whose name ends with `suffix`: how a duplicate finds its earlier self."""
        node = Campaign(campaign_id, api=self.api)
        params = {"limit": self.settings.page_size}
        rows = self.reader._rows(lambda: node.get_ad_sets(fields=["id", "name", "status"], params=params), campaign_id)
        return [r for r in rows if str(r.get("name", "")).endswith(suffix)]

    def _post(self, path: tuple[str, ...], params: dict[str, Any], validate_only: bool) -> WriteResult:
        sent = dict(params)
        if validate_only:
            sent["execution_options"] = ["validate_only"]
        try:
            response = self.api.call("POST", path, params=dict(sent))
        except FacebookRequestError as err:
            body = err.body() if isinstance(err.body(), dict) else {}
            trace = str((body.get("error") or {}).get("fbtrace_id") or "")
            message = self.redact(str(err.api_error_message()))
            raise MetaWriteError(
                f"Meta error code {err.api_error_code()} (subcode {err.api_error_subcode()}): {message}",
                err.api_error_code(),
                err.api_error_subcode(),
                trace,
            ) from None
        except TRANSPORT_ERRORS as err:
            raise MetaWriteError(f"the write did not complete: {type(err).__name__}: {self.redact(str(err))}") from None
        headers = {k.lower(): v for k, v in (response.headers() or {}).items()}
        body = response.json() if isinstance(response.json(), dict) else {"raw": json.dumps(response.json())}
        return WriteResult(body=body, trace_id=headers.get("x-fb-trace-id", ""), sent=sent)

    def set_daily_budget(self, adset_id: str, minor_units: int, validate_only: bool) -> WriteResult:
        """An absolute daily budget in minor units, never a relative change."""
        return self._post((adset_id,), {"daily_budget": str(int(minor_units))}, validate_only)

    def set_status(self, adset_id: str, status: str, validate_only: bool) -> WriteResult:
        return self._post((adset_id,), {"status": status}, validate_only)

    def duplicate(self, adset_id: str, suffix: str, validate_only: bool) -> WriteResult:
        """A copy of the ad set, created paused and named with `suffix`; the original is not touched."""
        params = {
            "status_option": "PAUSED",
            "deep_copy": False,
            "rename_options": {"rename_strategy": "ONLY_TOP_LEVEL_RENAME", "rename_suffix": suffix},
        }
        return self._post((adset_id, "copies"), params, validate_only)
