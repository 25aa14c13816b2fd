"""CoinMarketCap's listings: the ranking as it stood on a past day (historical, paid plans), or now.

The historical listings are the point-in-time universe that today's top coins cannot give: dead
and collapsed coins (LUNA, FTT) are in them as they stood. CMC states errors in the body
(`status.error_code`): 1001-1006 (key missing, invalid, plan too low) are `NotAvailable`, 1008-1011
(rate limits) are retried like an HTTP 429.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import polars as pl

from pipeline.sources.errors import NotAvailable, PayloadError, SourceError
from pipeline.sources.http import JsonClient
from pipeline.sources.market_caps import float_or_none, market_cap_frame
from pipeline.sources.retry import Retryable

LIVE_URL = "https://pro-api.coinmarketcap.com"
KEY_HEADER = "X-CMC_PRO_API_KEY"
HISTORICAL = "/v1/cryptocurrency/listings/historical"
LATEST = "/v1/cryptocurrency/listings/latest"
PLAN_ERRORS = range(1001, 1007)  # API key missing / invalid / expired / plan does not cover the endpoint
RATE_ERRORS = range(1008, 1012)  # minute, daily, monthly, IP rate limits


def vendor_error(endpoint: str, status: int, body: Any) -> Exception | None:
    """CMC's `status.error_code` as the project's errors; None when the body reports no error."""
    head = body.get("status") if isinstance(body, dict) else None
    code = head.get("error_code") if isinstance(head, dict) else None
    try:
        code = int(code) if code is not None else 0
    except (TypeError, ValueError):
        return None
    if code == 0:
        return None
    message = f"CoinMarketCap error {code}: {head.get('error_message')}"
    if code in PLAN_ERRORS:
        return NotAvailable(endpoint, message)
    if code in RATE_ERRORS:
        return Retryable(message)
    if status >= 500:
        return Retryable(message)
    return SourceError(endpoint, message)


class CoinMarketCap:
    def __init__(self, base_url: str | None = None, api_key: str | None = None, timeout_s: float = 30.0,
                 backoff_s: float = 2.0):
        headers = {KEY_HEADER: api_key} if api_key else {}
        self.http = JsonClient(base_url or LIVE_URL, name="coinmarketcap", headers=headers, timeout_s=timeout_s,
                               backoff_s=backoff_s, vendor_error=vendor_error)

    def listings_historical(self, date: dt.date, limit: int = 200) -> pl.DataFrame:
        """The top `limit` coins as CMC ranked them at the end of `date` (UTC), dead coins included;
        rows dated `date`. An empty frame when CMC has no snapshot for that day."""
        payload = self.http.get_json(HISTORICAL, {"date": date.isoformat(), "start": 1, "limit": limit, "convert": "USD"})
        return _listing(payload, HISTORICAL, date)

    def listings_latest(self, limit: int = 200) -> pl.DataFrame:
        """Today's top `limit` coins, dated by the UTC day of the newest `last_updated` among them."""
        payload = self.http.get_json(LATEST, {"start": 1, "limit": limit, "convert": "USD"})
        return _listing(payload, LATEST, None)


def _listing(payload: Any, path: str, date: dt.date | None) -> pl.DataFrame:
    endpoint = f"coinmarketcap GET {path}"
    items = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(items, list):
        raise PayloadError(endpoint, "missing data: expected a list of listings")
    try:
        if date is None and items:
            date = max(_day(item["last_updated"]) for item in items)
        rows = []
        for item in items:
            usd = item["quote"]["USD"]
            rows.append({
                "date": date, "coin": item["slug"], "symbol": item["symbol"], "name": item["name"],
                "rank": item["cmc_rank"], "market_cap_usd": float_or_none(usd.get("market_cap")),
                "price_usd": float_or_none(usd.get("price")), "volume_24h_usd": float_or_none(usd.get("volume_24h")),
                "circulating_supply": float_or_none(item.get("circulating_supply")),
            })
    except (KeyError, TypeError, ValueError) as exc:
        raise PayloadError(endpoint, f"missing or bad field {exc}") from None
    return market_cap_frame(rows)


def _day(stamp: str) -> dt.date:
    """The UTC day of an ISO time such as '2025-08-01T23:59:59.000Z'."""
    return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone(dt.UTC).date()
