"""Suites of the marts: what every consumer of a mart relies on. Membership rows with a reason,
positive ranks and known buckets; index levels finite and > 0, no
index day (nor the alts-vs-BTC reading) beyond any plausible move, each day's constituent weights
summing to 1, one row per key, quadrant, phase and season within their fixed values, funding rates
finite. They run on the rows an analytics run is about to write; a failure keeps the previous rows."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import great_expectations as gx
import polars as pl

from pipeline.quality.config import QualityConfig
from pipeline.quality.spec import TableSpec, finite, keyed_suite, named
from pipeline.transforms.market_regime import PHASES
from pipeline.transforms.relative_strength import QUADRANTS

e = gx.expectations
SEASONS = ("alt_season", "btc_season", "neutral")


def _finite(*columns: str):
    """(prepare, expectations) of `<column>_finite` flags: NaN/inf fail, null passes (warm-up)."""

    def prepare(frame: pl.DataFrame, config: QualityConfig, as_of: dt.date) -> pl.DataFrame:
        return frame.with_columns(**{f"{c}_finite": finite(c).fill_null(True) for c in columns})

    checks = [named(f"{c}_finite", e.ExpectColumnValuesToBeInSet(column=f"{c}_finite", value_set=[True])) for c in columns]
    return prepare, checks, {f"{c}_finite": c for c in columns}


def _spec(table: str, key: tuple[str, ...], finite_columns: tuple[str, ...], checks: Callable[[QualityConfig], list]) -> TableSpec:
    """`checks`: the table's own expectations, from the config (its thresholds)."""
    prepare, finite_checks, derived = _finite(*finite_columns)

    def suite(config: QualityConfig) -> gx.ExpectationSuite:
        return keyed_suite(table, key, (), [*finite_checks, *checks(config)])

    return TableSpec(table, key, "date", prepare, suite, derived=derived)


def _within_factor(name: str, column: str, factor: float, scale: float = 1.0):
    """A relative change (`scale` = 1: a fraction, 100: percentage points) of at most `factor` either
    way: between 1/factor - 1 and factor - 1."""
    return named(name, e.ExpectColumnValuesToBeBetween(column=column, min_value=(1 / factor - 1) * scale, max_value=(factor - 1) * scale))


SECTOR_INDEX = _spec(
    "marts.sector_index", ("sector", "date", "weighting"), ("level", "ret_1d"),
    lambda config: [
        named("level_positive", e.ExpectColumnValuesToBeBetween(column="level", min_value=0, strict_min=True)),
        named("level_not_null", e.ExpectColumnValuesToNotBeNull(column="level")),
        _within_factor("plausible_day", "ret_1d", config.index_day_max_factor),
        named("constituents_non_negative", e.ExpectColumnValuesToBeBetween(column="n_constituents", min_value=0)),
    ],
)
SECTOR_WEIGHTS = TableSpec(
    "marts.sector_weights", ("sector", "date", "weighting", "symbol"), "date",
    lambda frame, config, as_of: frame.with_columns(
        weight_finite=finite("weight").fill_null(False),
        weight_sum=pl.col("weight").sum().over("sector", "date", "weighting"),
    ),
    lambda config: keyed_suite(
        "marts.sector_weights", ("sector", "date", "weighting", "symbol"), (),
        [
            named("weight_finite", e.ExpectColumnValuesToBeInSet(column="weight_finite", value_set=[True])),
            named("weight_in_range", e.ExpectColumnValuesToBeBetween(column="weight", min_value=0, max_value=1)),
            # float sums of up to ~50 weights: 1e-9 is far above rounding, far below any real slip
            named("weights_sum_to_one", e.ExpectColumnValuesToBeBetween(column="weight_sum", min_value=1 - 1e-9, max_value=1 + 1e-9)),
        ],
    ),
    derived={"weight_finite": "weight", "weight_sum": "weight"},
)
RELATIVE_STRENGTH = _spec(
    "marts.relative_strength", ("sector", "date"), ("rs_vs_btc", "rs_ratio", "rs_momentum"),
    lambda config: [
        named("rs_positive", e.ExpectColumnValuesToBeBetween(column="rs_vs_btc", min_value=0, strict_min=True)),
        named("known_quadrant", e.ExpectColumnValuesToBeInSet(column="quadrant", value_set=list(QUADRANTS))),
    ],
)
ALTSEASON = _spec(
    "marts.altseason", ("date",), ("altseason_index",),
    lambda config: [
        named("index_in_range", e.ExpectColumnValuesToBeBetween(column="altseason_index", min_value=0, max_value=100)),
        named("known_season", e.ExpectColumnValuesToBeInSet(column="season", value_set=list(SEASONS))),
    ],
)
FUNDING_COSTS = _spec(
    "marts.funding_costs", ("exchange", "symbol", "date"), ("funding_rate_sum", "funding_apr_pct", "funding_apr_7d_pct"),
    lambda config: [named("settlements_non_negative", e.ExpectColumnValuesToBeBetween(column="settlements", min_value=0))],
)
MARKET_REGIME = _spec(
    "marts.market_regime", ("date",), (),
    lambda config: [
        named("known_phase", e.ExpectColumnValuesToBeInSet(column="phase", value_set=list(PHASES))),
        named("known_risk_mode", e.ExpectColumnValuesToBeInSet(column="risk_mode", value_set=["risk_on", "risk_off"])),
        _within_factor("plausible_alts_vs_btc", "alts_vs_btc_pct", config.alts_vs_btc_max_factor, scale=100),
    ],
)
UNIVERSE_MEMBERSHIP = _spec(
    "marts.universe_membership", ("date", "coin"), ("market_cap_usd",),
    lambda config: [
        named("rank_positive", e.ExpectColumnValuesToBeBetween(column="rank", min_value=1)),
        named("known_bucket", e.ExpectColumnValuesToBeInSet(column="bucket", value_set=["core", "mid", "speculative"])),
        named("member_known", e.ExpectColumnValuesToNotBeNull(column="member")),
        named("reason_known", e.ExpectColumnValuesToNotBeNull(column="reason")),
    ],
)
SPECS = (UNIVERSE_MEMBERSHIP, SECTOR_INDEX, SECTOR_WEIGHTS, RELATIVE_STRENGTH, ALTSEASON, FUNDING_COSTS, MARKET_REGIME)
