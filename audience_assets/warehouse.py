"""DuckDB helpers: open the warehouse safely, run a sql/ model, replace a partition or days atomically."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
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


class WarehouseError(RuntimeError):
    """The warehouse cannot be used (not a DuckDB file, locked, unreadable); the message says why.

    `code` is the CLI's exit code: 2 for a bad path (the user's input), 1 for a busy or broken file."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


DUCKDB_MAGIC = b"DUCK"  # bytes 8-11 of every DuckDB database file


def check_database_file(db: str) -> None:
    """Fail early, and clearly, when --db names something that is not (or cannot become) a DuckDB file."""
    if db == ":memory:":
        return
    path = Path(db)
    if path.is_dir():
        raise WarehouseError(f"the warehouse {db} is a directory: expected a DuckDB database file")
    if path.exists():
        if not path.is_file():
            raise WarehouseError(f"the warehouse {db} is not a regular file")
        with path.open("rb") as fh:
            head = fh.read(12)
        if head and head[8:12] != DUCKDB_MAGIC:
            raise WarehouseError(
                f"the warehouse {db} is not a DuckDB database (it is a {path.stat().st_size:,}-byte file of "
                "another kind); point --db or AUDIENCE_ENGINE_DB at a new or existing .duckdb file"
            )
    elif path.parent.exists() and not path.parent.is_dir():
        raise WarehouseError(f"the warehouse folder {path.parent} is a file, not a folder")


def require_database(db: str) -> None:
    """For commands that read what runs stored: a missing warehouse is an error, never a new empty file."""
    if db != ":memory:" and not Path(db).is_file():
        raise WarehouseError(f"no warehouse at {db}: run `audience-engine demo` or `recommend` first, or pass --db")


MEMORY_LIMIT_ENV = "AUDIENCE_ENGINE_DUCKDB_MEMORY"


def memory_limit() -> str:
    """DuckDB's buffer limit for the warehouse: AUDIENCE_ENGINE_DUCKDB_MEMORY, else 512MB. Past it DuckDB
    spills to disk, so a 3-million-row load stays near 1 GB of memory (measured in the README)."""
    return os.environ.get(MEMORY_LIMIT_ENV) or "512MB"


def open_database(db: str, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """A connection to the warehouse, or a WarehouseError naming the file and the cause."""
    check_database_file(db)
    if db != ":memory:":
        Path(db).parent.mkdir(parents=True, exist_ok=True)
    try:
        conn = duckdb.connect(db, read_only=read_only, config={"memory_limit": memory_limit()})
        conn.execute("SET TimeZone = 'UTC'")
        conn.execute("SET enable_progress_bar = false")
        return conn
    except duckdb.Error as err:
        first = str(err).splitlines()[0]
        raise WarehouseError(f"cannot open the warehouse {db}: {first}", code=1) from None


@contextmanager
def connect(path: str | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the warehouse late and close it early (DuckDB allows one writing process)."""
    conn = open_database(path or database_path())
    try:
        yield conn
    finally:
        conn.close()


# One lock per warehouse serialises whole runs (CLI and Dagster alike): a run's steps read what
# its own earlier steps wrote, never a concurrent run's. Re-entrant within a process, so the CLI
# can hold it around the run its own steps also lock.
_HELD: dict[str, list[Any]] = {}
_HELD_GUARD = threading.Lock()


def lock_path(db: str) -> Path:
    return Path(f"{db}.lock")


def lock_holder(db: str) -> str:
    """Who holds a warehouse's lock, as recorded in the lock file (best effort)."""
    try:
        info = json.loads(lock_path(db).read_text() or "{}")
    except (OSError, json.JSONDecodeError):
        return "another process"
    return f"pid {info.get('pid', '?')}, {info.get('holder', 'a run')}, since {info.get('since', '?')}"


@contextmanager
def warehouse_lock(
    db: str,
    holder: str,
    timeout_seconds: float = 1800.0,
    on_wait: Callable[[str], None] | None = None,
    poll_seconds: float = 0.2,
) -> Iterator[None]:
    """Hold the warehouse's run lock; wait for it (telling `on_wait` once) up to `timeout_seconds`."""
    if db == ":memory:":
        yield
        return
    try:
        import fcntl
    except ImportError:  # no flock on this platform: DuckDB's own file lock still refuses a second writer
        yield
        return
    key = str(Path(db).resolve())
    with _HELD_GUARD:
        if key in _HELD:
            _HELD[key][1] += 1
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield
        finally:
            with _HELD_GUARD:
                _HELD[key][1] -= 1
        return
    check_database_file(db)
    Path(db).parent.mkdir(parents=True, exist_ok=True)
    fh = lock_path(db).open("a+")
    started, told = time.monotonic(), False
    try:
        while True:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not told and on_wait is not None:
                    on_wait(f"waiting for another run on {db} to finish ({lock_holder(db)})")
                    told = True
                if time.monotonic() - started > timeout_seconds:
                    raise WarehouseError(
                        f"another run holds the warehouse {db} ({lock_holder(db)}); gave up after "
                        f"{timeout_seconds:.0f} s. Wait for it, or use another --db",
                        code=1,
                    ) from None
                time.sleep(poll_seconds)
        fh.seek(0)
        fh.truncate()
        since = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        fh.write(json.dumps({"pid": os.getpid(), "holder": holder, "since": since}))
        fh.flush()
        with _HELD_GUARD:
            _HELD[key] = [fh, 1]
        try:
            yield
        finally:
            with _HELD_GUARD:
                del _HELD[key]
            fh.seek(0)
            fh.truncate()
            fh.flush()
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
    finally:
        fh.close()


def write_atomically(path: Path, text: str) -> None:
    """Write a file whole or not at all: a private temporary file in the same folder, then a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


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


def _ensure_table(conn: duckdb.DuckDBPyConnection, table: str, relation: str) -> None:
    """Create the table with the relation's column types, or add columns a newer version writes.

    Explicit DDL on purpose: DuckDB 1.5 loses sight (in the same connection) of rows inserted in a
    transaction whose table was made by CREATE TABLE AS from a registered frame, once an insert
    passes a row group (~120k rows).
    """
    described = conn.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()
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
    conn.register("_frame", frame)
    conn.execute("BEGIN TRANSACTION")
    try:
        _ensure_table(conn, table, "_frame")
        deleted = conn.execute(f'DELETE FROM "{table}" WHERE "{key}" = ?', [value]).fetchone()
        conn.execute(f'INSERT INTO "{table}" BY NAME SELECT * FROM _frame')
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    finally:
        conn.unregister("_frame")
    return int(deleted[0]) if deleted else 0


def replace_days(
    conn: duckdb.DuckDBPyConnection, table: str, rows: pl.DataFrame | str, days: pl.DataFrame
) -> dict[str, float]:
    """Replace every (account_id, date) in `days` with `rows` (a frame, or a query over the
    connection's tables), atomically.

    Returns what the replacement changed on days already stored (rows and money deltas),
    so restatement is measured rather than silent.
    """
    totals = "count(*), coalesce(sum(spend), 0), coalesce(sum(purchases), 0), coalesce(sum(purchase_value), 0)"
    if isinstance(rows, pl.DataFrame):
        conn.register("_frame", rows)
        query = "SELECT * FROM _frame"
    else:
        query = rows
    conn.register("_days", days.select("account_id", "date").unique())
    conn.execute("BEGIN TRANSACTION")
    try:
        conn.execute(f"CREATE OR REPLACE TEMP VIEW _new AS {query}")
        _ensure_table(conn, table, "_new")
        # Days already stored are restated: measure them before they are replaced.
        conn.execute(
            f'CREATE OR REPLACE TEMP TABLE _existing AS SELECT DISTINCT account_id, date FROM "{table}" '
            "SEMI JOIN _days USING (account_id, date)"
        )
        restated_days = conn.execute("SELECT count(*) FROM _existing").fetchone()[0]
        before = conn.execute(f'SELECT {totals} FROM "{table}" SEMI JOIN _existing USING (account_id, date)').fetchone()
        if restated_days:
            conn.execute(
                f'DELETE FROM "{table}" t WHERE EXISTS '
                "(SELECT 1 FROM _existing d WHERE d.account_id = t.account_id AND d.date = t.date)"
            )
        inserted = conn.execute(f'INSERT INTO "{table}" BY NAME SELECT * FROM _new').fetchone()[0]
        after = (
            conn.execute(f"SELECT {totals} FROM _new SEMI JOIN _existing USING (account_id, date)").fetchone()
            if restated_days
            else (0, 0.0, 0.0, 0.0)
        )
        conn.execute("DROP TABLE _existing")
        conn.execute("DROP VIEW _new")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    finally:
        conn.unregister("_days")
        if isinstance(rows, pl.DataFrame):
            conn.unregister("_frame")
    return {
        "days_loaded": days.height,
        "days_restated": int(restated_days),
        "rows_replaced": int(before[0]),
        "rows_inserted": int(inserted),
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


def append_rows(conn: duckdb.DuckDBPyConnection, table: str, frame: pl.DataFrame) -> int:
    """Append a frame to a log table (created from the frame's columns when new)."""
    conn.register("_append", frame)
    try:
        _ensure_table(conn, table, "_append")
        conn.execute(f'INSERT INTO "{table}" BY NAME SELECT * FROM _append')
    finally:
        conn.unregister("_append")
    return frame.height


LLM_CACHE_DDL = """CREATE TABLE IF NOT EXISTS llm_cache (cache_key VARCHAR PRIMARY KEY, prompt_version VARCHAR,
    model VARCHAR, response_text VARCHAR, created_at TIMESTAMP)"""


def llm_cache_get(conn: duckdb.DuckDBPyConnection, keys: list[str]) -> dict[str, str]:
    """Cached validated responses by cache key."""
    conn.execute(LLM_CACHE_DDL)
    rows = conn.execute("SELECT cache_key, response_text FROM llm_cache WHERE list_contains(?, cache_key)", [keys])
    return dict(rows.fetchall())


def llm_cache_put(conn: duckdb.DuckDBPyConnection, entries: list[tuple[str, str, str, str]]) -> None:
    """Store (key, prompt version, model, response text) entries, newest wins."""
    conn.execute(LLM_CACHE_DDL)
    now = datetime.now(UTC).replace(tzinfo=None)
    for key, version, model, text in entries:
        conn.execute("INSERT OR REPLACE INTO llm_cache VALUES (?, ?, ?, ?, ?)", [key, version, model, text, now])
