"""`audience-engine recommend --source meta` as a user runs it (a subprocess with META_* env vars,
pointed at the fake Graph API), and the same decisions from CSV exports of the same numbers."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from audience_assets_tests.conftest import VENV_BIN, cli, query
from audience_assets_tests.fakes.graph_server import FakeGraph, build_account
from audience_assets_tests.meta_helpers import DECISION, END, INR, JPY, JPY_RATE, TOKEN, standard_accounts

ENGINE = str(VENV_BIN / "audience-engine")
RATE = f"currency_rates.JPY={JPY_RATE}"


def meta_env(graph_url: str | None, token: str | None = TOKEN, accounts: str = f"{INR},{JPY}") -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("META_", "ANTHROPIC_", "AUDIENCE_ENGINE_")) and "proxy" not in k.lower()
    }
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    if token is not None:
        env["META_ACCESS_TOKEN"] = token
    if accounts:
        env["META_AD_ACCOUNT_IDS"] = accounts
    if graph_url is not None:
        env["META_GRAPH_URL"] = graph_url
    return env


def run_cli(tmp: Path, env: dict[str, str], *extra: str) -> subprocess.CompletedProcess[str]:
    cmd = [
        ENGINE,
        "recommend",
        "--source",
        "meta",
        "--as-of",
        DECISION.isoformat(),
        "--db",
        str(tmp / "meta.duckdb"),
        "--out",
        str(tmp / "recs.json"),
        *extra,
    ]
    return subprocess.run(cmd, env=env, cwd=tmp, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def meta_cli(tmp_path_factory):
    """One subprocess run of recommend --source meta against the fake (default resource settings)."""
    tmp = tmp_path_factory.mktemp("meta_cli")
    setup = standard_accounts()
    # async_poll_rounds=0: the report run is complete at the first poll, so the default 2 s poll wait never runs.
    with FakeGraph([setup.inr, setup.jpy], page_size_cap=40, async_poll_rounds=0) as fake:
        proc = run_cli(tmp, meta_env(fake.base_url), "--set", RATE)
        requests = list(fake.requests)
    yield type(
        "CliRun", (), {"tmp": tmp, "setup": setup, "proc": proc, "requests": requests, "db": tmp / "meta.duckdb"}
    )


def decisions_of(doc: dict) -> dict[str, tuple[str, int, str]]:
    return {r["audience_id"]: (r["action"], r["scale_percentage"], r["confidence"]) for r in doc["recommendations"]}


def test_recommend_source_meta_writes_recommendations(meta_cli):
    proc = meta_cli.proc
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads((meta_cli.tmp / "recs.json").read_text())
    assert doc["decision_date"] == DECISION.isoformat()
    ids = {a["id"] for a in meta_cli.setup.inr.adsets + meta_cli.setup.jpy.adsets}
    assert {r["audience_id"] for r in doc["recommendations"]} == ids
    assert doc["summary"]["audiences"] == len(ids)
    assert {r["explanation_source"] for r in doc["recommendations"]} == {"template"}  # no ANTHROPIC key
    assert "SCALE" in proc.stdout and "HOLD" in proc.stdout  # the ranked table


def test_recommend_source_meta_only_reads(meta_cli):
    assert meta_cli.proc.returncode == 0
    reqs = meta_cli.requests
    assert reqs
    writes = [r for r in reqs if r["method"] != "GET"]
    assert writes, "the initial load should be an async report run"
    assert {(r["method"], r["path"]) for r in writes} <= {
        ("POST", f"/v26.0/{INR}/insights"),
        ("POST", f"/v26.0/{JPY}/insights"),
    }
    adset_and_campaign_ids = {
        x["id"] for acct in (meta_cli.setup.inr, meta_cli.setup.jpy) for x in acct.adsets + acct.campaigns
    }
    for r in writes:
        assert r["path"].split("/")[2] not in adset_and_campaign_ids
        assert not set(r["form"]) & {"daily_budget", "lifetime_budget", "status"}
    assert all(r["access_token"] == TOKEN for r in reqs)


def test_recommend_source_meta_does_not_print_the_token(meta_cli):
    assert TOKEN not in meta_cli.proc.stdout and TOKEN not in meta_cli.proc.stderr
    assert TOKEN not in (meta_cli.tmp / "recs.json").read_text()


def _export_csvs(db: Path, tmp: Path) -> tuple[Path, Path]:
    """insights.csv and audiences.csv from what the meta run stored (canonical purchases, derived metadata)."""
    insights = query(
        db,
        """SELECT strftime(date, '%Y-%m-%d') AS date_start, account_id, campaign_id, campaign_name, adset_id,
                  adset_name, spend, impressions, clicks, purchases, purchase_value, currency AS account_currency
           FROM raw_insights ORDER BY account_id, adset_id, date""",
    )
    audiences = query(
        db,
        """SELECT adset_id, audience_type, lookalike_pct, source_quality,
                  strftime(launched_on, '%Y-%m-%d') AS launched_on, daily_budget,
                  strftime(last_budget_change_at, '%Y-%m-%dT%H:%M:%S') AS last_budget_change_at
           FROM audience_metadata WHERE decision_date = ? ORDER BY adset_id""",
        [DECISION],
    )
    ins, aud = tmp / "insights.csv", tmp / "audiences.csv"
    insights.write_csv(ins)
    audiences.write_csv(aud)
    return ins, aud


def test_csv_path_on_the_same_numbers_decides_the_same(meta_cli, tmp_path, capsys):
    assert meta_cli.proc.returncode == 0
    ins, aud = _export_csvs(meta_cli.db, tmp_path)
    code, _out, err = cli(
        capsys,
        "recommend",
        "--insights",
        ins,
        "--audiences",
        aud,
        "--as-of",
        DECISION.isoformat(),
        "--db",
        tmp_path / "csv.duckdb",
        "--out",
        tmp_path / "csv.json",
        "--set",
        RATE,
        "--quiet",
    )
    assert code == 0, err
    meta_doc = json.loads((meta_cli.tmp / "recs.json").read_text())
    csv_doc = json.loads((tmp_path / "csv.json").read_text())
    from_meta, from_csv = decisions_of(meta_doc), decisions_of(csv_doc)
    assert set(from_meta) == set(from_csv)

    flags = query(
        meta_cli.db,
        "SELECT adset_id, is_cbo, lifetime_budget IS NOT NULL AND daily_budget IS NULL AS lifetime, "
        "coalesce(effective_status, 'ACTIVE') <> 'ACTIVE' AS not_delivering, guardrail, eligible "
        "FROM decisions WHERE decision_date = ?",
        [DECISION],
    )
    # What the CSV contract cannot carry: where the budget lives, and Meta's delivery status.
    special = {r["adset_id"]: r for r in flags.to_dicts() if r["is_cbo"] or r["lifetime"] or r["not_delivering"]}
    assert meta_cli.setup.cbo in special and meta_cli.setup.lifetime in special
    ordinary = sorted(set(from_meta) - set(special))
    assert len(ordinary) >= 6
    assert {a: from_meta[a] for a in ordinary} == {a: from_csv[a] for a in ordinary}
    for adset_id, flag in special.items():
        m, c = from_meta[adset_id], from_csv[adset_id]
        if flag["not_delivering"]:
            # Meta says it is paused: the live path never acts on it, whatever the numbers say.
            assert not flag["eligible"] and m[0] == "HOLD" and m[1] == 0, (adset_id, m)
        else:
            # The budget lives on the campaign or is a lifetime budget: neither path may step a daily
            # budget (the CSV path holds because the ad set has no daily budget of its own).
            assert m[0] != "SCALE" and c[0] != "SCALE", (adset_id, m, c)
            if m != c:
                assert flag["guardrail"] in ("campaign_budget", "lifetime_budget"), (adset_id, m, c)

    # Same numbers: the window metrics the decisions rest on are identical.
    cols = "adset_id, spend_window, purchases_window, revenue_window, roas_window, score"
    a = query(meta_cli.db, f"SELECT {cols} FROM decisions ORDER BY adset_id")
    b = query(tmp_path / "csv.duckdb", f"SELECT {cols} FROM decisions ORDER BY adset_id")
    assert a.equals(b) or all(
        abs(x - y) < 1e-6
        for col in ("spend_window", "purchases_window", "revenue_window", "roas_window", "score")
        for x, y in zip(a[col].fill_null(0), b[col].fill_null(0), strict=True)
    )


def test_invalid_token_fails_with_a_clear_message(tmp_path):
    inr = build_account(INR, "INR", n_adsets=5, days=10, end_date=END, seed=8)
    with FakeGraph([inr], tokens={"the-right-token"}) as fake:
        proc = run_cli(tmp_path, meta_env(fake.base_url, accounts=INR), "--quiet")
        assert len(fake.requests) == 1  # no retry of a 190
    assert proc.returncode != 0
    assert "190" in proc.stderr and INR in proc.stderr and "token" in proc.stderr
    assert TOKEN not in proc.stderr and TOKEN not in proc.stdout
    assert not (tmp_path / "recs.json").exists()


def test_missing_token_is_a_configuration_error(tmp_path):
    proc = run_cli(tmp_path, meta_env("http://127.0.0.1:9", token=None), "--quiet")
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "META_ACCESS_TOKEN" in proc.stderr


def test_meta_resource_reads_secrets_from_the_environment(monkeypatch):
    import dagster as dg

    from audience_assets.defs.resources import MetaResource, meta_resource_from_env

    monkeypatch.setenv("META_ACCESS_TOKEN", "t")
    monkeypatch.setenv("META_AD_ACCOUNT_IDS", "act_1,2")
    monkeypatch.setenv("META_GRAPH_URL", "http://127.0.0.1:1")
    monkeypatch.delenv("META_APP_SECRET", raising=False)
    res = meta_resource_from_env()
    # Secrets stay EnvVar references (resolved at run time, never copied into config).
    assert isinstance(res.access_token, dg.EnvVar) and res.access_token.env_var_name == "META_ACCESS_TOKEN"
    assert isinstance(res.graph_url, dg.EnvVar)
    assert res.app_secret is None
    assert MetaResource(ad_account_ids="act_1, 2 ,").account_list() == ["act_1", "act_2"]
