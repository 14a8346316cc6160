"""A real, throwaway PostgreSQL server on 127.0.0.1 for tests and benchmarks: Debian's server
binaries (initdb, pg_ctl), run as the `postgres` user when we are root (PostgreSQL refuses root).
Not a fake: the name of the folder is where the project keeps its local servers."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """`with PostgresServer() as pg:` a server with an empty database `db`; `pg.conninfo()`
    for libpq, `pg.env()` for dagster-postgres' DAGSTER_PG_* settings."""

    def __init__(self, db: str = "lake") -> None:
        self.db = db
        self.port = _free_port()
        self.root = Path()

    @staticmethod
    def available() -> bool:
        if not (shutil.which("initdb") and shutil.which("pg_ctl") and shutil.which("createdb")):
            return False
        return os.geteuid() != 0 or bool(shutil.which("runuser"))

    def _run(self, *cmd: str) -> None:
        runner = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        proc = subprocess.run([*runner, *cmd], capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(f"{cmd[0]} failed: {proc.stderr.strip()[-1000:]}")

    def __enter__(self) -> PostgresServer:
        # A folder of its own the postgres user can reach (a test's tmp_path is private to root).
        self.root = Path(tempfile.mkdtemp(prefix="audience-engine-pg-"))
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
        data = str(self.root / "pgdata")
        self._run("initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8")
        options = f"-p {self.port} -h 127.0.0.1 -k {self.root}"
        self._run("pg_ctl", "-D", data, "-o", options, "-l", str(self.root / "server.log"), "-w", "start")
        try:
            self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", self.db)
        except RuntimeError:
            self.__exit__()
            raise
        return self

    def conninfo(self) -> str:
        return f"dbname={self.db} host=127.0.0.1 port={self.port} user=postgres"

    def env(self) -> dict[str, str]:
        return {
            "DAGSTER_PG_HOST": "127.0.0.1",
            "DAGSTER_PG_PORT": str(self.port),
            "DAGSTER_PG_DB": self.db,
            "DAGSTER_PG_USER": "postgres",
            "DAGSTER_PG_PASSWORD": "unused-with-trust-auth",
        }

    def __exit__(self, *exc: object) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.root / "pgdata"), "-m", "fast", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
