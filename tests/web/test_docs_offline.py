"""The API docs render in a browser that reaches nothing but this service, under their CSP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Route, expect

from api.deps import get_trigger
from api.main import create_app
from tests.api.helpers import FakeTrigger, serve
from tests.web.conftest import DESKTOP, Console, screenshot, watch


@pytest.fixture
def api_url(importer_env: Path) -> Iterator[str]:
    """The app alone (no Prefect, no worker) behind uvicorn."""
    app = create_app()
    app.dependency_overrides[get_trigger] = lambda: FakeTrigger()
    with serve(app) as url:
        yield url


@pytest.mark.parametrize(
    ("path", "shown"),
    [("/docs", "#operations-imports-upload_import_api_excel_import_post"), ("/redoc", "h1")],
)
def test_the_docs_render_offline_and_the_policy_refuses_nothing_they_need(
    browser: Browser, api_url: str, path: str, shown: str
) -> None:
    context = browser.new_context(base_url=api_url, viewport=DESKTOP)
    elsewhere: list[str] = []

    def only_here(route: Route) -> None:
        if route.request.url.startswith(api_url):
            route.continue_()
        else:  # as on a machine without internet access
            elsewhere.append(route.request.url)
            route.abort()

    context.route("**/*", only_here)
    tab = context.new_page()
    console = Console()
    # Redoc's sidebar always shows Redocly's logo from their CDN; the policy refuses it
    # (nothing leaves the machine) and Redoc then hides the image.
    console.allow(
        r"console\.error: Loading the image 'https://cdn\.redoc\.ly/redoc/logo-mini\.svg'"
        r" violates the following Content Security Policy directive: .* @ .*/redoc"
    )
    watch(tab, console)
    try:
        tab.goto(path)
        expect(tab.locator(shown).first).to_be_visible()
        expect(tab.get_by_text("Item importer").first).to_be_visible()
        screenshot(tab, f"docs{path.replace('/', '-')}", full_page=False)
    finally:
        context.close()

    assert elsewhere == []
    # A refused script, style, image or worker shows as a console error.
    assert console.unexpected() == []
