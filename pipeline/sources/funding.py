"""Perpetual funding-rate history through ccxt, paginated and incremental.

Sign convention (the exchanges'): a positive rate is paid by longs to shorts. Rates are per
funding interval, which differs per symbol (8h default, 4h or 1h for some) and changes over time;
each row is stored with the symbol's interval as the exchange gives it now. Annualising reads the
intervals from the settlements' spacing instead (see transforms/funding_costs.py).
"""

from __future__ import annotations

import datetime as dt
import logging

import ccxt
import ccxt.async_support
import polars as pl

from pipeline.sources.errors import SourceError
from pipeline.sources.exchange import call_with_retries, require_listed
from pipeline.sources.prices import day_ms

log = logging.getLogger(__name__)

PAGE_LIMIT = {"binanceusdm": 1000, "binance": 1000, "bybit": 200, "okx": 100}
DEFAULT_INTERVAL_HOURS = 8
FUNDING_SCHEMA = {
    "funding_time": pl.Datetime("ms", "UTC"),
    "funding_rate": pl.Float64,
    "mark_price": pl.Float64,
    "interval_hours": pl.Int32,
}


async def funding_intervals(exchange: ccxt.Exchange | ccxt.async_support.Exchange) -> dict[str, int]:
    """Funding interval in hours for the symbols whose interval is not the default 8h."""
    if exchange.has.get("fetchFundingIntervals"):
        try:
            got = await call_with_retries(exchange, exchange.fetch_funding_intervals, endpoint="fetch_funding_intervals")
        except SourceError as exc:
            log.warning("funding intervals unavailable (%s); assuming 8h unless the market says otherwise", exc)
        else:
            return {s: int(str(v["interval"]).rstrip("h")) for s, v in got.items() if v.get("interval")}
    return {}


def _market_interval(market: dict) -> int | None:
    minutes = (market.get("info") or {}).get("fundingInterval")  # Bybit: minutes
    return int(minutes) // 60 if minutes else None


async def fetch_funding_history(
    exchange: ccxt.Exchange | ccxt.async_support.Exchange,
    symbol: str,
    since: dt.datetime,
    until: dt.date,
    interval_hours: int | None = None,
) -> pl.DataFrame:
    """Funding events of `symbol` from `since` (inclusive) to the end of day `until`."""
    market = await require_listed(exchange, symbol)
    interval = interval_hours or _market_interval(market) or DEFAULT_INTERVAL_HOURS
    limit = PAGE_LIMIT.get(exchange.id, 100)
    end_ms = day_ms(until + dt.timedelta(days=1)) - 1
    cursor = int(since.timestamp() * 1000)
    events: list[dict] = []
    while cursor <= end_ms:
        # One ms early: ccxt's bybit rounds `since` up, which would skip an event exactly at it.
        page = await call_with_retries(
            exchange, exchange.fetch_funding_rate_history, symbol, since=cursor - 1, limit=limit,
            endpoint=f"fetch_funding_rate_history {symbol}",
        )
        complete = len(page) < limit  # a short page holds everything from the cursor on: no second request
        page = [e for e in page if e.get("timestamp") is not None and cursor <= e["timestamp"] <= end_ms]
        if not page:
            break
        events.extend(page)
        cursor = max(e["timestamp"] for e in page) + 1
        if complete:
            break
    if not events:
        return pl.DataFrame(schema=FUNDING_SCHEMA)
    return (
        pl.DataFrame(
            {
                "funding_time": [e["timestamp"] for e in events],
                # a missing rate stays null for the quality gate to name and quarantine
                "funding_rate": [None if e.get("fundingRate") is None else float(e["fundingRate"]) for e in events],
                "mark_price": [_mark_price(e) for e in events],
                "interval_hours": [interval] * len(events),
            }
        )
        .with_columns(pl.from_epoch("funding_time", time_unit="ms").dt.replace_time_zone("UTC"))
        .select([pl.col(c).cast(t) for c, t in FUNDING_SCHEMA.items()])
        .sort("funding_time", maintain_order=True)
    )


def _mark_price(event: dict) -> float | None:
    value = (event.get("info") or {}).get("markPrice")
    return float(value) if value not in (None, "") else None
