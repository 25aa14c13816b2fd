"""One JSON-over-HTTP client for the requests-based sources (DefiLlama, CoinGecko).

Every request has a timeout; 429 and 5xx answers, timeouts, dropped connections and truncated
bodies (a 200 whose JSON does not parse) are retried by the sources' one policy (`retry.py`). What
still fails raises `SourceError` naming the endpoint, so a failed run says which source broke.
"""

from __future__ import annotations

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
    ):
        self.base_url = base_url.rstrip("/")
        self.name = name
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
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
