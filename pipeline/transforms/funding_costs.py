"""Perp funding costs per day (`marts.funding_costs`).

Sign convention (as the exchanges publish it): a positive rate is paid by longs to shorts. So a
short hedge earns a positive funding_apr_pct and a long pays it. Each settlement is annualised with
its own symbol's interval (8h on most perps, 4h or 1h on some), so a 4h perp is not under-counted.
"""

from __future__ import annotations

import polars as pl

DAYS_PER_YEAR = 365
TRAILING = "7d"


def funding_costs(funding: pl.LazyFrame | pl.DataFrame) -> pl.LazyFrame:
    """exchange, symbol, date, settlements, interval_hours, funding_rate_sum (fraction a 1x long pays
    that day), funding_apr_pct (the day's average, annualised) and funding_apr_7d_pct (trailing 7 days)."""
    interval = pl.col("interval_hours").fill_null(8)
    daily = (
        funding.lazy()
        .with_columns(
            date=pl.col("funding_time").dt.date(),
            _apr=pl.col("funding_rate") * (24.0 / interval) * DAYS_PER_YEAR * 100.0,
            interval_hours=interval,
        )
        .group_by("exchange", "symbol", "date")
        .agg(
            settlements=pl.col("funding_rate").count().cast(pl.Int32),  # with a published rate
            interval_hours=pl.col("interval_hours").max().cast(pl.Int32),
            funding_rate_sum=pl.col("funding_rate").sum(),
            _apr_sum=pl.col("_apr").sum(),
        )
        .sort("exchange", "symbol", "date")
    )
    keys = ["exchange", "symbol"]
    # A day (or week) with no published rate has no rate, not 0/0 = NaN (which would sort as "hot").
    trailing = pl.col("_apr_sum").rolling_sum_by("date", TRAILING).over(keys) / pl.col("settlements").cast(
        pl.Float64
    ).rolling_sum_by("date", TRAILING).over(keys)
    return daily.with_columns(
        funding_apr_pct=pl.col("_apr_sum") / pl.col("settlements"),
        funding_apr_7d_pct=trailing,
    ).with_columns(
        pl.col("funding_apr_pct", "funding_apr_7d_pct").fill_nan(None),
    ).drop("_apr_sum")
