"""The worker labels each run it carries out (the Prefect UI's "which worker ran this"),
even when Prefect refuses the write for longer than its client keeps trying.

A real Prefect server refuses a write (503) only when its SQLite database is busy, which
no test can cause on cue; so the worker here talks to it through a relay that answers the
first label writes 503 itself and passes everything else on.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import anyio
import httpx
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_API_URL, PREFECT_CLIENT_MAX_RETRIES, temporary_settings

from deployments.worker import WORKER_TYPE, ImporterWorker

TIMEOUT_S = 60
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


@flow
def labelled() -> None:
    """Only its runs are used: none is carried out."""


class Relay(ThreadingHTTPServer):
    """Passes requests to `upstream`, except that it answers the first `refuse` label
    writes 503 (with `Retry-After: 0`, so Prefect's client spends its retries at once)."""

    daemon_threads = True

    def __init__(self, upstream: str, refuse: int) -> None:
        super().__init__(("127.0.0.1", 0), _RelayHandler)
        self.upstream = upstream.rstrip("/")
        self.refuse = refuse
        self.refused = 0
        self.label_writes = 0
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/api"


class _RelayHandler(BaseHTTPRequestHandler):
    server: Relay

    def _relay(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.command == "PATCH" and self.path.endswith("/labels"):
            with self.server.lock:
                self.server.label_writes += 1
                refusing = self.server.refused < self.server.refuse
                self.server.refused += refusing
            if refusing:
                self._answer(503, {"Retry-After": "0"}, b'{"exception_message": "busy"}')
                return
        upstream = self.server.upstream.removesuffix("/api") + self.path
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        answer = httpx.request(self.command, upstream, headers=headers, content=body, timeout=30)
        kept = {k: v for k, v in answer.headers.items() if k.lower() not in HOP_BY_HOP}
        kept.pop("content-encoding", None)  # httpx hands over the body decoded
        self._answer(answer.status_code, kept, answer.content)

    def _answer(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _relay

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def relay(upstream: str, *, refuse: int) -> Iterator[Relay]:
    server = Relay(upstream, refuse)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


async def labels_of(flow_run_id: uuid.UUID, *, until: float) -> dict[str, Any]:
    """The run's labels once the worker's are there (or as they are at `until`)."""
    async with get_client() as prefect:
        while True:
            labels = dict((await prefect.read_flow_run(flow_run_id)).labels)
            if "prefect.worker.type" in labels or time.monotonic() > until:
                return labels
            await anyio.sleep(0.2)


def test_a_label_write_refused_beyond_prefects_retries_is_tried_again(
    prefect_server: str,
) -> None:
    # One more refusal than Prefect's client sends tries: its whole call fails once.
    refuse = PREFECT_CLIENT_MAX_RETRIES.value() + 2
    pool = f"labels-{uuid.uuid4().hex[:8]}"

    async def test() -> None:
        async with get_client() as prefect:
            run = await prefect.create_flow_run(labelled)
        with relay(prefect_server, refuse=refuse) as refusing:
            with temporary_settings({PREFECT_API_URL: refusing.url}):
                worker = ImporterWorker(work_pool_name=pool, spares=0)
                async with worker:
                    await worker._give_worker_labels_to_flow_run(run.id)
                    labels = await labels_of(run.id, until=time.monotonic() + TIMEOUT_S)
            assert (refusing.refused, refusing.label_writes) == (refuse, refuse + 1)
        assert labels.get("prefect.worker.type") == WORKER_TYPE, labels
        assert labels["prefect.worker.name"] == worker.name
        assert labels["prefect.work-pool.name"] == pool

    anyio.run(test)


def test_a_stopping_worker_does_not_wait_for_a_label_write_prefect_keeps_refusing(
    prefect_server: str,
) -> None:
    async def test() -> None:
        async with get_client() as prefect:
            run = await prefect.create_flow_run(labelled)
        with relay(prefect_server, refuse=10**6) as refusing:
            with temporary_settings({PREFECT_API_URL: refusing.url}):
                worker = ImporterWorker(work_pool_name=f"labels-{uuid.uuid4().hex[:8]}", spares=0)
                with anyio.fail_after(TIMEOUT_S):
                    async with worker:
                        await worker._give_worker_labels_to_flow_run(run.id)
                        # Past the first round of Prefect's retries: the worker is
                        # between two of its own tries, or in one.
                        while refusing.refused <= PREFECT_CLIENT_MAX_RETRIES.value():
                            await anyio.sleep(0.05)
                    stopped_after = refusing.label_writes
            # Nothing tries to write labels once the worker stopped.
            await anyio.sleep(2)
            assert refusing.label_writes == stopped_after
        async with get_client() as prefect:
            labels = (await prefect.read_flow_run(run.id)).labels
        assert "prefect.worker.type" not in labels

    anyio.run(test)
