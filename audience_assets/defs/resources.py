"""Dagster resources: the warehouse, the rules, the data sources, Claude and the output folder.

All configurable per run in the launchpad; secrets arrive only through EnvVar. The SDKs are
imported when a client is first needed, never when the definitions load.
"""

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource
from pydantic import Field, PrivateAttr

from audience_assets.engine.analysis import DEFAULT_MODEL
from audience_assets.engine.config import ConfigError, RulesConfig, load_config
from audience_assets.sources import SourceSpec
from audience_assets.sources.meta import DEFAULT_PURCHASE_PRIORITY
from audience_assets.warehouse import database_path, is_lake, lake_session, open_database, warehouse_lock


class WarehouseResource(DuckDBResource):
    """The DuckDB warehouse: one run at a time holds it (a file lock for the whole run), every
    connection is closed even when a step raises, and a file that cannot be opened is a clear error.

    During a run one anchor connection keeps the database open, so each step's connection is a
    cheap attach to it rather than a full open and checkpoint (on a lake: a session on the anchor,
    the lake already attached); `released()` closes the file while a step waits on the outside
    world (a Meta pull, a Claude batch), so analysts can read it meanwhile."""

    lock_timeout_seconds: float = Field(1800.0, ge=0, description="how long a run waits for another run's lock")
    _lock: Any = PrivateAttr(default=None)
    _anchor: Any = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        run_id = context.run.run_id if context.run is not None else "unknown"
        self._lock = warehouse_lock(
            self.database,
            holder=f"Dagster run {run_id[:8]}",
            timeout_seconds=self.lock_timeout_seconds,
            on_wait=context.log.info if context.log else None,
        )
        self._lock.__enter__()

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        self._close_anchor()
        lock = self._lock
        if lock is not None:
            self._lock = None
            lock.__exit__(None, None, None)

    def _close_anchor(self) -> None:
        if self._anchor is not None:
            anchor, self._anchor = self._anchor, None
            anchor.close()

    @contextmanager
    def released(self) -> Iterator[None]:
        """Close the warehouse file for a long wait outside it; the next connection reopens it."""
        self._close_anchor()
        yield

    @contextmanager
    def get_connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        if self._lock is not None and self._anchor is None and self.database != ":memory:":
            self._anchor = open_database(self.database)
        # A lake's anchor holds it attached: each step's connection is a session on it.
        conn = lake_session(self._anchor) if self._anchor is not None and is_lake(self.database) else None
        conn = conn or open_database(self.database)
        try:
            yield conn
        finally:
            # DuckDBResource skips close() when the step raises: the file would stay locked.
            conn.close()


class RulesResource(dg.ConfigurableResource):
    """The rule configuration: a TOML file plus JSON overrides, both settable in the launchpad."""

    config_path: str | None = None
    overrides_json: str = "{}"

    def load(self) -> RulesConfig:
        try:
            overrides = json.loads(self.overrides_json or "{}")
        except json.JSONDecodeError as err:
            raise ConfigError(f"rules overrides_json is not valid JSON: {err}") from None
        if not isinstance(overrides, dict):
            raise ConfigError("rules overrides_json must be a JSON object of setting: value")
        return load_config(self.config_path, overrides)


class SourceResource(dg.ConfigurableResource):
    """Where raw insights and audience metadata come from: the embedded sample, CSV files or Meta."""

    kind: str = Field("sample", description="sample, csv or meta (Definitions default: AUDIENCE_ENGINE_SOURCE)")
    insights_path: str | None = None
    audiences_path: str | None = None
    encoding: str | None = Field(None, description="CSV text encoding when not UTF-8 or UTF-16 with a BOM, e.g. cp1252")
    delimiter: str | None = Field(None, description="CSV field separator; detected from the header when unset")
    sample_seed: int = 7
    sample_adsets: int = 120
    sample_days: int = 75
    sample_end_date: str | None = Field(None, description="last day of the sample (default: the embedded sample's)")

    def spec(self) -> SourceSpec:
        return SourceSpec(
            kind=self.kind,  # type: ignore[arg-type]
            insights_path=self.insights_path,
            audiences_path=self.audiences_path,
            encoding=self.encoding,
            delimiter=self.delimiter,
            sample_seed=self.sample_seed,
            sample_adsets=self.sample_adsets,
            sample_days=self.sample_days,
            sample_end_date=date.fromisoformat(self.sample_end_date) if self.sample_end_date else None,
        )


class OutputResource(dg.ConfigurableResource):
    """Where the recommendations JSON of each decision date is written: `directory`/recommendations_<date>.json,
    or exactly `file` when set (the CLI's private path, renamed to --out once every check passed);
    neither writes none."""

    directory: str = "data/recommendations"
    file: str = ""
    reports_directory: str = Field("data/reports", description="the HTML report of each decision date; empty: none")
    report_file: str = Field("", description="exactly this report path (the CLI's)")
    json_label: str = Field("", description="how the report names the JSON file (default: its path)")

    def path_for(self, day: date, account: str | None = None) -> Path | None:
        """The JSON of one account-day (`directory`/recommendations_<date>_<account>.json), or `file`."""
        if self.file:
            return Path(self.file)
        if not self.directory:
            return None
        return Path(self.directory) / f"recommendations_{day.isoformat()}{_suffix(account)}.json"

    def report_path_for(self, day: date, account: str | None = None) -> Path | None:
        if self.report_file:
            return Path(self.report_file)
        if not self.reports_directory:
            return None
        return Path(self.reports_directory) / f"report_{day.isoformat()}{_suffix(account)}.html"


def _suffix(account: str | None) -> str:
    return f"_{account}" if account else ""


class MetaResource(dg.ConfigurableResource):
    """Live ad accounts through the Marketing API. Secrets come from EnvVar; nothing is written to Meta.

    Client settings left unset take MetaSettings' defaults (integrations/meta.py), defined there once.
    """

    access_token: str | None = Field(None, description="EnvVar META_ACCESS_TOKEN (ads_read)")
    app_secret: str | None = Field(None, description="EnvVar META_APP_SECRET: adds appsecret_proof")
    ad_account_ids: str = Field("", description="comma separated, e.g. act_123,act_456 (META_AD_ACCOUNT_IDS)")
    graph_url: str | None = Field(None, description="META_GRAPH_URL; default Meta's")
    purchase_action_priority: list[str] = Field(default_factory=lambda: list(DEFAULT_PURCHASE_PRIORITY))
    lookback_days: int | None = Field(None, ge=0, le=28, description="re-pulled every run; default: rules")
    initial_days: int = Field(35, ge=1, le=400, description="history pulled for an account new to the warehouse")
    audience_mapping_path: str | None = Field(None, description="audiences.csv whose fields override derived ones")
    # Client settings: None = MetaSettings' default.
    api_version: str | None = Field(None, description="Graph API version (default v26.0)")
    attribution_windows: list[str] | None = Field(None, description="default 7d_click, 1d_view")
    page_size: int | None = Field(None, ge=1, le=5000)
    async_after_days: int | None = Field(None, ge=1, description="longer ranges run as async report runs")
    max_retries: int | None = Field(None, ge=0)
    backoff_seconds: float | None = None
    throttle_at_pct: float | None = Field(None, description="pause when a usage header reaches this %")
    throttle_pause_seconds: float | None = None
    async_poll_seconds: float | None = None

    _client: Any = PrivateAttr(default=None)

    def account_list(self) -> list[str]:
        return account_ids(self.ad_account_ids)

    def settings(self) -> Any:
        from audience_assets.integrations.meta import MetaSettings

        names = (
            "api_version",
            "graph_url",
            "app_secret",
            "page_size",
            "async_after_days",
            "max_retries",
            "backoff_seconds",
            "throttle_at_pct",
            "throttle_pause_seconds",
            "async_poll_seconds",
        )
        given: dict[str, Any] = {n: getattr(self, n) for n in names if getattr(self, n) is not None}
        if self.attribution_windows is not None:
            given["attribution_windows"] = tuple(self.attribution_windows)
        return MetaSettings(access_token=self.access_token or "", **given)

    def writer(self):
        """The SDK session for execution, or None without a token (a dry run then only plans)."""
        if not self.access_token:
            return None
        from audience_assets.integrations.meta_writer import MetaWriter

        return MetaWriter(self.settings())

    def client(self):
        """One SDK session per run (the resource lives for one run)."""
        if not self.access_token:
            raise ConfigError("the meta source needs META_ACCESS_TOKEN (a token with ads_read)")
        if not self.account_list():
            raise ConfigError("the meta source needs META_AD_ACCOUNT_IDS, e.g. act_1234567890")
        if self._client is None:
            from audience_assets.integrations.meta import MetaClient

            self._client = MetaClient(self.settings())
        return self._client


class ExecutionResource(dg.ConfigurableResource):
    """How approved changes are executed (see engine.execution.ExecutionSettings for the meaning)."""

    approval_ttl_hours: float = Field(24.0, gt=0, description="an approval expires this long after it was given")
    max_decision_age_days: int = Field(2, ge=0, description="older decisions are refused")
    breaker_errors: int = Field(3, ge=1, description="rate-limit errors before a run stops writing")
    writes_enabled: bool = Field(True, description="false stops every write, like AUDIENCE_ENGINE_WRITES=off")

    def settings(self) -> Any:
        from audience_assets.engine.execution import ExecutionSettings

        return ExecutionSettings(
            approval_ttl_hours=self.approval_ttl_hours,
            max_decision_age_days=self.max_decision_age_days,
            breaker_errors=self.breaker_errors,
            writes_enabled=self.writes_enabled,
        )


class SlackResource(dg.ConfigurableResource):
    """Where the digest goes: an incoming webhook, or a bot token and channel (needed for the Approve /
    Reject buttons). Secrets from EnvVar; not configured, nothing is posted."""

    webhook_url: str | None = Field(None, description="EnvVar SLACK_WEBHOOK_URL")
    bot_token: str | None = Field(None, description="EnvVar SLACK_BOT_TOKEN (xoxb-...)")
    channel: str | None = Field(None, description="SLACK_CHANNEL, e.g. #media-buying or C0123456")
    api_url: str | None = Field(
        None, description="SLACK_API_URL: Slack's Web API base (default https://slack.com/api/)"
    )
    max_retries: int = Field(3, ge=0)

    def poster(self) -> Any:
        from audience_assets.integrations.slack import SlackPoster, SlackSettings

        settings = SlackSettings(self.webhook_url, self.bot_token, self.channel, self.api_url, self.max_retries)
        return SlackPoster(settings) if settings.configured else None


class FeedbackResource(dg.ConfigurableResource):
    """How outcomes are judged (see engine.outcomes.OutcomeSettings); none of it changes a decision."""

    horizons: list[int] = Field(default_factory=lambda: [3, 7], description="days after a decision it is judged over")
    certainty: float = Field(0.8, gt=0.5, lt=1, description="posterior probability a label needs")
    maturing_days: int = Field(7, ge=0, description="days a day keeps receiving conversions (attribution window)")

    def settings(self) -> Any:
        from audience_assets.engine.outcomes import OutcomeSettings

        return OutcomeSettings(
            horizons=tuple(self.horizons), certainty=self.certainty, maturing_days=self.maturing_days
        )


class ClaudeResource(dg.ConfigurableResource):
    """The Claude analysis layer's settings. Without an API key the template explainer runs alone."""

    api_key: str | None = Field(None, description="from EnvVar('ANTHROPIC_API_KEY'); never logged or stored")
    base_url: str | None = Field(None, description="from ANTHROPIC_BASE_URL when set")
    model: str = DEFAULT_MODEL
    prompt_version: str = "v1"
    timeout_seconds: float = 60.0
    max_retries: int = 3
    batch_size: int = Field(20, ge=1, le=200, description="audiences per request")
    max_tokens: int = Field(4096, ge=256, description="output tokens per request")
    run_token_budget: int = Field(300_000, ge=0, description="input + output tokens per run; then template")
    scope: str = Field("actionable", description="actionable (SCALE/PAUSE/RETEST, HOLDs near a threshold) or all")
    mode: str = Field("auto", description="sync, batch, or auto (batch for scheduled runs)")
    batch_poll_seconds: float = 5.0
    batch_max_wait_seconds: float = 3600.0
    history_depth: int = 5
    min_faithfulness: float = Field(0.9, ge=0, le=1, description="WARN below this share of faithful answers")

    def enabled(self) -> bool:
        return bool(self.api_key)

    def run_mode(self, scheduled: bool) -> str:
        """sync or batch for this run: `auto` batches scheduled runs (cheaper), answers others at once."""
        if self.mode not in ("auto", "sync", "batch"):
            raise ConfigError(f"claude.mode must be auto, sync or batch, not {self.mode!r}")
        if self.mode != "auto":
            return self.mode
        return "batch" if scheduled else "sync"

    def client(self):
        from audience_assets.integrations.anthropic_client import ClaudeClient

        return ClaudeClient(
            api_key=self.api_key or "",
            model=self.model,
            base_url=self.base_url,
            timeout=self.timeout_seconds,
            max_retries=self.max_retries,
        )


def account_ids(text: str) -> list[str]:
    """`act_123, 456` -> ["act_123", "act_456"]: Meta's ad account ids, each with its act_ prefix."""
    ids = [a.strip() for a in text.split(",") if a.strip()]
    return [a if a.startswith("act_") else f"act_{a}" for a in ids]


def _env(name: str) -> Any:
    """EnvVar for a secret that is set, so a machine without it still loads."""
    return dg.EnvVar(name) if os.environ.get(name) else None


def meta_resource_from_env() -> MetaResource:
    return MetaResource(
        access_token=_env("META_ACCESS_TOKEN"),
        app_secret=_env("META_APP_SECRET"),
        ad_account_ids=_env("META_AD_ACCOUNT_IDS") or "",
        graph_url=_env("META_GRAPH_URL"),
    )


def claude_resource_from_env() -> ClaudeResource:
    return ClaudeResource(api_key=_env("ANTHROPIC_API_KEY"), base_url=_env("ANTHROPIC_BASE_URL"))


def default_resources() -> dict[str, object]:
    return {
        "duckdb": WarehouseResource(database=database_path()),
        "rules": RulesResource(),
        "source": SourceResource(kind=os.environ.get("AUDIENCE_ENGINE_SOURCE") or "sample"),
        "meta": meta_resource_from_env(),
        "claude": claude_resource_from_env(),
        "output": OutputResource(),
        "execution": ExecutionResource(),
        "feedback": FeedbackResource(),
        "slack": SlackResource(
            webhook_url=_env("SLACK_WEBHOOK_URL"),
            bot_token=_env("SLACK_BOT_TOKEN"),
            channel=os.environ.get("SLACK_CHANNEL"),
            api_url=os.environ.get("SLACK_API_URL"),
        ),  # fmt: skip
    }
