"""The page's route and files as served by the app, without a browser or a running stack."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.routes.page import STATIC_DIR
from settings import get_settings


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.delenv("IMPORTER_MAX_UPLOAD_BYTES", raising=False)
    get_settings.cache_clear()
    # Without `with`, the app's start-up (a database upgrade) does not run: the page needs none.
    yield TestClient(create_app())
    get_settings.cache_clear()


def test_root_answers_the_page_with_the_upload_limit_and_a_strict_policy(
    client: TestClient,
) -> None:
    response = client.get("/?job=0f0e0d0c-0b0a-0908-0706-050403020100")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe" not in policy
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "up to 50 MiB." in response.text
    assert '<meta name="max-upload-bytes" content="52428800">' in response.text
    assert "{{" not in response.text


def test_page_states_a_configured_upload_limit(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IMPORTER_MAX_UPLOAD_BYTES", "2000000")
    get_settings.cache_clear()
    text = client.get("/").text
    assert "up to 1.9 MiB." in text
    assert 'content="2000000"' in text


def test_every_file_the_page_loads_is_served_with_its_type(client: TestClient) -> None:
    page = client.get("/").text
    wanted = set(re.findall(r'(?:href|src)="(static/[^"]+)"', page))
    for module in (STATIC_DIR / "js").glob("*.js"):
        imports = re.findall(r'from "\./([\w-]+\.js)"', module.read_text(encoding="utf-8"))
        wanted |= {f"static/js/{name}" for name in imports}
    assert {"static/style.css", "static/js/main.js", "static/favicon.svg"} <= wanted
    types = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
    for path in sorted(wanted):
        response = client.get(f"/{path}")
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith(types[path[path.rfind(".") :]]), path
        assert response.headers["cache-control"] == "no-cache"


def test_missing_static_file_is_404_and_the_page_is_not_in_the_api_schema(
    client: TestClient,
) -> None:
    assert client.get("/static/js/nope.js").status_code == 404
    assert "/" not in client.get("/openapi.json").json()["paths"]
