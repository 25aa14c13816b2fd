"""Suites of the backtest tables: what a reader of the results relies on. Equity finite and
positive, returns and exposures finite, costs never negative, known strategies and sides, fills
with positive sizes and prices, drawdowns between -100% and 0."""

from __future__ import annotations

import great_expectations as gx
import polars as pl

from pipeline.evaluation.strategies import NAMES
from pipeline.quality.recommendations import flags, true
from pipeline.quality.spec import TableSpec, finite, keyed_suite, named

e = gx.expectations
DAILY_KEY = ("strategy", "date")
SUMMARY_KEY = ("strategy",)
TRADES_KEY = ("strategy", "date", "instrument", "side")


def _known_strategy() -> gx.expectations.Expectation:
    return named("known_strategy", e.ExpectColumnValuesToBeInSet(column="strategy", value_set=list(NAMES)))


def _at_least_zero(*columns: str) -> list:
    return [named(f"{c}_not_negative", e.ExpectColumnValuesToBeBetween(column=c, min_value=0)) for c in columns]


DAILY = TableSpec(
    "marts.backtest_daily", DAILY_KEY, "date",
    flags(values_finite=pl.all_horizontal(finite(c) for c in ("equity", "ret", "gross_exposure", "net_exposure", "hedge_pnl"))),
    lambda config: keyed_suite(
        "marts.backtest_daily", DAILY_KEY, ("equity", "ret", "turnover", "fees", "funding", "hedge_pnl"),
        [
            *true("values_finite"),
            _known_strategy(),
            named("equity_positive", e.ExpectColumnValuesToBeBetween(column="equity", min_value=0, strict_min=True)),
            *_at_least_zero("turnover", "fees", "funding_paid", "funding_received", "gross_exposure", "hedge_notional",
                            "funding_missing_notional", "liquidations"),
        ],
    ),
    derived={"values_finite": "equity"},
)
SUMMARY = TableSpec(
    "marts.backtest_summary", SUMMARY_KEY, "last_date",
    # a one-day backtest has no volatility (nor Sharpe, Sortino): null, never NaN
    flags(metrics_finite=pl.all_horizontal(finite(c) for c in ("total_return", "cagr", "max_drawdown"))
          & (finite("volatility") | pl.col("volatility").is_null())),
    lambda config: keyed_suite(
        "marts.backtest_summary", SUMMARY_KEY, ("first_date", "last_date", "days", "cagr", "max_drawdown"),
        [
            *true("metrics_finite"),
            _known_strategy(),
            named("days_positive", e.ExpectColumnValuesToBeBetween(column="days", min_value=1)),
            named("drawdown_in_range", e.ExpectColumnValuesToBeBetween(column="max_drawdown", min_value=-1, max_value=0)),
            *_at_least_zero("fees_paid", "funding_paid", "funding_received", "turnover", "liquidations"),
        ],
    ),
    derived={"metrics_finite": "cagr"},
)
TRADES = TableSpec(
    "marts.backtest_trades", TRADES_KEY, "date",
    flags(sizes_finite=finite("quantity") & finite("notional_usd") & finite("price") & finite("fee_usd")),
    lambda config: keyed_suite(
        "marts.backtest_trades", TRADES_KEY, ("quantity", "price", "notional_usd", "fee_usd", "reason"),
        [
            *true("sizes_finite"),
            _known_strategy(),
            named("known_side", e.ExpectColumnValuesToBeInSet(column="side", value_set=["buy", "sell"])),
            named("quantity_positive", e.ExpectColumnValuesToBeBetween(column="quantity", min_value=0, strict_min=True)),
            named("price_positive", e.ExpectColumnValuesToBeBetween(column="price", min_value=0, strict_min=True)),
            *_at_least_zero("fee_usd"),
        ],
    ),
    derived={"sizes_finite": "quantity"},
)
SURVIVORSHIP = TableSpec(
    "marts.backtest_survivorship", ("strategy", "universe"), "last_date",
    flags(metrics_finite=pl.all_horizontal(finite(c) for c in ("total_return", "cagr", "max_drawdown"))),
    lambda config: keyed_suite(
        "marts.backtest_survivorship", ("strategy", "universe"), ("first_date", "last_date", "days", "cagr"),
        [
            *true("metrics_finite"),
            _known_strategy(),
            named("known_universe", e.ExpectColumnValuesToBeInSet(column="universe", value_set=["point_in_time", "fixed_list"])),
            named("drawdown_in_range", e.ExpectColumnValuesToBeBetween(column="max_drawdown", min_value=-1, max_value=0)),
        ],
    ),
    derived={"metrics_finite": "cagr"},
)
SPECS = (DAILY, SUMMARY, TRADES, SURVIVORSHIP)
