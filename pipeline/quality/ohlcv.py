"""Suite of raw.ohlcv_1d: one candle per (exchange, symbol, date), positive finite prices, a
consistent high/low range, non-negative volume, no missing days inside a symbol's history (unless a
person accepted the gap), and no symbol gone quiet while others trade."""

from __future__ import annotations

import datetime as dt

import great_expectations as gx
import polars as pl

from pipeline.quality.config import QualityConfig
from pipeline.quality.spec import TableSpec, finite, freshness, keyed_suite, named, stale_days

KEY = ("exchange", "symbol", "date")
PRICES = ("open", "high", "low", "close")


def _gap_days(config: QualityConfig) -> pl.Expr:
    """Days since the symbol's previous candle; 0 on its first (a null would make the pandas column
    float with NaN, which GX checks 5x slower) and on gaps a person accepted in the config."""
    previous = pl.col("date").shift(1).over(["exchange", "symbol"], order_by="date")
    gap = (pl.col("date") - previous).dt.total_days().fill_null(0)
    accepted = pl.lit(False)
    for g in config.accepted_gaps:
        accepted = accepted | (
            (pl.col("symbol") == g.symbol) & (previous >= g.first - dt.timedelta(days=1)) & (pl.col("date") <= g.last + dt.timedelta(days=1))
        )
    return pl.when(accepted).then(0).otherwise(gap)


def prepare(frame: pl.DataFrame, config: QualityConfig, as_of: dt.date) -> pl.DataFrame:
    """Prices as GX sees them: NaN and +-inf become null, so `<price>_finite` (a not-null check)
    names the column of a NaN, an inf or a missing value alike (the failing rows shown keep the
    values as given). Derived: `body_high`/`body_low` (max/min of open and close, so the range
    check is a column pair), `gap_days` and `stale_days`."""
    return frame.with_columns(
        *(pl.when(finite(c)).then(pl.col(c)).alias(c) for c in PRICES),
    ).with_columns(
        body_high=pl.max_horizontal("open", "close"),
        body_low=pl.min_horizontal("open", "close"),
        gap_days=_gap_days(config),
        stale_days=stale_days(SPEC, config, as_of, frame.schema),
    )


def suite(config: QualityConfig) -> gx.ExpectationSuite:
    e = gx.expectations
    return keyed_suite(
        "raw.ohlcv_1d", KEY, ("volume",),
        [
            *(named(f"{c}_finite", e.ExpectColumnValuesToNotBeNull(column=c)) for c in PRICES),
            *(named(f"{c}_positive", e.ExpectColumnValuesToBeBetween(column=c, min_value=0, strict_min=True)) for c in PRICES),
            named("high_not_below_low", e.ExpectColumnPairValuesAToBeGreaterThanB(column_A="high", column_B="low", or_equal=True)),
            named("high_covers_body", e.ExpectColumnPairValuesAToBeGreaterThanB(column_A="high", column_B="body_high", or_equal=True)),
            named("low_covers_body", e.ExpectColumnPairValuesAToBeGreaterThanB(column_A="body_low", column_B="low", or_equal=True)),
            named("volume_non_negative", e.ExpectColumnValuesToBeBetween(column="volume", min_value=0)),
            named("no_gap", e.ExpectColumnValuesToBeBetween(column="gap_days", max_value=config.candle_gap_max_days), keeps_row=True),
            freshness("symbol"),
        ],
    )


SPEC = TableSpec(
    "raw.ohlcv_1d", KEY, "date", prepare, suite, series=("exchange", "symbol"),
    derived={"body_high": "open/close", "body_low": "open/close",
             "gap_days": "date", "stale_days": "date"},
)
