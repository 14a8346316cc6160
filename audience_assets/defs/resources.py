"""Dagster resources: the warehouse, the rules and the data source, all configurable per run."""

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

from audience_assets.engine.config import ConfigError, RulesConfig, load_config
from audience_assets.sample.simulator import SAMPLE_END_DATE
from audience_assets.sources import SourceSpec
from audience_assets.sources.meta import DEFAULT_PURCHASE_PRIORITY
from audience_assets.warehouse import database_path, open_database, warehouse_lock


class WarehouseResource(DuckDBResource):
    """The DuckDB warehouse: one run at a time holds it (a file lock for the whole run), every
    connection is closed even when a step raises, and a file that cannot be opened is a clear error."""

    lock_timeout_seconds: float = Field(1800.0, ge=0, description="how long a run waits for another run's lock")
    _lock: Any = PrivateAttr(default=None)

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
        lock = self._lock
        if lock is not None:
            self._lock = None
            lock.__exit__(None, None, None)

    @contextmanager
    def get_connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        conn = open_database(self.database)
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
    """Where raw insights and audience metadata come from: the embedded sample or CSV files."""

    kind: str = Field("sample", description="sample, csv or meta (Definitions default: AUDIENCE_ENGINE_SOURCE)")
    insights_path: str | None = None
    audiences_path: str | None = None
    encoding: str | None = Field(None, description="CSV text encoding when not UTF-8 or UTF-16 with a BOM, e.g. cp1252")
    delimiter: str | None = Field(None, description="CSV field separator; detected from the header when unset")
    sample_seed: int = 7
    sample_adsets: int = 120
    sample_days: int = 75
    sample_end_date: str = SAMPLE_END_DATE.isoformat()

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
            sample_end_date=date.fromisoformat(self.sample_end_date),
        )


class OutputResource(dg.ConfigurableResource):
    """Where the recommendations JSON of each decision date is written ("" writes none: the CLI
    writes its own --out from the run's rows)."""

    directory: str = "data/recommendations"

    def path_for(self, day: date) -> Path | None:
        if not self.directory:
            return None
        return Path(self.directory) / f"recommendations_{day.isoformat()}.json"


def default_resources() -> dict[str, object]:
    return {
        "duckdb": WarehouseResource(database=database_path()),
        "rules": RulesResource(),
        "source": SourceResource(kind=os.environ.get("AUDIENCE_ENGINE_SOURCE") or "sample"),
        "meta": meta_resource_from_env(),
        "output": OutputResource(),
    }


class MetaResource(dg.ConfigurableResource):
    """Live ad accounts through the Marketing API. Secrets come from EnvVar; nothing is written to Meta."""

    access_token: str | None = Field(None, description="EnvVar META_ACCESS_TOKEN (ads_read)")
    app_secret: str | None = Field(None, description="EnvVar META_APP_SECRET: adds appsecret_proof")
    ad_account_ids: str = Field("", description="comma separated, e.g. act_123,act_456 (META_AD_ACCOUNT_IDS)")
    graph_url: str | None = Field(None, description="META_GRAPH_URL; default Meta's")
    api_version: str = "v26.0"
    attribution_windows: list[str] = Field(default_factory=lambda: ["7d_click", "1d_view"])
    purchase_action_priority: list[str] = Field(default_factory=lambda: list(DEFAULT_PURCHASE_PRIORITY))
    lookback_days: int | None = Field(None, ge=0, le=28, description="re-pulled every run; default: rules")
    initial_days: int = Field(35, ge=1, le=400, description="history pulled for an account new to the warehouse")
    page_size: int = Field(500, ge=1, le=5000)
    async_after_days: int = Field(8, ge=1, description="longer ranges run as async report runs")
    max_retries: int = Field(6, ge=0)
    backoff_seconds: float = 2.0
    throttle_at_pct: float = Field(75.0, description="pause when a usage header reaches this %")
    throttle_pause_seconds: float = 60.0
    async_poll_seconds: float = 2.0
    audience_mapping_path: str | None = Field(None, description="audiences.csv whose fields override derived ones")

    _client: Any = PrivateAttr(default=None)

    def account_list(self) -> list[str]:
        ids = [a.strip() for a in self.ad_account_ids.split(",") if a.strip()]
        return [a if a.startswith("act_") else f"act_{a}" for a in ids]

    def client(self):
        """One SDK session per run (the resource lives for one run)."""
        if not self.access_token:
            raise ConfigError("the meta source needs META_ACCESS_TOKEN (a token with ads_read)")
        if not self.account_list():
            raise ConfigError("the meta source needs META_AD_ACCOUNT_IDS, e.g. act_1234567890")
        if self._client is None:
            from audience_assets.integrations.meta import MetaClient, MetaSettings

            self._client = MetaClient(
                MetaSettings(
                    access_token=self.access_token,
                    app_secret=self.app_secret,
                    api_version=self.api_version,
                    graph_url=self.graph_url,
                    page_size=self.page_size,
                    attribution_windows=tuple(self.attribution_windows),
                    async_after_days=self.async_after_days,
                    max_retries=self.max_retries,
                    backoff_seconds=self.backoff_seconds,
                    throttle_at_pct=self.throttle_at_pct,
                    throttle_pause_seconds=self.throttle_pause_seconds,
                    async_poll_seconds=self.async_poll_seconds,
                )
            )
        return self._client


def meta_resource_from_env() -> MetaResource:
    """EnvVar for each secret that is set, so a machine without Meta access still loads."""

    def env(name: str) -> Any:
        return dg.EnvVar(name) if os.environ.get(name) else None

    return MetaResource(
        access_token=env("META_ACCESS_TOKEN"),
        app_secret=env("META_APP_SECRET"),
        ad_account_ids=env("META_AD_ACCOUNT_IDS") or "",
        graph_url=env("META_GRAPH_URL"),
    )
