"""Shared helpers for the integration tests: the real Definitions, run per test on a DuckDB file in tmp_path."""

from __future__ import annotations

import gc
import json
import warnings
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import polars as pl
import pytest

from audience_assets.defs.resources import SourceResource
from audience_assets.sample.simulator import SAMPLE_END_DATE

REPO_ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = REPO_ROOT / ".venv" / "bin"
JOB = "audience_engine_job"
# The default decision date of the sample: the day after its newest row.
SAMPLE_DECISION_DATE = SAMPLE_END_DATE + timedelta(days=1)
SMALL = 40  # ad sets in samples where size does not matter

warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)


def run_config(
    db: Path | str,
    *,
    out_dir: Path | str | None = None,
    source: dict[str, Any] | None = None,
    overrides: dict[str, Any] | str | None = None,
    config_path: str | None = None,
) -> dict[str, Any]:
    """Run config for audience_engine_job: every resource pointed at tmp_path."""
    db = Path(db)
    db.parent.mkdir(parents=True, exist_ok=True)
    out = Path(out_dir) if out_dir is not None else db.parent / "recommendations"
    rules: dict[str, Any] = {}
    if overrides is not None:
        rules["overrides_json"] = overrides if isinstance(overrides, str) else json.dumps(overrides)
    if config_path is not None:
        rules["config_path"] = config_path
    return {
        "resources": {
            "duckdb": {"config": {"database": str(db)}},
            "source": {"config": dict(source or {})},
            "rules": {"config": rules},
            "output": {"config": {"directory": str(out), "reports_directory": str(out / "reports")}},
        },
        "loggers": {"console": {"config": {"log_level": "CRITICAL"}}},
    }


class DayRuns:
    """The runs of one decision date, one per account (in account order), read like one result."""

    def __init__(self, results: list[dg.ExecuteInProcessResult]) -> None:
        self.results = results

    @property
    def success(self) -> bool:
        return bool(self.results) and all(r.success for r in self.results)

    @property
    def run_id(self) -> str:
        assert len(self.results) == 1, f"{len(self.results)} runs (one per account): pick one from .results"
        return self.results[0].run_id

    @property
    def all_events(self) -> list:
        return [e for r in self.results for e in r.all_events]

    def get_asset_materialization_events(self) -> list:
        return [e for r in self.results for e in r.get_asset_materialization_events()]

    def get_asset_check_evaluations(self) -> list:
        return [c for r in self.results for c in r.get_asset_check_evaluations()]

    def __getattr__(self, name: str) -> Any:
        if len(self.results) == 1:
            return getattr(self.results[0], name)
        raise AttributeError(f"{name}: {len(self.results)} runs (one per account); read .results")


def source_accounts_of(cfg: dict[str, Any]) -> list[str]:
    """The accounts the run config's source holds (as the CLI and the sensors find them)."""
    from audience_assets.defs.resources import MetaResource
    from audience_assets.sources.accounts import source_accounts

    source = cfg["resources"]["source"]["config"]
    spec = SourceResource(**source).spec()
    meta = cfg["resources"].get("meta", {}).get("config", {})
    return source_accounts(spec, MetaResource(**meta).account_list() if spec.kind == "meta" else [])


def run_day(
    job: str,
    day: date | str,
    cfg: dict[str, Any],
    *,
    accounts: list[str] | None = None,
    instance: dg.DagsterInstance | None = None,
    **kw: Any,
) -> DayRuns:
    """Run a partitioned job of the real Definitions for every account of a decision date, one
    account-day after another, in one instance (ephemeral unless given)."""
    from audience_assets.definitions import defs
    from audience_assets.defs.common import ACCOUNTS, partition_key

    day = day if isinstance(day, str) else day.isoformat()
    accounts = accounts if accounts is not None else source_accounts_of(cfg)
    inst = instance or dg.DagsterInstance.ephemeral()
    known = set(inst.get_dynamic_partitions(ACCOUNTS.name))
    if new := [a for a in accounts if a not in known]:
        inst.add_dynamic_partitions(ACCOUNTS.name, new)
    job_def = defs.resolve_job_def(job)
    kw.setdefault("raise_on_error", False)
    return DayRuns(
        [job_def.execute_in_process(partition_key=partition_key(day, a), run_config=cfg, instance=inst, **kw)
         for a in accounts]
    )  # fmt: skip


def materialise(
    db: Path | str,
    partition: date | str,
    *,
    source: dict[str, Any] | None = None,
    overrides: dict[str, Any] | str | None = None,
    out_dir: Path | str | None = None,
    config_path: str | None = None,
) -> DayRuns:
    """Materialise the whole job of the real Definitions for one decision date, every account."""
    cfg = run_config(db, out_dir=out_dir, source=source, overrides=overrides, config_path=config_path)
    return run_day(JOB, partition, cfg)


def csv_source(insights: Path | str, audiences: Path | str) -> dict[str, Any]:
    return {"kind": "csv", "insights_path": str(insights), "audiences_path": str(audiences)}


def _read_only(db: Path | str) -> duckdb.DuckDBPyConnection:
    try:
        return duckdb.connect(str(db), read_only=True)
    except duckdb.ConnectionException:
        # dagster_duckdb's get_connection does not close its connection when a step raises: the
        # orphaned read-write connection lives in this process until garbage-collected.
        gc.collect()
        return duckdb.connect(str(db), read_only=True)


def query(db: Path | str, sql: str, params: list[Any] | None = None) -> pl.DataFrame:
    """Read from the warehouse with a short-lived read-only connection."""
    with _read_only(db) as conn:
        return conn.execute(sql, params or []).pl()


def scalar(db: Path | str, sql: str, params: list[Any] | None = None) -> Any:
    with _read_only(db) as conn:
        row = conn.execute(sql, params or []).fetchone()
    return row[0] if row else None


def relations(db: Path | str) -> dict[str, str]:
    """Every table and view of the main schema: name -> table_type (empty if there is no file yet)."""
    if not Path(db).exists():
        return {}
    frame = query(db, "SELECT table_name, table_type FROM information_schema.tables WHERE table_schema = 'main'")
    return dict(frame.iter_rows())


def table_exists(db: Path | str, table: str) -> bool:
    return table in relations(db)


def rows_for(db: Path | str, table: str, day: date) -> int:
    if not table_exists(db, table):
        return 0
    return int(scalar(db, f'SELECT count(*) FROM "{table}" WHERE decision_date = ?', [day]))


def materialised_keys(result: dg.ExecuteInProcessResult) -> set[str]:
    return {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}


def materialisation_metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict[str, Any]:
    """The metadata values of one asset's materialisation in a run (raw values, not MetadataValue)."""
    for event in result.get_asset_materialization_events():
        mat = event.materialization
        if mat.asset_key.to_user_string() == asset:
            return {k: v.value for k, v in mat.metadata.items()}
    raise AssertionError(f"{asset} was not materialised; materialised: {sorted(materialised_keys(result))}")


def summed_metadata(result: Any, asset: str) -> dict[str, Any]:
    """One asset's metadata over its materialisations in every run (one per account): counts summed,
    maxima (`*max*`) the largest, anything else the first run's."""
    total: dict[str, Any] = {}
    for event in result.get_asset_materialization_events():
        mat = event.materialization
        if mat.asset_key.to_user_string() != asset:
            continue
        for k, v in mat.metadata.items():
            if not isinstance(v.value, (int, float)) or isinstance(v.value, bool) or k not in total:
                total.setdefault(k, v.value)
            elif "max" in k:
                total[k] = max(total[k], v.value)
            else:
                total[k] += v.value
    assert total, f"{asset} was not materialised"
    return total


def raw_materialisation_metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict[str, Any]:
    for event in result.get_asset_materialization_events():
        mat = event.materialization
        if mat.asset_key.to_user_string() == asset:
            return dict(mat.metadata)
    raise AssertionError(f"{asset} was not materialised")


def check_evaluations(result: dg.ExecuteInProcessResult) -> dict[tuple[str, str], Any]:
    """(asset, check name) -> AssetCheckEvaluation."""
    return {(c.asset_key.to_user_string(), c.check_name): c for c in result.get_asset_check_evaluations()}


def failure_messages(result: dg.ExecuteInProcessResult) -> list[str]:
    """Every step failure message of a run, with its chain of causes."""
    out: list[str] = []
    for event in result.all_events:
        if event.event_type_value != "STEP_FAILURE":
            continue
        err = event.event_specific_data.error
        parts = []
        while err is not None:
            parts.append(f"{err.cls_name}: {err.message}")
            err = err.cause
        out.append(f"[{event.step_key}] " + " <- ".join(parts))
    return out


def failed_steps(result: dg.ExecuteInProcessResult) -> set[str]:
    return {e.step_key for e in result.all_events if e.event_type_value == "STEP_FAILURE"}


@pytest.fixture(scope="session", autouse=True)
def dagster_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The CLI records its runs in $DAGSTER_HOME: tests use their own, never the project's .dagster."""
    import os

    home = tmp_path_factory.mktemp("dagster_home")
    previous = os.environ.get("DAGSTER_HOME")
    os.environ["DAGSTER_HOME"] = str(home)
    yield home
    if previous is None:
        os.environ.pop("DAGSTER_HOME", None)
    else:
        os.environ["DAGSTER_HOME"] = previous


@dataclass(frozen=True)
class Warehouse:
    db: Path
    out_dir: Path
    day: date
    result: dg.ExecuteInProcessResult
    source: dict[str, Any]


@pytest.fixture(scope="session")
def sample_warehouse(tmp_path_factory: pytest.TempPathFactory) -> Warehouse:
    """The default sample account materialised once for the decision date after its newest row.

    Read-only for tests: never materialise into this warehouse again.
    """
    root = tmp_path_factory.mktemp("sample_warehouse")
    db, out = root / "w.duckdb", root / "out"
    source: dict[str, Any] = {"kind": "sample"}
    result = materialise(db, SAMPLE_DECISION_DATE, source=source, out_dir=out)
    assert result.success, failure_messages(result)
    return Warehouse(db=db, out_dir=out, day=SAMPLE_DECISION_DATE, result=result, source=source)


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """`audience-engine ARGS` in-process: (exit code, stdout, stderr); argparse exits become codes."""
    from audience_assets.cli import main

    capsys.readouterr()
    try:
        code = main([str(a) for a in args])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="session")
def execution_template(tmp_path_factory):
    """A warehouse with today's decisions on the execution tests' fake accounts: (path, ids)."""
    from audience_assets_tests.execution_helpers import make_template

    return make_template(tmp_path_factory.mktemp("execution_template"))
