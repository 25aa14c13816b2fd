"""Suite of raw.btc_dominance: one value per date, a share in 0..100 percentage points, and no
one-day jump larger than a real market moves (CoinGecko's history has single-day glitches)."""

from __future__ import annotations

import great_expectations as gx
import polars as pl

from pipeline.quality.config import QualityConfig
from pipeline.quality.spec import TableSpec, not_null

KEY = ("date",)


def prepare(frame: pl.DataFrame, config: QualityConfig) -> pl.DataFrame:
    """`jump_pp`: |pct - pct of the previous date in the frame|, null on the first date. Both the
    day a glitch starts and the day it reverts are flagged; the frame should include the day
    before the validated window so its first day is compared too."""
    pct = pl.col("btc_dominance_pct")
    return frame.with_columns(jump_pp=(pct - pct.shift(1)).abs().over(pl.lit(0), order_by="date"))


def suite(config: QualityConfig) -> gx.ExpectationSuite:
    e = gx.expectations
    return gx.ExpectationSuite(
        name="raw.btc_dominance",
        expectations=[
            e.ExpectColumnValuesToBeUnique(column="date"),
            *not_null("date", "btc_dominance_pct"),
            e.ExpectColumnValuesToBeBetween(column="btc_dominance_pct", min_value=0, max_value=100),
            e.ExpectColumnValuesToBeBetween(column="jump_pp", max_value=config.dominance_jump_max_pp),
        ],
    )


SPEC = TableSpec("raw.btc_dominance", KEY, prepare, suite)
