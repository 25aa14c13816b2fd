"""Suite of raw.funding_rates: one event per (exchange, symbol, funding_time), a funding rate inside a
plausible band per interval (catches percent-vs-fraction slips), a positive mark price."""

from __future__ import annotations

import great_expectations as gx
import polars as pl

from pipeline.quality.config import QualityConfig
from pipeline.quality.spec import TableSpec, not_null

KEY = ("exchange", "symbol", "funding_time")


def prepare(frame: pl.DataFrame, config: QualityConfig) -> pl.DataFrame:
    """No derived columns: NaN rates read as null in pandas and fail the not-null check."""
    return frame


def suite(config: QualityConfig) -> gx.ExpectationSuite:
    e = gx.expectations
    band = config.funding_rate_max_abs
    return gx.ExpectationSuite(
        name="raw.funding_rates",
        expectations=[
            e.ExpectCompoundColumnsToBeUnique(column_list=list(KEY)),
            *not_null(*KEY, "funding_rate"),
            e.ExpectColumnValuesToBeBetween(column="funding_rate", min_value=-band, max_value=band),
            e.ExpectColumnValuesToBeBetween(column="mark_price", min_value=0, strict_min=True),
        ],
    )


SPEC = TableSpec("raw.funding_rates", KEY, prepare, suite)
