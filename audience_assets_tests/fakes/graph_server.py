"""A local fake of the Meta Marketing (Graph) API, for tests: this module is the stable import path.

The code lives in the package ``audience_assets_tests.fakes.graph`` (one module per concern: accounts,
builder, replies, wire, reads, insights, writes, server, sdk); every public name is re-exported here, so
``from audience_assets_tests.fakes.graph_server import FakeGraph, build_account`` keeps working.

A stdlib ``ThreadingHTTPServer`` on 127.0.0.1 (ephemeral port) that answers the real
``facebook_business`` SDK (26.x):

    acct = build_account("act_1001", "INR", n_adsets=6, days=14, end_date=date(2026, 3, 1), seed=1)
    with FakeGraph({acct.account_id: acct}, page_size_cap=10) as fake, sdk_session(fake) as api:
        rows = list(AdAccount("act_1001").get_insights(fields=[...], params={...}))
        assert fake.requests[-1]["path"] == "/v26.0/act_1001/insights"

Matched to facebook_business 26.0.3 (read from the SDK source):
- URLs are ``GRAPH/<version>/<node>/<edge>``; ``FacebookSession`` puts ``access_token`` (and
  ``appsecret_proof`` when an app secret is given) in the requests-Session params, so they travel in
  the query string even on POST; POST parameters travel form-encoded in the body. Dicts, lists and
  bools are JSON-encoded (``time_range={"since":..,"until":..}``, ``summary=true``,
  ``execution_options=["validate_only"]``).
- Edges are read by ``Cursor``: it asks for the next page only when the response has both
  ``paging.cursors.after`` and ``paging.next``, and re-requests the same path with ``after=``
  (it never follows the ``next`` URL itself, though the fake's ``next`` is a working URL).
  ``get_ad_sets``/``get_campaigns``/``get_activities`` add ``summary=true``; insights do not.
- ``get_insights(..., is_async=True)`` POSTs to the same ``/<node>/insights`` edge (no ``is_async``
  parameter is sent) with ``fields`` JSON-encoded as a list; Meta answers ``{"report_run_id"}``,
  ``AdReportRun.api_get()`` GETs ``/<report_run_id>`` and ``get_result()`` GETs
  ``/<report_run_id>/insights`` (a Cursor again).
- Writes: ``AdSet(id).api_update(params=...)`` POSTs ``/<id>/`` and Meta answers ``{"success": true}``;
  ``AdSet(id).create_copy(params=...)`` POSTs ``/<id>/copies`` (answer: ``copied_adset_id``);
  ``api_get(fields=[..., "campaign{daily_budget,status}"])`` sends ``fields`` comma-joined in the query.
- Failures: the SDK raises ``FacebookRequestError`` whenever the JSON body has an ``error`` key (any
  HTTP status). Careful: a non-JSON, non-empty body is *success* to the SDK even with HTTP 5xx
  (``FacebookResponse.is_success`` looks at the body only); ``raw_reply`` lets a test send one.

Not verified against live Meta (choices of this fake, parse them defensively): the exact JSON inside
an activity's ``extra_data`` for budget events (here ``{"old_value", "new_value", "currency",
"type": "payment_amount"}`` in minor units) and for ``create_ad_set`` (here ``{"copied_from"}``), the code
2601 answer for results of an unfinished report run, the subcode of the hourly budget-change limit (1885172
here), the list of currencies ``minimum_budgets`` answers (every currency the fake knows, here), and the
messages of errors the fake makes up.
"""

from __future__ import annotations

from .graph import (
    DEFAULT_END_DATE,
    PURCHASE_ACTION_TYPES,
    WINDOWS,
    ZERO_DECIMAL_CURRENCIES,
    AccountData,
    Actor,
    FakeGraph,
    GraphFault,
    InsightDay,
    Reply,
    ReportRun,
    ad_account_usage,
    app_usage,
    budget_extra_data,
    build_account,
    business_use_case_usage,
    graph_error,
    insights_throttle,
    json_reply,
    minimum_budget_entry,
    minor_unit_offset,
    raw_reply,
    sdk_session,
    throttle_error,
    throttle_headers,
    usage_reply,
)

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
