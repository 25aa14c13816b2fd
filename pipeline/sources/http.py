"""One JSON-over-HTTP client for the requests-based sources (DefiLlama, CoinGecko, CoinMarketCap).

Every request has a timeout; 429 and 5xx answers, timeouts, dropped connections and truncated
bodies (a 200 whose JSON does not parse) are retried by the sources' one policy (`retry.py`). What
still fails raises `SourceError` naming the endpoint, so a failed run says which source broke.
A vendor that states its errors in the body (CoinMarketCap's `status.error_code`) passes a
`vendor_error` that turns such a body into the same errors, before the HTTP status is read.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import requests
from tenacity import Retrying

from pipeline.sources.errors import NotAvailable, SourceError
from pipeline.sources.retry import Retryable, policy

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class JsonClient:
    def __init__(
        self,
        base_url: str,
        *,
        name: str,
        headers: dict[str, str] | None = None,
        timeout_s: float = 30.0,
        max_retries: int = 4,
        backoff_s: float = 1.0,
        vendor_error: Callable[[str, int, Any], Exception | None] | None = None,
    ):
        self.base_url = base_url.rstrip("/")
        self.name = name
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.vendor_error = vendor_error  # (endpoint, HTTP status, parsed body) -> the error to raise, or None
        self.session = requests.Session()
        self.session.headers.update({"Accept": "application/json", **(headers or {})})

    def get_json(self, path: str, params: dict[str, Any] | None = None) -> Any:
        endpoint = f"{self.name} GET {path}"
        for attempt in Retrying(**policy(endpoint, self.max_retries, self.backoff_s)):
            with attempt:
                return self._get_once(endpoint, f"{self.base_url}{path}", params)

    def _get_once(self, endpoint: str, url: str, params: dict[str, Any] | None) -> Any:
        try:
            resp = self.session.get(url, params=params, timeout=self.timeout_s)
        except (requests.Timeout, requests.ConnectionError) as exc:
            raise Retryable(f"{type(exc).__name__}: {exc}") from None
        if self.vendor_error is not None:
            try:
                body = resp.json()
            except ValueError:
                body = None  # not JSON (a gateway's HTML page): the status decides below
            error = self.vendor_error(endpoint, resp.status_code, body) if body is not None else None
            if isinstance(error, Retryable) and error.retry_after is None:
                error.retry_after = resp.headers.get("Retry-After")
            if error is not None:
                raise error
        if resp.status_code in (401, 403, 404):
            raise NotAvailable(endpoint, f"HTTP {resp.status_code}: {resp.text[:200]}")
        if resp.status_code in RETRY_STATUSES:
            raise Retryable(f"HTTP {resp.status_code}", resp.headers.get("Retry-After"))
        if resp.status_code >= 400:
            raise SourceError(endpoint, f"HTTP {resp.status_code}: {resp.text[:200]}")
        try:
            return resp.json()
        except ValueError:
            raise Retryable(f"malformed JSON ({len(resp.content)} bytes)") from None
