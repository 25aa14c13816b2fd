"""Suites of the recommendation tables: what a user acting on them relies on. Target weights in
[0, 1] and summing to 1 every day, known actions and sides, hedge sizes and leverage within the
playbook's hard limits (margin = notional / leverage), orders with positive sizes and prices
(a `hold` line of a holding with no market may lack a price)."""

from __future__ import annotations

import datetime as dt

import great_expectations as gx
import polars as pl

from pipeline.quality.config import QualityConfig
from pipeline.quality.spec import TableSpec, finite, keyed_suite, named
from pipeline.strategy.playbook import BUCKETS, LEVERAGE_CEILING

e = gx.expectations
ROTATION_KEY = ("as_of", "sector")
HEDGE_KEY = ("as_of", "instrument")
ORDER_KEY = ("as_of", "instrument")


def flags(**flags: pl.Expr):
    """(prepare, derived) adding boolean columns that must all be True (NaN-proof: see spec.finite)."""

    def prepare(frame: pl.DataFrame, config: QualityConfig, as_of: dt.date) -> pl.DataFrame:
        return frame.with_columns(**{name: expr.fill_null(False) for name, expr in flags.items()})

    return prepare


def true(*names: str) -> list:
    return [named(n, e.ExpectColumnValuesToBeInSet(column=n, value_set=[True])) for n in names]


ROTATION = TableSpec(
    "marts.rotation_recommendation", ROTATION_KEY, "as_of",
    flags(
        target_finite=finite("target_weight"),
        # float sums of ~8 weights built by adding and subtracting 5 pp steps: 1e-9 is far above rounding
        weights_sum_to_one=(pl.col("target_weight").sum().over("as_of") - 1).abs() < 1e-9,
    ),
    lambda config: keyed_suite(
        "marts.rotation_recommendation", ROTATION_KEY, ("target_weight", "action", "rationale"),
        [
            *true("target_finite", "weights_sum_to_one"),
            named("target_in_range", e.ExpectColumnValuesToBeBetween(column="target_weight", min_value=0, max_value=1)),
            named("current_in_range", e.ExpectColumnValuesToBeBetween(column="current_weight", min_value=0, max_value=1)),
            named("known_action", e.ExpectColumnValuesToBeInSet(column="action", value_set=["increase", "decrease", "hold"])),
            named("known_bucket", e.ExpectColumnValuesToBeInSet(column="bucket", value_set=list(BUCKETS))),
        ],
    ),
    derived={"target_finite": "target_weight", "weights_sum_to_one": "target_weight"},
)
HEDGE = TableSpec(
    "marts.hedge_recommendation", HEDGE_KEY, "as_of",
    flags(
        notional_finite=finite("notional_pct"),
        margin_is_notional_over_leverage=(pl.col("margin_pct") - pl.col("notional_pct") / pl.col("leverage")).abs() < 1e-9,
    ),
    lambda config: keyed_suite(
        "marts.hedge_recommendation", HEDGE_KEY, ("side", "notional_pct", "leverage", "strategy", "rationale"),
        [
            *true("notional_finite", "margin_is_notional_over_leverage"),
            named("known_side", e.ExpectColumnValuesToBeInSet(column="side", value_set=["long", "short"])),
            named("notional_in_range", e.ExpectColumnValuesToBeBetween(column="notional_pct", min_value=0, max_value=100)),
            named("leverage_in_range", e.ExpectColumnValuesToBeBetween(column="leverage", min_value=1, max_value=LEVERAGE_CEILING)),
        ],
    ),
    derived={"notional_finite": "notional_pct", "margin_is_notional_over_leverage": "margin_pct"},
)
ORDERS = TableSpec(
    "marts.portfolio_orders", ORDER_KEY, "as_of",
    # a `hold` line (a holding with no market that day) may lack a price: the exchange never had one
    flags(sizes_finite=finite("quantity") & ((pl.col("side") == "hold") | finite("notional_usd") & finite("price"))),
    lambda config: keyed_suite(
        "marts.portfolio_orders", ORDER_KEY, ("side", "quantity", "notional_usd", "reason"),  # price: see sizes_finite
        [
            *true("sizes_finite"),
            named("known_side", e.ExpectColumnValuesToBeInSet(column="side", value_set=["buy", "sell", "hold"])),
            named("quantity_positive", e.ExpectColumnValuesToBeBetween(column="quantity", min_value=0, strict_min=True)),
            named("price_positive", e.ExpectColumnValuesToBeBetween(column="price", min_value=0, strict_min=True)),
        ],
    ),
    derived={"sizes_finite": "quantity"},
)
SPECS = (ROTATION, HEDGE, ORDERS)
