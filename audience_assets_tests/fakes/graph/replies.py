"""Graph-shaped answers: errors, canned replies for ``FakeGraph.inject``, and the usage (throttling) headers."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# code -> (type, message, HTTP status, is_transient)
_ERRORS: dict[int, tuple[str, str, int, bool]] = {
    1: ("OAuthException", "An unknown error occurred", 500, True),
    2: ("OAuthException", "An unexpected error has occurred. Please retry your request later.", 503, True),
    4: ("OAuthException", "(#4) Application request limit reached", 400, True),
    17: ("OAuthException", "(#17) User request limit reached", 400, True),
    32: ("OAuthException", "(#32) Page request limit reached", 400, True),
    100: ("OAuthException", "(#100) Invalid parameter", 400, False),
    190: ("OAuthException", "Invalid OAuth access token - Cannot parse access token", 400, False),
    200: ("OAuthException", "(#200) Ad account owner has NOT grant ads_management or ads_read permission", 400, False),
    341: ("OAuthException", "(#341) Application limit reached", 400, True),
    613: ("OAuthException", "(#613) Calls to this api have exceeded the rate limit.", 400, True),
    2601: ("OAuthException", "(#2601) Error accessing adreport job.", 400, False),
    2635: ("OAuthException", "(#2635) You are calling a deprecated version of the Ads API.", 400, False),
}
_THROTTLE_MESSAGE = (
    "(#{code}) There have been too many calls from this ad-account. Wait a bit and try again. "
    "For more info, please refer to https://developers.facebook.com/docs/graph-api/overview/rate-limiting."
)
# Meta's subcode on the 80000-80014 business-use-case throttles (seen on 80000 and 80004 answers).
BUC_THROTTLE_SUBCODE = 2446079


@dataclass
class Reply:
    """A canned answer for ``FakeGraph.inject``.

    ``body=None`` means "answer normally, but merge ``headers`` (and use ``status`` if not 200)";
    a dict/list body is sent as JSON; ``bytes``/``str`` are sent as they are.
    """

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


class GraphFault(Exception):
    """Raised inside the fake to answer a Graph error."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.body)
        self.reply = reply


def trace_id() -> str:
    return base64.b64encode(os.urandom(9)).decode().replace("+", "A").replace("/", "B")


def graph_error(
    code: int,
    subcode: int | None = None,
    status: int | None = None,
    transient: bool | None = None,
    message: str | None = None,
    *,
    error_type: str | None = None,
    user_title: str | None = None,
    user_msg: str | None = None,
    headers: Mapping[str, str] | None = None,
    error_data: Mapping[str, Any] | None = None,
) -> Reply:
    """An error in Meta's shape: ``{"error": {"message", "type", "code", "error_subcode", "is_transient", "fbtrace_id"}}``.

    Status, type, message and ``is_transient`` default per code (1, 2, 4, 17, 32, 100, 190, 200, 341,
    613, 2601, 80000-80014: 80xxx are transient 400s "too many calls from this ad-account").
    ``error_data`` travels JSON-encoded as a string, as Graph sends it (``{"blame_field_specs": [["daily_budget"]]}``
    is what the SDK's ``api_blame_field_specs()`` reads).
    """
    if 80000 <= code <= 80014:
        d_type, d_msg, d_status, d_transient = "OAuthException", _THROTTLE_MESSAGE.format(code=code), 400, True
    else:
        d_type, d_msg, d_status, d_transient = _ERRORS.get(
            code, ("OAuthException", f"(#{code}) Fake error", 400, False)
        )
    err: dict[str, Any] = {
        "message": message or d_msg,
        "type": error_type or d_type,
        "code": code,
    }
    if subcode is not None:
        err["error_subcode"] = subcode
    err["is_transient"] = d_transient if transient is None else transient
    if user_title:
        err["error_user_title"] = user_title
    if user_msg:
        err["error_user_msg"] = user_msg
    if error_data is not None:
        err["error_data"] = json.dumps(dict(error_data), separators=(",", ":"))
    err["fbtrace_id"] = trace_id()
    return Reply(status or d_status, {"error": err}, dict(headers or {}))


def json_reply(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Reply:
    """Any JSON body with any status."""
    return Reply(status, body, dict(headers or {}))


def raw_reply(status: int, body: bytes | str, headers: Mapping[str, str] | None = None) -> Reply:
    """A non-JSON body (an HTML 502 from a proxy, say); ``content-type`` defaults to text/html."""
    hdrs = {"content-type": "text/html; charset=utf-8", **{k.lower(): v for k, v in (headers or {}).items()}}
    return Reply(status, body.encode() if isinstance(body, str) else body, hdrs)


def business_use_case_usage(
    account_id: str,
    pct: float = 10,
    *,
    kind: str = "ads_management",
    regain_minutes: int = 0,
    tier: str = "standard_access",
) -> str:
    """``x-business-use-case-usage``: JSON keyed by the numeric ad account id."""
    entry = {
        "type": kind,
        "call_count": pct,
        "total_cputime": pct,
        "total_time": pct,
        "estimated_time_to_regain_access": regain_minutes,
        "ads_api_access_tier": tier,
    }
    return json.dumps({account_id.removeprefix("act_"): [entry]})


def ad_account_usage(pct: float = 10, *, reset_seconds: int = 0, tier: str = "standard_access") -> str:
    """``x-ad-account-usage``."""
    return json.dumps({"acc_id_util_pct": pct, "reset_time_duration": reset_seconds, "ads_api_access_tier": tier})


def app_usage(pct: float = 10) -> str:
    """``x-app-usage``."""
    return json.dumps({"call_count": pct, "total_cputime": pct, "total_time": pct})


def insights_throttle(app_pct: float = 10, acc_pct: float = 10, *, tier: str = "standard_access") -> str:
    """``x-fb-ads-insights-throttle``."""
    return json.dumps({"app_id_util_pct": app_pct, "acc_id_util_pct": acc_pct, "ads_api_access_tier": tier})


def throttle_headers(
    account_id: str | None,
    pct: float = 10,
    *,
    regain_minutes: int = 0,
    app_pct: float | None = None,
    kind: str = "ads_management",
    insights: bool = True,
    tier: str = "standard_access",
) -> dict[str, str]:
    """All four usage headers at ``pct`` percent (account-scoped ones only when ``account_id`` is given)."""
    app = pct if app_pct is None else app_pct
    out = {"x-app-usage": app_usage(app)}
    if account_id:
        out["x-business-use-case-usage"] = business_use_case_usage(
            account_id, pct, kind=kind, regain_minutes=regain_minutes, tier=tier
        )
        out["x-ad-account-usage"] = ad_account_usage(pct, reset_seconds=regain_minutes * 60, tier=tier)
    if insights:
        out["x-fb-ads-insights-throttle"] = insights_throttle(app, pct, tier=tier)
    return out


def usage_reply(account_id: str, pct: float, *, regain_minutes: int = 0, app_pct: float | None = None) -> Reply:
    """A normal answer carrying high (or any) usage headers, for ``inject``."""
    return Reply(
        200,
        None,
        throttle_headers(account_id, pct, regain_minutes=regain_minutes, app_pct=app_pct, kind="ads_insights"),
    )


def throttle_error(
    code: int,
    account_id: str | None,
    *,
    pct: float = 100,
    regain_minutes: int = 5,
    subcode: int | None = None,
    kind: str = "ads_management",
    insights: bool = False,
) -> Reply:
    """A rate-limit error (4, 17, 32, 613, 80000-80014) with the usage headers that go with it, for ``inject``.

    80000-80014 get Meta's subcode 2446079 unless ``subcode`` is given; the headers report ``pct`` percent
    and ``regain_minutes`` (``estimated_time_to_regain_access``). Code 4 is app-wide: its ``x-app-usage``
    carries ``pct`` while the account headers do too (Meta sends whichever it has; parse both).
    """
    if subcode is None and 80000 <= code <= 80014:
        subcode = BUC_THROTTLE_SUBCODE
    headers = throttle_headers(account_id, pct, regain_minutes=regain_minutes, kind=kind, insights=insights)
    return graph_error(code, subcode, headers=headers)
