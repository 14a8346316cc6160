"""The Dagster instance the CLI and `make dev` share, so the UI shows what the CLI ran.

`DAGSTER_HOME` names it; unset, it is the `.dagster` folder of the current directory (the
project's, when run from a checkout). Its `dagster.yaml` limits the `duckdb` pool to one run at
a time (run granularity: the queued run coordinator holds back a second run, so a killed run
never leaves an op-level slot claimed) and turns telemetry off.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_HOME = ".dagster"
DAGSTER_YAML = """\
# Written by audience-engine: the duckdb pool runs one run at a time (DuckDB allows one writer).
concurrency:
  pools:
    granularity: run
    default_limit: 1
telemetry:
  enabled: false
"""


def dagster_home() -> Path:
    return Path(os.environ.get("DAGSTER_HOME") or DEFAULT_HOME).resolve()


def ensure_home() -> Path:
    """Create the instance folder and its dagster.yaml when missing; export DAGSTER_HOME."""
    home = dagster_home()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(DAGSTER_YAML)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


if __name__ == "__main__":
    print(ensure_home())
