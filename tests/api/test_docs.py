"""The API docs (/docs, /redoc) load only this origin's pinned files, under a CSP.

They run on the origin whose sessionStorage holds the page's API key, so a script from
elsewhere could read it; and they must work on a machine without internet access.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from fastapi.testclient import TestClient


class _Assets(HTMLParser):
    """Every URL a page loads (src, href) and how many scripts it holds inline."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline_scripts = 0
        self._in_script_without_src = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.urls += [v for k, v in attrs if k in ("src", "href") and v]
        self._in_script_without_src = tag == "script" and not found.get("src")

    def handle_data(self, data: str) -> None:
        if self._in_script_without_src and data.strip():
            self.inline_scripts += 1

    def handle_endtag(self, tag: str) -> None:
        self._in_script_without_src = False


def directives(policy: str) -> dict[str, list[str]]:
    parts = (d.split() for d in policy.split(";") if d.strip())
    return {name: values for name, *values in parts}


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_the_docs_load_only_same_origin_assets_that_are_served_under_a_csp(
    client: TestClient, path: str
) -> None:
    page = client.get(path)
    assert page.status_code == 200
    assets = _Assets()
    assets.feed(page.text)

    assert assets.urls, "the page loads its scripts"
    for url in assets.urls:
        # Same origin: a path of this service, never a scheme or a host (`//cdn...`).
        assert re.match(r"^/(?!/)", url), url
        served = client.get(url)
        assert served.status_code == 200, url
        assert served.headers["x-content-type-options"] == "nosniff"
    assert assets.inline_scripts == 0  # the policy forbids them
    policy = directives(page.headers["content-security-policy"])
    assert policy["script-src"] == ["'self'"]
    assert policy["default-src"] == ["'self'"]
    assert policy["connect-src"] == ["'self'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert page.headers["x-content-type-options"] == "nosniff"


def test_swagger_ui_is_started_by_a_served_script_that_asks_no_validator_elsewhere(
    client: TestClient,
) -> None:
    page = client.get("/docs").text
    assert 'src="/docs-assets/swagger-ui-bundle.js"' in page
    start = client.get("/docs-assets/swagger-init.js")
    assert start.headers["content-type"].startswith(("text/javascript", "application/javascript"))
    assert "validatorUrl: null" in start.text
    assert "SwaggerUIBundle" in client.get("/docs-assets/swagger-ui-bundle.js").text[:1000]
    assert "Redoc" in client.get("/docs-assets/redoc.standalone.js").text[:2000]
