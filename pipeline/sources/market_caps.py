"""Market caps as the vendors rank them, in one frame shape for both (the columns of
raw.market_caps minus source and ingested_at), and the plain steps of their nightly ingest.

Coins are keyed by the vendor's own id (CoinMarketCap's slug, CoinGecko's id), never by ticker:
tickers are not unique (two BNX on CMC's 2023-03-01 listing; LUNA is two different coins).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol

import polars as pl

from pipeline.sources.errors import NotAvailable, SourceError

if TYPE_CHECKING:  # the clients import this module's frame helpers
    from pipeline.sources.coingecko import CoinGecko
    from pipeline.sources.coinmarketcap import CoinMarketCap

MARKET_CAP_SCHEMA = {
    "date": pl.Date,
    "coin": pl.String,
    "symbol": pl.String,
    "name": pl.String,
    "rank": pl.Int32,
    "market_cap_usd": pl.Float64,
    "price_usd": pl.Float64,
    "volume_24h_usd": pl.Float64,
    "circulating_supply": pl.Float64,
}
CATEGORY_SCHEMA = {"coin": pl.String, "category": pl.String, "first_seen": pl.Date}


def market_cap_frame(rows: list[dict]) -> pl.DataFrame:
    """Rows (dicts with MARKET_CAP_SCHEMA's keys) as a frame; symbol and name stripped, the symbol
    upper case (CoinGecko sends 'btc', CMC 'BTC')."""
    frame = pl.DataFrame(rows, schema=MARKET_CAP_SCHEMA, orient="row") if rows else pl.DataFrame(schema=MARKET_CAP_SCHEMA)
    return frame.with_columns(pl.col("symbol").str.strip_chars().str.to_uppercase(), pl.col("name").str.strip_chars())


def float_or_none(value: object) -> float | None:
    return None if value is None else float(value)


def month_firsts(first: dt.date, last: dt.date) -> list[dt.date]:
    """The first day of every month from `first`'s to `last`'s (what a monthly snapshot is taken on)."""
    day, out = first.replace(day=1), []
    while day <= last:
        out.append(day)
        day = (day + dt.timedelta(days=32)).replace(day=1)
    return out


def snapshot_days(first: dt.date, last: dt.date, as_of: dt.date, held: Iterable[dt.date]) -> list[dt.date]:
    """The month-first days of `first`..`last` whose snapshot is known by the sources' `as_of` day and
    not held yet. A snapshot describes the end of its day, so the one dated D counts as known from
    D + 1 on (the replay's clock hides the one dated on its as-of day). A historical snapshot does not
    change once taken, so a held one is never asked for again."""
    held = set(held)
    return [d for d in month_firsts(first, last) if first <= d < as_of and d not in held]


def coins_to_classify(snapshot: pl.DataFrame, recorded: Iterable[str], cap: int,
                      skip_coins: set[str] | frozenset[str] = frozenset()) -> tuple[list[str], int]:
    """(the coins whose categories to ask for tonight, how many are left for later nights): the
    snapshot's coins, best rank first, that have no category recorded and that `skip_coins` (the
    coins a taxonomy already places) does not name, at most `cap` of them."""
    known = set(recorded) | set(skip_coins)
    pending = [c for c in snapshot.sort("rank", nulls_last=True, maintain_order=True)["coin"].to_list() if c not in known]
    pending = list(dict.fromkeys(pending))
    return pending[:cap], max(0, len(pending) - cap)


def category_frame(categories: dict[str, list[str]], day: dt.date) -> pl.DataFrame:
    """coin, category, first_seen = `day`: one row per coin and category."""
    rows = [(coin, c, day) for coin, names in categories.items() for c in dict.fromkeys(names)]
    return pl.DataFrame(rows, schema=CATEGORY_SCHEMA, orient="row")


class Log(Protocol):
    def info(self, msg: str) -> None: ...
    def warning(self, msg: str) -> None: ...


def cmc_snapshots(cmc: CoinMarketCap, days: list[dt.date], limit: int, log: Log) -> pl.DataFrame:
    """CoinMarketCap's listing of each of `days` (source 'coinmarketcap'). A day CMC has nothing for is
    a warning and skipped; a failure (no plan for the endpoint, CMC down past the retries, a malformed
    answer) is a warning naming it and ends the fetch with what came before: a night never fails for
    want of market caps."""
    frames = []
    for i, day in enumerate(days, 1):
        try:
            frame = cmc.listings_historical(day, limit=limit)
        except SourceError as exc:
            log.warning(f"market caps: no CoinMarketCap snapshot of {day} ({exc}); {len(days) - i + 1} day(s) not fetched")
            break
        if frame.is_empty():
            log.warning(f"market caps: CoinMarketCap has no snapshot of {day}")
            continue
        log.info(f"[{i}/{len(days)}] CoinMarketCap {day}: {frame.height} coins")
        frames.append(frame)
    return _with_source(frames, "coinmarketcap")


def gecko_snapshot(gecko: CoinGecko, top_n: int, log: Log) -> pl.DataFrame:
    """CoinGecko's top `top_n` now (source 'coingecko'); empty, with a warning naming why, when it
    cannot be had."""
    try:
        frame = gecko.markets(top_n)
    except SourceError as exc:
        log.warning(f"market caps: no CoinGecko snapshot ({exc})")
        return _with_source([], "coingecko")
    log.info(f"CoinGecko /coins/markets: {frame.height} coins as of {frame['date'].max()}")
    return _with_source([frame], "coingecko")


def gecko_categories(gecko: CoinGecko, coins: list[str], log: Log) -> dict[str, list[str]]:
    """Each coin's CoinGecko categories; a coin CoinGecko does not know is skipped, and a failure
    ends the asking (a warning) with what came before."""
    found: dict[str, list[str]] = {}
    for coin in coins:
        try:
            found[coin] = gecko.coin_categories(coin)
        except NotAvailable as exc:
            log.warning(f"categories of {coin}: not available ({exc})")
        except SourceError as exc:
            log.warning(f"categories: stopped after {len(found)} of {len(coins)} coin(s) ({exc})")
            break
    return found


def _with_source(frames: list[pl.DataFrame], source: str) -> pl.DataFrame:
    frame = pl.concat(frames) if frames else pl.DataFrame(schema=MARKET_CAP_SCHEMA)
    return frame.select(pl.lit(source).alias("source"), *MARKET_CAP_SCHEMA)
