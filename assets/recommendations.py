"""Recommendation assets: the model portfolio's rotation and hedge recommendations (one multi-asset
around `pipeline.strategy.recommend`), and the orders for the user's portfolio (an asset of its own).

The model's two tables are computed together (the hedges follow from the day's allocation) and
written together: each has its blocking `quality` check, and if either fails, neither is written.
They are recomputed from the start of history with the current playbook and replace the tables, so
a hedge that is no longer recommended disappears; a night whose inputs up to the day before are
those the stored model was computed from (`marts.recommendation_state`, see assets/resume.py)
resumes from it and computes only the new days, with the same result. Blocking checks upstream (raw data, marts) stop
the run before this asset: a day whose data failed its checks gets no recommendation.

The orders depend on the user's file, the model does not: they run after the night's model is
published, so a bad portfolio file fails the orders alone, and the orders publish the snapshot
again once written.
"""


import datetime as dt
from collections.abc import Callable

import dagster as dg
import polars as pl

from assets.analytics import funding_costs, market_regime, relative_strength, sector_index, sector_weights
from assets.ingest import ohlcv_1d
from assets.metadata import chart_metadata, md_table
from assets.partitions import as_of_day
from assets.quality import gated_mart, gated_table, gated_tables, table_key, write_gated
from assets.resume import fingerprint, state_spec, stored_state
from pipeline.resources import AnalyticsSettings, QualitySettings, StrategySettings, WarehouseResource
from pipeline.strategy.recommend import Model, portfolio_orders, recommendations
from warehouse.db import Warehouse

ROTATION, HEDGES, ORDERS = "marts.rotation_recommendation", "marts.hedge_recommendation", "marts.portfolio_orders"
STATE, MODEL = "marts.recommendation_state", "playbook"
DESCRIPTIONS = {
    ROTATION: "Per day and sector: the model portfolio's current and target weight, the action and the "
    "evidence (phase, band, quadrant, RS momentum, TVL growth, funding) it follows from.",
    HEDGES: "Per day and perp: side, notional and margin as % of the portfolio, leverage, funding APR and "
    "its expected 30-day income or cost, the playbook's strategy and the rationale.",
    ORDERS: "The spot and perp orders that move your portfolio (ROTATION_PORTFOLIO) to the day's targets "
    "and hedges, at the day's closes.",
    STATE: "The model portfolio at the newest day and a fingerprint of the inputs up to it: where the next "
    "night resumes. Written with the two tables when their checks pass; no check of its own.",
}
SNAPSHOT = dg.AssetKey(["warehouse", "read_snapshot"])  # assets.publish imports this module
UPSTREAM = [market_regime, relative_strength, sector_index, sector_weights, funding_costs, ohlcv_1d]


def _specs() -> dict[str, object]:
    args = gated_tables((ROTATION, HEDGES), DESCRIPTIONS, UPSTREAM, "recommendations")
    args["specs"].append(state_spec(STATE, UPSTREAM, "recommendations", DESCRIPTIONS[STATE]))
    return args


@dg.multi_asset(name="recommendations", **_specs())
def recommendation_assets(
    context: dg.AssetExecutionContext, analytics: AnalyticsSettings, strategy: StrategySettings,
    warehouse: WarehouseResource, quality: QualitySettings,
):
    wh = warehouse.get()
    last = as_of_day(wh, analytics.spot_exchange_id)
    universe = analytics.universe_as_of(wh, last)
    cfg, playbook, tokens = universe.config, strategy.playbook, universe.tokens
    after = resume_point(wh, analytics, strategy, last)
    day = after.allocation.date if after else None
    since = day + dt.timedelta(days=1) if day else None
    # Before the reads: rows restated meanwhile (a run beside this one) then fail the next night's check.
    fingerprint_of_last = inputs(wh, analytics, strategy, last)
    costs = wh.read("marts.funding_costs", last, exchange=analytics.perp_exchange_id)
    rotation, hedges, model = recommendations(
        regime=wh.read("marts.market_regime", last, since=since),
        rs=wh.read("marts.relative_strength", last, since=since),
        # a day's evidence holds its sectors' 30-day returns
        index=wh.read("marts.sector_index", last, since=day - dt.timedelta(days=29) if day else None,
                      weighting=cfg.relative_strength.weighting),
        costs=costs.filter(pl.col("date") >= since) if since else costs, tokens=tokens, playbook=playbook,
        btc=cfg.sector_index.btc, after=after,
    )
    frames = {ROTATION: rotation, HEDGES: hedges}
    first = since or (rotation["as_of"].min() if rotation.height else last)
    state = pl.DataFrame(  # a newest day without a phase has no allocation: the state of the day before stays
        [(MODEL, last, fingerprint_of_last, model.to_json())] if model and model.allocation.date == last else [],
        schema={"model": pl.String, "date": pl.Date, "inputs": pl.String, "state": pl.String}, orient="row")
    changes = yield from write_gated(context, wh, "recommendations", frames, (first, last), quality.config, since=since,
                                     also={STATE: state})
    if changes is None:
        yield dg.MaterializeResult(asset_key=table_key(STATE), metadata={"table": STATE, "rows_written": 0})
        return
    context.log.info(f"recommendations: {'resumed after ' + str(day) if day else 'computed from the first day'}, "
                     f"{rotation['as_of'].n_unique()} day(s) computed")
    if after:  # the whole tables, for the pictures and the metadata
        rotation, hedges = wh.read(ROTATION, last), wh.read(HEDGES, last)
        first = rotation["as_of"].min()
        frames = {ROTATION: rotation, HEDGES: hedges}
    btc = cfg.sector_index.btc
    pictures = {
        ROTATION: lambda: chart_metadata(lambda charts: charts.target_allocation(rotation, last)),
        HEDGES: lambda: chart_metadata(
            lambda charts: charts.funding_apr(costs, charts.hedged_perps(hedges, tokens, btc), last)),
    }
    for table, rows in frames.items():
        yield _result(context, table, rows, first, last, pictures[table], written=changes[table][0].height)
    yield dg.MaterializeResult(asset_key=table_key(STATE), metadata={
        "table": STATE, "rows_written": state.height, "day": str(state["date"][0]) if state.height else "none",
        "resumed_after": str(day)})


def inputs(wh: Warehouse, analytics: AnalyticsSettings, strategy: StrategySettings, day: dt.date) -> str:
    """Fingerprint of everything the model up to `day` is computed from: the marts' rows up to that
    day, the universe, the playbook, the BTC series' name and the strategy code."""
    universe = analytics.universe_as_of(wh, day)
    cfg = universe.config
    tables = {"marts.market_regime": {}, "marts.relative_strength": {},
              "marts.sector_index": {"weighting": cfg.relative_strength.weighting},
              "marts.funding_costs": {"exchange": analytics.perp_exchange_id}}
    texts = [universe.tokens.write_csv(), strategy.playbook.model_dump_json(), cfg.sector_index.btc]
    return fingerprint(wh, day, tables, texts, ("pipeline/strategy", __file__))


def resume_point(wh: Warehouse, analytics: AnalyticsSettings, strategy: StrategySettings, last: dt.date) -> Model | None:
    """The stored model, when `stored_state` may resume from it; else None."""
    held = stored_state(wh, STATE, ROTATION, last, lambda day: inputs(wh, analytics, strategy, day))
    return None if held is None else Model.from_json(held.filter(pl.col("model") == MODEL)["state"].item())


@dg.asset(
    key=table_key(ORDERS), group_name="recommendations", owners=["team:quant"], kinds={"polars", "duckdb"},
    deps=[recommendation_assets, sector_weights, ohlcv_1d, SNAPSHOT],
    description=DESCRIPTIONS[ORDERS], **gated_table(ORDERS),
)
def portfolio_orders_asset(
    context: dg.AssetExecutionContext, analytics: AnalyticsSettings, strategy: StrategySettings,
    warehouse: WarehouseResource, quality: QualitySettings,
):
    """The newest day only: what to do with the portfolio now. Each night's orders stay in the table
    (the record of what you were told). A typo in the portfolio file (an unknown token or perp)
    fails this asset, naming it; the model's tables are already written."""
    wh = warehouse.get()
    last = as_of_day(wh, analytics.spot_exchange_id)
    portfolio = strategy.portfolio()
    universe = analytics.universe_as_of(wh, last)
    tokens = universe.tokens
    orders = portfolio_orders(
        last, portfolio,
        rotation=wh.read(ROTATION, last, since=last), hedges=wh.read(HEDGES, last, since=last),
        closes=wh.last_closes(last, analytics.spot_exchange_id, tokens["symbol"].to_list()),
        weights=wh.read("marts.sector_weights", last, since=last, weighting=universe.config.relative_strength.weighting),
        tokens=tokens, playbook=strategy.playbook,
    )
    for note in orders.filter(pl.col("side") == "hold")["reason"]:
        context.log.warning(f"portfolio {strategy.portfolio_file}: {note}")
    ok, check = gated_mart(context, wh, ORDERS, orders, (last, last), quality.config)
    yield check
    if not ok:
        context.log.error(f"{ORDERS}: a blocking check failed; nothing written, the previous rows stay")
        yield dg.MaterializeResult(metadata={"table": ORDERS, "rows_written": 0})
        return
    wh.upsert({ORDERS: orders}, delete={ORDERS: wh.read(ORDERS, last, since=last)})
    wh.publish_snapshot()  # readers see the orders beside the model they follow
    yield _result(context, ORDERS, orders, last, last)


def _result(
    context: dg.AssetExecutionContext, table: str, rows: pl.DataFrame, first: dt.date, last: dt.date,
    picture: Callable[[], dict[str, object]] | None = None, written: int | None = None,
) -> dg.MaterializeResult:
    """Metadata of the table's `rows`, of which `written` were new or changed (default: all)."""
    if rows.is_empty():
        context.log.warning(f"{table}: no rows for {first} .. {last}")
        return dg.MaterializeResult(asset_key=table_key(table), metadata={"table": table, "rows_written": 0})
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
        asset_key=table_key(table),
        metadata={
            "table": table, "rows": rows.height, "rows_written": rows.height if written is None else written,
            "first": str(rows["as_of"].min()),
            "last": str(rows["as_of"].max()), "latest": dg.MetadataValue.md(md_table(preview, max_rows=20)),
            **(picture() if picture else {}),
        },
    )

