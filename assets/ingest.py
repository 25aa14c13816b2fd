"""Ingestion assets: the raw tables, one monthly-partitioned asset per source.

Each asset reads what the warehouse already holds for its partition window, fetches each series
from its first hole in the window (a row the gate rejected) or else after its newest row
(`pipeline.sources.resume`), keeps only the rows the table lacks, passes them through the quality
gate (its blocking `quality` check) and writes them in one transaction at the end, so a failure
writes nothing.
"""

import datetime as dt
import functools
from collections.abc import Awaitable, Callable

import ccxt
import ccxt.async_support
import dagster as dg
import polars as pl

from assets.metadata import md_table
from assets.partitions import RAW_ASSET, month_window
from assets.quality import gated_table, gated_write, held_rows
from pipeline.ranked_universe import candle_symbols
from pipeline.taxonomy import load_taxonomy
from pipeline.resources import MarketSources, QualitySettings, WarehouseResource
from pipeline.settings import Settings
from pipeline.sources.concurrent import fetch_symbols, once
from pipeline.sources.errors import NotAvailable, PayloadError, SourceError, SymbolNotListed
from pipeline.sources.funding import fetch_funding_history, funding_intervals
from pipeline.sources.market_caps import (
    category_frame,
    cmc_snapshots,
    coins_to_classify,
    gecko_categories,
    gecko_snapshot,
    snapshot_days,
)
from pipeline.sources.prices import fetch_daily_candles
from pipeline.sources.resume import DAY, resume_after
from warehouse import Warehouse
from warehouse.db import TABLES, TIME_COLUMN

_settings = Settings.from_env()
COMMON = dict(
    **RAW_ASSET,
    group_name="ingest",
    key_prefix=["raw"],
    owners=["team:data"],
    # On top of each request's own retries: a source down for minutes gets the asset re-run later.
    retry_policy=dg.RetryPolicy(
        max_retries=_settings.retries, delay=_settings.retry_delay_s,
        backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS,
    ),
)


def names_the_source(asset: Callable[..., dg.MaterializeResult]) -> Callable[..., dg.MaterializeResult]:
    """A source error fails the asset with a message naming the asset, the source and the endpoint.
    A malformed payload comes back the same on a re-run, so it fails at once; anything else (the
    source down, throttling past the request retries) is left to the asset's RetryPolicy."""

    @functools.wraps(asset)
    def run(*args, **kwargs) -> dg.MaterializeResult:
        try:
            return asset(*args, **kwargs)
        except SourceError as exc:
            raise dg.Failure(
                f"{asset.__name__}: source {exc.endpoint} failed: {exc}",
                metadata={"source endpoint": exc.endpoint, "error": type(exc).__name__},
                allow_retries=not isinstance(exc, PayloadError),
            ) from exc

    return run


def _window(context: dg.AssetExecutionContext, sources: MarketSources) -> tuple[dt.date, dt.date]:
    """First and last day of the run's months, capped at the sources' as-of day."""
    first, last = month_window(context.partition_key_range)  # a range in backfills, this month nightly
    return first, min(last, sources.as_of())


def _held(wh: Warehouse, quality: QualitySettings, table: str, window: tuple[dt.date, dt.date]) -> pl.DataFrame | None:
    """The rows the gate validates with (`held_rows`), read once for the fetch's resume points and the
    gate; None before the warehouse exists (the gate's own read then creates it)."""
    return held_rows(wh, table, window, quality.config) if wh.path.exists() else None


def _lacking(rows: pl.DataFrame, held: pl.DataFrame | None, table: str) -> pl.DataFrame:
    """The fetched rows whose key the table does not hold: a fetch resuming at a hole gets the days
    after it again, and those stay as they are."""
    if rows.is_empty() or held is None or held.is_empty():
        return rows
    key = list(TABLES[table])
    return rows.join(held.select(key).cast({c: rows.schema[c] for c in key}), on=key, how="anti", maintain_order="left")


def _stamp(frame: pl.DataFrame, source: str, **keys: str) -> pl.DataFrame:
    now = dt.datetime.now(dt.UTC)
    return frame.with_columns(
        *[pl.lit(v).alias(k) for k, v in keys.items()],
        pl.lit(source).alias("source"),
        pl.lit(now).cast(pl.Datetime("us", "UTC")).alias("ingested_at"),
    )


def _write(
    context: dg.AssetExecutionContext, wh: Warehouse, quality: QualitySettings, table: str,
    rows: pl.DataFrame, window: tuple[dt.date, dt.date], time_col: str, held: pl.DataFrame | None,
    also: dict[str, pl.DataFrame] | None = None, **extra,
) -> dg.MaterializeResult:
    """Gate and write the fetched rows (and `also`, in the same transaction); metadata of what was
    written, and the `quality` check."""
    result, check = gated_write(context, wh, table, rows, window, quality.config, held, also)
    written = result.write
    meta: dict[str, object] = {
        "table": table, "rows_written": written.height, "rows_quarantined": result.quarantine.height, **extra,
    }
    if written.height:
        meta["first"] = str(written[time_col].min())
        meta["last"] = str(written[time_col].max())
        meta["preview"] = dg.MetadataValue.md(md_table(written.tail(5)))
    return dg.MaterializeResult(metadata=meta, check_results=[check])


# fetch(symbol, held time to resume after or None, window's first day, last day) -> rows, None = up to date
Fetch = Callable[[str, object, dt.date, dt.date], Awaitable[pl.DataFrame | None]]


def _ingest_symbols(
    context: dg.AssetExecutionContext,
    sources: MarketSources,
    quality: QualitySettings,
    warehouse: WarehouseResource,
    table: str,
    exchange: ccxt.Exchange | ccxt.async_support.Exchange,
    symbols: list[str],
    fetch: Fetch,
    step: pl.Expr,
    optional: set[str] = frozenset(),
) -> dg.MaterializeResult:
    """Fetch every symbol of the run's window from its first hole (held rows more than 1.5 `step`s
    apart) or else after the newest row the table holds of it, concurrently through `exchange`,
    which is closed after, with a progress log as each one finishes; then write the rows the table
    lacks, all in one transaction.

    Symbols the exchange does not list are logged and skipped (a WARNING, or one INFO line for all of
    them that are `optional`); any other error fails the asset before anything is written.
    """
    start, last = _window(context, sources)
    wh = warehouse.get()
    held = _held(wh, quality, table, (start, last))  # every exchange's: the gate validates with them all
    mine = pl.DataFrame() if held is None else held.filter(pl.col("exchange") == exchange.id)
    after = resume_after(mine, ["symbol"], TIME_COLUMN[table], start, step)

    def progress(done: int, symbol: str, result: pl.DataFrame | SymbolNotListed | None) -> None:
        if isinstance(result, SymbolNotListed):
            if symbol not in optional:
                context.log.warning(f"[{done}/{len(symbols)}] skipped: {result}")
        elif result is None:
            context.log.info(f"[{done}/{len(symbols)}] {symbol}: up to date")
        else:
            context.log.info(f"[{done}/{len(symbols)}] {symbol}: {result.height} rows fetched")

    def resumed(symbol: str) -> Awaitable[pl.DataFrame | None]:
        return fetch(symbol, after.get((symbol,)), start, last)

    results = fetch_symbols(exchange, symbols, resumed, progress, sources.symbols_in_flight)
    skipped = [s for s, r in zip(symbols, results) if isinstance(r, SymbolNotListed)]
    unlisted = [s for s in skipped if s in optional]
    if unlisted:
        context.log.info(f"{len(unlisted)} pair(s) of the taxonomy's coins not listed by {exchange.id}: "
                         f"{', '.join(unlisted[:20])}{' ...' if len(unlisted) > 20 else ''}")
    skipped = [s for s in skipped if s not in optional]
    # listed but not trading (ccxt's `active` False: a delisted pair, a halt): its history is fetched all the same
    inactive = [s for s in symbols if ((exchange.markets or {}).get(s) or {}).get("active") is False]
    if inactive:
        context.log.info(f"{len(inactive)} inactive market(s), history fetched all the same: {', '.join(inactive)}")
    frames = [
        _stamp(r, sources.source(exchange.id), exchange=exchange.id, symbol=s)
        for s, r in zip(symbols, results) if isinstance(r, pl.DataFrame)
    ]
    rows = _lacking(pl.concat(frames) if frames else pl.DataFrame(), mine, table)
    del results, frames, mine  # the rows live once, in `rows`, through the gate and the write (GBs at 5,000 symbols)
    return _write(
        context, wh, quality, table, rows, (start, last), TIME_COLUMN[table], held, exchange=exchange.id,
        skipped_symbols=", ".join(skipped) or "none", inactive_symbols=", ".join(inactive) or "none",
        dataset=sources.dataset_label or "live",
    )


@dg.asset(
    **COMMON,
    **gated_table("raw.ohlcv_1d"),
    kinds={"ccxt", "duckdb"},
    description="Daily closed spot candles (OHLCV) of every universe token and every coin of the taxonomy (dead "
    "ones included, while the exchange served them), from the configured ccxt exchange.",
)
@names_the_source
def ohlcv_1d(
    context: dg.AssetExecutionContext, sources: MarketSources, warehouse: WarehouseResource, quality: QualitySettings
) -> dg.MaterializeResult:
    exchange = sources.spot_exchange()

    async def fetch(symbol: str, after: dt.date | None, start: dt.date, last: dt.date) -> pl.DataFrame | None:
        since = after + dt.timedelta(days=1) if after else start
        return None if since > last else await fetch_daily_candles(exchange, symbol, since, last)

    # the fixed list's pairs, and every pair of the taxonomy's coins (the universe as it was)
    symbols, optional = candle_symbols(warehouse.get(), _window(context, sources)[1], sources.universe.spot_symbols,
                                       sources.settings())
    return _ingest_symbols(context, sources, quality, warehouse, "raw.ohlcv_1d", exchange, symbols,
                           fetch, DAY, optional)


@dg.asset(
    **COMMON,
    **gated_table("raw.funding_rates"),
    kinds={"ccxt", "duckdb"},
    description="Perp funding-rate history of the universe's perps (positive rate: longs pay shorts).",
)
@names_the_source
def funding_rates(
    context: dg.AssetExecutionContext, sources: MarketSources, warehouse: WarehouseResource, quality: QualitySettings
) -> dg.MaterializeResult:
    exchange = sources.perp_exchange_client()
    intervals = once(lambda: funding_intervals(exchange))  # asked once, by the first symbol that needs them

    async def fetch(symbol: str, after: dt.datetime | None, start: dt.date, last: dt.date) -> pl.DataFrame | None:
        since = after + dt.timedelta(milliseconds=1) if after else dt.datetime.combine(start, dt.time(), dt.UTC)
        if since.date() > last:
            return None
        return await fetch_funding_history(exchange, symbol, since, last, (await intervals()).get(symbol))

    # a perp settles every `interval_hours` (as the exchange gives it now; 8h unless it says otherwise)
    return _ingest_symbols(context, sources, quality, warehouse, "raw.funding_rates", exchange, sources.universe.perp_symbols,
                           fetch, pl.duration(hours="interval_hours"))


@dg.asset(
    **COMMON,
    **gated_table("raw.defi_tvl"),
    kinds={"defillama", "duckdb"},
    description="DeFi TVL from DefiLlama: all chains (total), the universe's chains, and its DeFi protocols.",
)
@names_the_source
def defi_tvl(
    context: dg.AssetExecutionContext, sources: MarketSources, warehouse: WarehouseResource, quality: QualitySettings
) -> dg.MaterializeResult:
    start, last = _window(context, sources)
    llama = sources.defillama()
    universe = sources.universe
    wh = warehouse.get()
    held = _held(wh, quality, "raw.defi_tvl", (start, last))
    after = resume_after(pl.DataFrame() if held is None else held, ["scope", "name"], "date", start)
    series = [("total", "all", llama.total_tvl)]
    series += [("chain", c.lower(), lambda c=c: llama.chain_tvl(c)) for c in universe.tvl_chains]
    series += [("protocol", s, lambda s=s: llama.protocol_tvl(s)) for s in universe.protocol_slugs]
    frames, unavailable = [], []
    for i, (scope, name, fetch) in enumerate(series, 1):
        try:
            points = fetch()
        except NotAvailable as exc:
            context.log.warning(f"[{i}/{len(series)}] {scope} {name}: not available ({exc})")
            unavailable.append(f"{scope}:{name}")
            continue
        since = after[scope, name] + dt.timedelta(days=1) if (scope, name) in after else start
        points = points.filter(pl.col("date").is_between(since, last))
        context.log.info(f"[{i}/{len(series)}] {scope} {name}: {points.height} days from {since}")
        frames.append(_stamp(points, sources.source("defillama"), scope=scope, name=name))
    rows = _lacking(pl.concat(frames) if frames else pl.DataFrame(), held, "raw.defi_tvl")
    return _write(
        context, wh, quality, "raw.defi_tvl", rows, (start, last), "date", held,
        unavailable=", ".join(unavailable) or "none", dataset=sources.dataset_label or "live",
    )


@dg.asset(
    **COMMON,
    **gated_table("raw.btc_dominance"),
    kinds={"coingecko", "duckdb"},
    description="BTC dominance (% of total crypto market cap) from CoinGecko: history where the plan "
    "allows it, else the daily /global snapshot. `source` says which.",
)
@names_the_source
def btc_dominance(
    context: dg.AssetExecutionContext, sources: MarketSources, warehouse: WarehouseResource, quality: QualitySettings
) -> dg.MaterializeResult:
    start, last = _window(context, sources)
    gecko = sources.coingecko()
    wh = warehouse.get()
    held = _held(wh, quality, "raw.btc_dominance", (start, last))
    after = resume_after(pl.DataFrame() if held is None else held, [], "date", start).get(())
    first_missing = after + dt.timedelta(days=1) if after else start
    if first_missing > last:
        context.log.info("up to date")
        return _write(context, wh, quality, "raw.btc_dominance", pl.DataFrame(), (start, last), "date", held)
    days = (sources.as_of() - first_missing).days + 2  # counted back from the source's today
    try:
        points = gecko.dominance_history(days)
        source = "coingecko:market_cap_chart"
    except NotAvailable as exc:
        context.log.warning(f"dominance history needs a paid CoinGecko plan ({exc}); using today's /global snapshot")
        points = gecko.global_snapshot()
        source = "coingecko:global"
    points = points.filter(pl.col("date").is_between(first_missing, last))
    rows = _lacking(_stamp(points, sources.source(source)), held, "raw.btc_dominance")
    return _write(context, wh, quality, "raw.btc_dominance", rows, (start, last), "date", held,
                  source=sources.source(source))


@dg.asset(
    **COMMON,
    **gated_table("raw.market_caps"),
    kinds={"coinmarketcap", "coingecko", "duckdb"},
    description="Market caps and ranks as the vendors stood on a day: CoinMarketCap's historical listing of "
    "each month's first day (dead coins included), CoinGecko's top N on the newest night, and the "
    "categories of coins that snapshot shows for the first time (raw.coin_categories).",
)
@names_the_source
def market_caps(
    context: dg.AssetExecutionContext, sources: MarketSources, warehouse: WarehouseResource, quality: QualitySettings
) -> dg.MaterializeResult:
    start, last = _window(context, sources)
    settings, today = sources.settings(), sources.as_of()
    top_n = settings.market_cap_top_n
    newest = last == today  # the partition holding the newest day: tonight's CoinGecko snapshot too
    # live, CoinGecko's snapshot is dated today (UTC), the day after the sources' as-of day
    window = (start, last + dt.timedelta(days=1) if newest else last)
    wh = warehouse.get()
    held = _held(wh, quality, "raw.market_caps", window)
    frames, categories = [], category_frame({}, today)
    cmc = sources.coinmarketcap()
    if cmc is None:
        context.log.info("market caps: CoinMarketCap skipped: no COINMARKETCAP_API_KEY (its historical listings need a paid plan)")
    else:
        done = [] if held is None else held.filter(pl.col("source") == "coinmarketcap")["date"].unique().to_list()
        frames.append(cmc_snapshots(cmc, snapshot_days(start, last, today, done), top_n, context.log))
    if newest:
        gecko = sources.coingecko()
        snapshot = gecko_snapshot(gecko, top_n, context.log)
        frames.append(snapshot)
        if snapshot.height:
            with wh.connect() as con:
                recorded = con.sql("select distinct coin from raw.coin_categories where source = 'coingecko'").pl()
            # the taxonomy (keyed by CoinGecko id) places its coins: only the others' categories are asked
            known = frozenset(load_taxonomy(settings.taxonomy_path).coins_frame()["coin"])
            coins, left = coins_to_classify(snapshot, recorded["coin"], settings.category_calls_per_night, known)
            found = gecko_categories(gecko, coins, context.log)
            categories = category_frame(found, snapshot["date"].max())
            context.log.info(f"categories: {len(coins)} coin(s) asked tonight, {sum(map(bool, found.values()))} with "
                             f"categories; {left} left for later nights (a coin without any is asked again)")
    rows = _lacking(_stamp_rows(pl.concat(frames) if frames else pl.DataFrame()), held, "raw.market_caps")
    return _write(context, wh, quality, "raw.market_caps", rows, window, "date", held,
                  also={"raw.coin_categories": _stamp(categories, "coingecko")},
                  categories_written=categories.height, dataset=sources.dataset_label or "live")


def _stamp_rows(rows: pl.DataFrame) -> pl.DataFrame:
    """Rows that carry their own `source` (the vendor: part of the key), with `ingested_at`."""
    if rows.is_empty():
        return rows
    return rows.with_columns(pl.lit(dt.datetime.now(dt.UTC)).cast(pl.Datetime("us", "UTC")).alias("ingested_at"))


ingest_assets = [ohlcv_1d, funding_rates, defi_tvl, btc_dominance, market_caps]
