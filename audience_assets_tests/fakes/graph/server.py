"""``FakeGraph``: the HTTP side of the fake Graph API: routing, token checks, injected replies, the request log.

A stdlib ``ThreadingHTTPServer`` on 127.0.0.1 (ephemeral port); every request is answered under one lock,
so concurrent clients (reads and writes) see a consistent state. What each route answers lives in the
sibling modules: ``reads`` (nodes and edges), ``insights`` (insights and report runs), ``writes``.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import urlsplit

from ..loopback import LoopbackHandler, LoopbackServer
from .accounts import AccountData, InsightDay, default_minimum_budgets, restate_row
from .insights import ReportRun, new_report_run, parse_query, report_run_answer, sync_insights
from .reads import list_edge, read_node
from .replies import GraphFault, Reply, graph_error, throttle_headers, trace_id
from .wire import Pager, decode_body, flat
from .writes import (
    BUDGET_CHANGE_LIMIT_SUBCODE,
    BUDGET_KEYS,
    Actor,
    Change,
    WriteRules,
    apply_changes,
    copy_adset,
    execution_options,
    plan_copy,
    plan_update,
)

DEFAULT_VERSION = "v26.0"
DEFAULT_API_ACTOR = Actor("100000000000002", "Fake System User", "100000000000003", "Fake API App")


@dataclass
class _Injection:
    pattern: re.Pattern[str]
    method: str | None
    replies: deque[Any]


class FakeGraph(LoopbackServer):
    """The fake Graph API; a context manager (``start()``/``close()`` also work).

    Attributes:
        base_url: ``http://127.0.0.1:<port>``; set it as the SDK session's ``GRAPH`` (see ``sdk_session``).
        accounts: ``{"act_<id>": AccountData}``, live: edit them between calls.
        requests: every request, in order: ``{"method", "path", "query" (flat dict), "form" (flat dict of the
            POST body as sent), "body" (the POST body decoded: JSON lists, objects and booleans parsed, e.g.
            ``execution_options`` -> ``["validate_only"]``), "params" (query and form merged), "access_token",
            "appsecret_proof", "headers", "time", "status", "response" (the JSON body sent, or None)}``.
        report_runs: ``{report_run_id: ReportRun}``.
        fail_async_when: ``fn(params) -> bool | str``: called at POST time with the job's flat params plus
            ``node_id``; True -> the job ends "Job Failed", a string -> that status ("Job Skipped").
        errors: exceptions the fake raised while answering (each also answered 500 code 1).
        clock: ``() -> aware datetime``; drives date presets, the activities default window, budget limits,
            ``updated_time`` and ``last_sig_edit_ts`` of writes.
        budget_changes_per_hour: Meta's per-object budget-change limit (4); the next change answers code 17
            with subcode ``budget_limit_subcode``. None: no limit.
        significant_budget_change_pct: a budget change larger than this (relative, in percent) resets the
            learning phase, as do PAUSED -> ACTIVE and a new bid strategy. Meta does not publish its rule.
        writes_without_effect: object ids whose updates answer ``{"success": true}`` but change nothing
            (a reported Meta behaviour); ``"*"`` means every object. Validations still run.
        minimum_budgets: ``{currency: MinimumBudget dict}`` served on ``/act_<id>/minimum_budgets`` and
            enforced on budget writes (minor units); edit it to change the rules.
        api_actor / token_actors: who activities say made an API write (``token_actors`` by access token).
    """

    thread_name = "fake-graph"

    def __init__(
        self,
        accounts: Mapping[str, AccountData] | Iterable[AccountData],
        *,
        page_size_cap: int | None = None,
        async_poll_rounds: int = 1,
        version: str = DEFAULT_VERSION,
        fail_async_when: Callable[[dict[str, str]], bool | str] | None = None,
        tokens: Iterable[str] | None = None,
        app_secret: str | None = None,
        usage_pct: float = 10,
        sync_row_limit: int | None = None,
        budget_changes_per_hour: int | None = 4,
        significant_budget_change_pct: float = 20.0,
        budget_limit_subcode: int | None = BUDGET_CHANGE_LIMIT_SUBCODE,
        api_actor: Actor = DEFAULT_API_ACTOR,
        now: datetime | Callable[[], datetime] | None = None,
    ) -> None:
        if isinstance(accounts, Mapping):
            for key, acct in accounts.items():
                if key != acct.account_id:
                    raise ValueError(f"accounts key {key!r} differs from its account_id {acct.account_id!r}")
            self.accounts: dict[str, AccountData] = dict(accounts)
        else:
            self.accounts = {a.account_id: a for a in accounts}
        self.page_size_cap = page_size_cap
        self.async_poll_rounds = async_poll_rounds
        self.version = version
        self.fail_async_when = fail_async_when
        self.tokens = set(tokens) if tokens is not None else None
        self.app_secret = app_secret
        self.usage_pct = usage_pct
        self.sync_row_limit = sync_row_limit
        self.budget_changes_per_hour = budget_changes_per_hour
        self.significant_budget_change_pct = significant_budget_change_pct
        self.budget_limit_subcode = budget_limit_subcode
        self.writes_without_effect: set[str] = set()
        self.minimum_budgets = default_minimum_budgets(a.currency for a in self.accounts.values())
        self.api_actor = api_actor
        self.token_actors: dict[str, Actor] = {}
        if now is None:
            self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)
        elif callable(now):
            self.clock = now
        else:
            fixed = now if now.tzinfo else now.replace(tzinfo=UTC)
            self.clock = lambda: fixed
        self.requests: list[dict[str, Any]] = []
        self.report_runs: dict[str, ReportRun] = {}
        self.errors: list[BaseException] = []
        super().__init__()
        self._injections: list[_Injection] = []
        self._lock = threading.RLock()
        self._ids = itertools.count(1)
        self._nodes: dict[str, tuple[str, str]] = {}
        self._reindex()

    # ---- test API

    def inject(self, path_regex: str, *replies: Any, method: str | None = "GET") -> None:
        """Queue one-shot replies for requests whose path (``/v26.0/act_1/insights``) matches ``path_regex``.

        Each matching request consumes one reply: a ``Reply`` (``graph_error``, ``throttle_error``,
        ``usage_reply``, ``json_reply``, ``raw_reply``), a dict (sent as a 200 JSON body) or
        ``fn(request_entry) -> reply``. ``method=None`` matches every method; writes are ``method="POST"``
        (an update's path ends in ``/``: ``/v26.0/<adset_id>/``; a copy's in ``/copies``). The token check
        runs first, then injections, then routing: an injected error changes nothing.
        """
        with self._lock:
            self._injections.append(
                _Injection(re.compile(path_regex), method.upper() if method else None, deque(replies))
            )

    @property
    def pending_injections(self) -> int:
        with self._lock:
            return sum(len(i.replies) for i in self._injections)

    def restate(self, account_id: str, day: date | str, adset_id: str, **fields: Any) -> InsightDay:
        """Change stored numbers for one ad set-day; the next pull sees them.

        Scalars: ``spend``, ``impressions``, ``reach``, ``clicks``, ``inline_link_clicks``. Events
        (``purchases``/``purchase``, ``add_to_cart``, ``initiate_checkout``, ``landing_page_view``): an int
        sets the reported ``value`` (7d_click + 1d_view), a dict sets windows exactly. Values
        (``purchase_value``, ``add_to_cart_value``): a number scales every window to the new ``value``,
        a dict sets windows exactly. A day without a row gets a new row.
        """
        with self._lock:
            return restate_row(self._account(account_id), day, adset_id, **fields)

    def edit_outside(
        self,
        object_id: str,
        *,
        daily_budget: int | None = None,
        lifetime_budget: int | None = None,
        status: str | None = None,
        name: str | None = None,
        actor_name: str = "Outside Editor",
        application_name: str = "",
        actor_id: str = "100000000000009",
        application_id: str = "",
        at: datetime | None = None,
    ) -> None:
        """A change made by someone else (Ads Manager, another tool) at ``at`` (default: the clock).

        Applied like an API write (activities, ``updated_time``, learning, statuses) but without validation;
        it counts towards the hourly budget-change limit. Budgets are minor units.
        """
        when = at if at is not None else self.clock()
        when = when if when.tzinfo else when.replace(tzinfo=UTC)
        wanted = {"daily_budget": daily_budget, "lifetime_budget": lifetime_budget, "status": status, "name": name}
        with self._lock:
            kind, account_id = self._nodes.get(str(object_id), ("", ""))
            if kind not in ("adset", "campaign"):
                raise KeyError(f"no ad set or campaign {object_id}")
            acct = self.accounts[account_id]
            obj = acct.adset(object_id) if kind == "adset" else acct.campaign(object_id)
            assert obj is not None
            changes = []
            for key, new in wanted.items():
                if new is None:
                    continue
                old = int(obj.get(key) or 0) if key in BUDGET_KEYS else obj.get(key)
                new = int(new) if key in BUDGET_KEYS else new
                if new != old:
                    changes.append(Change(key, old, new))
            actor = Actor(actor_id, actor_name, application_id, application_name)
            apply_changes(acct, kind, obj, changes, now=when, actor=actor, rules=self.write_rules)

    def set_usage(self, pct: float) -> None:
        """Usage percentage carried by every later response's headers (default 10)."""
        self.usage_pct = pct

    def add_account(self, acct: AccountData) -> None:
        with self._lock:
            self.accounts[acct.account_id] = acct
            self.minimum_budgets.setdefault(acct.currency, default_minimum_budgets([acct.currency])[acct.currency])
            self._reindex()

    def requests_to(self, path_regex: str, method: str | None = None) -> list[dict[str, Any]]:
        """Recorded requests whose path matches ``path_regex`` (and method, if given)."""
        rx = re.compile(path_regex)
        with self._lock:
            log = list(self.requests)
        return [r for r in log if rx.search(r["path"]) and (method is None or r["method"] == method)]

    @property
    def write_rules(self) -> WriteRules:
        return WriteRules(
            budget_changes_per_hour=self.budget_changes_per_hour,
            significant_budget_change_pct=self.significant_budget_change_pct,
            budget_limit_subcode=self.budget_limit_subcode,
            minimum_budgets=self.minimum_budgets,
        )

    # ---- internals: indexing

    def _reindex(self) -> None:
        nodes: dict[str, tuple[str, str]] = {}

        def add(node_id: str, kind: str, acct_id: str) -> None:
            if node_id in nodes and nodes[node_id] != (kind, acct_id):
                raise ValueError(f"duplicate Graph id {node_id} ({kind} in {acct_id} and {nodes[node_id]})")
            nodes[node_id] = (kind, acct_id)

        for acct in self.accounts.values():
            add(acct.account_id, "account", acct.account_id)
            for c in acct.campaigns:
                add(str(c["id"]), "campaign", acct.account_id)
            for a in acct.adsets:
                add(str(a["id"]), "adset", acct.account_id)
            for ca in acct.custom_audiences:
                add(str(ca["id"]), "custom_audience", acct.account_id)
        for rr in self.report_runs.values():
            nodes[rr.id] = ("report_run", rr.account_id)
        self._nodes = nodes

    def _account(self, account_id: str) -> AccountData:
        try:
            return self.accounts[account_id]
        except KeyError:
            raise KeyError(f"no account {account_id}") from None

    def _new_id(self, prefix: str) -> str:
        with self._lock:
            return f"{prefix}{next(self._ids):09d}"

    def _page(self) -> Pager:
        return Pager(self.base_url, self.page_size_cap)

    # ---- internals: request handling

    def _handle(self, h: LoopbackHandler) -> None:
        url = urlsplit(h.path)
        raw = h.read_body()
        query = flat(url.query)
        ctype = (h.headers.get("content-type") or "").lower()
        form: dict[str, str] = {}
        if raw and "application/x-www-form-urlencoded" in ctype:
            form = flat(raw.decode("utf-8", "replace"))
        elif raw and "application/json" in ctype:
            try:
                form = {k: v if isinstance(v, str) else json.dumps(v) for k, v in json.loads(raw).items()}
            except (ValueError, AttributeError):
                form = {}
        params = {**query, **form}
        entry: dict[str, Any] = {
            "method": h.command,
            "path": url.path,
            "query": query,
            "form": form,
            "body": decode_body(form),
            "params": params,
            "access_token": params.get("access_token"),
            "appsecret_proof": params.get("appsecret_proof"),
            "headers": {k.lower(): v for k, v in h.headers.items()},
            "time": time.time(),
            "status": None,
            "response": None,
        }
        with self._lock:
            self.requests.append(entry)

        context_account, insights = self._context(url.path)
        extra_headers: dict[str, str] = {}
        try:
            self._check_token(params)
            injected = self._pop_injection(h.command, url.path, entry)
            if injected is not None and injected.body is not None:
                reply = injected
            else:
                status, body = self._route(h.command, url.path, params)
                reply = Reply(status, body)
                if injected is not None:
                    extra_headers = dict(injected.headers)
                    if injected.status != 200:
                        reply.status = injected.status
        except GraphFault as fault:
            reply = fault.reply
        except Exception as exc:  # a bug in the fake or a test callback: answer, do not hang
            self.errors.append(exc)
            reply = graph_error(1, message=f"fake server error: {exc!r}")

        headers = {
            "content-type": "application/json; charset=UTF-8",
            "facebook-api-version": self.version,
            "x-fb-trace-id": trace_id(),
            **throttle_headers(
                context_account,
                self.usage_pct,
                kind="ads_insights" if insights else "ads_management",
                insights=insights,
            ),
            **{k.lower(): v for k, v in reply.headers.items()},
            **{k.lower(): v for k, v in extra_headers.items()},
        }
        if isinstance(reply.body, bytes):
            payload = reply.body
        elif isinstance(reply.body, str):
            payload = reply.body.encode()
        else:
            payload = json.dumps(reply.body, separators=(",", ":")).encode()
            entry["response"] = reply.body
        entry["status"] = reply.status
        try:
            h.send_response(reply.status)
            for k, v in headers.items():
                h.send_header(k, v)
            h.send_header("content-length", str(len(payload)))
            h.end_headers()
            h.wfile.write(payload)
            h.wfile.flush()
        except OSError:
            h.close_connection = True

    def _context(self, path: str) -> tuple[str | None, bool]:
        """(account id the request concerns, whether it is an insights call) for usage headers."""
        parts = [p for p in path.split("/") if p]
        if len(parts) < 2:
            return None, False
        with self._lock:
            kind_acct = self._nodes.get(parts[1])
        acct = kind_acct[1] if kind_acct else None
        insights = (len(parts) > 2 and parts[2] == "insights") or bool(kind_acct and kind_acct[0] == "report_run")
        return acct, insights

    def _check_token(self, params: Mapping[str, str]) -> None:
        token = params.get("access_token")
        if not token:
            raise GraphFault(graph_error(190, message="An access token is required to request this resource."))
        if self.tokens is not None and token not in self.tokens:
            raise GraphFault(graph_error(190))
        if self.app_secret is not None:
            proof = params.get("appsecret_proof")
            expected = hmac.new(self.app_secret.encode(), token.encode(), hashlib.sha256).hexdigest()
            if proof is None:
                raise GraphFault(
                    graph_error(100, message="API calls from the server require an appsecret_proof argument")
                )
            if not hmac.compare_digest(proof, expected):
                raise GraphFault(graph_error(100, message="Invalid appsecret_proof provided in the API argument"))

    def _pop_injection(self, method: str, path: str, entry: dict[str, Any]) -> Reply | None:
        with self._lock:
            for inj in self._injections:
                if inj.replies and (inj.method is None or inj.method == method) and inj.pattern.search(path):
                    reply = inj.replies.popleft()
                    break
            else:
                return None
        if callable(reply) and not isinstance(reply, Reply):
            reply = reply(entry)
        if reply is None:
            return None
        if isinstance(reply, Mapping):
            return Reply(200, dict(reply))
        return reply

    def _route(self, method: str, path: str, params: dict[str, str]) -> tuple[int, Any]:
        parts = [p for p in path.split("/") if p]
        if not parts:
            raise GraphFault(graph_error(100, message="(#100) Unknown path components"))
        if not re.fullmatch(r"v\d+\.\d+", parts[0]):
            raise GraphFault(graph_error(100, message=f"(#100) Unknown path components: /{parts[0]}"))
        if parts[0] != self.version:
            raise GraphFault(
                graph_error(
                    2635,
                    message=(
                        f"(#2635) You are calling a deprecated version of the Ads API ({parts[0]}). "
                        f"Please update to the latest version: {self.version}."
                    ),
                )
            )
        if len(parts) < 2 or len(parts) > 3:
            raise GraphFault(graph_error(100, message=f"(#100) Unknown path components: /{'/'.join(parts[1:])}"))
        node_id = parts[1]
        edge = parts[2] if len(parts) == 3 else None
        with self._lock:  # one request at a time: writes from concurrent clients never interleave
            found = self._nodes.get(node_id)
            if found is None:
                raise GraphFault(
                    graph_error(
                        100,
                        33,
                        error_type="GraphMethodException",
                        message=(
                            f"Unsupported {method.lower()} request. Object with ID '{node_id}' does not exist, "
                            "cannot be loaded due to missing permissions, or does not support this operation. "
                            "Please read the Graph API documentation at https://developers.facebook.com/docs/graph-api"
                        ),
                    )
                )
            kind, account_id = found
            acct = self.accounts.get(account_id)
            now = self.clock()
            if kind == "report_run":
                rr = self.report_runs[node_id]
                return report_run_answer(
                    rr, method, edge, params, path, rounds=self.async_poll_rounds, now=now, page=self._page()
                )
            if acct is None:
                raise GraphFault(graph_error(100, 33, error_type="GraphMethodException"))
            if edge == "insights" and kind in ("account", "campaign", "adset"):
                if method == "GET":
                    q = parse_query(kind, node_id, acct, params, now)
                    return 200, sync_insights(q, params, path, self._page(), self.sync_row_limit)
                if method == "POST":
                    q = parse_query(kind, node_id, acct, params, now)
                    rr = new_report_run(self._new_id("6090"), q, params, now, self.fail_async_when)
                    self.report_runs[rr.id] = rr
                    self._nodes[rr.id] = ("report_run", acct.account_id)
                    return 200, {"report_run_id": rr.id}
            elif edge is None and method == "GET":
                return 200, read_node(kind, node_id, acct, params, now)
            elif edge is None and method == "POST" and kind in ("adset", "campaign"):
                return 200, self._update(kind, node_id, acct, params, now)
            elif method == "GET" and (
                (kind == "account" and edge in ("adsets", "campaigns", "activities", "customaudiences"))
                or (kind == "account" and edge == "minimum_budgets")
                or (kind == "campaign" and edge == "adsets")
                or (kind == "adset" and edge == "activities")
            ):
                return 200, list_edge(
                    str(edge),
                    acct,
                    params,
                    path,
                    self._page(),
                    now,
                    campaign_id=node_id if kind == "campaign" else None,
                    object_id=node_id if kind == "adset" else None,
                    minimum_budgets=self.minimum_budgets,
                )
            elif method == "POST" and kind == "adset" and edge == "copies":
                return 200, self._copy(node_id, acct, params, now)
            raise GraphFault(
                graph_error(
                    100,
                    message=f"(#100) Unsupported {method.lower()} request on /{node_id}{'/' + edge if edge else ''} (fake)",
                )
            )

    # ---- internals: writes (called under the lock)

    def _actor(self, params: Mapping[str, str]) -> Actor:
        return self.token_actors.get(params.get("access_token") or "", self.api_actor)

    def _update(self, kind: str, node_id: str, acct: AccountData, params: Mapping[str, str], now: datetime) -> Any:
        obj = acct.adset(node_id) if kind == "adset" else acct.campaign(node_id)
        assert obj is not None
        validate_only = "validate_only" in execution_options(params)
        rules = self.write_rules
        changes = plan_update(acct, kind, obj, params, rules, now)
        without_effect = node_id in self.writes_without_effect or "*" in self.writes_without_effect
        if not validate_only and not without_effect:
            apply_changes(acct, kind, obj, changes, now=now, actor=self._actor(params), rules=rules)
        return {"success": True}

    def _copy(self, node_id: str, acct: AccountData, params: Mapping[str, str], now: datetime) -> Any:
        src = acct.adset(node_id)
        assert src is not None
        validate_only = "validate_only" in execution_options(params)
        settings = plan_copy(acct, src, params)
        if validate_only:
            return {"success": True}
        new_id = f"1203{int(acct.numeric_id) % 1_000_000:06d}{next(self._ids):05d}"
        answer = copy_adset(acct, src, settings, new_id=new_id, now=now, actor=self._actor(params))
        self._reindex()
        return answer
