"""Errors every source raises, and the retry delay they share."""

from __future__ import annotations

import random


class SourceError(RuntimeError):
    """A source could not deliver usable data; the message names the endpoint."""

    def __init__(self, endpoint: str, detail: str):
        super().__init__(f"{endpoint}: {detail}")
        self.endpoint = endpoint


class NotAvailable(SourceError):
    """The endpoint answered that this series does not exist (404) or needs a paid plan (401/403)."""


class PayloadError(SourceError):
    """The endpoint answered, but the payload lacks a field or has the wrong shape."""


class SymbolNotListed(LookupError):
    """The exchange does not list this symbol (delisted or renamed): skip it, do not fail the run."""


def retry_delay(attempt: int, backoff_s: float, retry_after: str | None, cap_s: float = 60.0) -> float:
    """Seconds to wait before retry `attempt` (1-based): Retry-After if given, else jittered backoff."""
    if retry_after:
        try:
            return min(float(retry_after), cap_s)
        except ValueError:
            pass  # an HTTP-date; fall back to backoff
    return min(backoff_s * 2 ** (attempt - 1) * (0.5 + random.random()), cap_s)
