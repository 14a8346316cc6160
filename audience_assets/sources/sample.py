"""The embedded sample account: the seeded simulator in the raw shapes, loaded like an API.

The first load brings the whole history; once the warehouse holds everything before the
lookback window, a load re-pulls only that window (as Meta's restated recent days would be).
"""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl

from audience_assets.sample.simulator import SAMPLE_DAYS, SAMPLE_END_DATE, simulate_account
from audience_assets.sources import RAW_COLUMNS, Extract, SourceSpec, day_grid
from audience_assets.sources.files import decision_rows


def end_date(spec: SourceSpec) -> date:
    return spec.sample_end_date or SAMPLE_END_DATE


def first_decision_date(days: int = SAMPLE_DAYS, end: date = SAMPLE_END_DATE) -> date:
    """The earliest decision date the default sample supports: the day after its first day."""
    return end - timedelta(days=days - 1) + timedelta(days=1)


def read_sample(spec: SourceSpec) -> tuple[pl.DataFrame, pl.DataFrame]:
    """All insight rows and audience rows of the simulated account."""
    acct = simulate_account(
        seed=spec.sample_seed, n_adsets=spec.sample_adsets, days=spec.sample_days, end_date=end_date(spec)
    )
    insights = acct.insights.rename({"date_start": "date", "account_currency": "currency"}).with_columns(
        pl.col("purchases").cast(pl.Float64)
    )
    return insights.select(RAW_COLUMNS), acct.audiences


def extract_sample(spec: SourceSpec, as_of: date, stored_first_day: dict[str, date], lookback_days: int) -> Extract:
    """The rows a load for decision date `as_of` writes: complete days before it only."""
    insights, audiences = read_sample(spec)
    full = decision_rows(insights, audiences, as_of, full_history=True)
    first = full.insights.group_by("account_id").agg(pl.col("date").min())
    # Incremental once the warehouse already holds everything before the lookback window.
    covered = all(acct in stored_first_day and stored_first_day[acct] <= day for acct, day in first.iter_rows())
    if not covered:
        return full
    window_start = as_of - timedelta(days=lookback_days)
    days = day_grid(first, pl.lit(window_start), pl.lit(as_of - timedelta(days=1)))
    return Extract(full.insights.filter(pl.col("date") >= window_start), days, audiences, False, full.ignored_after)
