"""Browser tests of the web page: Debian's Chromium driven by Playwright, against `importer up`."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, expect, sync_playwright

from devtools.stack import ROOT, RunningStack

CHROMIUM = Path("/usr/bin/chromium")
INSTALL_HINT = (
    "Debian's Chromium is missing at /usr/bin/chromium; install it as root with "
    "`apt-get update && apt-get install -y chromium` (Playwright cannot download browsers here)"
)
# As root and on a closed network: no sandbox, no GPU, and none of Chromium's own traffic.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = ROOT / "test-output" / "screenshots"
DESKTOP = {"width": 1280, "height": 900}
# Playwright's 5 s default is tight for a 2-core CI machine that also runs the whole stack.
expect.set_options(timeout=10_000)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless Chromium per module (Playwright's loop ends with it); tests open contexts."""
    if not CHROMIUM.exists():
        pytest.skip(INSTALL_HINT)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def stack(browser: Browser, shared_stack: RunningStack) -> RunningStack:
    """The test process's shared stack: small batches (imports last long enough to watch)
    and a 1 MiB upload limit; each test uploads files and SKUs of its own.

    It asks for `browser` first so that, without Chromium, the tests skip before a stack starts.
    """
    return shared_stack


@pytest.fixture
def api(stack: RunningStack) -> Iterator[httpx.Client]:
    """A plain HTTP client of the stack, to set up jobs without the page."""
    with httpx.Client(base_url=stack.api, timeout=30) as client:
        yield client


@dataclass
class Console:
    """What the page said on its console or threw; `allow()` names the few expected lines."""

    messages: list[str] = field(default_factory=list)
    allowed: list[re.Pattern[str]] = field(default_factory=list)

    def allow(self, pattern: str) -> None:
        """Expect console lines matching `pattern` (a regular expression, whole line)."""
        self.allowed.append(re.compile(pattern))

    def allow_refusal(self, status: int) -> None:
        """Chromium logs every non-2xx answer to fetch or XHR, even one the page handles."""
        self.allow(
            rf"console\.error: Failed to load resource: the server responded with a status "
            rf"of {status} \(.*\) @ .*/api/excel/.*"
        )

    def unexpected(self) -> list[str]:
        """Lines no `allow()` covers."""
        return [m for m in self.messages if not any(p.fullmatch(m) for p in self.allowed)]


@pytest.fixture
def console() -> Console:
    """The test's console log; the `page` fixture fails the test on any unexpected line."""
    return Console()


@pytest.fixture
def page(
    browser: Browser, stack: RunningStack, console: Console, request: pytest.FixtureRequest
) -> Iterator[Page]:
    """A desktop-sized page of the stack that records console messages and page errors."""
    context = browser.new_context(base_url=stack.api, viewport=DESKTOP, accept_downloads=True)
    context.set_default_timeout(15_000)
    tab = context.new_page()
    watch(tab, console)
    yield tab
    context.close()
    assert not console.unexpected(), f"{request.node.name}: the page logged {console.unexpected()}"


def watch(tab: Page, console: Console) -> None:
    """Record every console message (any level) and uncaught error of `tab` in `console`."""

    def on_console(message: ConsoleMessage) -> None:
        where = message.location.get("url", "") if message.location else ""
        console.messages.append(f"console.{message.type}: {message.text} @ {where}")

    tab.on("console", on_console)
    tab.on("pageerror", lambda error: console.messages.append(f"pageerror: {error}"))


def screenshot(tab: Page, name: str, *, full_page: bool = True) -> Path:
    """Save a screenshot under test-output/screenshots/ (git-ignored) and return its path."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    tab.screenshot(path=str(path), full_page=full_page)
    return path
