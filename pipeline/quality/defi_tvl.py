"""Suite of raw.defi_tvl: one value per (scope, name, date), a known scope, non-negative TVL, and no
series gone quiet."""

from __future__ import annotations

import datetime as dt

import great_expectations as gx
import polars as pl

from pipeline.quality.config import QualityConfig
from pipeline.quality.spec import TableSpec, freshness, keyed_suite, named, stale_days

KEY = ("scope", "name", "date")
SCOPES = ("total", "chain", "protocol")


def prepare(frame: pl.DataFrame, config: QualityConfig, as_of: dt.date) -> pl.DataFrame:
    return frame.with_columns(stale_days=stale_days(SPEC, config, as_of, frame.schema))


def suite(config: QualityConfig) -> gx.ExpectationSuite:
    e = gx.expectations
    return keyed_suite(
        "raw.defi_tvl", KEY, ("tvl_usd",),
        [
            named("known_scope", e.ExpectColumnValuesToBeInSet(column="scope", value_set=list(SCOPES))),
            named("tvl_non_negative", e.ExpectColumnValuesToBeBetween(column="tvl_usd", min_value=0)),
            freshness("series"),
        ],
    )


SPEC = TableSpec(
    "raw.defi_tvl", KEY, "date", prepare, suite, series=("scope", "name"), derived={"stale_days": "date"},
)
