"""Warehouse writes: atomic, idempotent, visible at once, and tolerant of new columns."""

from datetime import date, timedelta

import duckdb
import polars as pl
import pytest

from audience_assets.warehouse import replace_days, replace_partition

ROWS = 300_000  # past DuckDB's row-group size, where a CREATE TABLE AS table once hid its rows


def _frame(n: int) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "account_id": ["act_1"] * n,
            "date": [date(2026, 1, 1) + timedelta(days=i % 30) for i in range(n)],
            "spend": [1.0] * n,
            "purchases": [1.0] * n,
            "purchase_value": [2.0] * n,
        }
    )


def test_large_replace_is_visible_in_the_same_connection_and_idempotent():
    conn = duckdb.connect()
    frame = _frame(ROWS)
    days = frame.select("account_id", "date").unique()
    first = replace_days(conn, "raw", frame, days)
    assert first["rows_inserted"] == ROWS
    assert conn.execute("SELECT count(*), sum(purchase_value) FROM raw").fetchone() == (ROWS, 2.0 * ROWS)
    again = replace_days(conn, "raw", frame, days)
    assert again["rows_replaced"] == ROWS and again["days_restated"] == 30
    assert again["restated_revenue_delta"] == 0.0
    assert conn.execute("SELECT count(*) FROM raw").fetchone() == (ROWS,)


def test_partition_replace_keeps_other_partitions_and_adds_new_columns():
    conn = duckdb.connect()
    d1, d2 = date(2026, 11, 25), date(2026, 11, 26)
    replace_partition(conn, "t", pl.DataFrame({"decision_date": [d1, d1], "x": [1, 2]}), {"decision_date": d1})
    replace_partition(conn, "t", pl.DataFrame({"decision_date": [d2], "x": [3], "y": ["new"]}), {"decision_date": d2})
    replace_partition(conn, "t", pl.DataFrame({"decision_date": [d2], "x": [4], "y": ["again"]}), {"decision_date": d2})
    rows = conn.execute("SELECT decision_date, x, y FROM t ORDER BY x").fetchall()
    assert rows == [(d1, 1, None), (d1, 2, None), (d2, 4, "again")]


def test_failed_insert_leaves_the_table_as_it_was():
    conn = duckdb.connect()
    d = date(2026, 11, 26)
    replace_partition(conn, "t", pl.DataFrame({"decision_date": [d], "x": [1]}), {"decision_date": d})
    bad = pl.DataFrame({"decision_date": [d], "x": ["not a number"]})
    with pytest.raises(duckdb.Error):
        replace_partition(conn, "t", bad, {"decision_date": d})
    assert conn.execute("SELECT x FROM t").fetchall() == [(1,)]
