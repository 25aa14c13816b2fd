"""One JSON-over-HTTP client for the requests-based sources (DefiLlama, CoinGecko).

Every request has a timeout; 429 and 5xx answers, timeouts, dropped connections and truncated
bodies are retried with exponential backoff and jitter, honouring `Retry-After`. What still fails
raises `SourceError` naming the endpoint, so a failed run says which source broke.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import requests

from pipeline.sources.errors import NotAvailable, SourceError, retry_delay

log = logging.getLogger(__name__)

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
        url = f"{self.base_url}{path}"
        endpoint = f"{self.name} GET {path}"
        for attempt in range(1, self.max_retries + 2):
            retry_after = None
            try:
                resp = self.session.get(url, params=params, timeout=self.timeout_s)
            except (requests.Timeout, requests.ConnectionError) as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if resp.status_code in (401, 403, 404):
                    raise NotAvailable(endpoint, f"HTTP {resp.status_code}: {resp.text[:200]}")
                if resp.status_code in RETRY_STATUSES:
                    problem = f"HTTP {resp.status_code}"
                    retry_after = resp.headers.get("Retry-After")
                elif resp.status_code >= 400:
                    raise SourceError(endpoint, f"HTTP {resp.status_code}: {resp.text[:200]}")
                else:
                    try:
                        return resp.json()
                    except ValueError:
                        problem = f"malformed JSON ({len(resp.content)} bytes)"
            if attempt > self.max_retries:
                raise SourceError(endpoint, f"{problem} after {attempt} attempts")
            delay = retry_delay(attempt, self.backoff_s, retry_after)
            log.warning("%s: %s; retry %d/%d in %.1fs", endpoint, problem, attempt, self.max_retries, delay)
            time.sleep(delay)
        raise AssertionError("unreachable")
