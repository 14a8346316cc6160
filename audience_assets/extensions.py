"""DuckDB extensions from their PyPI packages (duckdb-extension-<name>), loaded by path, never downloaded.

Each package ships `extensions/v<duckdb version>/<name>.duckdb_extension`. DuckDB derives an
extension's entry point from its file name, and two of them are known to DuckDB by another name
(`sqlite` is `sqlite_scanner`, `postgres` is `postgres_scanner`): those are loaded through a link
with the right name in a private cache folder, so a later autoload finds them loaded.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
from pathlib import Path

import duckdb

# The package's name -> the name DuckDB knows the extension by (its entry point).
ENTRY_NAMES = {"sqlite": "sqlite_scanner", "postgres": "postgres_scanner"}


class ExtensionError(RuntimeError):
    """An extension package is missing, built for another DuckDB, or does not load; the message says the fix."""


def package_name(name: str) -> str:
    return f"duckdb-extension-{name}"


def extension_path(name: str, package: str | None = None) -> Path:
    """The extension file shipped in `duckdb-extension-<name>` for this DuckDB version."""
    module = package or f"duckdb_extension_{name}"
    fix = f"pip install {package_name(name)}=={duckdb.__version__}"
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ExtensionError(f"DuckDB's {name} extension is not installed: {fix}")
    base = Path(next(iter(spec.submodule_search_locations))) / "extensions"
    wanted = base / f"v{duckdb.__version__}" / f"{name}.duckdb_extension"
    if wanted.is_file():
        return wanted
    built = sorted(p.parent.name for p in base.glob(f"v*/{name}.duckdb_extension")) or ["none"]
    raise ExtensionError(
        f"DuckDB's {name} extension is installed for DuckDB {', '.join(built)}, not v{duckdb.__version__}: {fix}"
    )


def _loadable(name: str, path: Path) -> Path:
    """`path`, or a link to it named after the extension's entry point (in a private cache folder)."""
    entry = ENTRY_NAMES.get(name)
    if entry is None:
        return path
    folder = Path(tempfile.gettempdir()) / f"audience-engine-extensions-{os.getuid()}" / f"v{duckdb.__version__}"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    link = folder / f"{entry}.duckdb_extension"
    if not (link.is_symlink() and Path(os.readlink(link)) == path):
        tmp = folder / f".{entry}.{os.getpid()}.tmp"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(path)
        os.replace(tmp, link)  # atomic: concurrent processes never see a half-made link
    return link


def load_extension(conn: duckdb.DuckDBPyConnection, name: str, package: str | None = None) -> None:
    """LOAD the packaged extension into this connection (no network: it is never INSTALLed)."""
    path = extension_path(name, package)
    try:
        conn.execute(f"LOAD '{_loadable(name, path)}'")
    except duckdb.Error as err:
        raise ExtensionError(
            f"DuckDB's {name} extension at {path} could not be loaded ({str(err).splitlines()[0]}): "
            f"reinstall {package_name(name)}=={duckdb.__version__}"
        ) from None
