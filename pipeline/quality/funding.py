"""Suite of raw.funding_rates: one event per (exchange, symbol, funding_time), a funding rate inside a
plausible band per interval (catches percent-vs-fraction slips), a positive mark price, and no perp
gone quiet."""

from __future__ import annotations

import datetime as dt

import great_expectations as gx
import polars as pl

from pipeline.quality.config import QualityConfig
from pipeline.quality.spec import TableSpec, freshness, keyed_suite, named, stale_days

KEY = ("exchange", "symbol", "funding_time")


def prepare(frame: pl.DataFrame, config: QualityConfig, as_of: dt.date) -> pl.DataFrame:
    """`stale_days` only: NaN rates read as null in pandas and fail the not-null check."""
    return frame.with_columns(stale_days=stale_days(SPEC, config, as_of, frame.schema))


def suite(config: QualityConfig) -> gx.ExpectationSuite:
    e = gx.expectations
    band = config.funding_rate_max_abs
    return keyed_suite(
        "raw.funding_rates", KEY, ("funding_rate",),
        [
            named("rate_in_band", e.ExpectColumnValuesToBeBetween(column="funding_rate", min_value=-band, max_value=band)),
            named("mark_price_positive", e.ExpectColumnValuesToBeBetween(column="mark_price", min_value=0, strict_min=True)),
            freshness("perp"),
        ],
    )


SPEC = TableSpec(
    "raw.funding_rates", KEY, "funding_time", prepare, suite, series=("exchange", "symbol"),
    derived={"stale_days": "funding_time"},
)
