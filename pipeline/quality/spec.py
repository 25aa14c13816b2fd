"""The shape every table's suite module fills in: its key, its series, how to add derived columns in
Polars (facts GX cannot express on one column, e.g. gaps between consecutive rows), and its suite.

Every expectation carries a short name in its `meta` ("no_gap"); "<table>.<name>" is what the policy
keys on. `keeps_row` marks series-level expectations (gaps, staleness): the flagged row itself is
fine, so it is recorded in the quarantine but stays in the table.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

import great_expectations as gx
import polars as pl

from pipeline.quality.config import QualityConfig

ROW = "row_nr"  # position in the frame given to `validate`, carried through GX to name failing rows


@dataclass(frozen=True)
class TableSpec:
    table: str
    key: tuple[str, ...]
    time: str  # the column that places a row on a day (a date, or a UTC timestamp)
    prepare: Callable[[pl.DataFrame, QualityConfig, dt.date], pl.DataFrame]  # (frame, config, as_of)
    suite: Callable[[QualityConfig], gx.ExpectationSuite]
    series: tuple[str, ...] = ()  # the key columns of one time series (freshness, gaps)
    derived: dict[str, str] = field(default_factory=dict)  # derived column -> the column it checks


def named(name: str, expectation: gx.expectations.Expectation, keeps_row: bool = False):
    expectation.meta = {"name": name, "keeps_row": keeps_row}
    return expectation


def not_null(*columns: str) -> list:
    return [named(f"{c}_not_null", gx.expectations.ExpectColumnValuesToNotBeNull(column=c)) for c in columns]


def unique_key(key: tuple[str, ...]):
    e = gx.expectations
    if len(key) == 1:
        return named("unique_key", e.ExpectColumnValuesToBeUnique(column=key[0]))
    return named("unique_key", e.ExpectCompoundColumnsToBeUnique(column_list=list(key)))


def keyed_suite(table: str, key: tuple[str, ...], required: tuple[str, ...], expectations: list) -> gx.ExpectationSuite:
    """The suite of `table`: its key unique, key and `required` columns not null, then `expectations`."""
    return gx.ExpectationSuite(name=table, expectations=[unique_key(key), *not_null(*key, *required), *expectations])


def finite(column: str) -> pl.Expr:
    """False for NaN and +-inf, null stays null: pandas reads NaN as missing, so GX's range checks skip
    it; a boolean computed in Polars (where NaN is a value, not a null) is what makes NaN fail."""
    return pl.col(column).is_finite()


def day(column: str, schema: pl.Schema) -> pl.Expr:
    return pl.col(column).dt.date() if schema[column] != pl.Date else pl.col(column)


def stale_days(spec: TableSpec, config: QualityConfig, as_of: dt.date, schema: pl.Schema) -> pl.Expr:
    """On each series' newest row: days it lags `as_of` when that is more than allowed but the series
    was alive within the lookback (older series are gone, e.g. delisted); 0 everywhere else."""
    date = day(spec.time, schema)
    newest = date.max().over(spec.series) if spec.series else date.max()
    age = (pl.lit(as_of) - newest).dt.total_days()
    alive = age.is_between(config.stale_after_days + 1, config.freshness_lookback_days)
    return pl.when((date == newest) & alive).then(age).otherwise(0)


def freshness(series: str):
    """`stale_days` <= 0: every series that was alive lately has a row within `stale_after_days`."""
    return named(
        f"stale_{series}",
        gx.expectations.ExpectColumnValuesToBeBetween(column="stale_days", max_value=0),
        keeps_row=True,
    )
