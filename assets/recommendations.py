"""Recommendation assets: the rotation and hedge recommendations of the model portfolio and the orders
for the user's portfolio, one multi-asset around `pipeline.strategy.recommend`.

The three are computed together (the hedges and orders follow from the day's allocation) and written
together: each has its blocking `quality` check, and if any fails, none is written. A window's rows
replace what the tables held for those days, so a hedge that is no longer recommended disappears.
Blocking checks upstream (raw data, marts) stop the run before this asset: a day whose data failed
its checks gets no recommendation.
"""


import datetime as dt

import dagster as dg
import polars as pl

from assets.analytics import funding_costs, market_regime, relative_strength, sector_index, sector_weights
from assets.ingest import ohlcv_1d
from assets.metadata import md_table, table_metadata
from assets.partitions import DAILY_ASSET
from assets.quality import check_spec, gated_mart
from pipeline.resources import AnalyticsSettings, QualitySettings, StrategySettings, WarehouseResource
from pipeline.strategy.recommend import portfolio_orders, recommendations
from warehouse import Warehouse

ROTATION, HEDGES, ORDERS = "marts.rotation_recommendation", "marts.hedge_recommendation", "marts.portfolio_orders"
DESCRIPTIONS = {
    ROTATION: "Per day and sector: the model portfolio's current and target weight, the action and the "
    "evidence (phase, band, quadrant, RS momentum, TVL growth, funding) it follows from.",
    HEDGES: "Per day and perp: side, notional and margin as % of the portfolio, leverage, funding APR and "
    "its expected 30-day income or cost, the playbook's strategy and the rationale.",
    ORDERS: "The spot and perp orders that move your portfolio (ROTATION_PORTFOLIO) to the day's targets "
    "and hedges, at the day's closes.",
}
UPSTREAM = [market_regime, relative_strength, sector_index, sector_weights, funding_costs, ohlcv_1d]


def _key(table: str) -> dg.AssetKey:
    return dg.AssetKey(table.split("."))


@dg.multi_asset(
    name="recommendations",
    **DAILY_ASSET,
    specs=[
        dg.AssetSpec(
            _key(table), deps=UPSTREAM, description=DESCRIPTIONS[table], group_name="recommendations",
            owners=["team:quant"], kinds={"polars", "duckdb"}, metadata=table_metadata(table),
        )
        for table in (ROTATION, HEDGES, ORDERS)
    ],
    check_specs=[check_spec(table) for table in (ROTATION, HEDGES, ORDERS)],
)
def recommendation_assets(
    context: dg.AssetExecutionContext, analytics: AnalyticsSettings, strategy: StrategySettings,
    warehouse: WarehouseResource, quality: QualitySettings,
):
    wh = warehouse.get()
    keys = context.partition_key_range
    first, last = dt.date.fromisoformat(keys.start), dt.date.fromisoformat(keys.end)
    cfg, playbook = analytics.config, strategy.playbook
    rotation, hedges = recommendations(
        regime=wh.read("marts.market_regime", last),
        rs=wh.read("marts.relative_strength", last),
        index=wh.read("marts.sector_index", last, weighting=cfg.relative_strength.weighting),
        costs=wh.read("marts.funding_costs", last, exchange=analytics.perp_exchange_id),
        tokens=analytics.tokens, playbook=playbook, btc=cfg.sector_index.btc,
    )
    in_window = pl.col("as_of").is_between(first, last)
    frames = {ROTATION: rotation.filter(in_window), HEDGES: hedges.filter(in_window)}
    frames[ORDERS] = portfolio_orders(
        last, strategy.portfolio, rotation, hedges,
        closes=wh.read("raw.ohlcv_1d", last, since=last, exchange=analytics.spot_exchange_id),
        weights=wh.read("marts.sector_weights", last, since=last, weighting=cfg.relative_strength.weighting),
        tokens=analytics.tokens, playbook=playbook,
    )
    checks = {t: gated_mart(context, wh, t, rows, (first, last), quality.config) for t, rows in frames.items()}
    for _, check in checks.values():
        yield check
    if not all(ok for ok, _ in checks.values()):
        context.log.error("recommendations: a blocking check failed; nothing written, the previous rows stay")
        for table in frames:
            yield dg.MaterializeResult(asset_key=_key(table), metadata={"table": table, "rows_written": 0})
        return
    # The window's rows replace the tables' rows of those days (the orders: of the last day).
    stale = {t: wh.read(t, last, since=first if t != ORDERS else last) for t in frames}
    wh.upsert(frames, delete=stale)
    for table, rows in frames.items():
        yield _result(context, table, rows, first, last)


def _result(
    context: dg.AssetExecutionContext, table: str, rows: pl.DataFrame, first: dt.date, last: dt.date,
) -> dg.MaterializeResult:
    if rows.is_empty():
        context.log.warning(f"{table}: no rows for {first} .. {last}")
        return dg.MaterializeResult(asset_key=_key(table), metadata={"table": table, "rows_written": 0})
    newest = rows.filter(pl.col("as_of") == rows["as_of"].max())
    preview = {
        ROTATION: lambda f: f.select("sector", "bucket", "current_weight", "target_weight", "action", "score")
        .sort("target_weight", descending=True),
        HEDGES: lambda f: f.select("instrument", "side", "notional_pct", "leverage", "margin_pct", "funding_apr",
                                   "funding_30d_pct", "strategy"),
        ORDERS: lambda f: f.select("instrument", "side", "quantity", "notional_usd", "price"),
    }[table](newest)
    context.log.info(f"{table}: {rows.height} rows for {rows['as_of'].min()} .. {rows['as_of'].max()}")
    return dg.MaterializeResult(
        asset_key=_key(table),
        metadata={
            "table": table, "rows_written": rows.height, "first": str(rows["as_of"].min()),
            "last": str(rows["as_of"].max()), "latest": dg.MetadataValue.md(md_table(preview, max_rows=20)),
        },
    )

