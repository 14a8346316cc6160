"""The house rules, checked on the code itself: one direction of dependency, a pure engine,
short functions, and the raw contract written once."""

from __future__ import annotations

import ast
from pathlib import Path

import duckdb
import pytest

from audience_assets.sources import (
    AUDIENCE_API_FIELDS,
    AUDIENCE_FIELDS,
    AUDIENCES_OPTIONAL,
    INSIGHTS_OPTIONAL,
    INSIGHTS_REQUIRED,
    RAW_INSIGHTS,
    RAW_INSIGHTS_API,
    csv_name,
    raw_table_ddl,
)
from audience_assets.warehouse import sql_text

PACKAGE = Path(__file__).resolve().parents[1] / "audience_assets"
ENGINE_ALLOWED = {"polars", "pydantic", "numpy", "scipy", "audience_assets"}
# Functions allowed past the length limit: the vectorised simulators build one grid in one pass
# (the sample account, and the benchmark's scenarios with their hidden truth).
LONG_FUNCTIONS_ALLOWED = {("sample/simulator.py", "simulate_account"), ("sample/scenarios.py", "generate_scenario")}
MAX_FUNCTION_LINES = 80


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(path: Path, module: str) -> set[str]:
    """Every module this file imports, at any depth (function-level imports included)."""
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names}
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {m: {i for i in _imports(p, m) if i in modules and i != m} for m, p in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if state.get(nxt) is None:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_no_import_cycles_anywhere_in_the_package():
    """No two modules import each other, directly or round a loop, not even inside a function
    (a package importing its own submodule counts as an edge too)."""
    assert _cycle(_graph()) is None, " -> ".join(_cycle(_graph()) or [])


def test_the_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_the_engine_is_pure():
    """engine/ imports polars, pydantic, numpy, scipy and itself only: no SDK, no dagster, no duckdb."""
    offenders = []
    for module, path in _modules().items():
        if not module.startswith("audience_assets.engine"):
            continue
        for imported in _imports(path, module):
            top = imported.split(".")[0]
            stdlib = top in __import__("sys").stdlib_module_names
            if not stdlib and top not in ENGINE_ALLOWED:
                offenders.append(f"{module} imports {imported}")
            if top == "audience_assets" and not imported.startswith("audience_assets.engine"):
                offenders.append(f"{module} imports {imported}")
    assert not offenders, offenders


def test_sdks_are_imported_only_in_integrations():
    sdks = {"facebook_business", "anthropic", "slack_sdk", "slack_bolt", "mcp"}
    offenders = [
        f"{m} imports {i}"
        for m, p in _modules().items()
        if not m.startswith("audience_assets.integrations")
        for i in _imports(p, m)
        if i.split(".")[0] in sdks
    ]
    assert not offenders, offenders


def test_integrations_import_nothing_from_sources_or_defs():
    offenders = [
        f"{m} imports {i}"
        for m, p in _modules().items()
        if m.startswith("audience_assets.integrations")
        for i in _imports(p, m)
        if i.startswith(("audience_assets.sources", "audience_assets.defs"))
    ]
    assert not offenders, offenders


def test_no_product_function_is_longer_than_a_reader_can_hold():
    long = []
    for path in PACKAGE.rglob("*.py"):
        rel = str(path.relative_to(PACKAGE))
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES and (rel, node.name) not in LONG_FUNCTIONS_ALLOWED:
                    long.append(f"{rel}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, long


def test_no_top_level_meta_source_module():
    assert not (PACKAGE / "meta_source.py").exists()
    assert not (PACKAGE / "sources.py").exists()


# ---- the raw contract, written once -----------------------------------------------------


def test_csv_contract_is_derived_from_the_raw_schema():
    assert set(INSIGHTS_REQUIRED) | set(INSIGHTS_OPTIONAL) == {csv_name(c) for c in RAW_INSIGHTS}
    assert "date_start" in INSIGHTS_REQUIRED and "account_currency" in INSIGHTS_OPTIONAL
    assert set(AUDIENCES_OPTIONAL) <= set(AUDIENCE_FIELDS)


def test_staging_sql_yields_exactly_the_raw_columns():
    conn = duckdb.connect()
    conn.execute(raw_table_ddl("raw_insights"))
    staged = conn.execute(f"DESCRIBE {sql_text('staging/stg_insights')}").fetchall()
    assert [r[0] for r in staged] == list(RAW_INSIGHTS)


def test_the_meta_adapter_asks_for_every_field_the_transform_reads():
    from audience_assets.integrations.meta import ADSET_FIELDS, INSIGHT_FIELDS
    from audience_assets.sources.meta import INSIGHT_SCHEMA

    assert set(INSIGHT_SCHEMA) <= set(INSIGHT_FIELDS)
    for field in ("daily_budget", "lifetime_budget", "effective_status", "learning_stage_info", "targeting"):
        assert field in ADSET_FIELDS
    assert set(RAW_INSIGHTS_API) >= {"inline_link_clicks", "reach", "frequency"}
    assert set(AUDIENCE_API_FIELDS) == {
        "effective_status",
        "bid_strategy",
        "is_cbo",
        "lifetime_budget",
        "learning_stage",
    }


@pytest.mark.parametrize("table", ["raw_insights"])
def test_raw_table_ddl_matches_the_contract(table):
    conn = duckdb.connect()
    conn.execute(raw_table_ddl(table))
    cols = [r[0] for r in conn.execute(f"DESCRIBE {table}").fetchall()]
    assert cols[: len(RAW_INSIGHTS)] == list(RAW_INSIGHTS)
    assert set(RAW_INSIGHTS_API) <= set(cols)


WRITE_METHODS = {"set_daily_budget", "set_status", "duplicate"}


def test_only_the_execution_runner_writes_to_meta():
    """Every write to an ad account goes through `execution/runner.py`, whose every path checks an
    approval (or, for revert, an applied action) first; nothing else calls the writer's write methods
    or posts through the SDK."""
    offenders = []
    for module, path in _modules().items():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                continue
            name = node.func.attr
            posts = (
                name == "call" and node.args and isinstance(node.args[0], ast.Constant) and node.args[0].value == "POST"
            )
            if posts and module != "audience_assets.integrations.meta_writer":
                offenders.append(f"{module} posts through the SDK")
            if name in WRITE_METHODS and module not in (
                "audience_assets.execution.runner",
                "audience_assets.integrations.meta_writer",
            ):
                offenders.append(f"{module} calls {name}")
    assert not offenders, offenders


def test_duckdb_and_its_extension_packages_are_pinned_together():
    """The duckdb-extension-* packages are built for one DuckDB version: the pin and the installed
    packages must agree, or an extension would fail to load at run time (never downloaded)."""
    import re
    from importlib.metadata import version

    pyproject = (PACKAGE.parent / "pyproject.toml").read_text()
    pins = dict(re.findall(r'"(duckdb(?:-extension-[a-z]+)?)==([0-9.]+)"', pyproject))
    assert "duckdb" in pins and any(k.startswith("duckdb-extension-") for k in pins), pins
    assert set(pins.values()) == {duckdb.__version__}, (pins, duckdb.__version__)
    for package in pins:
        assert version(package) == duckdb.__version__, package
