"""A local fake of the Meta Marketing (Graph) API, for tests: the package behind ``fakes.graph_server``.

Modules, by concern (none imports another in a cycle):

- ``accounts``: ``AccountData``, ``InsightDay``, money in minor units, activity records, minimum budgets.
- ``builder``: ``build_account``, deterministic accounts covering every audience kind.
- ``replies``: ``graph_error`` and the other canned replies, ``GraphFault``, usage (throttling) headers.
- ``wire``: how the SDK encodes parameters and fields; Graph's paging cursors.
- ``reads``: field selection (with ``campaign{...}`` expansion), nodes and edges, minimum budgets.
- ``insights``: insights queries and rows, async report runs.
- ``writes``: updates, copies, ``validate_only``, learning resets, outside edits.
- ``server``: ``FakeGraph``: routing, token checks, injected replies, the request log.
- ``sdk``: ``sdk_session``, the real SDK pointed at the fake.
"""

from __future__ import annotations

from .accounts import (
    DEFAULT_END_DATE,
    PURCHASE_ACTION_TYPES,
    WINDOWS,
    ZERO_DECIMAL_CURRENCIES,
    AccountData,
    InsightDay,
    budget_extra_data,
    minimum_budget_entry,
    minor_unit_offset,
)
from .builder import build_account
from .insights import ReportRun
from .replies import (
    GraphFault,
    Reply,
    ad_account_usage,
    app_usage,
    business_use_case_usage,
    graph_error,
    insights_throttle,
    json_reply,
    raw_reply,
    throttle_error,
    throttle_headers,
    usage_reply,
)
from .sdk import sdk_session
from .server import FakeGraph
from .writes import Actor

__all__ = [
    "DEFAULT_END_DATE",
    "PURCHASE_ACTION_TYPES",
    "WINDOWS",
    "ZERO_DECIMAL_CURRENCIES",
    "AccountData",
    "Actor",
    "FakeGraph",
    "GraphFault",
    "InsightDay",
    "ReportRun",
    "Reply",
    "ad_account_usage",
    "app_usage",
    "budget_extra_data",
    "build_account",
    "business_use_case_usage",
    "graph_error",
    "insights_throttle",
    "json_reply",
    "minimum_budget_entry",
    "minor_unit_offset",
    "raw_reply",
    "sdk_session",
    "throttle_error",
    "throttle_headers",
    "usage_reply",
]
