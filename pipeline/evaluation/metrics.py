"""The performance metrics of the backtest, from its daily rows (marts.backtest_daily) to one row per
strategy (marts.backtest_summary) and the return of each calendar year.

Conventions: returns and ratios are fractions (0.65 = 65%); annualised on 365 periods a year (crypto
trades every day); risk-free rate 0. A strategy's initial capital is its first row's
equity / (1 + ret), and it is the starting point of the equity curve: a first-day loss is a drawdown.
The formulas are those of quantstats (`quantstats.stats`, periods=365, rf=0), which
tests/test_backtest_metrics.py checks them against.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

PERIODS_PER_YEAR = 365
PHASES = ("btc_dominance", "altcoin_surge", "narrative_rotation", "peak_consolidation", "bear")

SUMMARY_SCHEMA = {
    "strategy": pl.String, "first_date": pl.Date, "last_date": pl.Date, "days": pl.Int64,
    "total_return": pl.Float64, "cagr": pl.Float64, "volatility": pl.Float64, "sharpe": pl.Float64,
    "sortino": pl.Float64, "max_drawdown": pl.Float64, "max_drawdown_peak": pl.Date,
    "max_drawdown_trough": pl.Date, "max_drawdown_recovery": pl.Date, "calmar": pl.Float64,
    "turnover": pl.Float64, "fees_paid": pl.Float64, "funding_paid": pl.Float64,
    "funding_received": pl.Float64, "hedge_pnl": pl.Float64, "avg_gross_exposure": pl.Float64,
    "avg_net_exposure": pl.Float64, "liquidations": pl.Int64, "funding_missing_share": pl.Float64,
    **{f"share_{phase}": pl.Float64 for phase in PHASES},
}

_by_strategy = "strategy"


def _null_unless(condition: pl.Expr, value: pl.Expr) -> pl.Expr:
    return pl.when(condition).then(value).otherwise(None)


def summary(daily: pl.DataFrame) -> pl.DataFrame:
    """One row per strategy (sorted by strategy) with the columns of SUMMARY_SCHEMA, in its order.

    - total_return: last equity / initial capital - 1.
    - cagr: (1 + total_return) ** (365 / days) - 1, `days` being the number of rows, not the calendar
      span: one row is one period, as quantstats' `cagr` counts years (`returns.count() / periods`).
      A backtest has a row every day, so the two only differ when a window has gaps.
    - volatility: std(ret, ddof=1) * sqrt(365); sharpe: mean(ret) / std(ret, ddof=1) * sqrt(365).
    - sortino: mean(ret) / sqrt(mean(min(ret, 0) ** 2)) * sqrt(365), the mean over all days (the Red
      Rock Capital downside deviation, quantstats' `sortino`).
    - max_drawdown: the worst equity / running peak - 1 (negative), the initial capital counting as a
      peak; max_drawdown_peak is the last day at the peak before the worst trough (first_date's eve
      when that peak is the initial capital), max_drawdown_trough the first day of the worst
      drawdown, max_drawdown_recovery the first day after it at or above the peak (null: not yet).
      All four are null when equity never fell below a peak; calmar = cagr / |max_drawdown| then too.
    - sharpe, sortino: null when their denominator is 0 or undefined (a single day).
    - turnover: mean daily one-way turnover * 365; fees_paid, funding_*, hedge_pnl: USD sums;
      liquidations: their sum; funding_missing_share: funding_missing_notional / hedge_notional,
      summed over the days (null without hedge notional); share_<phase>: the share of the
      strategy's days in that phase, days without a phase counting in the denominator.
    """
    curve = (
        daily.sort(_by_strategy, "date")
        .with_columns(initial_capital=(pl.col("equity") / (1 + pl.col("ret"))).first().over(_by_strategy))
        .with_columns(peak=pl.max_horizontal(pl.col("equity").cum_max().over(_by_strategy), "initial_capital"))
        .with_columns(drawdown=pl.col("equity") / pl.col("peak") - 1)
        .with_columns(
            # The latest day at the running peak, up to each day: a trough's peak day.
            peak_date=pl.when(pl.col("drawdown") >= 0).then(pl.col("date")).forward_fill().over(_by_strategy),
            trough=pl.col("date").get(pl.col("drawdown").arg_min()).over(_by_strategy),
            trough_peak=pl.col("peak").get(pl.col("drawdown").arg_min()).over(_by_strategy),
        )
    )
    ret = pl.col("ret")
    worst = pl.col("drawdown").min()
    in_drawdown = worst < 0
    at_trough = pl.col("date") == pl.col("trough")
    std = ret.std(ddof=1)
    downside = (pl.min_horizontal(ret, 0) ** 2).mean().sqrt()
    hedge_notional = pl.col("hedge_notional").sum()
    table = (
        curve.group_by(_by_strategy)
        .agg(
            first_date=pl.col("date").first(),
            last_date=pl.col("date").last(),
            days=pl.len().cast(pl.Int64),
            total_return=pl.col("equity").last() / pl.col("initial_capital").first() - 1,
            volatility=std * PERIODS_PER_YEAR**0.5,
            sharpe=_null_unless(std > 0, ret.mean() / std * PERIODS_PER_YEAR**0.5),
            sortino=_null_unless(downside > 0, ret.mean() / downside * PERIODS_PER_YEAR**0.5),
            max_drawdown=worst,
            max_drawdown_peak=_null_unless(
                in_drawdown,
                pl.col("peak_date").filter(at_trough).first().fill_null(pl.col("date").first() - dt.timedelta(days=1)),
            ),
            max_drawdown_trough=_null_unless(in_drawdown, pl.col("trough").first()),
            max_drawdown_recovery=_null_unless(
                in_drawdown,
                pl.col("date").filter(pl.col("date") > pl.col("trough"), pl.col("equity") >= pl.col("trough_peak")).first(),
            ),
            turnover=pl.col("turnover").mean() * PERIODS_PER_YEAR,
            fees_paid=pl.col("fees").sum(),
            funding_paid=pl.col("funding_paid").sum(),
            funding_received=pl.col("funding_received").sum(),
            hedge_pnl=pl.col("hedge_pnl").sum(),
            avg_gross_exposure=pl.col("gross_exposure").mean(),
            avg_net_exposure=pl.col("net_exposure").mean(),
            liquidations=pl.col("liquidations").sum().cast(pl.Int64),
            funding_missing_share=_null_unless(
                hedge_notional > 0, pl.col("funding_missing_notional").sum() / hedge_notional,
            ),
            **{f"share_{phase}": pl.col("phase").eq_missing(phase).mean() for phase in PHASES},
        )
        # Years = rows / 365, not the calendar span: a backtest has one row a day, and it is the
        # count quantstats' cagr uses (returns.count() / periods), which the tests check against.
        .with_columns(cagr=(1 + pl.col("total_return")) ** (PERIODS_PER_YEAR / pl.col("days")) - 1)
        .with_columns(calmar=_null_unless(pl.col("max_drawdown") < 0, pl.col("cagr") / pl.col("max_drawdown").abs()))
    )
    return table.select(pl.col(name).cast(dtype) for name, dtype in SUMMARY_SCHEMA.items()).sort(_by_strategy)


def yearly_returns(daily: pl.DataFrame) -> pl.DataFrame:
    """strategy, year, ret: the compounded return of each calendar year's rows (the first year from
    the initial capital, as its first row's ret is), sorted by strategy and year."""
    return (
        daily.group_by(_by_strategy, pl.col("date").dt.year().cast(pl.Int64).alias("year"))
        .agg(ret=(1 + pl.col("ret")).product() - 1)
        .sort(_by_strategy, "year")
    )
