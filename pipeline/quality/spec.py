"""The shape every raw-table module fills in: its key, how to add derived columns in Polars (row-wise
facts GX cannot express on one column, e.g. gaps between consecutive rows), and its suite."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import great_expectations as gx
import polars as pl

from pipeline.quality.config import QualityConfig

ROW = "row_nr"  # position in the frame given to `validate`, carried through GX to name failing rows


@dataclass(frozen=True)
class TableSpec:
    table: str
    key: tuple[str, ...]
    prepare: Callable[[pl.DataFrame, QualityConfig], pl.DataFrame]
    suite: Callable[[QualityConfig], gx.ExpectationSuite]


def not_null(*columns: str) -> list:
    return [gx.expectations.ExpectColumnValuesToNotBeNull(column=c) for c in columns]


def finite(column: str) -> pl.Expr:
    """False for NaN and +-inf, null stays null: pandas reads NaN as missing, so GX's range checks skip
    it; a boolean computed in Polars (where NaN is a value, not a null) is what makes NaN fail."""
    return pl.col(column).is_finite()
