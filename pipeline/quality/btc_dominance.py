"""Suite of raw.btc_dominance: one value per date, a share in 0..100 percentage points, no one-day
jump larger than a real market moves, and no one-day spike (CoinGecko's history has single-day
glitches that revert the next day: the shipped policy quarantines those and only warns)."""

from __future__ import annotations

import datetime as dt

import great_expectations as gx
import polars as pl

from pipeline.quality.config import QualityConfig
from pipeline.quality.spec import TableSpec, freshness, keyed_suite, named, stale_days

KEY = ("date",)


def prepare(frame: pl.DataFrame, config: QualityConfig, as_of: dt.date) -> pl.DataFrame:
    """`spike_pp`: on a day that jumps by more than the limit and reverts the next day (back to within
    the limit of the day before), the size of the jump; null elsewhere. `jump_pp`: |change| vs the
    previous day, measured past a spike (the revert is not a jump of its own). A jump on the newest
    day cannot be told from a spike yet, so it counts as a jump. Include the day before the validated
    window so its first day is compared too."""
    limit = config.dominance_jump_max_pp
    pct = pl.col("btc_dominance_pct")

    def lag(n: int) -> pl.Expr:
        return pct.shift(n).over(pl.lit(0), order_by="date")

    up, down = pct - lag(1), lag(-1) - pct
    spike = (up.abs() > limit) & (down.abs() > limit) & (up.sign() != down.sign()) & ((lag(-1) - lag(1)).abs() <= limit)
    return (
        frame.with_columns(_spike=spike.fill_null(False))
        .with_columns(_after_spike=pl.col("_spike").shift(1).over(pl.lit(0), order_by="date").fill_null(False))
        .with_columns(
            spike_pp=pl.when("_spike").then(up.abs()),
            jump_pp=pl.when("_spike").then(None).when("_after_spike").then((pct - lag(2)).abs()).otherwise(up.abs()),
            stale_days=stale_days(SPEC, config, as_of, frame.schema),
        )
        .drop("_spike", "_after_spike")
    )


def suite(config: QualityConfig) -> gx.ExpectationSuite:
    e = gx.expectations
    limit = config.dominance_jump_max_pp
    return keyed_suite(
        "raw.btc_dominance", KEY, ("btc_dominance_pct",),
        [
            named("share_in_range", e.ExpectColumnValuesToBeBetween(column="btc_dominance_pct", min_value=0, max_value=100)),
            named("no_one_day_jump", e.ExpectColumnValuesToBeBetween(column="jump_pp", max_value=limit)),
            named("one_day_spike", e.ExpectColumnValuesToBeBetween(column="spike_pp", max_value=limit)),
            freshness("series"),
        ],
    )


SPEC = TableSpec(
    "raw.btc_dominance", KEY, "date", prepare, suite,
    derived={"jump_pp": "btc_dominance_pct", "spike_pp": "btc_dominance_pct", "stale_days": "date"},
)
