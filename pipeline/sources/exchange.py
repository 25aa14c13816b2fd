"""Build ccxt exchange clients, pointed at the live API or at a local base URL (the replay).

The client code is identical in both cases: only the scheme and host of every API URL change,
the paths stay, so the replay server answers exactly the requests the live API would get.
A client is ccxt's sync one (one request after another) or its asyncio one (`asynchronous=True`), whose
rate limiter queues the requests of concurrent tasks; the calls below take either.
"""

from __future__ import annotations

import inspect
import json
import os
import re
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from typing import Any, TypeVar

import ccxt
import ccxt.async_support
from tenacity import AsyncRetrying

from pipeline.sources.errors import PayloadError, SourceError, SymbolNotListed
from pipeline.sources.retry import Retryable, policy

T = TypeVar("T")

_HOST = re.compile(r"^https?://[^/]+")
# The exchange's last answer as this asyncio task (or thread) received it. ccxt keeps one per client
# (`last_json_response`, `last_response_headers`): concurrent symbols would read each other's.
_last_payload: ContextVar[Any] = ContextVar("last_payload", default=None)
_last_headers: ContextVar[Mapping[str, str]] = ContextVar("last_headers", default={})


def last_payload() -> Any:
    """The parsed JSON of the last answer this task received from any exchange client (None if not JSON)."""
    return _last_payload.get()


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
    asynchronous: bool = False,
) -> ccxt.Exchange | ccxt.async_support.Exchange:
    """A ccxt client for `exchange_id` limited to `market_type` (`spot` or `linear`), with ccxt's rate
    limiter on; `asynchronous` gives ccxt's asyncio client (close it with `await exchange.close()`).

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
        # The pipeline reads public markets only: with an API key set, ccxt's binance would otherwise load
        # the private margin pairs (/sapi/v1/margin/allPairs) with every market load (and see below).
        "options": {"fetchMarkets": {"types": [market_type]}, "defaultType": market_type, "fetchMargins": False},
    }
    prefix = exchange_id.upper()
    if os.environ.get(f"{prefix}_API_KEY"):
        config["apiKey"] = os.environ[f"{prefix}_API_KEY"]
        config["secret"] = os.environ.get(f"{prefix}_API_SECRET", "")
    exchange = getattr(ccxt.async_support if asynchronous else ccxt, exchange_id)(config)
    # ...and the private wallet's coin list (binance /sapi/v1/capital/config/getall, bybit
    # /v5/asset/coin/query-info), which a key without wallet rights cannot read: markets need no currencies.
    exchange.has = {**exchange.has, "fetchCurrencies": False}
    exchange.parse_json = _strict_json_parser(exchange.id)
    exchange.on_rest_response = _recording_headers(exchange.on_rest_response)
    if base_url:
        exchange.urls["api"] = _rewrite(exchange.urls["api"], base_url)
    return exchange


def _strict_json_parser(exchange_id: str) -> Callable[[str], Any]:
    """ccxt's JSON parsing, minus its silence: ccxt hands an unparsable body (a truncated page)
    back as a string, which `fetch_ohlcv` then reads as zero candles. This raises BadResponse, which
    `call_with_retries` retries like any broken answer."""

    def parse_json(body: str) -> Any:
        _last_payload.set(None)
        if not ccxt.Exchange.is_json_encoded_object(body):
            return None  # not JSON at all (an HTML error page): ccxt's error handling reads the text
        try:
            payload = json.loads(body)
        except ValueError as exc:
            raise ccxt.BadResponse(f"{exchange_id}: unparsable JSON body ({exc})") from None
        _last_payload.set(payload)  # what was sent, to count it against what ccxt parsed
        return payload

    return parse_json


def _recording_headers(on_rest_response: Callable[..., str]) -> Callable[..., str]:
    """ccxt's hook on every answer, plus noting its headers (Retry-After) for this task."""

    def hook(code, reason, url, method, response_headers, response_body, request_headers, request_body) -> str:
        _last_headers.set(response_headers or {})
        return on_rest_response(code, reason, url, method, response_headers, response_body, request_headers, request_body)

    return hook


async def call_with_retries(
    exchange: ccxt.Exchange | ccxt.async_support.Exchange,
    fn: Callable[..., T | Awaitable[T]],
    *args: Any,
    endpoint: str,
    max_retries: int = 4,
    backoff_s: float = 1.0,
    **kwargs: Any,
) -> T:
    """Call a ccxt method, retrying network errors, 429s and 5xx with backoff (Retry-After honoured).

    ccxt's own rate limiter spaces the requests; this handles the answers that still come back
    throttled or broken. What remains raises `SourceError` naming the exchange and endpoint.
    A sync client's method blocks the event loop: with it, symbols are fetched one after another.
    """
    name = f"{exchange.id} {endpoint}"
    async for attempt in AsyncRetrying(**policy(name, max_retries, backoff_s)):
        with attempt:
            _last_headers.set({})  # a timeout has none: no stale Retry-After
            try:
                result = fn(*args, **kwargs)
                return await result if inspect.isawaitable(result) else result
            except ccxt.BadSymbol as exc:
                raise SymbolNotListed(f"{name}: {exc}") from None
            except (ccxt.NetworkError, ccxt.BadResponse, ccxt.NullResponse) as exc:
                headers = _last_headers.get()
                raise Retryable(f"{type(exc).__name__}: {str(exc)[:200]}",
                                headers.get("Retry-After") or headers.get("retry-after")) from None
            except ccxt.BaseError as exc:
                raise SourceError(name, f"{type(exc).__name__}: {str(exc)[:300]}") from None
            except (TypeError, KeyError, ValueError, IndexError) as exc:  # ccxt parsing a wrong-shaped payload
                raise PayloadError(name, f"malformed payload ({type(exc).__name__}: {exc})") from None


async def require_listed(exchange: ccxt.Exchange | ccxt.async_support.Exchange, symbol: str) -> dict:
    """The market for `symbol`, loading markets on first use (concurrent callers of an asyncio
    client share ccxt's one load); `SymbolNotListed` if absent."""
    await call_with_retries(exchange, exchange.load_markets, endpoint="load_markets")
    market = exchange.markets.get(symbol)
    if market is None:
        raise SymbolNotListed(f"{exchange.id}: {symbol} is not listed")
    return market
