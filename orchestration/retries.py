"""A transport for Prefect's client that tries a request again soon when Prefect is busy.

Prefect's server answers 503 when its SQLite database cannot take a write at once: a
transaction that read first finds that another write committed meanwhile. Prefect's client
then waits 2 s (2 ** try, with jitter; also before a last try, whatever its retry setting)
before it sends the request again. Creating a run (a read of the deployment, then the new
run) met this in 1 start of 7 to 10 one after another, and the 2 s were most of a slow
start. This transport, under Prefect's client, sends a request that was answered 503 again
after 25 to 200 ms; only a fifth 503 reaches the client and its backoff. Each request it
repeats is one Prefect may receive twice: the API creates runs under idempotency keys.
"""

from __future__ import annotations

import asyncio

import httpx

RETRY_PAUSES_S = (0.025, 0.05, 0.1, 0.2)
BUSY = 503
# Prefect's own transport tries a failed connection this many times; so does this one.
CONNECT_RETRIES = 3


class SoonAgain(httpx.AsyncHTTPTransport):
    """`httpx.AsyncHTTPTransport` that repeats a request answered 503 (see the module doc)."""

    def __init__(self) -> None:
        super().__init__(retries=CONNECT_RETRIES)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        for pause in RETRY_PAUSES_S:
            response = await super().handle_async_request(request)
            if response.status_code != BUSY:
                return response
            await response.aclose()
            await asyncio.sleep(pause)
        return await super().handle_async_request(request)
