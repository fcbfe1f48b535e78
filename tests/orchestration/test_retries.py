"""A request Prefect answers 503 (its SQLite database busy) is sent again soon, by the
transport under Prefect's client; a real HTTP server here gives the 503s, which a real
Prefect server gives only now and then."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from orchestration.retries import RETRY_PAUSES_S, SoonAgain


class Busy(ThreadingHTTPServer):
    """Answers each POST with the next of `answers` (then 200), noting the bodies."""

    answers: list[int]
    bodies: list[bytes]


class Handler(BaseHTTPRequestHandler):
    server: Busy

    def do_POST(self) -> None:
        self.server.bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
        status = self.server.answers.pop(0) if self.server.answers else 200
        body = b'{"id": "run"}'
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def busy() -> Iterator[Busy]:
    server = Busy(("127.0.0.1", 0), Handler)
    server.answers, server.bodies = [], []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def post(server: Busy) -> httpx.Response:
    async def send() -> httpx.Response:
        url = f"http://127.0.0.1:{server.server_address[1]}/api/deployments/d/create_flow_run"
        async with httpx.AsyncClient(transport=SoonAgain()) as client:
            return await client.post(url, json={"idempotency_key": "job-1"})

    return asyncio.run(send())


def test_a_busy_answer_is_sent_again_soon_with_the_same_body(busy: Busy) -> None:
    busy.answers = [503, 503]

    response = post(busy)

    assert response.status_code == 200 and response.json() == {"id": "run"}
    assert len(busy.bodies) == 3 and len(set(busy.bodies)) == 1


def test_once_its_tries_are_spent_the_busy_answer_reaches_the_client(busy: Busy) -> None:
    busy.answers = [503] * (len(RETRY_PAUSES_S) + 1)

    assert post(busy).status_code == 503  # Prefect's client takes it from here
    assert len(busy.bodies) == len(RETRY_PAUSES_S) + 1


def test_other_answers_are_not_sent_again(busy: Busy) -> None:
    busy.answers = [404]

    assert post(busy).status_code == 404
    assert len(busy.bodies) == 1
