"""Fetch the symbols of one exchange concurrently, with ccxt's rate limiter spacing the requests.

One ccxt asyncio client serves every symbol, so its leaky bucket queues all of their requests (ccxt's
sync throttler is not thread-safe: threads sharing a sync client would each see the same last request
and fire together). At most `in_flight` symbols are under way at once; a symbol the exchange does not
list is an answer, not an error; any other error stops the remaining symbols and is raised as it was.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from pipeline.sources.errors import SymbolNotListed

T = TypeVar("T")

# Enough to keep ccxt's queue full at a few hundred ms per request (the limiter, not this, sets the
# pace); few enough that a failing run stops after a handful of requests in flight.
SYMBOLS_IN_FLIGHT = 16


def fetch_symbols(
    exchange: Any,
    symbols: Sequence[str],
    fetch: Callable[[str], Awaitable[T]],
    on_fetched: Callable[[int, str, T | SymbolNotListed], None],
    in_flight: int = SYMBOLS_IN_FLIGHT,
) -> list[T | SymbolNotListed]:
    """`fetch(symbol)` of every symbol, in `symbols`' order (`SymbolNotListed` in place of a result for
    a symbol the exchange does not list); `on_fetched(done, symbol, result)` as each one finishes.

    Runs its own event loop and closes `exchange` (ccxt's asyncio or sync client) before returning.
    """
    return asyncio.run(_fetch_symbols(exchange, symbols, fetch, on_fetched, in_flight))


async def _fetch_symbols(exchange, symbols, fetch, on_fetched, in_flight):
    slots = asyncio.Semaphore(in_flight)
    done = 0

    async def fetch_one(symbol: str):
        nonlocal done
        async with slots:
            try:
                result = await fetch(symbol)
            except SymbolNotListed as exc:
                result = exc
        done += 1
        on_fetched(done, symbol, result)
        return result

    try:
        async with asyncio.TaskGroup() as group:  # the first error cancels the other symbols
            tasks = [group.create_task(fetch_one(symbol)) for symbol in symbols]
    except BaseExceptionGroup as failed:
        raise failed.exceptions[0] from None  # the error itself (naming endpoint and symbol), not a group
    finally:
        closing = exchange.close()
        if inspect.isawaitable(closing):
            await closing
    return [task.result() for task in tasks]


def once(make: Callable[[], Awaitable[T]]) -> Callable[[], Awaitable[T]]:
    """A value fetched on first use and shared by every task that awaits it: one request, not one per symbol."""
    task: asyncio.Future[T] | None = None

    async def get() -> T:
        nonlocal task
        if task is None:
            task = asyncio.ensure_future(make())
        return await task

    return get
