"""The one retry policy of every source, ccxt calls and the JSON-over-HTTP client alike (tenacity):
up to `max_retries` retries of what may pass on a second try (network errors, timeouts, 429, 5xx, a
truncated body), waiting as `Retry-After` says or with jittered exponential backoff, a warning per
retry; what still fails raises `SourceError` naming the endpoint and the attempts. What cannot pass
on a retry (a 404, a payload of the wrong shape) is raised at once by the caller."""

from __future__ import annotations

import logging

from tenacity import RetryCallState, retry_if_exception_type, stop_after_attempt

from pipeline.sources.errors import SourceError, retry_delay

log = logging.getLogger(__name__)


class Retryable(Exception):
    """A failure worth another try; `retry_after` is the server's Retry-After, if it sent one."""

    def __init__(self, problem: str, retry_after: str | None = None):
        super().__init__(problem)
        self.problem, self.retry_after = problem, retry_after


def policy(endpoint: str, max_retries: int, backoff_s: float) -> dict:
    """Keyword arguments of `tenacity.Retrying` / `AsyncRetrying` for calls to `endpoint`."""

    def problem(state: RetryCallState) -> Retryable:
        return state.outcome.exception()

    def wait(state: RetryCallState) -> float:
        return retry_delay(state.attempt_number, backoff_s, problem(state).retry_after)

    def warn(state: RetryCallState) -> None:
        log.warning("%s: %s; retry %d/%d in %.1fs", endpoint, problem(state).problem, state.attempt_number,
                    max_retries, state.next_action.sleep)

    def give_up(state: RetryCallState) -> None:
        raise SourceError(endpoint, f"{problem(state).problem} after {state.attempt_number} attempts")

    return dict(stop=stop_after_attempt(max_retries + 1), wait=wait, retry=retry_if_exception_type(Retryable),
                before_sleep=warn, retry_error_callback=give_up)
