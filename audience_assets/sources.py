"""Where insights and audience metadata come from: the embedded sample or CSV exports.

A source yields typed frames in the raw shape. `extract` decides which days a load replaces:
file sources replace every day their file covers; the sample behaves like an API, re-pulling
only the lookback window once the warehouse already holds the history before it.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Literal

import polars as pl
from pydantic import BaseModel, Field

from audience_assets.engine.validation import (
    InputError,
    check_coverage,
    validate_audiences,
    validate_insights,
)
from audience_assets.sample.simulator import SAMPLE_END_DATE, simulate_account

RAW_COLUMNS = (
    "account_id",
    "campaign_id",
    "campaign_name",
    "adset_id",
    "adset_name",
    "date",
    "spend",
    "impressions",
    "clicks",
    "purchases",
    "purchase_value",
    "currency",
)


class SourceSpec(BaseModel):
    """Which source to read and how."""

    kind: Literal["sample", "csv", "meta"] = "sample"
    insights_path: str | None = None
    audiences_path: str | None = None
    sample_seed: int = 7
    sample_adsets: int = Field(120, ge=1)
    sample_days: int = Field(75, ge=1)
    sample_end_date: date = SAMPLE_END_DATE


@dataclass(frozen=True)
class Extract:
    """What one load brings: insight rows, the (account, day) pairs they replace, and metadata."""

    insights: pl.DataFrame
    days: pl.DataFrame
    audiences: pl.DataFrame
    full_history: bool


def read_csv_text(path: str | Path) -> pl.DataFrame:
    """Read a CSV with every column as text (types are checked by the validators)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: file not found")
    if p.stat().st_size == 0 or not p.read_bytes()[:4096].strip():
        return pl.DataFrame()
    try:
        frame = pl.read_csv(p, infer_schema=False, encoding="utf8-lossy")
    except pl.exceptions.DuplicateError as err:
        raise InputError(f"{p}: the header names a column twice ({str(err).splitlines()[0]})") from None
    except (pl.exceptions.ComputeError, pl.exceptions.NoDataError) as err:
        raise InputError(f"{p}: not a readable CSV file ({str(err).splitlines()[0]})") from None
    # polars renames an exact duplicate (spend, spend_duplicated_0): read the header as written.
    with p.open(encoding="utf-8", errors="replace", newline="") as fh:
        header = next(csv.reader(fh), [])
    names = [c.strip().lstrip("\ufeff").strip().lower() for c in header]
    if len(names) != frame.width:
        names = [c.strip().lstrip("\ufeff").strip().lower() for c in frame.columns]
    twice = sorted({n for i, n in enumerate(names) if n in names[:i]})
    if twice:
        raise InputError(f"{p}: column(s) {', '.join(twice)} appear more than once in the header")
    return frame.rename(dict(zip(frame.columns, names, strict=True)))


def _sample(spec: SourceSpec) -> tuple[pl.DataFrame, pl.DataFrame]:
    acct = simulate_account(
        seed=spec.sample_seed, n_adsets=spec.sample_adsets, days=spec.sample_days, end_date=spec.sample_end_date
    )
    insights = acct.insights.rename({"date_start": "date", "account_currency": "currency"}).with_columns(
        pl.col("purchases").cast(pl.Float64)
    )
    return insights.select(RAW_COLUMNS), acct.audiences


def _csv(spec: SourceSpec) -> tuple[pl.DataFrame, pl.DataFrame]:
    if not spec.insights_path or not spec.audiences_path:
        raise InputError("the csv source needs both an insights file and an audiences file")
    ins_name, aud_name = str(spec.insights_path), str(spec.audiences_path)
    insights = validate_insights(read_csv_text(spec.insights_path), ins_name)
    audiences = validate_audiences(read_csv_text(spec.audiences_path), aud_name)
    check_coverage(insights, audiences, ins_name, aud_name)
    return insights.select(RAW_COLUMNS), audiences


def read_source(spec: SourceSpec) -> tuple[pl.DataFrame, pl.DataFrame]:
    """All insight rows and audience rows of a source, validated and typed."""
    return _sample(spec) if spec.kind == "sample" else _csv(spec)


def read_audiences(spec: SourceSpec) -> pl.DataFrame:
    """Only the audience rows of a source, validated and typed."""
    if spec.kind == "sample":
        return _sample(spec)[1]
    if not spec.audiences_path:
        raise InputError("the csv source needs an audiences file")
    return validate_audiences(read_csv_text(spec.audiences_path), str(spec.audiences_path))


def newest_day(spec: SourceSpec) -> date:
    """The newest day a source holds (the default decision date is the day after it)."""
    if spec.kind == "sample":
        return spec.sample_end_date
    if spec.kind != "csv" or not spec.insights_path:
        raise InputError(f"the newest day of a {spec.kind} source is not known before it is read")
    # Fast path: one column. Any problem falls through to the full validation and its exact message.
    try:
        newest = (
            pl.scan_csv(spec.insights_path, infer_schema=False)
            .select(pl.col("date_start").str.strip_chars().str.to_date("%Y-%m-%d", strict=True).max())
            .collect()
            .item()
        )
    except (pl.exceptions.PolarsError, OSError):
        newest = None
    if newest is None:
        insights, _ = read_source(spec)
        newest = insights["date"].max()
    return newest


def _day_grid(frame: pl.DataFrame, start: pl.Expr, end: pl.Expr) -> pl.DataFrame:
    return (
        frame.group_by("account_id")
        .agg(start.alias("start"), end.alias("end"))
        .with_columns(pl.date_ranges("start", "end").alias("date"))
        .explode("date")
        .select("account_id", "date")
        .drop_nulls()
    )


def extract(spec: SourceSpec, as_of: date, stored_first_day: dict[str, date], lookback_days: int) -> Extract:
    """The rows a load for decision date `as_of` writes: complete days before it only."""
    insights, audiences = read_source(spec)
    insights = insights.filter(pl.col("date") < as_of)
    if insights.height == 0:
        raise InputError(f"no insight rows before the decision date {as_of}: nothing to decide on")
    full = True
    if spec.kind == "sample":
        window_start = as_of - timedelta(days=lookback_days)
        first = insights.group_by("account_id").agg(pl.col("date").min())
        # Incremental once the warehouse already holds everything before the lookback window.
        covered = all(acct in stored_first_day and stored_first_day[acct] <= day for acct, day in first.iter_rows())
        if covered:
            full = False
            insights = insights.filter(pl.col("date") >= window_start)
            days = _day_grid(first, pl.lit(window_start), pl.lit(as_of - timedelta(days=1)))
            return Extract(insights, days, audiences, full)
    days = _day_grid(insights, pl.col("date").min(), pl.col("date").max())
    return Extract(insights, days, audiences, full)


# Metadata only an API source knows; files leave them empty.
OPTIONAL_METADATA = {
    "effective_status": pl.Utf8,
    "bid_strategy": pl.Utf8,
    "is_cbo": pl.Boolean,
    "lifetime_budget": pl.Float64,
    "learning_stage": pl.Utf8,
}


def metadata_snapshot(names: pl.DataFrame, audiences: pl.DataFrame, as_of: date, source: str) -> pl.DataFrame:
    """Audience metadata as of a decision date: names from the warehouse, type and budget from the source."""
    missing = [pl.lit(None, dtype=t).alias(c) for c, t in OPTIONAL_METADATA.items() if c not in audiences.columns]
    audiences = audiences.with_columns(missing) if missing else audiences
    return (
        names.join(audiences, on="adset_id", how="left")
        .with_columns(pl.lit(as_of).alias("decision_date"), pl.lit(source).alias("source"))
        .select(
            "decision_date",
            "account_id",
            "adset_id",
            "adset_name",
            "campaign_id",
            "campaign_name",
            "audience_type",
            "lookalike_pct",
            "source_quality",
            "launched_on",
            "daily_budget",
            pl.col("last_budget_change_at").cast(pl.Datetime("us")),
            *[pl.col(c).cast(t) for c, t in OPTIONAL_METADATA.items()],
            "currency",
            "source",
        )
        .sort("account_id", "adset_id")
    )


@dataclass(frozen=True)
class MetaExtract:
    """One Meta load: rows and replaced days of the accounts that succeeded, and the failures."""

    insights: pl.DataFrame | None
    days: pl.DataFrame
    audiences: pl.DataFrame
    accounts: dict[str, dict]
    failures: dict[str, str]
    full_history: dict[str, bool]


def extract_meta(
    client,
    account_ids: list[str],
    as_of: date,
    stored: dict[str, tuple[date, date]],
    lookback_days: int,
    initial_days: int,
    purchase_priority: tuple[str, ...],
    with_insights: bool = True,
    with_metadata: bool = True,
) -> MetaExtract:
    """Pull each account; one account's failure does not lose the others' rows.

    `stored` holds each account's first and last stored day. An account new to the warehouse gets
    `initial_days`; a known one re-pulls the lookback window, reaching back further when runs were
    missed so no gap is left. A day is loaded only once it is over in the account's timezone.
    """
    from audience_assets.meta_source import audiences_frame, insights_frame, redact, today_in

    frames, day_frames, audience_frames = [], [], []
    accounts, failures, full = {}, {}, {}
    for act in account_ids:
        try:
            info = client.account(act)
            accounts[act] = info
            if with_insights:
                until = min(as_of, today_in(info.get("timezone_name"))) - timedelta(days=1)
                window_start = until - timedelta(days=lookback_days - 1) if lookback_days else until
                if act in stored:
                    _first, last = stored[act]
                    since = min(window_start, last + timedelta(days=1))
                    full[act] = False
                else:
                    since = until - timedelta(days=initial_days - 1)
                    full[act] = True
                if since > until:
                    continue
                rows = client.insights(act, since, until)
                frames.append(insights_frame(rows, act, purchase_priority))
                day_frames.append(
                    pl.DataFrame({"account_id": [act]})
                    .with_columns(pl.date_ranges(pl.lit(since), pl.lit(until)).alias("date"))
                    .explode("date")
                )
            if with_metadata:
                changes = client.budget_changes(act, as_of - timedelta(days=30))
                audience_frames.append(
                    audiences_frame(client.adsets(act), client.campaigns(act), info, changes).with_columns(
                        pl.lit(act).alias("account_id")
                    )
                )
        except Exception as err:  # noqa: BLE001 - recorded per account and raised after the others are saved
            failures[act] = redact(f"{type(err).__name__}: {err}", getattr(client.settings, "access_token", None))
    insights = pl.concat(frames, how="vertical_relaxed") if frames else None
    days = pl.concat(day_frames) if day_frames else pl.DataFrame(schema={"account_id": pl.Utf8, "date": pl.Date})
    audiences = pl.concat(audience_frames, how="vertical_relaxed") if audience_frames else pl.DataFrame()
    return MetaExtract(insights, days, audiences, accounts, failures, full)
