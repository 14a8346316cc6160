"""The DuckLake warehouse: the same graph and decisions as the DuckDB file, concurrent writers for
different accounts, extensions loaded from their PyPI packages."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import polars as pl
import pytest

from audience_assets.extensions import ExtensionError, extension_path, load_extension
from audience_assets.sample.simulator import simulate_account
from audience_assets.warehouse import (
    WarehouseError,
    database_path,
    open_database,
    parse_lake,
    require_database,
)

# Columns that name the run rather than the decision.
RUN_COLUMNS = {"run_id", "decided_at", "created_at", "loaded_at", "load_id", "generated_at", "analysed_at"}


def write_accounts(directory: Path, accounts: dict[str, int], adsets: int = 40) -> tuple[Path, Path]:
    """One insights/audiences CSV pair holding several simulated accounts (account id -> seed)."""
    insights, audiences = [], []
    for account, seed in accounts.items():
        acct = simulate_account(seed=seed, n_adsets=adsets, account_id=account)
        prefix = account.removeprefix("act_")
        insights.append(acct.insights.with_columns((pl.lit(prefix) + pl.col("adset_id")).alias("adset_id")))
        audiences.append(acct.audiences.with_columns((pl.lit(prefix) + pl.col("adset_id")).alias("adset_id")))
    directory.mkdir(parents=True, exist_ok=True)
    ins, aud = directory / "insights.csv", directory / "audiences.csv"
    pl.concat(insights).write_csv(ins, date_format="%Y-%m-%d")
    pl.concat(audiences).write_csv(aud, date_format="%Y-%m-%d", datetime_format="%Y-%m-%dT%H:%M:%S")
    return ins, aud


def recommend(
    db: str, ins: Path, aud: Path, out: Path, env: dict[str, str] | None = None, extra: list[str] | None = None
) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "audience_assets.cli", "recommend", "--insights", str(ins), "--audiences", str(aud)]
    cmd += ["--warehouse", db, "--out", str(out), "--quiet", *(extra or [])]
    return subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env or os.environ.copy()
    )


def finished(proc: subprocess.Popen) -> str:
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    return out


def decisions(db: str) -> pl.DataFrame:
    conn = open_database(db, read_only=True)
    try:
        frame = conn.execute("SELECT * FROM decisions").pl()
    finally:
        conn.close()
    keep = [c for c in frame.columns if c not in RUN_COLUMNS]
    return frame.select(keep).sort("decision_date", "account_id", "adset_id")


@pytest.fixture(scope="module")
def two_account_files(tmp_path_factory) -> tuple[Path, Path]:
    return write_accounts(tmp_path_factory.mktemp("two"), {"act_501": 11, "act_502": 12})


@pytest.fixture(scope="module")
def file_decisions(tmp_path_factory, two_account_files) -> pl.DataFrame:
    base = tmp_path_factory.mktemp("file")
    finished(recommend(str(base / "w.duckdb"), *two_account_files, base / "r.json"))
    return decisions(str(base / "w.duckdb"))


def test_recommend_on_a_lake_gives_exactly_the_single_file_decisions(tmp_path, two_account_files, file_decisions):
    lake = f"ducklake:sqlite:{tmp_path / 'lake' / 'catalog.sqlite'}"
    finished(recommend(lake, *two_account_files, tmp_path / "r.json"))
    on_lake = decisions(lake)
    assert on_lake.height == file_decisions.height > 0
    assert set(on_lake["account_id"]) == {"act_501", "act_502"}
    assert on_lake.equals(file_decisions), "the lake decided differently from the DuckDB file"
    # The data is Parquet in lake_data/ beside the catalog, the catalog is SQLite.
    assert list((tmp_path / "lake" / "lake_data").rglob("*.parquet"))
    assert (tmp_path / "lake" / "catalog.sqlite").read_bytes()[:15] == b"SQLite format 3"


def test_two_recommend_runs_for_different_accounts_at_once_on_one_lake(tmp_path):
    a = write_accounts(tmp_path / "a", {"act_501": 11})
    b = write_accounts(tmp_path / "b", {"act_502": 12})
    lake = f"ducklake:sqlite:{tmp_path / 'catalog.sqlite'}"
    procs = [recommend(lake, *a, tmp_path / "a.json"), recommend(lake, *b, tmp_path / "b.json")]
    for proc in procs:
        finished(proc)
    both = decisions(lake)
    assert sorted(set(both["account_id"])) == ["act_501", "act_502"]
    for name, account in (("a.json", "act_501"), ("b.json", "act_502")):
        # A run's JSON holds its own account (and, while runs are per date, any other already stored).
        assert account in (tmp_path / name).read_text()
    assert both.filter(pl.col("account_id") == "act_501").height == 40
    assert both.filter(pl.col("account_id") == "act_502").height == 40


def test_lake_settings_parse_and_bad_ones_are_clear(tmp_path, monkeypatch):
    monkeypatch.delenv("AUDIENCE_ENGINE_LAKE_DATA", raising=False)
    lake = parse_lake(f"ducklake:sqlite:{tmp_path}/c.sqlite")
    assert (lake.kind, lake.data_path) == ("sqlite", f"{tmp_path}/lake_data/")
    assert parse_lake(f"ducklake:{tmp_path}/c.ducklake").kind == "duckdb"
    monkeypatch.setenv("AUDIENCE_ENGINE_LAKE_DATA", str(tmp_path / "elsewhere"))
    assert parse_lake(f"ducklake:sqlite:{tmp_path}/c.sqlite").data_path == f"{tmp_path}/elsewhere/"
    secret = parse_lake("ducklake:postgres:dbname=lake host=db password=hunter2")
    assert "hunter2" not in secret.label() and "dbname=lake" in secret.label()
    monkeypatch.delenv("AUDIENCE_ENGINE_LAKE_DATA")
    with pytest.raises(WarehouseError, match="AUDIENCE_ENGINE_LAKE_DATA"):
        parse_lake("ducklake:postgres:dbname=lake")
    with pytest.raises(WarehouseError, match=r"\.ducklake"):
        parse_lake(f"ducklake:{tmp_path}/c.db")
    monkeypatch.setenv("AUDIENCE_ENGINE_WAREHOUSE", "postgres://user:hunter2@db/lake")
    with pytest.raises(WarehouseError, match="AUDIENCE_ENGINE_WAREHOUSE") as err:
        database_path()
    assert "hunter2" not in str(err.value)
    monkeypatch.setenv("AUDIENCE_ENGINE_WAREHOUSE", f"ducklake:sqlite:{tmp_path}/c.sqlite")
    assert database_path() == f"ducklake:sqlite:{tmp_path}/c.sqlite"
    with pytest.raises(WarehouseError, match="no lake at"):
        require_database(database_path())
    not_sqlite = tmp_path / "x.sqlite"
    not_sqlite.write_text("hello, this is not a catalog")
    with pytest.raises(WarehouseError, match="not a SQLite database"):
        open_database(f"ducklake:sqlite:{not_sqlite}")


def test_extensions_load_from_their_packages_without_the_network():
    conn = duckdb.connect()
    for name in ("sqlite", "postgres", "httpfs", "ducklake"):
        assert extension_path(name).is_file()
        load_extension(conn, name)
    loaded = {r[0] for r in conn.execute("SELECT extension_name FROM duckdb_extensions() WHERE loaded").fetchall()}
    assert {"sqlite_scanner", "postgres_scanner", "httpfs", "ducklake"} <= loaded
    with pytest.raises(ExtensionError, match=rf"pip install duckdb-extension-nosuch=={duckdb.__version__}"):
        extension_path("nosuch")


def test_two_account_partitions_materialise_concurrently_and_match_the_file(
    tmp_path, two_account_files, file_decisions
):
    """The CLI's fan-out: two account-day runs at once, each in a process of its own, on one lake."""
    import dagster as dg

    lake = f"ducklake:sqlite:{tmp_path / 'catalog.sqlite'}"
    home = tmp_path / "dagster_home"
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    out = tmp_path / "r.json"
    finished(recommend(lake, *two_account_files, out, env=env, extra=["--concurrency", "2"]))
    assert decisions(lake).equals(file_decisions), "the concurrent lake runs decided differently from the file"
    doc = json.loads(out.read_text())
    assert len(doc["run_ids"]) == 2 and doc["run_id"] is None
    assert {r["account_id"] for r in doc["recommendations"]} == {"act_501", "act_502"}
    with dg.DagsterInstance.from_config(str(home)) as instance:
        done = instance.get_materialized_partitions(dg.AssetKey("decisions"))
        runs = instance.get_run_records()
    assert done == {"act_501|2026-11-26", "act_502|2026-11-26"}
    # Both runs were under way at the same time: each started before the other ended.
    (a, b) = sorted(((r.start_time, r.end_time) for r in runs), key=lambda t: t[0])
    assert b[0] < a[1], f"the runs did not overlap: {a} then {b}"


def test_a_failing_account_leaves_the_other_materialised_and_its_own_untouched_on_a_lake(tmp_path):
    from audience_assets_tests.conftest import JOB, failure_messages, run_day
    from audience_assets_tests.fakes.graph_server import FakeGraph, graph_error
    from audience_assets_tests.meta_helpers import INR, JPY, meta_run_config, two_accounts

    lake = f"ducklake:sqlite:{tmp_path / 'lake' / 'catalog.sqlite'}"
    inr, jpy = two_accounts(days=45, inr_adsets=5, jpy_adsets=5)
    with FakeGraph([inr, jpy], page_size_cap=10) as fake:
        cfg = meta_run_config(tmp_path / "unused.duckdb", fake)
        cfg["resources"]["duckdb"]["config"]["database"] = lake
        first = run_day(JOB, "2026-11-26", cfg)
        assert first.success, failure_messages(first)
        before = decisions(lake)
        fake.inject(rf"/{JPY}/insights$", *[graph_error(200)] * 5, method=None)
        second = run_day(JOB, "2026-11-26", cfg)
    inr_run, jpy_run = second.results
    assert inr_run.success and not jpy_run.success
    assert JPY in " ".join(failure_messages(jpy_run))
    conn = open_database(lake, read_only=True)
    try:
        stamps = dict(conn.execute("SELECT account_id, any_value(run_id) FROM decisions GROUP BY 1").fetchall())
    finally:
        conn.close()
    # act_1001 decided again by its new run; act_2002 exactly as the first run left it.
    assert stamps[INR] == inr_run.run_id
    after = decisions(lake)
    assert after.filter(pl.col("account_id") == JPY).equals(before.filter(pl.col("account_id") == JPY))
    assert after.filter(pl.col("account_id") == INR).height == before.filter(pl.col("account_id") == INR).height > 0


def test_a_failing_account_in_a_concurrent_cli_run_is_named_and_the_other_is_stored(tmp_path):
    """`recommend --source meta` on a lake, two accounts at once: when one account's Meta pull is
    refused, the command names it and fails; the other account's new decisions are stored and
    materialised, the failed account's earlier decisions stay exactly as they were."""
    import dagster as dg

    from audience_assets_tests.fakes.graph_server import FakeGraph, graph_error
    from audience_assets_tests.meta_helpers import INR, JPY, JPY_RATE, standard_accounts
    from audience_assets_tests.test_meta_cli import meta_env

    lake = f"ducklake:sqlite:{tmp_path / 'catalog.sqlite'}"
    setup = standard_accounts()

    def run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "audience_assets.cli", "recommend", "--source", "meta", "--as-of", "2026-11-26"]
        cmd += ["--warehouse", lake, "--out", str(tmp_path / "r.json"), "--concurrency", "2", "--quiet"]
        cmd += ["--set", f"currency_rates.JPY={JPY_RATE}"]
        return subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)

    with FakeGraph([setup.inr, setup.jpy], page_size_cap=40, async_poll_rounds=0) as fake:
        env = meta_env(fake.base_url) | {"DAGSTER_HOME": str(tmp_path / "home")}
        first = run(env)
        assert first.returncode == 0, first.stderr[-3000:]
        before = decisions(lake)
        fake.inject(rf"/{JPY}/insights$", *[graph_error(200)] * 5, method=None)
        (tmp_path / "r.json").unlink()
        second = run(env)
    assert second.returncode == 1, second.stderr[-3000:]
    assert f"1 of 2 accounts failed; stored for {INR}: {JPY}:" in second.stderr and "code 200" in second.stderr
    assert not (tmp_path / "r.json").exists(), "a JSON missing an account was delivered"
    after = decisions(lake)
    assert after.filter(pl.col("account_id") == JPY).equals(before.filter(pl.col("account_id") == JPY))
    conn = open_database(lake, read_only=True)
    try:
        runs = dict(conn.execute("SELECT account_id, any_value(run_id) FROM decisions GROUP BY 1").fetchall())
    finally:
        conn.close()
    with dg.DagsterInstance.from_config(str(tmp_path / "home")) as instance:
        records = {r.dagster_run.run_id: r.dagster_run for r in instance.get_run_records()}
    assert len(records) == 4
    # INR's decisions come from its successful run of the second command, which overlapped JPY's.
    inr_run = records[runs[INR]]
    assert inr_run.status == dg.DagsterRunStatus.SUCCESS and inr_run.tags["dagster/partition/account"] == INR
    failed = [r for r in records.values() if r.status == dg.DagsterRunStatus.FAILURE]
    assert [r.tags["dagster/partition/account"] for r in failed] == [JPY]


def test_concurrency_settings_are_checked_before_anything_runs(tmp_path, capsys, monkeypatch, two_account_files):
    from audience_assets_tests.conftest import cli

    ins, aud = two_account_files
    lake = f"ducklake:sqlite:{tmp_path / 'catalog.sqlite'}"
    base = ["recommend", "--insights", ins, "--audiences", aud, "--out", tmp_path / "r.json"]
    code, _out, err = cli(capsys, *base, "--warehouse", lake, "--concurrency", "0")
    assert code == 2 and "--concurrency" in err and "1 or more" in err
    monkeypatch.setenv("AUDIENCE_ENGINE_CONCURRENCY", "many")
    code, _out, err = cli(capsys, *base, "--warehouse", lake)
    assert code == 2 and "AUDIENCE_ENGINE_CONCURRENCY='many'" in err and "whole number of runs" in err
    assert not (tmp_path / "catalog.sqlite").exists() and not (tmp_path / "r.json").exists()
