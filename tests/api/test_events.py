"""GET /api/excel/import/{id}/events: progress on change, heartbeats, done, and disconnects."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api import fanout, streams
from db.models import JobStatus, utcnow
from tests.api.helpers import add_job, read_job, update_job


@pytest.fixture(autouse=True)
def fast_polling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fanout, "POLL_INTERVAL_S", 0.05)


def parse(stream: str) -> list[tuple[str, Any]]:
    """(event name, data) for each event; comments as ("comment", text)."""
    parsed: list[tuple[str, Any]] = []
    for block in stream.split("\n\n"):
        if not block:
            continue
        if block.startswith(":"):
            parsed.append(("comment", block[1:].strip()))
            continue
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        parsed.append((fields["event"], json.loads(fields["data"])))
    return parsed


def read_events(response: Any) -> Iterator[tuple[str, Any]]:
    """Each event of an open stream as it arrives."""
    buffer = ""
    for chunk in response.iter_text():
        buffer += chunk
        while "\n\n" in buffer:
            block, buffer = buffer.split("\n\n", 1)
            yield from parse(block + "\n\n")


@pytest.mark.timeout(30)
def test_events_send_progress_on_each_change_then_done_and_the_stream_ends(
    client: TestClient,
) -> None:
    job_id = add_job(status=JobStatus.PENDING)
    # Each change is made once the stream has shown the one before: no timing involved.
    next_change = {
        "pending": dict(
            status=JobStatus.PROCESSING, total_rows=10, processed_rows=5, started_at=utcnow()
        ),
        "processing": dict(status=JobStatus.COMPLETED, processed_rows=10, finished_at=utcnow()),
    }

    sent: list[tuple[str, Any]] = []
    with client.stream("GET", f"/api/excel/import/{job_id}/events") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        for name, data in read_events(response):
            sent.append((name, data))
            if name == "progress" and (change := next_change.pop(data["status"], None)):
                update_job(job_id, **change)

    assert [(name, data["status"]) for name, data in sent] == [
        ("progress", "pending"),
        ("progress", "processing"),
        ("progress", "completed"),
        ("done", "completed"),
    ]
    assert sent[1][1]["processed_rows"] == 5
    assert sent[-1][1]["processed_rows"] == 10
    assert sent[-1][1]["errors_url"] == f"/api/excel/import/{job_id}/errors"


@pytest.mark.timeout(30)
@pytest.mark.parametrize("ended", [JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED])
def test_events_of_an_ended_job_send_its_state_and_done_at_once(
    client: TestClient, ended: JobStatus
) -> None:
    job_id = add_job(status=ended)

    stream = client.get(f"/api/excel/import/{job_id}/events").text

    assert [(name, data["status"]) for name, data in parse(stream)] == [
        ("progress", str(ended)),
        ("done", str(ended)),
    ]


@pytest.mark.timeout(30)
def test_events_send_a_comment_heartbeat_while_nothing_changes(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(streams, "HEARTBEAT_S", 0.2)
    job_id = add_job(status=JobStatus.PENDING)

    lines: list[str] = []
    with client.stream("GET", f"/api/excel/import/{job_id}/events") as response:
        for line in response.iter_lines():
            lines.append(line)
            if line.startswith(":"):
                break

    assert lines[0] == "event: progress"
    assert lines[-1] == ": keep-alive"
    assert sum(line.startswith("event:") for line in lines) == 1


def test_events_of_an_unknown_job_are_404(client: TestClient) -> None:
    response = client.get(f"/api/excel/import/{uuid.uuid4()}/events")

    assert response.status_code == 404


@pytest.mark.timeout(30)
def test_events_stop_polling_when_the_client_disconnects(app: FastAPI) -> None:
    job_id = add_job(status=JobStatus.PENDING)
    path = f"/api/excel/import/{job_id}/events"
    scope = {
        "type": "http",
        # ASGI 2.4 servers do not report a disconnect unless asked, so the stream must ask.
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"test")],
        "client": ("test", 1),
        "server": ("test", 80),
    }
    bodies: list[bytes] = []

    async def follow_then_leave() -> None:
        gone = asyncio.Event()
        request_sent = False

        async def receive() -> dict[str, Any]:
            nonlocal request_sent
            if not request_sent:
                request_sent = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await gone.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.body" and message.get("body"):
                bodies.append(message["body"])
                gone.set()

        await asyncio.wait_for(app(scope, receive, send), timeout=5)

    asyncio.run(follow_then_leave())

    assert bodies[0].startswith(b"event: progress")
    assert read_job(job_id).status == JobStatus.PENDING
