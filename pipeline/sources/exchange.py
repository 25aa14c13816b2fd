"""Build ccxt exchange clients, pointed at the live API or at a local base URL (the replay).

The client code is identical in both cases: only the scheme and host of every API URL change,
the paths stay, so the replay server answers exactly the requests the live API would get.
"""

from __future__ import annotations

import os
import re
from typing import Any

import ccxt

# Market families each use of an exchange needs, so `load_markets` calls one
# exchangeInfo-style endpoint instead of every family the exchange has.
SPOT = "spot"
LINEAR = "linear"

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

    `base_url` (e.g. the replay's `http://127.0.0.1:PORT`) replaces the host of every API URL.
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
    if base_url:
        # Bybit-style templates ("https://api.{hostname}") lose their host part as a whole.
        exchange.urls["api"] = _rewrite(exchange.urls["api"], base_url)
    return exchange
