"""Requests for unknown host names (DNS rebinding) and writes from other sites are refused."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.types import Message, Receive, Scope, Send
from starlette.websockets import WebSocketDisconnect

from api.origin import FOREIGN_ORIGIN, OriginCheck, host_name
from db.models import JobStatus
from tests.api.helpers import add_job, all_jobs
from tests.conftest import LOCAL_HOSTS


@pytest.fixture
def local_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """The default: only the local names."""
    from settings import get_settings

    monkeypatch.setenv("IMPORTER_ALLOWED_HOSTS", LOCAL_HOSTS)
    get_settings.cache_clear()


def upload(client: TestClient, workbook: Path, **headers: str) -> int:
    with workbook.open("rb") as f:
        answer = client.post(
            "/api/excel/import", files={"file": f}, headers=headers | {"host": "127.0.0.1:8000"}
        )
    return answer.status_code


@pytest.mark.usefixtures("local_only")
@pytest.mark.parametrize("host", ["attacker.example", "attacker.example:8000", "10.0.0.5"])
def test_a_host_name_the_service_is_not_configured_for_is_refused(
    client: TestClient, host: str
) -> None:
    answer = client.get("/api/excel/imports", headers={"host": host})

    assert answer.status_code == 400
    assert answer.json()["detail"].startswith(
        f"this service does not answer to the host name '{host_name(host)}'"
    )


@pytest.mark.usefixtures("local_only")
@pytest.mark.parametrize("host", ["127.0.0.1:8000", "localhost", "LOCALHOST:8000", "[::1]:8000"])
def test_local_host_names_are_served(client: TestClient, host: str) -> None:
    assert client.get("/api/excel/imports", headers={"host": host}).status_code == 200


def test_configured_domains_are_served(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    from settings import get_settings

    monkeypatch.setenv("IMPORTER_ALLOWED_HOSTS", ".corp.example")
    get_settings.cache_clear()
    assert client.get("/api/health", headers={"host": "imports.corp.example"}).status_code == 200
    assert client.get("/api/health", headers={"host": "corp.example.evil"}).status_code == 400


@pytest.mark.parametrize(
    "headers",
    [
        {"origin": "https://evil.example"},
        {"origin": "http://127.0.0.1:9999"},  # another local service is another site too
        {"origin": "null"},
        {"sec-fetch-site": "cross-site"},
    ],
)
def test_an_upload_from_another_site_is_refused_and_creates_no_job(
    client: TestClient, workbook: Path, headers: dict[str, str]
) -> None:
    with workbook.open("rb") as f:
        answer = client.post(
            "/api/excel/import", files={"file": f}, headers=headers | {"host": "127.0.0.1:8000"}
        )

    assert answer.status_code == 403
    assert answer.json()["detail"].startswith("requests from another site may not change")
    assert all_jobs() == []


def test_a_cancel_from_another_site_is_refused(client: TestClient) -> None:
    job_id = add_job(status=JobStatus.PROCESSING)

    answer = client.post(
        f"/api/excel/import/{job_id}/cancel",
        headers={"origin": "https://evil.example", "host": "127.0.0.1:8000"},
    )

    assert answer.status_code == 403
    assert all_jobs()[0].cancel_requested is False


def test_the_services_own_page_and_plain_clients_may_write(
    client: TestClient, workbook: Path
) -> None:
    assert upload(client, workbook, origin="http://127.0.0.1:8000") == 202
    # The same file again: through the check, to the duplicate rule (409), not 403.
    assert upload(client, workbook, **{"sec-fetch-site": "same-origin"}) == 409
    # No Origin at all: curl, the CLI, another service.
    with workbook.open("rb") as f:
        answer = client.post("/api/excel/import", files={"file": f}, data={"force": "true"})
    assert answer.status_code == 202
    assert len(all_jobs()) == 2


def test_a_configured_origin_may_write(
    client: TestClient, workbook: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from settings import get_settings

    monkeypatch.setenv("IMPORTER_ALLOWED_ORIGINS", "https://app.example.com/")
    get_settings.cache_clear()
    assert upload(client, workbook, origin="https://app.example.com") == 202
    assert upload(client, workbook, origin="https://other.example.com") == 403


def test_reading_from_another_site_is_left_to_the_browser(client: TestClient) -> None:
    # A GET changes nothing; without CORS headers the browser keeps the answer from the page.
    answer = client.get(
        f"/api/excel/import/{uuid.uuid4()}/progress",
        headers={"origin": "https://evil.example", "host": "127.0.0.1"},
    )
    assert answer.status_code == 404
    assert "access-control-allow-origin" not in answer.headers


def test_a_write_or_socket_with_an_origin_that_is_no_url_is_refused(client: TestClient) -> None:
    # `http://[` makes urlsplit raise: it must be an answer, not a 500 before the key check.
    job_id = add_job(status=JobStatus.PROCESSING)
    answer = client.post(f"/api/excel/import/{job_id}/cancel", headers={"origin": "http://["})

    assert answer.status_code == 403
    assert answer.json() == {"detail": FOREIGN_ORIGIN}
    assert all_jobs()[0].cancel_requested is False
    with (
        pytest.raises(WebSocketDisconnect) as refused,
        client.websocket_connect(f"/api/excel/import/{job_id}/ws", headers={"origin": "http://["}),
    ):
        pytest.fail("the socket was opened")
    assert refused.value.code == 1008


# Pieces of the values browsers, proxies and attackers send, so the generated headers come
# near the parser's edges (brackets, ports, schemes) far more often than random text would.
PIECES = st.sampled_from(
    ["http://", "https://", "[", "]", "::1", "127.0.0.1", "localhost", "testserver", ":8000",
     ":", "null", "/", "%", "@", "#", "?", " ", "\t", "evil.example", "\xff", "\u00aa",
     "same-origin", "same-site", "cross-site", "none"]
)  # fmt: skip
# What an HTTP server passes on in a header value: tab, space, visible ASCII and bytes
# 0x80-0xFF (read as Latin-1); it refuses CR, LF, NUL and other control bytes itself.
HEADER_CHARS = st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f")
HEADER_VALUE = st.lists(PIECES | st.text(HEADER_CHARS | st.just("\t"), max_size=3), max_size=6).map(
    "".join
)
URL_LIKE = st.tuples(st.sampled_from(["http://", "https://", "//"]), HEADER_VALUE).map("".join)
OWN_HOSTS = st.sampled_from(["127.0.0.1:8000", "localhost", "[::1]:8000", "testserver"])
METHODS = st.sampled_from(["GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"])


def _through_origin_check(scope: Scope) -> tuple[bool, list[Message]]:
    """Send one request through the middleware: whether it reached the app, and what was sent."""
    reached: list[bool] = []
    sent: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        reached.append(True)

    async def receive() -> Message:
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(OriginCheck(app)(scope, receive, send))
    return bool(reached), sent


@settings(max_examples=600, deadline=None, derandomize=True)
@given(
    kind=st.sampled_from(["http", "websocket"]),
    method=METHODS,
    host=st.none() | OWN_HOSTS | HEADER_VALUE,
    origin=st.none() | OWN_HOSTS.map("http://".__add__) | URL_LIKE | HEADER_VALUE,
    fetch_site=st.none() | HEADER_VALUE,
)
def test_any_host_origin_and_fetch_site_get_a_documented_answer(
    kind: str, method: str, host: str | None, origin: str | None, fetch_site: str | None
) -> None:
    headers = [
        (name, value.encode("latin-1"))
        for name, value in ((b"host", host), (b"origin", origin), (b"sec-fetch-site", fetch_site))
        if value is not None
    ]
    scope: dict[str, Any] = {"type": kind, "path": "/api/excel/imports", "headers": headers}
    if kind == "http":
        scope["method"] = method

    reached, sent = _through_origin_check(scope)

    if reached:
        assert sent == []
    elif kind == "websocket":
        assert sent == [{"type": "websocket.close", "code": 1008}]
    else:
        start, body = sent
        detail = json.loads(body["body"])["detail"]
        if start["status"] == 403:  # only a write is refused for its site; a read is answered
            assert method not in ("GET", "HEAD", "OPTIONS")
            assert detail == FOREIGN_ORIGIN
        else:
            assert start["status"] == 400
            assert detail.startswith("this service does not answer to the host name")
            assert "\n" not in detail
