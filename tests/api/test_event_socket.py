"""GET /api/excel/import/{id}/ws: the event stream's events as WebSocket messages."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.testclient import WebSocketDenialResponse
from starlette.websockets import WebSocketDisconnect

from api import fanout
from api.fanout import Hub
from db.models import JobStatus, utcnow
from settings import get_settings
from tests.api.helpers import add_job, serve, update_job
from tests.api.test_events import read_events

KEYS = "first-key-0123456789,second-key-0123456789"


@pytest.fixture(autouse=True)
def fast_polling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fanout, "POLL_INTERVAL_S", 0.05)


@pytest.fixture
def api_keys() -> str:
    """The keys of the `keyed` client's app: two API keys."""
    return KEYS


def socket_path(job_id: uuid.UUID) -> str:
    return f"/api/excel/import/{job_id}/ws"


def closing(socket: Any) -> WebSocketDisconnect:
    """The close the server sends next (messages before it fail the test)."""
    with pytest.raises(WebSocketDisconnect) as closed:
        message = socket.receive_json()
        pytest.fail(f"expected the socket to close, got {message}")
    return closed.value


@pytest.mark.timeout(30)
def test_websocket_sends_progress_on_each_change_then_done_and_closes_1000(
    client: TestClient,
) -> None:
    job_id = add_job(status=JobStatus.PENDING)
    # Each change is made once the socket has shown the one before.
    next_change = {
        "pending": dict(
            status=JobStatus.PROCESSING, total_rows=10, processed_rows=5, started_at=utcnow()
        ),
        "processing": dict(status=JobStatus.COMPLETED, processed_rows=10, finished_at=utcnow()),
    }

    sent: list[dict[str, Any]] = []
    with client.websocket_connect(socket_path(job_id)) as socket:
        while not sent or sent[-1]["event"] != "done":
            message = socket.receive_json()
            sent.append(message)
            change = next_change.pop(message["data"]["status"], None)
            if message["event"] == "progress" and change:
                update_job(job_id, **change)
        closed = closing(socket)

    assert [(m["event"], m["data"]["status"]) for m in sent] == [
        ("progress", "pending"),
        ("progress", "processing"),
        ("progress", "completed"),
        ("done", "completed"),
    ]
    assert sent[1]["data"]["processed_rows"] == 5
    assert sent[-1]["data"]["errors_url"] == f"/api/excel/import/{job_id}/errors"
    assert closed.code == 1000


@pytest.mark.timeout(30)
def test_websocket_of_an_unknown_job_closes_4404_with_a_reason(client: TestClient) -> None:
    job_id = uuid.uuid4()

    with client.websocket_connect(socket_path(job_id)) as socket:
        closed = closing(socket)

    assert (closed.code, closed.reason) == (4404, f"there is no import job {job_id}")


@pytest.mark.timeout(30)
def test_websocket_counts_in_the_cap_of_event_streams_and_closes_1013_beyond_it(
    app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IMPORTER_MAX_EVENT_STREAMS", "1")
    get_settings.cache_clear()
    job_id = add_job(status=JobStatus.PENDING)

    with TestClient(app) as live:
        with live.stream("GET", f"/api/excel/import/{job_id}/events") as stream:
            assert next(read_events(stream))[0] == "progress"
            with live.websocket_connect(socket_path(job_id)) as refused:
                closed = closing(refused)
        # The stream closed, so a socket has room now; and a socket counts against streams.
        with live.websocket_connect(socket_path(job_id)) as socket:
            assert socket.receive_json()["event"] == "progress"
            assert live.get(f"/api/excel/import/{job_id}/events").status_code == 429

    assert closed.code == 1013
    assert closed.reason.startswith("too many event streams are open (the most is 1);")


@pytest.mark.timeout(30)
def test_websocket_closes_1001_after_its_longest_life(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IMPORTER_EVENT_STREAM_MAX_S", "0.3")
    get_settings.cache_clear()
    job_id = add_job(status=JobStatus.PENDING)

    with client.websocket_connect(socket_path(job_id)) as socket:
        assert socket.receive_json()["data"]["status"] == "pending"
        closed = closing(socket)

    assert closed.code == 1001
    assert "reconnect" in closed.reason


@pytest.mark.timeout(30)
def test_a_socket_that_leaves_stops_the_poller_at_once(app: FastAPI) -> None:
    job_id = add_job(status=JobStatus.PENDING)

    with TestClient(app) as live:
        with live.websocket_connect(socket_path(job_id)) as socket:
            assert socket.receive_json()["event"] == "progress"
            hub = app.state.hub
            assert isinstance(hub, Hub)
            assert (hub.pollers, hub.followers) == (1, 1)

        async def pollers_alive() -> int:
            return sum(t.get_name().startswith("poll") for t in asyncio.all_tasks())

        assert live.portal is not None
        assert live.portal.call(pollers_alive) == 0
        assert (hub.pollers, hub.followers) == (0, 0)


@pytest.mark.parametrize(
    ("headers", "subprotocols", "query", "wrong"),
    [
        ({}, [], "", False),
        ({"Authorization": "Bearer wrong-key"}, [], "", True),
        ({}, ["importer.events", "bearer.wrong-key"], "", True),
        ({}, ["importer.events", "first-key-0123456789"], "", False),
        # A key in the URL would end up in access logs: it is not accepted there.
        (
            {},
            [],
            "?api_key=first-key-0123456789&key=first-key-0123456789&token=first-key-0123456789",
            False,
        ),
    ],
)
def test_websocket_without_a_valid_key_is_refused_401_when_keys_are_set(
    keyed: TestClient,
    headers: dict[str, str],
    subprotocols: list[str],
    query: str,
    wrong: bool,
) -> None:
    job_id = add_job(status=JobStatus.PENDING)

    with (
        pytest.raises(WebSocketDenialResponse) as refused,
        keyed.websocket_connect(
            socket_path(job_id) + query, headers=headers, subprotocols=subprotocols
        ),
    ):
        pytest.fail("the socket was opened")

    assert refused.value.status_code == 401
    assert refused.value.headers["www-authenticate"].startswith("Bearer")
    detail = refused.value.json()["detail"]
    assert ("not valid" if wrong else "bearer.KEY") in detail


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("headers", "subprotocols", "chosen"),
    [
        ({"Authorization": "Bearer first-key-0123456789"}, [], None),
        ({}, ["importer.events", "bearer.second-key-0123456789"], "importer.events"),
    ],
)
def test_websocket_with_a_key_in_the_header_or_as_a_subprotocol_is_served(
    keyed: TestClient,
    headers: dict[str, str],
    subprotocols: list[str],
    chosen: str | None,
) -> None:
    job_id = add_job(status=JobStatus.COMPLETED)

    with keyed.websocket_connect(
        socket_path(job_id), headers=headers, subprotocols=subprotocols
    ) as socket:
        events = [socket.receive_json()["event"], socket.receive_json()["event"]]
        closed = closing(socket)

    # The key itself is never echoed back as the chosen subprotocol.
    assert socket.accepted_subprotocol == chosen
    assert events == ["progress", "done"]
    assert closed.code == 1000


def test_websocket_opened_by_another_sites_page_is_refused(client: TestClient) -> None:
    job_id = add_job(status=JobStatus.PENDING)

    with (
        pytest.raises(WebSocketDisconnect) as refused,
        client.websocket_connect(socket_path(job_id), headers={"origin": "https://evil.example"}),
    ):
        pytest.fail("the socket was opened")

    assert refused.value.code == 1008
    # The service's own page may open one.
    with client.websocket_connect(
        socket_path(job_id), headers={"origin": "http://testserver"}
    ) as socket:
        assert socket.receive_json()["event"] == "progress"


@pytest.mark.timeout(60)
def test_uvicorn_serves_the_socket_to_a_client_that_gives_its_key_as_a_subprotocol(
    app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    from websockets.exceptions import ConnectionClosedOK, InvalidStatus
    from websockets.sync.client import connect

    monkeypatch.setenv("IMPORTER_API_KEYS", KEYS)
    get_settings.cache_clear()
    job_id = add_job(status=JobStatus.PENDING)

    with serve(app) as url:
        address = url.replace("http://", "ws://") + socket_path(job_id)
        with pytest.raises(InvalidStatus) as refused:
            connect(address, subprotocols=["importer.events"], open_timeout=10)
        received: list[dict[str, Any]] = []
        protocols = ["importer.events", "bearer.first-key-0123456789"]
        with connect(address, subprotocols=protocols, open_timeout=10) as socket:
            chosen = socket.subprotocol
            received.append(json.loads(socket.recv(timeout=10)))
            update_job(job_id, status=JobStatus.COMPLETED, finished_at=utcnow())
            with pytest.raises(ConnectionClosedOK) as closed:
                while True:
                    received.append(json.loads(socket.recv(timeout=10)))

    assert refused.value.response.status_code == 401
    assert chosen == "importer.events"
    assert [(m["event"], m["data"]["status"]) for m in received] == [
        ("progress", "pending"),
        ("progress", "completed"),
        ("done", "completed"),
    ]
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000
