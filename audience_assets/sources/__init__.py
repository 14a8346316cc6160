"""Where rows come from: the source contract, shared by every source module.

Each source (`files` for CSV exports, `sample` for the embedded simulator, `meta` for the
Marketing API) turns its input into the raw shapes defined here, once: `RAW_INSIGHTS` (one row
per account, ad set and day) and `AUDIENCE_METADATA` (one row per ad set). Everything else that
names these columns (the CSV contract, the staging SQL, the warehouse tables) is derived from or
checked against these mappings.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal

import polars as pl
from pydantic import BaseModel, Field

# The raw insights every source yields: money in the account's currency units.
RAW_INSIGHTS: dict[str, pl.DataType] = {
    "account_id": pl.Utf8(),
    "campaign_id": pl.Utf8(),
    "campaign_name": pl.Utf8(),
    "adset_id": pl.Utf8(),
    "adset_name": pl.Utf8(),
    "date": pl.Date(),
    "spend": pl.Float64(),
    "impressions": pl.Int64(),
    "clicks": pl.Int64(),
    "purchases": pl.Float64(),
    "purchase_value": pl.Float64(),
    "currency": pl.Utf8(),
}
RAW_COLUMNS = tuple(RAW_INSIGHTS)
# Columns only the Marketing API knows; NULL for the other sources.
RAW_INSIGHTS_API: dict[str, pl.DataType] = {
    "inline_link_clicks": pl.Int64(),
    "reach": pl.Int64(),
    "frequency": pl.Float64(),
    "purchase_action_type": pl.Utf8(),
    "actions_json": pl.Utf8(),
    "action_values_json": pl.Utf8(),
    "purchase_roas_json": pl.Utf8(),
}
# Columns stamped on every load.
RAW_INSIGHTS_LOAD: dict[str, pl.DataType] = {
    "source": pl.Utf8(),
    "load_id": pl.Utf8(),
    "loaded_at": pl.Datetime("us"),
}

# Audience metadata per ad set. The first block is what a user's audiences file can say; the
# second only an API source knows (files leave it NULL).
AUDIENCE_FIELDS: dict[str, pl.DataType] = {
    "adset_id": pl.Utf8(),
    "audience_type": pl.Utf8(),
    "lookalike_pct": pl.Float64(),
    "source_quality": pl.Utf8(),
    "launched_on": pl.Date(),
    "daily_budget": pl.Float64(),
    "last_budget_change_at": pl.Datetime("us"),
}
AUDIENCE_API_FIELDS: dict[str, pl.DataType] = {
    "effective_status": pl.Utf8(),
    "bid_strategy": pl.Utf8(),
    "is_cbo": pl.Boolean(),
    "lifetime_budget": pl.Float64(),
    "learning_stage": pl.Utf8(),
}
AUDIENCE_SCHEMA: dict[str, pl.DataType] = {**AUDIENCE_FIELDS, **AUDIENCE_API_FIELDS}

# CSV headers that differ from the raw names (Meta's export names).
CSV_NAMES = {"date": "date_start", "currency": "account_currency"}
CSV_OPTIONAL_INSIGHTS = ("currency",)


def csv_name(raw: str) -> str:
    return CSV_NAMES.get(raw, raw)


INSIGHTS_REQUIRED = tuple(csv_name(c) for c in RAW_INSIGHTS if c not in CSV_OPTIONAL_INSIGHTS)
INSIGHTS_OPTIONAL = tuple(csv_name(c) for c in CSV_OPTIONAL_INSIGHTS)
AUDIENCES_REQUIRED = ("adset_id", "audience_type")
AUDIENCES_OPTIONAL = tuple(c for c in AUDIENCE_FIELDS if c not in AUDIENCES_REQUIRED)


class InputError(ValueError):
    """Input that cannot be used; the message names the file, rows and columns."""


SourceKind = Literal["sample", "csv", "meta"]


class SourceSpec(BaseModel):
    """Which source to read and how."""

    kind: SourceKind = "sample"
    insights_path: str | None = None
    audiences_path: str | None = None
    encoding: str | None = Field(None, description="text encoding of the CSV files when not UTF-8/UTF-16 with BOM")
    delimiter: str | None = Field(None, description="CSV field separator; detected from the header when unset")
    sample_seed: int = 7
    sample_adsets: int = Field(120, ge=1)
    sample_days: int = Field(75, ge=1)
    sample_end_date: date | None = None


@dataclass(frozen=True)
class Extract:
    """What one load brings: insight rows, the (account, day) pairs they replace, and metadata.

    `ignored_after` counts rows dated on or after the decision date (not complete days yet from
    the decision's point of view), so a load never drops rows without saying so.
    """

    insights: pl.DataFrame
    days: pl.DataFrame
    audiences: pl.DataFrame
    full_history: bool
    ignored_after: int = 0


def empty_days() -> pl.DataFrame:
    return pl.DataFrame(schema={"account_id": pl.Utf8, "date": pl.Date})


def day_grid(frame: pl.DataFrame, start: pl.Expr, end: pl.Expr) -> pl.DataFrame:
    """Every (account, day) from start to end per account: the days a load replaces."""
    return (
        frame.group_by("account_id")
        .agg(start.alias("start"), end.alias("end"))
        .with_columns(pl.date_ranges("start", "end").alias("date"))
        .explode("date")
        .select("account_id", "date")
        .drop_nulls()
    )


_SQL_TYPES = {"String": "VARCHAR", "Date": "DATE", "Float64": "DOUBLE", "Int64": "BIGINT", "Boolean": "BOOLEAN"}


def sql_type(dtype: pl.DataType) -> str:
    """The DuckDB type of a contract column."""
    if isinstance(dtype, pl.Datetime):
        return "TIMESTAMP"
    return _SQL_TYPES[dtype.base_type().__name__]


def _ident(column: str) -> str:
    return '"' + column.replace('"', '""') + '"'


def _text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def raw_load_sql(relation: str, present: set[str], kind: str, load_id: str, loaded_at: datetime) -> str:
    """The SELECT turning a source's rows (in `relation`) into raw_insights rows: the contract's
    columns and types, API-only columns NULL where the source has none, and the load's stamps."""
    cols = [f'CAST("{c}" AS {sql_type(t)}) AS "{c}"' for c, t in RAW_INSIGHTS.items()]
    cols += [
        f'CAST({_ident(c) if c in present else "NULL"} AS {sql_type(t)}) AS "{c}"' for c, t in RAW_INSIGHTS_API.items()
    ]
    cols += [
        f"{_text(kind)} AS source",
        f"{_text(load_id)} AS load_id",
        f"TIMESTAMP {_text(loaded_at.strftime('%Y-%m-%d %H:%M:%S.%f'))} AS loaded_at",
    ]
    return f"SELECT {', '.join(cols)} FROM {relation}"


def raw_table_ddl(table: str) -> str:
    """CREATE TABLE IF NOT EXISTS for raw insights, from the contract."""
    schema = {**RAW_INSIGHTS, **RAW_INSIGHTS_API, **RAW_INSIGHTS_LOAD}
    return (
        f"CREATE TABLE IF NOT EXISTS {_ident(table)} ("
        + ", ".join(f"{_ident(c)} {sql_type(t)}" for c, t in schema.items())
        + ")"
    )


def with_api_columns(frame: pl.DataFrame) -> pl.DataFrame:
    """The raw insights shape every source shares: API-only columns are NULL for files."""
    missing = [pl.lit(None, dtype=t).alias(c) for c, t in RAW_INSIGHTS_API.items() if c not in frame.columns]
    return frame.with_columns(missing) if missing else frame


def metadata_snapshot(names: pl.DataFrame, audiences: pl.DataFrame, as_of: date, source: str) -> pl.DataFrame:
    """Audience metadata as of a decision date: names from the warehouse, type and budget from the source."""
    missing = [pl.lit(None, dtype=t).alias(c) for c, t in AUDIENCE_SCHEMA.items() if c not in audiences.columns]
    audiences = audiences.with_columns(missing) if missing else audiences
    return (
        names.join(audiences.select(list(AUDIENCE_SCHEMA)), on="adset_id", how="left")
        .with_columns(pl.lit(as_of).alias("decision_date"), pl.lit(source).alias("source"))
        .select(
            "decision_date",
            "account_id",
            "adset_id",
            "adset_name",
            "campaign_id",
            "campaign_name",
            *[pl.col(c).cast(t) for c, t in AUDIENCE_SCHEMA.items() if c != "adset_id"],
            "currency",
            "source",
        )
        .sort("account_id", "adset_id")
    )
