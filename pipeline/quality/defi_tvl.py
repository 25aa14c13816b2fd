"""Suite of raw.defi_tvl: one value per (scope, name, date), a known scope, non-negative TVL."""

from __future__ import annotations

import great_expectations as gx
import polars as pl

from pipeline.quality.config import QualityConfig
from pipeline.quality.spec import TableSpec, not_null

KEY = ("scope", "name", "date")
SCOPES = ("total", "chain", "protocol")


def prepare(frame: pl.DataFrame, config: QualityConfig) -> pl.DataFrame:
    return frame


def suite(config: QualityConfig) -> gx.ExpectationSuite:
    e = gx.expectations
    return gx.ExpectationSuite(
        name="raw.defi_tvl",
        expectations=[
            e.ExpectCompoundColumnsToBeUnique(column_list=list(KEY)),
            *not_null(*KEY),
            e.ExpectColumnValuesToBeInSet(column="scope", value_set=list(SCOPES)),
            e.ExpectColumnValuesToBeBetween(column="tvl_usd", min_value=0),
        ],
    )


SPEC = TableSpec("raw.defi_tvl", KEY, prepare, suite)
