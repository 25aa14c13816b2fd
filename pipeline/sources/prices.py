"""Daily spot candles through ccxt, paginated and incremental (from a given day on)."""

from __future__ import annotations

import datetime as dt
import logging

import ccxt
import ccxt.async_support
import polars as pl

from pipeline.sources.errors import PayloadError
from pipeline.sources.exchange import call_with_retries, last_payload, require_listed

log = logging.getLogger(__name__)

DAY_MS = 86_400_000
# The most candles one request may ask for; ccxt's default is often smaller than the exchange allows.
PAGE_LIMIT = {"binance": 1000, "binanceus": 1000, "bybit": 1000, "okx": 300, "kraken": 720}
OHLCV_SCHEMA = {
    "date": pl.Date,
    "open": pl.Float64,
    "high": pl.Float64,
    "low": pl.Float64,
    "close": pl.Float64,
    "volume": pl.Float64,
}


def _rows_sent(payload: object) -> int | None:
    """How many candle rows the exchange sent: a bare list (Binance) or `result.list` (Bybit);
    None for a shape not known here."""
    if isinstance(payload, dict):
        payload = (payload.get("result") or {}).get("list")
    return len(payload) if isinstance(payload, list) else None


def day_ms(day: dt.date) -> int:
    return int(dt.datetime.combine(day, dt.time(), dt.UTC).timestamp() * 1000)


async def fetch_daily_candles(
    exchange: ccxt.Exchange | ccxt.async_support.Exchange, symbol: str, since: dt.date, until: dt.date
) -> pl.DataFrame:
    """Closed daily candles of `symbol` for days `since`..`until` (inclusive).

    The still-open candle of the current UTC day is dropped: its values change until midnight.
    Raises `SymbolNotListed` when the exchange does not list the symbol, `PayloadError` when a
    candle lacks its time; other missing values come back as nulls for the quality gate.
    """
    await require_listed(exchange, symbol)
    limit = PAGE_LIMIT.get(exchange.id, 500)
    last_closed_ms = min(day_ms(until), exchange.milliseconds() - DAY_MS)
    cursor = day_ms(since)
    rows: list[list] = []
    while cursor <= last_closed_ms:
        page = await call_with_retries(
            exchange, exchange.fetch_ohlcv, symbol, "1d", since=cursor, limit=limit,
            endpoint=f"fetch_ohlcv {symbol}",
        )
        sent = _rows_sent(last_payload())
        if sent is not None and sent != len(page):  # ccxt drops rows it cannot timestamp, silently
            raise PayloadError(f"{exchange.id} fetch_ohlcv {symbol}",
                               f"{sent} rows in the payload but {len(page)} candles parsed (a row without its time?)")
        short = len(page) < limit  # the exchange has nothing after it (a delisted pair's last page)
        page = [c for c in page if cursor <= c[0] <= last_closed_ms]
        if not page:
            break
        rows.extend(page)
        cursor = page[-1][0] + DAY_MS
        if short:
            break
    if any(c[0] is None for c in rows):
        raise PayloadError(f"{exchange.id} fetch_ohlcv {symbol}", "a candle without its time")
    # A missing value stays null (and a repeated day stays repeated): the quality gate names and
    # quarantines such candles, instead of this client dropping or guessing them.
    frame = pl.DataFrame(
        [[*c[:6], *[None] * (6 - len(c))] for c in rows],
        schema=["ts", "open", "high", "low", "close", "volume"],
        orient="row",
    )
    if frame.is_empty():
        return pl.DataFrame(schema=OHLCV_SCHEMA)
    return (
        frame.with_columns(pl.from_epoch("ts", time_unit="ms").dt.date().alias("date"))
        .select([pl.col(c).cast(t) for c, t in OHLCV_SCHEMA.items()])
    )
