"""Build ccxt exchange clients, pointed at the live API or at a local base URL (the replay).

The client code is identical in both cases: only the scheme and host of every API URL change,
the paths stay, so the replay server answers exactly the requests the live API would get.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Callable
from typing import Any, TypeVar

import ccxt

from pipeline.sources.errors import PayloadError, SourceError, SymbolNotListed, retry_delay

log = logging.getLogger(__name__)
T = TypeVar("T")

_HOST = re.compile(r"^https?://[^/]+")


class ExchangeConfigError(ValueError):
    """Unknown exchange id or unusable configuration."""


def _rewrite(urls: Any, base_url: str) -> Any:
    if isinstance(urls, str):
        return _HOST.sub(base_url.rstrip("/"), urls)
    if isinstance(urls, dict):
        return {k: _rewrite(v, base_url) for k, v in urls.items()}
    return urls


def make_exchange(
    exchange_id: str,
    market_type: str,
    base_url: str | None = None,
    timeout_ms: int = 30_000,
) -> ccxt.Exchange:
    """A ccxt client for `exchange_id` limited to `market_type` (`spot` or `linear`).

    Limiting the market types makes `load_markets` call one exchangeInfo-style endpoint instead
    of every family. `base_url` (e.g. the replay's `http://127.0.0.1:PORT`) replaces the host of
    every API URL; Bybit-style templates (`https://api.{hostname}`) lose their host as a whole.
    API keys, if any, come only from `<EXCHANGE_ID>_API_KEY` / `<EXCHANGE_ID>_API_SECRET`.
    """
    if exchange_id not in ccxt.exchanges:
        raise ExchangeConfigError(f"unknown ccxt exchange id {exchange_id!r}")
    config: dict[str, Any] = {
        "enableRateLimit": True,
        "timeout": timeout_ms,
        "options": {"fetchMarkets": {"types": [market_type]}, "defaultType": market_type},
    }
    prefix = exchange_id.upper()
    if os.environ.get(f"{prefix}_API_KEY"):
        config["apiKey"] = os.environ[f"{prefix}_API_KEY"]
        config["secret"] = os.environ.get(f"{prefix}_API_SECRET", "")
    exchange: ccxt.Exchange = getattr(ccxt, exchange_id)(config)
    exchange.parse_json = _strict_json_parser(exchange.id)
    exchange.enableLastJsonResponse = True  # what was sent, to count it against what ccxt parsed
    if base_url:
        exchange.urls["api"] = _rewrite(exchange.urls["api"], base_url)
    return exchange


def _strict_json_parser(exchange_id: str) -> Callable[[str], Any]:
    """ccxt's JSON parsing, minus its silence: ccxt hands an unparsable body (a truncated page)
    back as a string, which `fetch_ohlcv` then reads as zero candles. This raises BadResponse, which
    `call_with_retries` retries like any broken answer."""

    def parse_json(body: str) -> Any:
        if not ccxt.Exchange.is_json_encoded_object(body):
            return None  # not JSON at all (an HTML error page): ccxt's error handling reads the text
        try:
            return json.loads(body)
        except ValueError as exc:
            raise ccxt.BadResponse(f"{exchange_id}: unparsable JSON body ({exc})") from None

    return parse_json


def call_with_retries(
    exchange: ccxt.Exchange,
    fn: Callable[..., T],
    *args: Any,
    endpoint: str,
    max_retries: int = 4,
    backoff_s: float = 1.0,
    **kwargs: Any,
) -> T:
    """Call a ccxt method, retrying network errors, 429s and 5xx with backoff (Retry-After honoured).

    ccxt's own rate limiter spaces the requests; this handles the answers that still come back
    throttled or broken. What remains raises `SourceError` naming the exchange and endpoint.
    """
    name = f"{exchange.id} {endpoint}"
    for attempt in range(1, max_retries + 2):
        try:
            return fn(*args, **kwargs)
        except ccxt.BadSymbol as exc:
            raise SymbolNotListed(f"{name}: {exc}") from None
        except (ccxt.NetworkError, ccxt.BadResponse, ccxt.NullResponse) as exc:
            problem = f"{type(exc).__name__}: {str(exc)[:200]}"
        except ccxt.BaseError as exc:
            raise SourceError(name, f"{type(exc).__name__}: {str(exc)[:300]}") from None
        except (TypeError, KeyError, ValueError, IndexError) as exc:  # ccxt parsing a wrong-shaped payload
            raise PayloadError(name, f"malformed payload ({type(exc).__name__}: {exc})") from None
        if attempt > max_retries:
            raise SourceError(name, f"{problem} after {attempt} attempts")
        headers = exchange.last_response_headers or {}
        retry_after = headers.get("Retry-After") or headers.get("retry-after")
        delay = retry_delay(attempt, backoff_s, retry_after)
        log.warning("%s: %s; retry %d/%d in %.1fs", name, problem, attempt, max_retries, delay)
        time.sleep(delay)
    raise AssertionError("unreachable")


def require_listed(exchange: ccxt.Exchange, symbol: str) -> dict:
    """The market for `symbol`, loading markets on first use; `SymbolNotListed` if absent."""
    call_with_retries(exchange, exchange.load_markets, endpoint="load_markets")
    market = exchange.markets.get(symbol)
    if market is None:
        raise SymbolNotListed(f"{exchange.id}: {symbol} is not listed")
    return market
