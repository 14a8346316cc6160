"""DuckDB helpers: run a sql/ model, replace a partition or a set of days atomically."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

DEFAULT_DB = "data/warehouse.duckdb"
_PKG = Path(__file__).resolve().parent


def resource_dir(name: str) -> Path:
    """A top-level project folder (sql, prompts, dbt_style_docs), in a checkout or a wheel."""
    for candidate in (_PKG.parent / name, _PKG / "_resources" / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"project folder {name}/ not found beside {_PKG}")


def database_path() -> str:
    """The warehouse file: AUDIENCE_ENGINE_DB, else data/warehouse.duckdb."""
    return os.environ.get("AUDIENCE_ENGINE_DB") or DEFAULT_DB


@contextmanager
def connect(path: str | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the warehouse late and close it early (DuckDB allows one writing process)."""
    db = path or database_path()
    Path(db).parent.mkdir(parents=True, exist_ok=True)
    conn = duckdb.connect(db)
    try:
        yield conn
    finally:
        conn.close()


def sql_text(model: str) -> str:
    """The SELECT of a model, e.g. "metrics/window_metrics"."""
    path = resource_dir("sql") / f"{model}.sql"
    return path.read_text()


def query_model(conn: duckdb.DuckDBPyConnection, model: str, params: dict[str, Any] | None = None) -> pl.DataFrame:
    """Run a sql/ model and return its rows as polars (only the parameters it names are bound)."""
    sql = sql_text(model)
    bound = {k: v for k, v in (params or {}).items() if f"${k}" in sql}
    return conn.execute(sql, bound).pl()


def table_exists(conn: duckdb.DuckDBPyConnection, table: str) -> bool:
    row = conn.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = ? AND table_schema = 'main'",
        [table],
    ).fetchone()
    return bool(row and row[0])


def create_view(conn: duckdb.DuckDBPyConnection, view: str, model: str) -> None:
    """(Re)create a view from a sql/ model; idempotent."""
    conn.execute(f'CREATE OR REPLACE VIEW "{view}" AS {sql_text(model)}')


def _ensure_table(conn: duckdb.DuckDBPyConnection, table: str, frame: pl.DataFrame) -> None:
    """Create the table with the frame's column types, or add columns a newer version writes.

    Explicit DDL on purpose: DuckDB 1.5 loses sight (in the same connection) of rows inserted in a
    transaction whose table was made by CREATE TABLE AS from a registered frame, once an insert
    passes a row group (~120k rows).
    """
    conn.register("_frame_schema", frame.head(0))
    try:
        described = conn.execute("DESCRIBE SELECT * FROM _frame_schema").fetchall()
    finally:
        conn.unregister("_frame_schema")
    columns = ", ".join(f'"{name}" {dtype}' for name, dtype, *_ in described)
    conn.execute(f'CREATE TABLE IF NOT EXISTS "{table}" ({columns})')
    have = {
        r[0]
        for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ? AND table_schema = 'main'",
            [table],
        ).fetchall()
    }
    for name, dtype, *_ in described:
        if name not in have:
            conn.execute(f'ALTER TABLE "{table}" ADD COLUMN "{name}" {dtype}')


def replace_partition(conn: duckdb.DuckDBPyConnection, table: str, frame: pl.DataFrame, key: str, value: Any) -> int:
    """Replace the rows of one partition (key = value) with frame, in one transaction."""
    if frame.height and frame[key].n_unique() > 1:
        raise ValueError(f"{table}: frame holds several values of {key}")
    conn.execute("BEGIN TRANSACTION")
    try:
        _ensure_table(conn, table, frame)
        deleted = conn.execute(f'DELETE FROM "{table}" WHERE "{key}" = ?', [value]).fetchone()
        conn.register("_frame", frame)
        conn.execute(f'INSERT INTO "{table}" BY NAME SELECT * FROM _frame')
        conn.unregister("_frame")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return int(deleted[0]) if deleted else 0


def replace_days(
    conn: duckdb.DuckDBPyConnection, table: str, frame: pl.DataFrame, days: pl.DataFrame
) -> dict[str, float]:
    """Replace every (account_id, date) in `days` with the rows of frame, atomically.

    Returns what the replacement changed on days already stored (rows and money deltas),
    so restatement is measured rather than silent.
    """
    totals = "count(*), coalesce(sum(spend), 0), coalesce(sum(purchases), 0), coalesce(sum(purchase_value), 0)"
    conn.execute("BEGIN TRANSACTION")
    try:
        _ensure_table(conn, table, frame)
        conn.register("_days", days.select("account_id", "date").unique())
        conn.register("_frame", frame)
        conn.execute(
            f'CREATE OR REPLACE TEMP TABLE _existing AS SELECT DISTINCT account_id, date FROM "{table}" '
            "SEMI JOIN _days USING (account_id, date)"
        )
        before = conn.execute(f'SELECT {totals} FROM "{table}" SEMI JOIN _existing USING (account_id, date)').fetchone()
        after = conn.execute(f"SELECT {totals} FROM _frame SEMI JOIN _existing USING (account_id, date)").fetchone()
        restated_days = conn.execute("SELECT count(*) FROM _existing").fetchone()
        conn.execute(
            f'DELETE FROM "{table}" t WHERE EXISTS '
            "(SELECT 1 FROM _days d WHERE d.account_id = t.account_id AND d.date = t.date)"
        )
        conn.execute(f'INSERT INTO "{table}" BY NAME SELECT * FROM _frame')
        conn.execute("DROP TABLE _existing")
        conn.unregister("_days")
        conn.unregister("_frame")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return {
        "days_loaded": days.height,
        "days_restated": int(restated_days[0]),
        "rows_replaced": int(before[0]),
        "rows_inserted": frame.height,
        "restated_spend_delta": round(float(after[1]) - float(before[1]), 2),
        "restated_purchases_delta": round(float(after[2]) - float(before[2]), 2),
        "restated_revenue_delta": round(float(after[3]) - float(before[3]), 2),
    }


def coverage(conn: duckdb.DuckDBPyConnection, table: str, before: date) -> pl.DataFrame:
    """First and last stored day per account before a date (empty if the table is new)."""
    if not table_exists(conn, table):
        return pl.DataFrame(schema={"account_id": pl.Utf8, "first_day": pl.Date, "last_day": pl.Date})
    return conn.execute(
        f'SELECT account_id, min(date) AS first_day, max(date) AS last_day FROM "{table}" '
        "WHERE date < ? GROUP BY account_id",
        [before],
    ).pl()
