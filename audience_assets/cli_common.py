"""What the command modules share: argument types, the warehouse options, the execution limits."""

from __future__ import annotations

import argparse
from datetime import date

from audience_assets.engine.execution import ExecutionSettings


def parse_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (expected YYYY-MM-DD)") from None


def add_date(p: argparse.ArgumentParser) -> None:
    p.add_argument("--date", type=parse_date, help="decision date YYYY-MM-DD (default: the newest)")


def add_warehouse(p: argparse.ArgumentParser) -> None:
    """--db and --lock-timeout, as every command that opens the warehouse takes them."""
    p.add_argument(
        "--db",
        "--warehouse",
        dest="db",
        default=None,
        help="the warehouse: a DuckDB file, or a DuckLake lake (ducklake:sqlite:PATH, ducklake:postgres:CONNINFO, "
        "ducklake:PATH.ducklake); default $AUDIENCE_ENGINE_WAREHOUSE, else $AUDIENCE_ENGINE_DB, else "
        "data/warehouse.duckdb. Runs on one DuckDB file take turns (a lock file <db>.lock beside it); runs on a "
        "lake do not",
    )
    p.add_argument(
        "--lock-timeout",
        type=float,
        default=1800.0,
        metavar="SECONDS",
        help="how long to wait while another run holds the warehouse (default 1800)",
    )


def add_max_age(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--max-decision-age-days",
        type=int,
        metavar="DAYS",
        help="refuse decisions older than this many days (default 2)",
    )


def execution_settings(args: argparse.Namespace) -> ExecutionSettings:
    """The execution limits, with --max-decision-age-days when the command has it and it was given."""
    age = getattr(args, "max_decision_age_days", None)
    return ExecutionSettings(**({"max_decision_age_days": age} if age is not None else {}))
