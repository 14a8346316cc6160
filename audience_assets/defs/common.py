"""Shared Dagster wiring: the partitions, the DuckDB pool, table metadata and doc-test checks."""

import os
from datetime import date
from typing import Any

import dagster as dg
import duckdb
import polars as pl

from audience_assets.defs.docs import column_schema, run_generic_tests, table_doc
from audience_assets.sources.sample import first_decision_date
from audience_assets.warehouse import database_path, is_lake, partition_filter, replace_partition

# The partition is an account-day: a run for (D, account) decides that account on complete days
# before D. Dates start where data can start: the embedded sample's first decision date unless
# AUDIENCE_ENGINE_PARTITIONS_START says otherwise (older exports, longer Meta history).
# end_offset=2 admits tomorrow (UTC): for an account east of UTC, "today" may already be over.
PARTITIONS_START_ENV = "AUDIENCE_ENGINE_PARTITIONS_START"


def partitions_start() -> date:
    text = os.environ.get(PARTITIONS_START_ENV)
    if not text:
        return first_decision_date()
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{PARTITIONS_START_ENV}={text!r} is not a date (expected YYYY-MM-DD)") from None


PARTITIONS_START = partitions_start().isoformat()
DATES = dg.DailyPartitionsDefinition(start_date=PARTITIONS_START, end_offset=2)
# Every ad account is a partition of its own beside the date, added when it first appears in a
# source (the CLI, the schedule and the sensors add them): one run decides one account-day.
ACCOUNTS = dg.DynamicPartitionsDefinition(name="accounts")
PARTITIONS = dg.MultiPartitionsDefinition({"date": DATES, "account": ACCOUNTS})
# A DuckDB file allows one writing process: every asset touching it shares this pool of one. A lake
# (AUDIENCE_ENGINE_WAREHOUSE=ducklake:...) takes concurrent writers: no pool.
POOL = None if is_lake(database_path()) else "duckdb"
PREVIEW_ROWS = 10


def partition_key(day: date | str, account: str) -> dg.MultiPartitionKey:
    """The partition of one account-day."""
    return dg.MultiPartitionKey({"date": day if isinstance(day, str) else day.isoformat(), "account": account})


def _dimensions(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext) -> dict[str, str]:
    key = context.partition_key
    if isinstance(key, dg.MultiPartitionKey):
        return key.keys_by_dimension
    return PARTITIONS.get_partition_key_from_str(key).keys_by_dimension


def as_of(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext) -> date:
    """The run's decision date: it decides on complete days before it."""
    return date.fromisoformat(_dimensions(context)["date"])


def account_of(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext) -> str:
    """The one ad account the run decides."""
    return _dimensions(context)["account"]


def partition_of(context: dg.AssetExecutionContext) -> dict[str, Any]:
    """The rows of this run's partition: its decision date and account."""
    return {"decision_date": as_of(context), "account_id": account_of(context)}


def description(table: str) -> str:
    return table_doc(table).description


def markdown_preview(frame: pl.DataFrame, rows: int = PREVIEW_ROWS, columns: list[str] | None = None) -> str:
    """A small markdown table for the Dagster UI."""
    view = frame.select(columns) if columns else frame
    view = view.head(rows)

    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:,.2f}"
        if isinstance(v, list):
            v = "; ".join(map(str, v))
        return str(v).replace("|", "\\|").replace("\n", " ")[:80] if v is not None else ""

    head = "| " + " | ".join(view.columns) + " |"
    sep = "| " + " | ".join("---" for _ in view.columns) + " |"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in view.iter_rows()]
    return "\n".join([head, sep, *body])


DOC_TESTS = "doc_tests"


def doc_check_spec(table: str) -> dg.AssetCheckSpec:
    """The WARN check running a table's generic tests from dbt_style_docs, inside its asset's step."""
    return dg.AssetCheckSpec(
        DOC_TESTS, asset=table, description=f"Generic tests declared for {table} in dbt_style_docs"
    )


Scope = tuple[str, list[Any]]


def days_scope(first: date, last: date, account: str) -> Scope:
    """The rows of the days an account's load wrote (history already checked stays checked)."""
    return "date BETWEEN ? AND ? AND account_id = ?", [first, last, account]


def doc_check_result(
    conn: duckdb.DuckDBPyConnection, table: str, scope: date | Scope | None = None
) -> dg.AssetCheckResult:
    """The table's generic tests as a WARN result, over one decision date's rows, a scope, or the whole table."""
    if scope is None:
        results = run_generic_tests(conn, table)
    elif isinstance(scope, date):
        results = run_generic_tests(conn, table, "decision_date = ?", [scope])
    else:
        results = run_generic_tests(conn, table, scope[0], scope[1])
    failed = {k: v for k, v in results.items() if v}
    return dg.AssetCheckResult(
        asset_key=table,
        check_name=DOC_TESTS,
        passed=not failed,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"tests_run": len(results), "failing_rows": dg.MetadataValue.json(failed)},
        description="all passed" if not failed else "failing: " + ", ".join(failed),
    )


def table_metadata(
    conn: duckdb.DuckDBPyConnection, table: str, rows: int | None, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    counted = {"dagster/row_count": rows} if rows is not None else {}
    return {
        **counted,
        "dagster/column_schema": column_schema(conn, table),
        "table": dg.MetadataValue.text(table),
        **(extra or {}),
    }


def table_result(
    conn: duckdb.DuckDBPyConnection,
    table: str,
    rows: int | None,
    scope: date | Scope | None,
    extra: dict[str, Any] | None = None,
    preview: pl.DataFrame | None = None,
) -> dg.MaterializeResult:
    """A table's materialisation: row count (None: not counted), column schema, an optional preview
    and its doc tests over `scope`."""
    meta = table_metadata(conn, table, rows, extra)
    if preview is not None:
        meta["preview"] = dg.MetadataValue.md(markdown_preview(preview))
    return dg.MaterializeResult(asset_key=table, metadata=meta, check_results=[doc_check_result(conn, table, scope)])


def write_partition(
    context: dg.AssetExecutionContext,
    conn: duckdb.DuckDBPyConnection,
    table: str,
    frame: pl.DataFrame,
    extra: dict[str, Any] | None = None,
    preview_columns: list[str] | None = None,
) -> dg.MaterializeResult:
    """Replace this account-day's rows of a table and report its metadata and doc tests."""
    part = partition_of(context)
    replace_partition(conn, table, frame, part)
    preview = frame.select(preview_columns) if preview_columns is not None else None
    return table_result(conn, table, frame.height, partition_filter(part), extra, preview)


def load_partition(conn: duckdb.DuckDBPyConnection, table: str, day: date, account: str) -> pl.DataFrame:
    """One account-day's rows of a table."""
    return conn.execute(f'SELECT * FROM "{table}" WHERE decision_date = ? AND account_id = ?', [day, account]).pl()


def guardrail_result(
    violations: pl.DataFrame, checked: int, asset: str | None = None, check: str | None = None
) -> dg.AssetCheckResult:
    """A blocking ERROR check result listing every guardrail violation."""
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name=check,
        passed=violations.height == 0,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "rows_checked": checked,
            "violations": violations.height,
            "detail": dg.MetadataValue.md(markdown_preview(violations, rows=20) if violations.height else "none"),
        },
    )
