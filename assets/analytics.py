"""Analytics assets: the marts, each a thin wrapper around a pure transform in `pipeline.transforms`.

Each reads its inputs up to the day it is computed as of (`as_of_day`: the newest spot candle),
recomputes from the start of history (levels and the phase are path dependent, and a full pass
takes seconds) and replaces its table in one transaction. Every row only uses inputs up to its own
day (the truncation tests check it), so a row is the same whichever night computed it.
"""

import datetime as dt
from collections.abc import Callable

import dagster as dg
import polars as pl

from assets.ingest import btc_dominance, defi_tvl, funding_rates, market_caps, ohlcv_1d
from assets.metadata import chart_metadata, md_table
from assets.partitions import as_of_day
from assets.quality import gated_recompute, gated_table, write_changes
from pipeline.resources import AnalyticsSettings, QualitySettings, WarehouseResource
from pipeline.transforms import ENGINE
from pipeline.transforms.altseason import ranked_candles
from pipeline.transforms.chain import btc_funding, btc_symbol, season
from pipeline.transforms.funding_costs import funding_costs as funding_costs_transform
from pipeline.transforms.market_regime import market_features
from pipeline.transforms.market_regime import market_regime as market_regime_transform
from pipeline.transforms.membership import membership
from pipeline.transforms.ranking import PointInTime
from pipeline.transforms.relative_strength import relative_strength as relative_strength_transform
from pipeline.transforms.sector_index import sector_assignments
from pipeline.transforms.sector_index import sector_index as sector_index_transform
from pipeline.transforms.sector_weights import sector_weights as sector_weights_transform
from pipeline.transforms.universe_membership import MEMBER_COLUMNS as UNIVERSE_MEMBER_COLUMNS
from pipeline.transforms.universe_membership import universe_membership as universe_membership_transform
from warehouse import Warehouse

COMMON = dict(
    group_name="analytics",
    key_prefix=["marts"],
    owners=["team:quant"],
    kinds={"polars", "duckdb"},
)


def _latest(frame: pl.DataFrame, per: str | None = None) -> pl.DataFrame:
    """The rows of the newest date (per `per`, e.g. each symbol's newest day): the metadata preview."""
    newest = pl.col("date").max()
    return frame.filter(pl.col("date") == (newest.over(per) if per else newest))


def _newest(frame: pl.DataFrame, column: str) -> float | None:
    """The column's value on the frame's newest day that has one: a key number for the metadata."""
    values = frame.sort("date").get_column(column).drop_nulls()
    return values[-1] if values.len() else None


def _write(
    context: dg.AssetExecutionContext, wh: Warehouse, quality: QualitySettings, table: str, last: dt.date,
    rows: pl.DataFrame, latest: pl.DataFrame, picture: Callable[[], dict[str, object]] | None = None,
) -> dg.MaterializeResult:
    """Make the table hold `rows`: validate the rows it does not hold yet (a night: its new day, and
    whatever a backfill or a new configuration changed) and write them, removing the rows `rows`
    lacks, unless a blocking expectation failed (then the previous rows stay); report counts, range,
    the latest values as a Markdown table, the chart and key numbers of `picture`, and the check."""
    first = rows["date"].min() if rows.height else last
    changes, checks = gated_recompute(context, wh, {table: rows}, (first, last), quality.config)
    (changed, gone), (may_write, check) = changes[table], checks[table]
    if not may_write:
        context.log.error(f"{table}: {changed.height} rows failed the quality gate; nothing written")
        return dg.MaterializeResult(metadata={"table": table, "rows_written": 0}, check_results=[check])
    write_changes(wh, changes)
    if rows.is_empty():
        context.log.warning(f"{table}: no rows up to {last} (inputs hold no data for it yet)")
        return dg.MaterializeResult(metadata={"table": table, "rows_written": 0}, check_results=[check])
    context.log.info(f"{table}: {rows.height} rows for {rows['date'].min()} .. {rows['date'].max()}, "
                     f"{changed.height} of them on the days that changed, written ({gone.height} replaced or removed)")
    return dg.MaterializeResult(
        metadata={
            "table": table,
            "rows": rows.height,
            "rows_written": changed.height,
            "rows_removed": gone.height,
            "first": str(rows["date"].min()),
            "last": str(rows["date"].max()),
            "latest": dg.MetadataValue.md(md_table(latest, max_rows=20)),
            **(picture() if picture else {}),
        },
        check_results=[check],
    )


def _members(wh: Warehouse, analytics: AnalyticsSettings, universe: PointInTime, last: dt.date) -> pl.LazyFrame:
    """Membership, collected once: the index's query reads it in two places (as `compute_marts` does)."""
    candles = wh.read("raw.ohlcv_1d", last, exchange=analytics.spot_exchange_id)
    members = membership(candles, universe.tokens["symbol"], universe.config.membership, universe.symbol_ranks)
    return members.collect(engine=ENGINE).lazy()


def _index_inputs(wh: Warehouse, analytics: AnalyticsSettings, universe: PointInTime, last: dt.date) -> tuple:
    """(members, sector assignments, index config): what the sector index and its weights are built from."""
    cfg = universe.config.sector_index
    return _members(wh, analytics, universe, last), sector_assignments(universe.tokens, cfg), cfg


def _ranked(wh: Warehouse, analytics: AnalyticsSettings, universe: PointInTime, last: dt.date) -> pl.DataFrame | None:
    """Every ranked coin's candles with its rank as known each day (None without market caps)."""
    if universe.symbol_ranks is None:
        return None
    candles = wh.read("raw.ohlcv_1d", last, exchange=analytics.spot_exchange_id)
    return ranked_candles(candles, universe.symbol_ranks, btc_symbol(universe.tokens, universe.config))


Compute = Callable[[Warehouse, AnalyticsSettings, PointInTime, dt.date], tuple[pl.DataFrame, pl.DataFrame]]
# (the mart's rows, warehouse, the run's universe, last day) -> chart and key numbers metadata (assets.metadata.chart_metadata)
Picture = Callable[[pl.DataFrame, Warehouse, PointInTime, dt.date], dict[str, object]]


def mart(table: str, deps: list, description: str, picture: Picture | None = None) -> Callable[[Compute], dg.AssetsDefinition]:
    """Declare the asset that writes `table`: `compute(warehouse, analytics, universe, last day)`
    returns the mart's rows (from the start of history) and the latest values to preview; the asset
    passes them through the `quality` check and writes them. `picture` adds the mart's chart as of
    the last day. Without market caps the universe is the fixed list: a WARNING, and the run is tagged."""

    def declare(compute: Compute) -> dg.AssetsDefinition:
        @dg.asset(
            **COMMON, name=table.split(".")[1], deps=deps, description=description,
            **gated_table(table),
        )
        def _asset(
            context: dg.AssetExecutionContext, analytics: AnalyticsSettings, warehouse: WarehouseResource,
            quality: QualitySettings,
        ) -> dg.MaterializeResult:
            wh = warehouse.get()
            last = as_of_day(wh, analytics.spot_exchange_id)
            universe = analytics.universe_as_of(wh, last)
            if universe.fallback:
                context.log.warning(f"{table}: {universe.fallback}")
                context.instance.add_run_tags(context.run.run_id, {UNIVERSE_TAG: "fixed-list"})
            rows, latest = compute(wh, analytics, universe, last)  # inputs up to that day
            draw = (lambda: picture(rows, wh, universe, last)) if picture else None
            return _write(context, wh, quality, table, last, rows.filter(pl.col("date") <= last), latest, draw)

        return _asset

    return declare


UNIVERSE_TAG = "rotation/universe"  # "fixed-list" on a run whose analytics had no market caps


@mart(
    "marts.universe_membership", [ohlcv_1d, market_caps],
    "The universe as it was: each day's coins with their sector, size bucket, market-cap rank and why "
    "they were in or out of their sector index (top 150 by market cap with a buffer, listing age, "
    "dollar volume), dead coins included.",
)
def universe_membership(wh: Warehouse, analytics: AnalyticsSettings, universe: PointInTime, last: dt.date):
    """One row per candle: only the columns it needs are kept (5,000 tokens make millions of rows)."""
    cfg, tokens = universe.config, universe.tokens
    candles = wh.read("raw.ohlcv_1d", last, exchange=analytics.spot_exchange_id)
    members = membership(candles, tokens["symbol"], cfg.membership, universe.symbol_ranks)
    members = members.select(*UNIVERSE_MEMBER_COLUMNS).collect(engine=ENGINE)
    ranked = None
    if universe.symbol_ranks is not None:  # the ranked coins in no sector: their candles only
        others = universe.symbol_ranks.filter(~pl.col("symbol").is_in(tokens["symbol"].implode()))
        ranked = ranked_candles(candles.filter(pl.col("symbol").is_in(others["symbol"].implode())), others,
                                btc_symbol(tokens, cfg))
    del candles
    rows = universe_membership_transform(
        members, tokens, universe.ranks, [cfg.sector_index.btc, cfg.sector_index.eth], cfg.membership,
        ranked, universe.symbol_ranks)
    latest = _latest(rows).filter(pl.col("member")).sort("sector", "rank", nulls_last=True)
    return rows, latest.select("sector", "coin", "symbol", "bucket", "rank", "market_cap_usd")


@mart(
    "marts.sector_index", [ohlcv_1d, universe_membership],
    "Sector indices (equal, volume-capped and market-cap-capped weighting) with point-in-time membership, plus the BTC, ETH and "
    "alts-ex-BTC/ETH composites; level 100 on each sector's first day.",
)
def sector_index(wh: Warehouse, analytics: AnalyticsSettings, universe: PointInTime, last: dt.date):
    index = sector_index_transform(*_index_inputs(wh, analytics, universe, last)).collect(engine=ENGINE)
    return index, _latest(index).sort("weighting", "sector")


@mart(
    "marts.sector_weights", [ohlcv_1d, universe_membership],
    "The constituents of every sector index and their weight in each day's return (equal and capped "
    "weighting); they sum to 1 per sector, day and weighting.",
)
def sector_weights(wh: Warehouse, analytics: AnalyticsSettings, universe: PointInTime, last: dt.date):
    weights = sector_weights_transform(*_index_inputs(wh, analytics, universe, last)).collect(engine=ENGINE)
    latest = _latest(weights).filter(pl.col("weighting") == universe.config.relative_strength.weighting)
    return weights, latest.sort("sector", "weight", descending=[False, True])


@mart(
    "marts.relative_strength", [sector_index],
    "Each sector index vs BTC: ratio, 7/30/90-day momentum, relative-rotation-graph rs_ratio / "
    "rs_momentum (centred on 100) and quadrant.",
    picture=lambda rs, wh, universe, last: chart_metadata(lambda charts: charts.rotation_graph(rs, last)),
)
def relative_strength(wh: Warehouse, analytics: AnalyticsSettings, universe: PointInTime, last: dt.date):
    cfg = universe.config
    index = wh.read("marts.sector_index", last, weighting=cfg.relative_strength.weighting)
    rs = relative_strength_transform(index.lazy(), cfg.sector_index.btc, cfg.relative_strength).collect(engine=ENGINE)
    latest = _latest(rs).select("sector", "quadrant", "rs_ratio", "rs_momentum", "rs_mom_30d_pct", "rs_vs_btc")
    return rs, latest.sort("rs_ratio", descending=True)


@mart(
    "marts.altseason", [ohlcv_1d, universe_membership],
    "Altcoin-season index: % of the top 50 alts by market cap (no stablecoins or wrapped assets; without "
    "market caps: the fixed list's index members) beating BTC over 90 days (75+: alt season, 25-: BTC season).",
    picture=lambda season, wh, universe, last: chart_metadata(
        lambda charts: charts.altseason_index(season, last), {"altseason_index": _newest(season, "altseason_index")}),
)
def altseason(wh: Warehouse, analytics: AnalyticsSettings, universe: PointInTime, last: dt.date):
    ranked = _ranked(wh, analytics, universe, last)
    members = _members(wh, analytics, universe, last) if ranked is None else None
    season_index = season(members, universe.tokens, universe.config, ranked)
    season_index = season_index.collect(engine=ENGINE)
    return season_index, season_index.tail(7).reverse()


@mart(
    "marts.funding_costs", [funding_rates],
    "Perp funding per symbol and day: sum, annualised rate and 7-day trailing rate (positive: longs pay shorts).",
)
def funding_costs(wh: Warehouse, analytics: AnalyticsSettings, universe: PointInTime, last: dt.date):
    costs = funding_costs_transform(wh.read("raw.funding_rates", last, exchange=analytics.perp_exchange_id)).collect(engine=ENGINE)
    return costs, _latest(costs, per="symbol").sort("funding_apr_7d_pct", descending=True)


def _regime_picture(regime: pl.DataFrame, wh: Warehouse, universe: PointInTime, last: dt.date) -> dict[str, object]:
    cfg = universe.config
    numbers = {c: _newest(regime, c) for c in ("btc_dominance_pct", "altseason_index", "btc_trend_pct")}

    def draw(charts):  # BTC's index is read only when a chart is wanted
        btc = wh.read("marts.sector_index", last, sector=cfg.sector_index.btc, weighting=cfg.relative_strength.weighting)
        return charts.dominance_and_phases(regime, btc, last)

    return chart_metadata(draw, numbers)


@mart(
    "marts.market_regime", [sector_index, relative_strength, altseason, funding_costs, btc_dominance, defi_tvl],
    "Market phase per day (btc_dominance, altcoin_surge, narrative_rotation, peak_consolidation, bear), "
    "risk mode, and the evidence it was read from.",
    picture=_regime_picture,
)
def market_regime(wh: Warehouse, analytics: AnalyticsSettings, universe: PointInTime, last: dt.date):
    cfg = universe.config
    btc = cfg.sector_index.btc
    features = market_features(
        btc_level=wh.read("marts.sector_index", last, sector=btc, weighting=cfg.relative_strength.weighting).lazy(),
        dominance=wh.read("raw.btc_dominance", last).lazy(),
        altseason=wh.read("marts.altseason", last).lazy(),
        relative_strength=wh.read("marts.relative_strength", last).lazy(),
        tvl=wh.read("raw.defi_tvl", last).lazy(),
        btc_funding=btc_funding(
            wh.read("marts.funding_costs", last, exchange=analytics.perp_exchange_id).lazy(), universe.tokens, btc
        ),
        alts_sector=cfg.sector_index.alts,
        cfg=cfg.regime,
    )
    regime = market_regime_transform(features, cfg.regime).collect(engine=ENGINE)
    latest = regime.tail(1).select(pl.all().cast(pl.String))
    if latest.height:  # one row, shown as evidence | value
        latest = latest.transpose(include_header=True, header_name="evidence", column_names=["value"])
    return regime, latest


analytics_assets = [universe_membership, sector_index, sector_weights, relative_strength, altseason, funding_costs, market_regime]
