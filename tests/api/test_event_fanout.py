"""Followers of a job share one poller; open streams have a cap and a longest life."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api import fanout, streams
from api.deps import get_trigger
from api.fanout import Hub, StreamsFull
from api.main import create_app
from api.schemas import JobProgress
from api.views import JobLinks
from db.models import JobStatus, utcnow
from settings import get_settings
from tests.api.helpers import FakeTrigger, add_job, update_job
from tests.api.test_event_socket import closing
from tests.api.test_events import parse, read_events


@pytest.fixture(autouse=True)
def fast_polling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fanout, "POLL_INTERVAL_S", 0.05)


@pytest.fixture
def live(app: FastAPI) -> Iterator[TestClient]:
    """A client whose requests all run on one event loop, as under a server (without `with`,
    each request gets a loop, and so a hub, of its own)."""
    with TestClient(app) as client:
        yield client


def hub_of(app: FastAPI) -> Hub:
    hub = app.state.hub
    assert isinstance(hub, Hub)
    return hub


def poller_tasks(client: TestClient) -> list[str]:
    """The names of the poller tasks alive on the client's event loop."""

    async def names() -> list[str]:
        return sorted(t.get_name() for t in asyncio.all_tasks() if t.get_name().startswith("poll"))

    assert client.portal is not None
    return client.portal.call(names)


def set_env(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    get_settings.cache_clear()


@pytest.mark.timeout(30)
def test_two_followers_of_one_job_share_one_poller_and_both_see_each_change(
    app: FastAPI, live: TestClient
) -> None:
    job_id = add_job(status=JobStatus.PENDING)
    path = f"/api/excel/import/{job_id}/events"

    with live.stream("GET", path) as first, live.stream("GET", path) as second:
        a, b = read_events(first), read_events(second)
        assert [next(a)[1]["status"], next(b)[1]["status"]] == ["pending", "pending"]
        assert (hub_of(app).pollers, hub_of(app).followers) == (1, 2)
        assert poller_tasks(live) == [f"poll job {job_id}"]

        update_job(job_id, status=JobStatus.PROCESSING, total_rows=10, started_at=utcnow())
        assert [next(a)[1]["status"], next(b)[1]["status"]] == ["processing", "processing"]
        update_job(job_id, status=JobStatus.COMPLETED, processed_rows=10, finished_at=utcnow())
        rest_a, rest_b = list(a), list(b)

    for rest in (rest_a, rest_b):
        assert [(name, data["status"]) for name, data in rest] == [
            ("progress", "completed"),
            ("done", "completed"),
        ]
    # The job ended: its poller stopped, and nobody follows it any more.
    assert (hub_of(app).pollers, hub_of(app).followers) == (0, 0)
    assert poller_tasks(live) == []


@pytest.mark.timeout(30)
def test_the_poller_stops_as_soon_as_the_last_follower_leaves(
    app: FastAPI, live: TestClient
) -> None:
    job_id = add_job(status=JobStatus.PENDING)
    path = f"/api/excel/import/{job_id}/events"

    with live.stream("GET", path) as staying:
        stayer = read_events(staying)
        assert next(stayer)[0] == "progress"
        with live.stream("GET", path) as leaving:
            assert next(read_events(leaving))[0] == "progress"
            assert hub_of(app).followers == 2
        assert (hub_of(app).pollers, hub_of(app).followers) == (1, 1)
        reads = hub_of(app).reads
        # The poller still serves the one who stayed.
        update_job(job_id, status=JobStatus.PROCESSING, total_rows=10, started_at=utcnow())
        assert next(stayer)[1]["status"] == "processing"
        assert hub_of(app).reads > reads

    assert (hub_of(app).pollers, hub_of(app).followers) == (0, 0)
    assert poller_tasks(live) == []
    reads = hub_of(app).reads
    update_job(job_id, status=JobStatus.COMPLETED, finished_at=utcnow())
    assert live.get(f"/api/excel/import/{job_id}/progress").json()["status"] == "completed"
    assert hub_of(app).reads == reads  # nobody reads the job for followers any more


@pytest.mark.timeout(30)
def test_a_stream_beyond_the_cap_is_refused_429_with_a_sentence_until_one_closes(
    live: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_env(monkeypatch, "IMPORTER_MAX_EVENT_STREAMS", "2")
    paths = [f"/api/excel/import/{add_job(status=JobStatus.PENDING)}/events" for _ in range(3)]

    with live.stream("GET", paths[0]) as first:
        assert next(read_events(first))[0] == "progress"
        with live.stream("GET", paths[1]) as second:
            assert next(read_events(second))[0] == "progress"
            with live.stream("GET", paths[2]) as refused:
                refused.read()
                assert refused.status_code == 429
                assert refused.headers["retry-after"] == "5"
                detail = refused.json()["detail"]
        # One closed: its place is free at once.
        with live.stream("GET", paths[2]) as third:
            assert third.status_code == 200
            assert next(read_events(third))[0] == "progress"

    assert detail == (
        "too many event streams are open (the most is 2); try again in 5 s,"
        " or read the job's progress instead"
    )


@pytest.mark.timeout(30)
def test_a_stream_ends_after_its_longest_life_with_a_hint_to_reconnect(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_env(monkeypatch, "IMPORTER_EVENT_STREAM_MAX_S", "0.3")
    job_id = add_job(status=JobStatus.PENDING)

    # The job never changes: only the stream's longest life can end this request.
    text = client.get(f"/api/excel/import/{job_id}/events").text

    events = parse(text)
    assert [name for name, _ in events] == ["progress", "comment"]
    assert events[0][1]["status"] == "pending"
    assert text.endswith(": this stream reached its longest life; reconnect\nretry: 2000\n\n")


@pytest.mark.timeout(30)
def test_a_client_that_leaves_frees_its_place_at_once_while_nothing_is_sent(
    app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Nothing would be written for an hour: the stream must notice the leave by itself.
    monkeypatch.setattr(fanout, "POLL_INTERVAL_S", 3600)
    monkeypatch.setattr(streams, "HEARTBEAT_S", 3600)
    job_id = add_job(status=JobStatus.PENDING)
    path = f"/api/excel/import/{job_id}/events"
    scope = {
        "type": "http",
        # An ASGI 2.4 server reports a disconnect only to whoever asks for it.
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
    left: dict[str, int] = {}

    async def follow_then_leave() -> None:
        gone = asyncio.Event()
        requested = False

        async def receive() -> dict[str, Any]:
            nonlocal requested
            if not requested:
                requested = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await gone.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.body" and message.get("body"):
                bodies.append(message["body"])
                gone.set()

        await asyncio.wait_for(app(scope, receive, send), timeout=5)
        hub = hub_of(app)
        left.update(pollers=hub.pollers, followers=hub.followers)
        left["tasks"] = sum(t.get_name().startswith("poll") for t in asyncio.all_tasks())

    asyncio.run(follow_then_leave())

    assert bodies[0].startswith(b"event: progress")
    assert left == {"pollers": 0, "followers": 0, "tasks": 0}


PER_CLIENT_REFUSAL = (
    "this client has 2 event streams open, the most one client may have; close one and try"
    " again in 5 s, or read the job's progress instead"
)


@pytest.mark.timeout(30)
def test_one_client_beyond_its_own_cap_is_refused_429_and_1013_while_others_are_served(
    importer_env: Path, monkeypatch: pytest.MonkeyPatch, trigger: FakeTrigger
) -> None:
    # Keys set: a client is the label of its key (two keys under one label are one client).
    monkeypatch.setenv("IMPORTER_API_KEYS", f"ci:{'a' * 16},ci:{'b' * 16},other:{'c' * 16}")
    set_env(monkeypatch, "IMPORTER_MAX_STREAMS_PER_CLIENT", "2")
    app = create_app()
    app.dependency_overrides[get_trigger] = lambda: trigger
    path = f"/api/excel/import/{add_job(status=JobStatus.PENDING)}/events"
    ci_a, ci_b, other = ({"Authorization": f"Bearer {k * 16}"} for k in "abc")

    with (
        TestClient(app) as live,
        live.stream("GET", path, headers=ci_a) as first,
        live.stream("GET", path, headers=ci_b) as second,
    ):
        for stream in (first, second):
            assert next(read_events(stream))[0] == "progress"
        with live.stream("GET", path, headers=ci_a) as refused:
            # Read only a refusal: a stream served instead would never end.
            status, retry = refused.status_code, refused.headers.get("retry-after")
            body = json.loads(refused.read()) if status == 429 else None
        with live.websocket_connect(path.replace("/events", "/ws"), headers=ci_b) as socket:
            closed = closing(socket)
        # Another client is served: the cap is one client's, not everyone's.
        with live.stream("GET", path, headers=other) as third:
            assert next(read_events(third))[0] == "progress"
            assert hub_of(app).followers == 3

    assert (status, retry) == (429, "5")
    assert body == {"detail": PER_CLIENT_REFUSAL}
    assert (closed.code, closed.reason) == (1013, PER_CLIENT_REFUSAL)


def test_without_keys_a_client_is_its_address_and_a_place_frees_as_it_leaves() -> None:
    async def follow() -> list[str]:
        async def read(job_id: uuid.UUID, links: JobLinks) -> JobProgress | None:
            return None

        hub, said = Hub(read), []
        links = JobLinks("p", "e", "x")
        async with AsyncExitStack() as stack:
            for _ in range(2):
                await stack.enter_async_context(
                    hub.follow(uuid.uuid4(), links, limit=10, client="10.0.0.1", per_client=2)
                )
            try:
                async with hub.follow(
                    uuid.uuid4(), links, limit=10, client="10.0.0.1", per_client=2
                ):
                    said.append("served")
            except StreamsFull as full:
                said.append(str(full))
            async with hub.follow(uuid.uuid4(), links, limit=10, client="10.0.0.2", per_client=2):
                said.append("other address served")
        async with hub.follow(uuid.uuid4(), links, limit=10, client="10.0.0.1", per_client=2):
            said.append("served after leaving")
        return said

    assert asyncio.run(follow()) == [
        PER_CLIENT_REFUSAL,
        "other address served",
        "served after leaving",
    ]
