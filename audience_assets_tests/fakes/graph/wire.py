"""The wire: how the SDK encodes parameters, how Graph names fields, and how Graph pages an edge.

The SDK (``FacebookAdsApi.call`` -> ``_top_level_param_json_encode``) JSON-encodes dicts, lists and bools
(``time_range={"since":..}``, ``execution_options=["validate_only"]``, ``deep_copy=true``) and sends
numbers and strings as they are; GET parameters travel in the query string, POST ones form-encoded.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any
from urllib.parse import parse_qs, urlencode

from .replies import GraphFault, graph_error

DEFAULT_PAGE_LIMIT = 25  # Graph's default page size for edges

NODE_TYPES = {
    "account": "AdAccount",
    "campaign": "AdCampaignGroup",
    "adset": "AdCampaign",
    "report_run": "AdReportRun",
    "custom_audience": "CustomAudience",
    "activity": "AdActivity",
    "minimum_budget": "MinimumBudget",
}


def flat(qs: str) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(qs, keep_blank_values=True).items()}


def decode_body(form: Mapping[str, str]) -> dict[str, Any]:
    """A POST body as the caller wrote it: the inverse of the SDK's encoding.

    Values that are JSON lists, objects or booleans are decoded (``execution_options`` -> ``["validate_only"]``,
    ``deep_copy`` -> ``True``); everything else stays the string that was sent (``daily_budget`` -> ``"500000"``).
    """
    out: dict[str, Any] = {}
    for key, raw in form.items():
        value: Any = raw
        if raw[:1] in ("[", "{") or raw in ("true", "false"):
            try:
                decoded = json.loads(raw)
            except ValueError:
                decoded = None
            if isinstance(decoded, (list, dict, bool)):
                value = decoded
        out[key] = value
    return out


def split_fields(raw: str | None) -> list[str]:
    """``fields`` as the SDK sends it: comma-separated (Cursor) or a JSON list (async POST); braces nest."""
    if raw is None or raw == "":
        return []
    raw = raw.strip()
    if raw.startswith("["):
        try:
            return [str(f) for f in json.loads(raw)]
        except ValueError:
            pass
    out, depth, cur = [], 0, ""
    for ch in raw:
        if ch in "{(":
            depth += 1
        elif ch in "})":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur.strip())
    return out


def base_field(f: str) -> str:
    return re.split(r"[{.(]", f, maxsplit=1)[0]


def expansion(f: str) -> list[str] | None:
    """The sub-fields of a field expansion ``campaign{daily_budget,status}``; None for a plain field."""
    m = re.fullmatch(r"\s*\w+\s*\{(.*)\}\s*", f, flags=re.S)
    return split_fields(m.group(1)) if m else None


def json_param(params: Mapping[str, str], key: str, default: Any = None) -> Any:
    raw = params.get(key)
    if raw is None or raw == "":
        return default
    try:
        return json.loads(raw)
    except ValueError:
        # A bare word: the SDK sends plain strings unencoded.
        if key in ("action_attribution_windows", "effective_status", "execution_options"):
            return [s for s in raw.split(",") if s]
        raise GraphFault(graph_error(100, message=f"(#100) param {key} must be JSON: {raw!r}")) from None


@cache
def sdk_fields(kind: str) -> frozenset[str] | None:
    """Valid field names for a node kind, from the SDK's own Field classes (None: accept anything)."""
    try:
        if kind == "insights":
            from facebook_business.adobjects.adsinsights import AdsInsights as cls
        elif kind == "account":
            from facebook_business.adobjects.adaccount import AdAccount as cls
        elif kind == "campaign":
            from facebook_business.adobjects.campaign import Campaign as cls
        elif kind == "adset":
            from facebook_business.adobjects.adset import AdSet as cls
        elif kind == "activity":
            from facebook_business.adobjects.adactivity import AdActivity as cls
        elif kind == "custom_audience":
            from facebook_business.adobjects.customaudience import CustomAudience as cls
        elif kind == "report_run":
            from facebook_business.adobjects.adreportrun import AdReportRun as cls
        elif kind == "minimum_budget":
            from facebook_business.adobjects.minimumbudget import MinimumBudget as cls
        else:
            return None
    except ImportError:
        return None
    return frozenset(v for k, v in vars(cls.Field).items() if not k.startswith("_") and isinstance(v, str))


@cache
def sdk_windows() -> frozenset[str] | None:
    try:
        from facebook_business.adobjects.adsinsights import AdsInsights
    except ImportError:
        return None
    return frozenset(v for k, v in vars(AdsInsights.ActionAttributionWindows).items() if not k.startswith("_"))


def unknown_field(kind: str, name: str) -> GraphFault:
    return GraphFault(
        graph_error(100, message=f"(#100) Tried accessing nonexisting field ({name}) on node type ({NODE_TYPES[kind]})")
    )


# --------------------------------------------------------------------------- cursors, times, paging


def encode_cursor(index: int) -> str:
    return base64.urlsafe_b64encode(f"fake:{index}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        tag, idx = raw.split(":")
        if tag != "fake":
            raise ValueError(raw)
        return int(idx)
    except (ValueError, UnicodeDecodeError):
        raise GraphFault(graph_error(100, message=f"(#100) Invalid cursor: {cursor!r}")) from None


def parse_time(raw: str) -> datetime:
    """``since``/``until``: a unix timestamp, an ISO datetime, or a date (midnight UTC)."""
    raw = str(raw).strip()
    if re.fullmatch(r"\d{9,11}(\.\d+)?", raw):
        return datetime.fromtimestamp(float(raw), UTC)
    try:
        dt = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        try:
            dt = datetime.strptime(raw, "%Y-%m-%dT%H:%M:%S%z")
        except ValueError:
            raise GraphFault(graph_error(100, message=f"(#100) param since/until is not a time: {raw!r}")) from None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


@dataclass
class Pager:
    """Pages an edge the way Graph does: ``data``, ``paging.cursors``, a working ``next``/``previous`` URL."""

    base_url: str
    page_size_cap: int | None = None

    def __call__(
        self,
        items: list[dict[str, Any]],
        params: Mapping[str, str],
        path: str,
        *,
        summary: bool = False,
    ) -> dict[str, Any]:
        try:
            limit = int(params.get("limit", DEFAULT_PAGE_LIMIT))
        except ValueError:
            raise GraphFault(graph_error(100, message="(#100) param limit must be an integer")) from None
        if limit <= 0:
            raise GraphFault(graph_error(100, message="(#100) param limit must be a positive integer"))
        if self.page_size_cap is not None:
            limit = min(limit, self.page_size_cap)
        start = 0
        if params.get("after"):
            start = decode_cursor(params["after"]) + 1
        out: dict[str, Any] = {"data": items[start : start + limit]}
        page = out["data"]
        if page:
            paging: dict[str, Any] = {
                "cursors": {"before": encode_cursor(start), "after": encode_cursor(start + len(page) - 1)}
            }
            if start + len(page) < len(items):
                nxt = {k: v for k, v in params.items() if k not in ("after", "before")}
                nxt["after"] = paging["cursors"]["after"]
                paging["next"] = f"{self.base_url}{path}?{urlencode(nxt)}"
            if start > 0:
                prev = {k: v for k, v in params.items() if k not in ("after", "before")}
                prev["before"] = paging["cursors"]["before"]
                paging["previous"] = f"{self.base_url}{path}?{urlencode(prev)}"
            out["paging"] = paging
        if summary:
            out["summary"] = {"total_count": len(items)}
        return out


PageFn = Callable[..., dict[str, Any]]
