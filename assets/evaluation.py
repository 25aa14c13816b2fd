"""The `backtest` asset (group `evaluation`): replays the recommendations the nightly wrote, next to
what a user would hold instead, through `pipeline.evaluation` (pure), and writes the daily, summary
and trade tables behind one blocking check each (if any fails, none is written).

Like the marts it recomputes from the start of history (holdings are path dependent) as of the
newest candle day and replaces its tables.
"""

import dagster as dg
import polars as pl

from assets.analytics import market_regime, sector_weights
from assets.ingest import funding_rates, ohlcv_1d
from assets.metadata import chart_metadata, md_table
from assets.partitions import as_of_day
from assets.quality import gated_tables, table_key, write_gated
from assets.recommendations import recommendation_assets
from pipeline.evaluation.run import evaluate
from pipeline.resources import AnalyticsSettings, QualitySettings, StrategySettings, WarehouseResource

DAILY, SUMMARY, TRADES = "marts.backtest_daily", "marts.backtest_summary", "marts.backtest_trades"
DESCRIPTIONS = {
    DAILY: "Per strategy and day: equity, return, turnover, fees, funding, hedge P&L, exposures and the phase "
    "behind the day's trades. Decisions of D trade at D+1's open.",
    SUMMARY: "Per strategy: CAGR, volatility, Sharpe, Sortino, max drawdown (peak, trough, recovery), Calmar, "
    "turnover, fees, funding and hedge P&L, exposures, share of days per phase.",
    TRADES: "Every fill of the backtest: the order engine's trades, leavers sold and liquidations.",
}
TABLES = (DAILY, SUMMARY, TRADES)


@dg.multi_asset(
    name="backtest",
    **gated_tables(TABLES, DESCRIPTIONS, [recommendation_assets, sector_weights, market_regime, ohlcv_1d, funding_rates],
                   "evaluation"),
)
def backtest_assets(
    context: dg.AssetExecutionContext, analytics: AnalyticsSettings, strategy: StrategySettings,
    warehouse: WarehouseResource, quality: QualitySettings,
):
    wh = warehouse.get()
    last = as_of_day(wh, analytics.spot_exchange_id)
    weighting = analytics.config.relative_strength.weighting
    daily, summary, trades = evaluate(
        rotation=wh.read("marts.rotation_recommendation", last), hedges=wh.read("marts.hedge_recommendation", last),
        ohlcv=wh.read("raw.ohlcv_1d", last, exchange=analytics.spot_exchange_id),
        weights=wh.read("marts.sector_weights", last, weighting=weighting),
        funding=wh.read("raw.funding_rates", last, exchange=analytics.perp_exchange_id),
        regime=wh.read("marts.market_regime", last), tokens=analytics.tokens, playbook=strategy.playbook,
    )
    frames = {DAILY: daily, SUMMARY: summary, TRADES: trades}
    first = daily["date"].min() if daily.height else last
    changes = yield from write_gated(context, wh, "backtest", frames, (first, last), quality.config)
    if changes is None:
        return
    context.log.info(f"backtest: {summary.height} strategies, {daily.height} strategy-days, {trades.height} trades "
                     f"up to {last}")
    yield dg.MaterializeResult(asset_key=table_key(DAILY), metadata={"table": DAILY, "rows": daily.height, "rows_written": changes[DAILY][0].height})
    picture = chart_metadata(lambda charts: charts.equity_curves(daily)) if daily.height else {}
    yield dg.MaterializeResult(asset_key=table_key(SUMMARY), metadata=summary_metadata(summary) | picture)
    yield dg.MaterializeResult(asset_key=table_key(TRADES), metadata={"table": TRADES, "rows": trades.height, "rows_written": changes[TRADES][0].height})


def summary_metadata(summary: pl.DataFrame) -> dict[str, object]:
    """The strategy table as Markdown, and each strategy's Sharpe, CAGR and max drawdown as numbers
    Dagster plots across runs."""
    metadata: dict[str, object] = {"table": SUMMARY, "rows_written": summary.height}
    if summary.is_empty():
        return metadata
    table = summary.select(
        "strategy", "first_date", "last_date",
        *(pl.col(c).mul(100).round(1).alias(f"{c} %") for c in ("total_return", "cagr", "volatility", "max_drawdown")),
        pl.col("sharpe").round(2), pl.col("sortino").round(2), pl.col("calmar").round(2),
        pl.col("turnover").round(1).alias("turnover x/yr"), pl.col("fees_paid").round(0).alias("fees $"),
    )
    metadata["strategies"] = dg.MetadataValue.md(md_table(table, max_rows=20))
    for row in summary.iter_rows(named=True):
        for metric in ("sharpe", "cagr", "max_drawdown"):
            if row[metric] is not None:
                metadata[f"{row['strategy']}/{metric}"] = dg.MetadataValue.float(float(row[metric]))
    return metadata


evaluation_assets = [backtest_assets]
