"""Prefect calls on the way to a run's start, tried again soon when Prefect is busy.

Prefect's server answers 503 when its SQLite database cannot take a write at once: a
transaction that read first finds that another write committed meanwhile. Its client then
waits 2 s (2 ** try, with jitter) before it tries again. On a run's way to start, that
wait was most of every slow start (creating the run, 1 upload in 7 to 10 one after
another). `soon_again` switches Prefect's own retries off for one call, tries it again
after 25 to 200 ms, and leaves the call to Prefect's backoff only once those are spent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from prefect.exceptions import PrefectHTTPStatusError
from prefect.settings import PREFECT_CLIENT_MAX_RETRIES, temporary_settings

T = TypeVar("T")

RETRY_PAUSES_S = (0.025, 0.05, 0.1, 0.2)
BUSY = 503


async def soon_again(call: Callable[[], Awaitable[T]]) -> T:
    """`await call()`, tried again after each of `RETRY_PAUSES_S` while Prefect answers
    503, then once more with Prefect's own retries. Only for calls that may be repeated:
    an idempotency key, a state to set, labels to merge."""
    for pause in RETRY_PAUSES_S:
        try:
            with temporary_settings({PREFECT_CLIENT_MAX_RETRIES: 0}):
                return await call()
        except PrefectHTTPStatusError as exc:
            if exc.response.status_code != BUSY:
                raise
        await asyncio.sleep(pause)
    return await call()
