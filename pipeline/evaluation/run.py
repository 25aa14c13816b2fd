"""The backtest from the warehouse's frames to its three tables: what the `backtest` asset and the
`python -m pipeline backtest` command both call."""

from __future__ import annotations

import polars as pl

from pipeline.evaluation.backtest import backtest, market
from pipeline.evaluation.metrics import summary
from pipeline.evaluation.strategies import strategies
from pipeline.strategy.playbook import Backtest, Playbook


def evaluate(
    rotation: pl.DataFrame, hedges: pl.DataFrame, ohlcv: pl.DataFrame, weights: pl.DataFrame, funding: pl.DataFrame,
    regime: pl.DataFrame, tokens: pl.DataFrame, playbook: Playbook, costs: Backtest | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """(marts.backtest_daily, marts.backtest_summary, marts.backtest_trades) of every strategy.

    `rotation`, `hedges`: the nightly's recommendation tables; `ohlcv`: raw.ohlcv_1d of the spot
    exchange; `weights`: marts.sector_weights of the recommendations' weighting; `funding`:
    raw.funding_rates of the perp exchange; `regime`: marts.market_regime; `costs`: the playbook's
    `backtest` section unless given (the command's --execution-lag and --fees-x)."""
    view = market(ohlcv, weights, funding, regime, tokens)
    daily, trades = backtest(strategies(rotation, hedges, tokens, view, playbook), view, playbook, costs)
    return daily, summary(daily), trades
