"""deploy/: the cluster's Dagster instance (PostgreSQL storage, the Kubernetes run launcher, the run
queue) loads and validates, runs account partitions on real PostgreSQL storage into a lake whose
catalog is in the same server, and the code location passes `dagster definitions validate`."""

from __future__ import annotations

import os
import shutil
import subprocess

import dagster as dg
import pytest
import yaml
from dagster._config import process_config
from dagster._core.instance.config import dagster_instance_config

from audience_assets_tests.conftest import JOB, REPO_ROOT, VENV_BIN, failure_messages, run_config, run_day
from audience_assets_tests.fakes.postgres_server import PostgresServer

DEPLOY = REPO_ROOT / "deploy"


def test_the_cluster_instance_config_validates_and_a_typo_is_refused(tmp_path):
    from dagster_k8s import K8sRunLauncher

    config, _ = dagster_instance_config(str(DEPLOY))
    assert config["storage"]["postgres"]["postgres_db"]["hostname"] == {"env": "DAGSTER_PG_HOST"}
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    launcher = config["run_launcher"]
    assert (launcher["module"], launcher["class"]) == ("dagster_k8s", "K8sRunLauncher")
    checked = process_config(K8sRunLauncher.config_type(), launcher["config"])
    assert checked.success, checked.errors
    # The same file with a misspelt launcher setting is refused by the launcher's own schema.
    bad = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())
    bad["run_launcher"]["config"]["servce_account_name"] = bad["run_launcher"]["config"].pop("service_account_name")
    assert not process_config(K8sRunLauncher.config_type(), bad["run_launcher"]["config"]).success


def test_the_code_location_validates_as_the_cluster_loads_it(tmp_path):
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path)}
    proc = subprocess.run(
        [str(VENV_BIN / "dagster"), "definitions", "validate", "-w", str(DEPLOY / "workspace.yaml")],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]


@pytest.mark.skipif(not PostgresServer.available(), reason="PostgreSQL server binaries (initdb, pg_ctl) not installed")
def test_account_partitions_run_on_postgres_storage_into_a_postgres_lake(tmp_path, monkeypatch):
    """The deployment's instance for real (storage and run queue in PostgreSQL), deciding the sample
    account into a DuckLake lake whose catalog is in the same server: the file's decisions."""
    from audience_assets_tests.test_lake import decisions

    source = {"kind": "sample", "sample_adsets": 40}
    file_db = tmp_path / "file" / "w.duckdb"
    assert run_day(JOB, "2026-11-26", run_config(file_db, source=source)).success
    with PostgresServer(db="dagster") as pg:
        for key, value in pg.env().items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("AUDIENCE_ENGINE_CONCURRENCY", "3")
        monkeypatch.setenv("AUDIENCE_ENGINE_LAKE_DATA", str(tmp_path / "lake_data"))
        lake = f"ducklake:postgres:{pg.conninfo()}"
        cfg = run_config(tmp_path / "out" / "unused.duckdb", source=source)
        cfg["resources"]["duckdb"]["config"]["database"] = lake
        with dg.DagsterInstance.from_config(str(DEPLOY)) as instance:
            assert type(instance.run_storage).__name__ == "PostgresRunStorage"
            assert instance.run_coordinator.get_run_queue_config().max_concurrent_runs == 3
            result = run_day(JOB, "2026-11-26", cfg, instance=instance)
            assert result.success, failure_messages(result)
            done = instance.get_materialized_partitions(dg.AssetKey("decisions"))
        assert done == {"act_1001|2026-11-26"}
        on_lake = decisions(lake)
    assert on_lake.height == 40
    assert on_lake.equals(decisions(str(file_db))), "the PostgreSQL lake decided differently from the file"
    assert list((tmp_path / "lake_data").rglob("*.parquet"))
    shutil.rmtree(tmp_path / "lake_data")
