"""What survivorship was worth: the backtest on the universe as it was (dead coins included) beside
the same backtest on today's fixed list of survivors (`universe.yaml`).

The fixed-list run is the whole nightly chain again, in memory, on the same raw tables and costs:
its marts (volume-capped indices, its own altcoin season and phase), its recommendations and its
backtest. Both are then summarised over the days both cover, by the same `metrics.summary`.
"""

from __future__ import annotations

import polars as pl

from pipeline.evaluation.metrics import summary
from pipeline.evaluation.run import evaluate
from pipeline.strategy.playbook import Backtest, Playbook
from pipeline.strategy.recommend import recommendations
from pipeline.transforms import ENGINE
from pipeline.transforms.chain import RawFrames, compute_marts
from pipeline.transforms.config import AnalyticsConfig, without_market_caps
from pipeline.transforms.membership import membership
from pipeline.transforms.sector_index import sector_assignments
from pipeline.transforms.sector_weights import sector_weights

POINT_IN_TIME, FIXED_LIST = "point_in_time", "fixed_list"
COLUMNS = ("first_date", "last_date", "days", "total_return", "cagr", "volatility", "sharpe", "max_drawdown")
SCHEMA = {"strategy": pl.String, "universe": pl.String, "first_date": pl.Date, "last_date": pl.Date,
          "days": pl.Int64, "total_return": pl.Float64, "cagr": pl.Float64, "volatility": pl.Float64,
          "sharpe": pl.Float64, "max_drawdown": pl.Float64}


def fixed_list_daily(
    raw: RawFrames, fixed: pl.DataFrame, cfg: AnalyticsConfig, playbook: Playbook, costs: Backtest | None = None,
) -> pl.DataFrame:
    """marts.backtest_daily of every strategy had the universe been `fixed` (`Universe.frame()`) all along.

    Only what the backtest reads is kept: the fixed list's candles, no membership rows, the weights
    of the one weighting the recommendations use (at 5,000 tokens the rest is gigabytes)."""
    cfg = without_market_caps(cfg)
    weighting, btc = cfg.relative_strength.weighting, cfg.sector_index.btc
    cfg = cfg.model_copy(update={"sector_index": cfg.sector_index.model_copy(update={"weightings": (weighting,)})})
    raw = RawFrames(raw.ohlcv.filter(pl.col("symbol").is_in(fixed["symbol"].implode())), raw.funding, raw.defi_tvl,
                    raw.btc_dominance)
    marts = compute_marts(raw, fixed, cfg, membership_rows=False)
    regime = marts["marts.market_regime"]
    rotation, hedges, _ = recommendations(
        regime, marts["marts.relative_strength"], marts["marts.sector_index"].filter(pl.col("weighting") == weighting),
        marts["marts.funding_costs"], fixed, playbook, btc=btc,
    )
    members = membership(raw.ohlcv, fixed["symbol"], cfg.membership)
    weights = sector_weights(members, sector_assignments(fixed, cfg.sector_index), cfg.sector_index).collect(engine=ENGINE)
    del members
    daily, _, _, _ = evaluate(rotation, hedges, raw.ohlcv, weights, raw.funding, regime, fixed, playbook, costs)
    return daily


def survivorship(point_in_time: pl.DataFrame, fixed_list: pl.DataFrame) -> pl.DataFrame:
    """strategy, universe, then `COLUMNS` of each strategy on each universe, over the days both
    backtests cover for that strategy (each a marts.backtest_daily)."""
    common = point_in_time.select("strategy", "date").join(fixed_list.select("strategy", "date"), on=["strategy", "date"])
    parts = [
        summary(daily.join(common, on=["strategy", "date"])).select("strategy", *COLUMNS).with_columns(universe=pl.lit(name))
        for name, daily in ((POINT_IN_TIME, point_in_time), (FIXED_LIST, fixed_list))
        if not common.is_empty()
    ]
    if not parts:
        return pl.DataFrame(schema=SCHEMA)
    return pl.concat(parts).select(list(SCHEMA)).cast(SCHEMA).sort("strategy", "universe")
