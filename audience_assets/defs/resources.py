"""Dagster resources: the warehouse, the rules and the data source, all configurable per run."""

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource

from audience_assets.engine.config import ConfigError, RulesConfig, load_config
from audience_assets.sample.simulator import SAMPLE_END_DATE
from audience_assets.sources import SourceSpec
from audience_assets.warehouse import database_path


class WarehouseResource(DuckDBResource):
    """DuckDBResource that creates the file's folder and always closes its connection."""

    @contextmanager
    def get_connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        if self.database != ":memory:":
            Path(self.database).parent.mkdir(parents=True, exist_ok=True)
        with super().get_connection() as conn:
            try:
                yield conn
            finally:
                # The parent skips close() when the step raises: the file would stay locked.
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

    kind: str = "sample"
    insights_path: str | None = None
    audiences_path: str | None = None
    sample_seed: int = 7
    sample_adsets: int = 120
    sample_days: int = 75
    sample_end_date: str = SAMPLE_END_DATE.isoformat()

    def spec(self) -> SourceSpec:
        return SourceSpec(
            kind=self.kind,  # type: ignore[arg-type]
            insights_path=self.insights_path,
            audiences_path=self.audiences_path,
            sample_seed=self.sample_seed,
            sample_adsets=self.sample_adsets,
            sample_days=self.sample_days,
            sample_end_date=date.fromisoformat(self.sample_end_date),
        )


class OutputResource(dg.ConfigurableResource):
    """Where the recommendations JSON of each decision date is written."""

    directory: str = "data/recommendations"

    def path_for(self, day: date) -> Path:
        return Path(self.directory) / f"recommendations_{day.isoformat()}.json"


def default_resources() -> dict[str, object]:
    return {
        "duckdb": WarehouseResource(database=database_path()),
        "rules": RulesResource(),
        "source": SourceResource(),
        "output": OutputResource(),
    }
