"""The backtest from the warehouse's frames to its three tables: what the `backtest` asset and the
`python -m pipeline backtest` command both call."""

from __future__ import annotations

import datetime as dt

import polars as pl

from pipeline.evaluation.backtest import Resume, backtest, market
from pipeline.evaluation.metrics import summary
from pipeline.evaluation.strategies import strategies
from pipeline.strategy.playbook import Backtest, Playbook


def evaluate(
    rotation: pl.DataFrame, hedges: pl.DataFrame, ohlcv: pl.DataFrame, weights: pl.DataFrame, funding: pl.DataFrame,
    regime: pl.DataFrame, tokens: pl.DataFrame, playbook: Playbook, costs: Backtest | None = None,
    resume: dict[str, Resume] | None = None, held: pl.DataFrame | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, dict[str, Resume]]:
    """(marts.backtest_daily, marts.backtest_summary, marts.backtest_trades, where the next run
    resumes) of every strategy.

    With `resume` (every strategy's book at the close of one day D), only the days after D are
    simulated: `ohlcv`, `weights` and `funding` need only those days (and the day before: a month's
    decision sizes on it), the daily and trade rows returned are theirs, and the summary is of
    `held` (marts.backtest_daily up to D) followed by them.

    `rotation`, `hedges`: the nightly's recommendation tables; `ohlcv`: raw.ohlcv_1d of the spot
    exchange; `weights`: marts.sector_weights of the recommendations' weighting; `funding`:
    raw.funding_rates of the perp exchange; `regime`: marts.market_regime; `costs`: the playbook's
    `backtest` section unless given (the command's --execution-lag and --fees-x)."""
    if resume and costs is not None:
        raise ValueError("a resumed backtest runs with the playbook's costs: its books were simulated with them")
    view = market(ohlcv, weights, funding, regime, tokens)
    lag = dt.timedelta(days=(costs or playbook.backtest).execution_lag_days)
    since = min(r.day for r in resume.values()) - lag if resume else None
    daily, trades, books = backtest(strategies(rotation, hedges, tokens, view, playbook, since=since), view, playbook,
                                    costs, resume)
    whole = daily if held is None else pl.concat([held.select(daily.columns), daily])
    return daily, summary(whole), trades, books
