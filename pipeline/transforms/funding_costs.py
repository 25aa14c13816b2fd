"""Perp funding costs per day (`marts.funding_costs`).

Sign convention (as the exchanges publish it): a positive rate is paid by longs to shorts. So a
short hedge earns a positive funding_apr_pct and a long pays it.

Annualised by time, not by settlement: the rates paid over a day (or week) divided by the hours
they cover. Each settlement covers its interval (8h on most perps, 4h or 1h on some), read from the
spacing of the symbol's settlements, as exchanges move perps between intervals and `interval_hours`
in raw.funding_rates is the interval when the rows were fetched, not when they were paid. A
missing settlement (quarantined, never published) is told apart from a change of interval. Only
earlier settlements are read, so a day's figures never change when later days arrive.
"""

from __future__ import annotations

import polars as pl

HOURS_PER_YEAR = 365 * 24
MAX_INTERVAL_HOURS = 8  # no perp we know of settles less often: a longer spacing is a gap in the data
TRAILING = "7d"
KEYS = ["exchange", "symbol"]


def with_settlement_hours(funding: pl.LazyFrame) -> pl.LazyFrame:
    """Adds `_hours`: the hours each settlement covers, read from earlier settlements only.

    The spacing since the symbol's previous settlement, unless it is longer than both of the two
    spacings before it and is not the stored interval: then settlements are missing in between
    (quarantined, never published), and the shorter of those two is the interval. A move to a
    shorter interval shows at once; a move to a longer one when it is the stored interval (the
    usual case: exchanges shorten an interval for a while, then restore it), else after two more
    settlements. A symbol's first settlement takes the stored interval: nothing earlier tells.
    """
    time = pl.col("funding_time")
    # Rows sorted by symbol, then time: a shift reaches the symbol's earlier settlements unless it
    # crosses into the previous symbol, which `_first` marks (cheaper than a window per symbol).
    first = pl.any_horizontal([pl.col(k) != pl.col(k).shift(1) for k in KEYS]).fill_null(True)
    # In whole minutes: exchanges stamp settlements a few milliseconds late.
    minutes = ((time - time.shift(1)).dt.total_milliseconds() / 60_000).round()
    spacing, usual = pl.col("_spacing"), pl.col("_usual")
    stored = pl.col("interval_hours").cast(pl.Float64).fill_null(MAX_INTERVAL_HOURS)
    hours = (
        pl.when(spacing.is_null())
        .then(stored)
        .when(usual.is_null() | (spacing == stored) | (spacing <= usual))
        .then(spacing)
        .otherwise(usual)
    )
    return (
        funding.sort(*KEYS, "funding_time")
        .with_columns(_first=first)
        .with_columns(_spacing=pl.when(~pl.col("_first")).then(minutes / 60))
        .with_columns(
            _usual=pl.min_horizontal(spacing.shift(1), pl.when(~pl.col("_first").shift(1)).then(spacing.shift(2)))
        )
        .with_columns(_hours=hours)
        .with_columns(_hours=pl.when(pl.col("_hours") <= MAX_INTERVAL_HOURS).then("_hours").otherwise(stored))
        .drop("_first", "_spacing", "_usual")
    )


def funding_costs(funding: pl.LazyFrame | pl.DataFrame) -> pl.LazyFrame:
    """exchange, symbol, date, settlements, interval_hours, funding_rate_sum (fraction a 1x long pays
    that day), funding_apr_pct (the day's rate per hour paid, annualised) and funding_apr_7d_pct
    (the same over the trailing 7 days). A day whose settlements published no rate has no APR."""
    daily = (
        with_settlement_hours(funding.lazy())
        .with_columns(date=pl.col("funding_time").dt.date())
        .group_by(*KEYS, "date")
        .agg(
            settlements=pl.col("funding_rate").count().cast(pl.Int32),  # with a published rate
            interval_hours=pl.col("_hours").max().round().cast(pl.Int32),
            funding_rate_sum=pl.col("funding_rate").sum(),
            _paid_hours=pl.col("_hours").filter(pl.col("funding_rate").is_not_null()).sum(),
        )
        .sort(*KEYS, "date")
    )

    def annualised(rate_sum: pl.Expr, hours: pl.Expr) -> pl.Expr:
        # No paid hours: no rate, not 0/0 = NaN (which would sort as "hot").
        return pl.when(hours > 0).then(100.0 * HOURS_PER_YEAR * rate_sum / hours)

    def trailing(column: str) -> pl.Expr:
        return pl.col(column).rolling_sum_by("date", TRAILING).over(KEYS)

    return daily.with_columns(
        funding_apr_pct=annualised(pl.col("funding_rate_sum"), pl.col("_paid_hours")),
        funding_apr_7d_pct=annualised(trailing("funding_rate_sum"), trailing("_paid_hours")),
    ).drop("_paid_hours")
