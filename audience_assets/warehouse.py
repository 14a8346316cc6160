"""DuckDB helpers: open the warehouse safely, run a sql/ model, replace a partition or days atomically."""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import polars as pl

DEFAULT_DB = "data/warehouse.duckdb"
T = TypeVar("T")
_PKG = Path(__file__).resolve().parent


def resource_dir(name: str) -> Path:
    """A top-level project folder (sql, prompts, dbt_style_docs), in a checkout or a wheel."""
    for candidate in (_PKG.parent / name, _PKG / "_resources" / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"project folder {name}/ not found beside {_PKG}")


WAREHOUSE_ENV = "AUDIENCE_ENGINE_WAREHOUSE"
LAKE_DATA_ENV = "AUDIENCE_ENGINE_LAKE_DATA"
LAKE_PREFIX = "ducklake:"
LAKE_ALIAS = "lake"


def database_path() -> str:
    """The warehouse: the lake AUDIENCE_ENGINE_WAREHOUSE names (ducklake:...), else the DuckDB file
    AUDIENCE_ENGINE_DB, else data/warehouse.duckdb. Every command and resource takes this one string."""
    chosen = (os.environ.get(WAREHOUSE_ENV) or "").strip()
    if chosen and chosen != "file":
        if not is_lake(chosen):
            # Not echoed whole: a mistyped connection string may hold a password.
            raise WarehouseError(
                f"{WAREHOUSE_ENV} (starting {chosen.split(':', 1)[0]!r}:...) names no warehouse: expected unset or "
                "`file` (the DuckDB file), or a lake: ducklake:sqlite:PATH, ducklake:postgres:CONNINFO or "
                "ducklake:PATH.ducklake"
            )
        return chosen
    return os.environ.get("AUDIENCE_ENGINE_DB") or DEFAULT_DB


def is_lake(db: str) -> bool:
    return db.startswith(LAKE_PREFIX)


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
    if is_lake(db):
        lake = parse_lake(db)
        if lake.catalog_file is not None:
            _check_file(lake.catalog_file, "the lake's catalog", lake.kind, "")
        return
    _check_file(
        Path(db), "the warehouse", "duckdb", "; point --db or AUDIENCE_ENGINE_DB at a new or existing .duckdb file"
    )


SQLITE_MAGIC = b"SQLite format 3\x00"


def _check_file(path: Path, what: str, kind: str, hint: str) -> None:
    """A database file must be (or become) one of its kind (`duckdb` or `sqlite`, by its first bytes), in a folder."""
    name = "SQLite" if kind == "sqlite" else "DuckDB"
    if path.is_dir():
        raise WarehouseError(f"{what} {path} is a directory: expected a {name} database file")
    if path.exists():
        if not path.is_file():
            raise WarehouseError(f"{what} {path} is not a regular file")
        with path.open("rb") as fh:
            head = fh.read(16)
        ok = head.startswith(SQLITE_MAGIC) if kind == "sqlite" else head[8:12] == DUCKDB_MAGIC
        if head and not ok:
            raise WarehouseError(
                f"{what} {path} is not a {name} database (it is a {path.stat().st_size:,}-byte file of "
                f"another kind){hint}"
            )
    elif path.parent.exists() and not path.parent.is_dir():
        raise WarehouseError(f"{what} folder {path.parent} is a file, not a folder")


def require_database(db: str) -> None:
    """For commands that read what runs stored: a missing warehouse is an error, never a new empty file."""
    if is_lake(db):
        lake = parse_lake(db)
        if lake.catalog_file is not None and not lake.catalog_file.is_file():
            raise WarehouseError(f"no lake at {lake.catalog_file}: run `audience-engine recommend` on it first")
        return
    if db != ":memory:" and not Path(db).is_file():
        raise WarehouseError(f"no warehouse at {db}: run `audience-engine demo` or `recommend` first, or pass --db")


MEMORY_LIMIT_ENV = "AUDIENCE_ENGINE_DUCKDB_MEMORY"


def memory_limit() -> str:
    """DuckDB's buffer limit for the warehouse: AUDIENCE_ENGINE_DUCKDB_MEMORY, else 512MB. Past it DuckDB
    spills to disk, so a 3-million-row load stays near 1 GB of memory (measured in the README)."""
    return os.environ.get(MEMORY_LIMIT_ENV) or "512MB"


@dataclass(frozen=True)
class Lake:
    """A DuckLake warehouse: its catalog (a SQLite file, a PostgreSQL database or a DuckDB file) and
    the folder or bucket its Parquet data lives in."""

    target: str  # the whole ducklake:... string
    kind: str  # sqlite | postgres | duckdb
    catalog: str  # the catalog's path, or PostgreSQL's connection string
    data_path: str

    @property
    def catalog_file(self) -> Path | None:
        return None if self.kind == "postgres" else Path(self.catalog)

    def label(self) -> str:
        """The lake without secrets (a PostgreSQL conninfo may hold a password)."""
        if self.kind != "postgres":
            return self.target
        kept = [p for p in self.catalog.split() if not p.lower().startswith("password")]
        return f"{LAKE_PREFIX}postgres:{' '.join(kept)}"


def parse_lake(db: str) -> Lake:
    """The lake a ducklake:... string names; a WarehouseError says what was expected."""
    rest = db[len(LAKE_PREFIX) :]
    if rest.startswith("sqlite:"):
        kind, catalog = "sqlite", rest[len("sqlite:") :]
    elif rest.startswith("postgres:"):
        kind, catalog = "postgres", rest[len("postgres:") :]
    else:
        kind, catalog = "duckdb", rest
    if not catalog.strip():
        raise WarehouseError(f"the lake {db!r} names no catalog: expected e.g. ducklake:sqlite:data/lake.sqlite")
    if kind == "duckdb" and not catalog.endswith(".ducklake"):
        raise WarehouseError(
            f"the lake {db!r}: a DuckDB-file catalog must end in .ducklake (or use ducklake:sqlite:PATH, "
            "ducklake:postgres:CONNINFO)"
        )
    data = (os.environ.get(LAKE_DATA_ENV) or "").strip()
    if not data:
        if kind == "postgres":
            raise WarehouseError(
                f"the lake {LAKE_PREFIX}postgres:... needs {LAKE_DATA_ENV}: the folder or s3:// bucket of its data"
            )
        data = str(Path(catalog).resolve().parent / "lake_data")
    if "://" not in data:
        data = str(Path(data).resolve())
    return Lake(db, kind, catalog, data.rstrip("/") + "/")


# What a concurrent writer's commit or a busy catalog looks like: the transaction is retried.
CONFLICT_MARKERS = (
    "conflict",
    "database is locked",
    "failed to commit ducklake transaction",
    "failed to query most recent snapshot",
    "failed to initialize ducklake",
    "could not serialize access",
    "deadlock detected",
    "busy",
)
CONFLICT_RETRIES = 40


def is_conflict(err: BaseException) -> bool:
    text = str(err).lower()
    return isinstance(err, duckdb.Error) and any(m in text for m in CONFLICT_MARKERS)


def retry_conflicts(action: Callable[[], T], what: str) -> T:
    """Run `action` (one statement, or one whole transaction that rolls itself back), again after a
    write conflict with a concurrent run on the same lake, with jittered backoff. A DuckDB file never
    conflicts: one process writes it at a time."""
    for attempt in range(CONFLICT_RETRIES + 1):
        try:
            return action()
        except duckdb.Error as err:
            if not is_conflict(err):
                raise
            if attempt == CONFLICT_RETRIES:
                first = str(err).splitlines()[0]
                raise WarehouseError(f"{what}: still conflicting after {attempt + 1} attempts: {first}", 1) from None
            time.sleep(min(2.0, 0.02 * 1.5**attempt) * (0.5 + random.random()))
    raise AssertionError("unreachable")


def _open_lake(db: str, read_only: bool) -> duckdb.DuckDBPyConnection:
    from audience_assets.extensions import ExtensionError, load_extension

    check_database_file(db)
    lake = parse_lake(db)
    if lake.catalog_file is not None:
        lake.catalog_file.parent.mkdir(parents=True, exist_ok=True)
    if "://" not in lake.data_path:
        Path(lake.data_path).mkdir(parents=True, exist_ok=True)
    conn = duckdb.connect(":memory:", config={"memory_limit": memory_limit()})
    try:
        conn.execute("SET TimeZone = 'UTC'")
        conn.execute("SET enable_progress_bar = false")
        try:
            if lake.kind != "duckdb":
                load_extension(conn, lake.kind)
            if "://" in lake.data_path:
                load_extension(conn, "httpfs")
                _object_store_secret(conn)
            load_extension(conn, "ducklake")
        except ExtensionError as err:
            raise WarehouseError(f"cannot open the lake {lake.label()}: {err}", code=1) from None
        options = [f"DATA_PATH '{_quote(lake.data_path)}'"]
        if read_only:
            options.append("READ_ONLY")
        attach = f"ATTACH '{_quote(lake.target)}' AS {LAKE_ALIAS} ({', '.join(options)})"
        retry_conflicts(lambda: conn.execute(attach), "attaching the lake")
        conn.execute(f"USE {LAKE_ALIAS}")
        return conn
    except duckdb.Error as err:
        conn.close()
        first = str(err).splitlines()[0]
        raise WarehouseError(f"cannot open the lake {lake.label()}: {first}", code=1) from None
    except BaseException:
        conn.close()
        raise


def lake_session(anchor: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """A new connection on an open lake's in-memory database (its extensions loaded, the lake
    attached): opening a lake again costs a catalog read, this costs nothing. Session settings
    are per connection, so they are set again."""
    conn = anchor.cursor()
    conn.execute("SET TimeZone = 'UTC'")
    conn.execute("SET enable_progress_bar = false")
    conn.execute(f"USE {LAKE_ALIAS}")
    return conn


def _quote(text: str) -> str:
    return text.replace("'", "''")


def _object_store_secret(conn: duckdb.DuckDBPyConnection) -> None:
    """S3-compatible storage: credentials from the usual AWS variables (never stored or logged)."""
    key, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
    if not (key and secret):
        return
    parts = [f"KEY_ID '{_quote(key)}'", f"SECRET '{_quote(secret)}'"]
    if os.environ.get("AWS_REGION"):
        parts.append(f"REGION '{_quote(os.environ['AWS_REGION'])}'")
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        host = endpoint.split("://", 1)[-1].rstrip("/")
        parts += [f"ENDPOINT '{_quote(host)}'", "URL_STYLE 'path'"]
        if endpoint.startswith("http://"):
            parts.append("USE_SSL false")
    conn.execute(f"CREATE OR REPLACE TEMP SECRET lake_storage (TYPE s3, {', '.join(parts)})")


def open_database(db: str, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """A connection to the warehouse (a DuckDB file, or a lake attached as `lake` and in use), or a
    WarehouseError naming it and the cause."""
    if is_lake(db):
        return _open_lake(db, read_only)
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
    """Hold the warehouse's run lock; wait for it (telling `on_wait` once) up to `timeout_seconds`.

    A lake has no run lock: runs for different accounts write it at once, each write one
    transaction that replaces its partition (retried after a conflict, see retry_conflicts)."""
    if db == ":memory:" or is_lake(db):
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
    """Run a sql/ model and return its rows as polars (only the parameters it names are bound; a model
    filtering on `$account` sees every account unless one is given)."""
    sql = sql_text(model)
    bound = {k: v for k, v in {"account": None, **(params or {})}.items() if f"${k}" in sql}
    return conn.execute(sql, bound).pl()


def table_exists(conn: duckdb.DuckDBPyConnection, table: str) -> bool:
    row = conn.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = ? AND table_schema = 'main' "
        "AND table_catalog = current_database()",
        [table],
    ).fetchone()
    return bool(row and row[0])


def _view_body(conn: duckdb.DuckDBPyConnection, view: str, database: str) -> str | None:
    row = conn.execute(
        "SELECT sql FROM duckdb_views() WHERE view_name = ? AND database_name = ? AND schema_name = 'main'",
        [view, database],
    ).fetchone()
    return row[0].split(" AS ", 1)[1] if row and " AS " in row[0] else None


def ensure_view(conn: duckdb.DuckDBPyConnection, view: str, select: str) -> None:
    """Create or replace a view, only when missing or different: concurrent runs on a lake then never
    rewrite the catalog for a view they all define alike (the comparison uses DuckDB's own
    normalised text, from a private temporary twin)."""
    probe = f"_probe_{view}"
    conn.execute(f'CREATE OR REPLACE TEMP VIEW "{probe}" AS {select}')
    try:
        wanted = _view_body(conn, probe, "temp")
        database = conn.execute("SELECT current_database()").fetchone()[0]
        if wanted is not None and _view_body(conn, view, database) == wanted:
            return
    finally:
        conn.execute(f'DROP VIEW IF EXISTS temp.main."{probe}"')
    retry_conflicts(lambda: conn.execute(f'CREATE OR REPLACE VIEW "{view}" AS {select}'), f"view {view}")


def create_view(conn: duckdb.DuckDBPyConnection, view: str, model: str) -> None:
    """(Re)create a view from a sql/ model; idempotent."""
    ensure_view(conn, view, sql_text(model))


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
            "SELECT column_name FROM information_schema.columns WHERE table_name = ? AND table_schema = 'main' "
            "AND table_catalog = current_database()",
            [table],
        ).fetchall()
    }
    for name, dtype, *_ in described:
        if name not in have:
            conn.execute(f'ALTER TABLE "{table}" ADD COLUMN "{name}" {dtype}')


def transaction(conn: duckdb.DuckDBPyConnection, body: Callable[[], T], what: str = "write") -> T:
    """`body` in one transaction: committed whole or rolled back whole, and run again after a write
    conflict with a concurrent run on the same lake."""

    def attempt() -> T:
        conn.execute("BEGIN TRANSACTION")
        try:
            result = body()
            conn.execute("COMMIT")
            return result
        except BaseException:
            try:
                conn.execute("ROLLBACK")
            except duckdb.Error:
                pass  # a failed COMMIT has already ended the transaction
            raise

    return retry_conflicts(attempt, what)


def partition_filter(where: dict[str, Any]) -> tuple[str, list[Any]]:
    """`"a" = ? AND "b" = ?` and its parameters, for a partition named by column values."""
    return " AND ".join(f'"{k}" = ?' for k in where), list(where.values())


def replace_partition(conn: duckdb.DuckDBPyConnection, table: str, frame: pl.DataFrame, where: dict[str, Any]) -> int:
    """Replace the rows of one partition (every column in `where` equal to its value) with frame, in
    one transaction; an empty frame clears the partition."""
    for key, value in where.items():
        if frame.height and (frame[key].n_unique() > 1 or frame[key][0] != value):
            raise ValueError(f"{table}: frame holds rows outside the partition {key} = {value}")

    return transaction(conn, lambda: replace_rows(conn, table, frame, where), f"replace {table}")


def replace_rows(conn: duckdb.DuckDBPyConnection, table: str, frame: pl.DataFrame, where: dict[str, Any]) -> int:
    """Inside the caller's transaction: delete the rows matching `where`, insert `frame` (creating the
    table, or its new columns, as needed). How many rows were deleted."""
    conn.register("_frame", frame)
    try:
        _ensure_table(conn, table, "_frame")
        deleted = clear_rows(conn, table, where)
        conn.execute(f'INSERT INTO "{table}" BY NAME SELECT * FROM _frame')
        return deleted
    finally:
        conn.unregister("_frame")


def clear_rows(conn: duckdb.DuckDBPyConnection, table: str, where: dict[str, Any]) -> int:
    """Delete the rows matching `where`; how many were deleted."""
    clause, params = partition_filter(where)
    deleted = conn.execute(f'DELETE FROM "{table}" WHERE {clause}', params).fetchone()
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

    def body() -> tuple[int, tuple, int, tuple]:
        conn.execute(f"CREATE OR REPLACE TEMP VIEW _new AS {query}")
        _ensure_table(conn, table, "_new")
        # Days already stored are restated: measure them before they are replaced.
        conn.execute(
            f'CREATE OR REPLACE TEMP TABLE _existing AS SELECT DISTINCT account_id, date FROM "{table}" '
            "SEMI JOIN _days USING (account_id, date)"
        )
        restated = conn.execute("SELECT count(*) FROM _existing").fetchone()[0]
        old = conn.execute(f'SELECT {totals} FROM "{table}" SEMI JOIN _existing USING (account_id, date)').fetchone()
        if restated:
            conn.execute(
                f'DELETE FROM "{table}" t WHERE EXISTS '
                "(SELECT 1 FROM _existing d WHERE d.account_id = t.account_id AND d.date = t.date)"
            )
        added = conn.execute(f'INSERT INTO "{table}" BY NAME SELECT * FROM _new').fetchone()[0]
        new = (
            conn.execute(f"SELECT {totals} FROM _new SEMI JOIN _existing USING (account_id, date)").fetchone()
            if restated
            else (0, 0.0, 0.0, 0.0)
        )
        conn.execute("DROP TABLE _existing")
        conn.execute("DROP VIEW _new")
        return restated, old, added, new

    try:
        restated_days, before, inserted, after = transaction(conn, body, f"replace days of {table}")
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


def coverage(conn: duckdb.DuckDBPyConnection, table: str, before: date, account: str) -> pl.DataFrame:
    """An account's first and last stored day before a date (empty if the table is new or holds none)."""
    if not table_exists(conn, table):
        return pl.DataFrame(schema={"account_id": pl.Utf8, "first_day": pl.Date, "last_day": pl.Date})
    return conn.execute(
        f'SELECT account_id, min(date) AS first_day, max(date) AS last_day FROM "{table}" '
        "WHERE date < ? AND account_id = ? GROUP BY account_id",
        [before, account],
    ).pl()


def append_rows(conn: duckdb.DuckDBPyConnection, table: str, frame: pl.DataFrame) -> int:
    """Append a frame to a log table (created from the frame's columns when new)."""
    conn.register("_append", frame)

    def body() -> None:
        _ensure_table(conn, table, "_append")
        conn.execute(f'INSERT INTO "{table}" BY NAME SELECT * FROM _append')

    try:
        transaction(conn, body, f"append to {table}")
    finally:
        conn.unregister("_append")
    return frame.height


# No key constraint: a lake has none (a cache written by an earlier version keeps its primary key,
# which the delete-then-insert below respects).
LLM_CACHE_DDL = """CREATE TABLE IF NOT EXISTS llm_cache (cache_key VARCHAR, prompt_version VARCHAR,
    model VARCHAR, response_text VARCHAR, created_at TIMESTAMP)"""


def ensure_table_ddl(conn: duckdb.DuckDBPyConnection, ddl: str) -> None:
    """Run a CREATE TABLE IF NOT EXISTS (retried when concurrent runs create it at once)."""
    retry_conflicts(lambda: conn.execute(ddl), "create table")


def llm_cache_get(conn: duckdb.DuckDBPyConnection, keys: list[str]) -> dict[str, str]:
    """Cached validated responses by cache key."""
    ensure_table_ddl(conn, LLM_CACHE_DDL)
    rows = conn.execute("SELECT cache_key, response_text FROM llm_cache WHERE list_contains(?, cache_key)", [keys])
    return dict(rows.fetchall())


def llm_cache_put(conn: duckdb.DuckDBPyConnection, entries: list[tuple[str, str, str, str]]) -> None:
    """Store (key, prompt version, model, response text) entries, newest wins."""
    ensure_table_ddl(conn, LLM_CACHE_DDL)
    if not entries:
        return
    now = datetime.now(UTC).replace(tzinfo=None)
    frame = pl.DataFrame(
        [(k, v, m, t, now) for k, v, m, t in entries],
        schema=["cache_key", "prompt_version", "model", "response_text", "created_at"],
        orient="row",
    ).unique("cache_key", keep="last")
    conn.register("_cache", frame)

    def body() -> None:
        conn.execute("DELETE FROM llm_cache WHERE cache_key IN (SELECT cache_key FROM _cache)")
        conn.execute("INSERT INTO llm_cache BY NAME SELECT * FROM _cache")

    try:
        transaction(conn, body, "llm_cache")
    finally:
        conn.unregister("_cache")
