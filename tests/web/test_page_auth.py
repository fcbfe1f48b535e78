"""The page of a service with API keys: it asks for a key, then uploads and follows with it."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Request, Response, expect

from devtools.stack import MAX_UPLOAD_BYTES, RunningStack, running_stack
from tests.contract.workbooks import write_xlsx
from tests.e2e.workers import Gate, held
from tests.web.conftest import Console, screenshot
from tests.web.test_page import (
    catalogue,
    expect_finished,
    job_id_in,
    record_progress,
    seen_progress,
)

pytestmark = pytest.mark.stack

KEY = "page-test-key-5d1c"
ROWS = 6000  # 60 batches of 100: long enough to see the counts grow


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, browser: Browser, prefect_server: str
) -> Iterator[RunningStack]:
    """`importer up` that wants `KEY` (and takes a second one), on the shared Prefect server."""
    data_dir = tmp_path_factory.mktemp("web-keyed-stack") / "var"
    with running_stack(
        data_dir,
        prefect_api=prefect_server,
        batch_size="100",
        max_upload_bytes=str(MAX_UPLOAD_BYTES),
        api_keys=f"other-key-0123456789,{KEY}",
    ) as running:
        yield running


def test_page_asks_for_the_key_then_uploads_and_follows_the_import_live(
    page: Page, console: Console, stack: RunningStack, tmp_path: Path
) -> None:
    console.allow_refusal(401)
    requests: list[Request] = []
    streams: list[Response] = []
    page.on("request", lambda r: requests.append(r) if "/api/" in r.url else None)
    page.on("response", lambda r: streams.append(r) if r.url.endswith("/events") else None)

    page.goto("/")
    form = page.get_by_role("region", name="API key needed")
    expect(form).to_be_visible()
    key_input = page.get_by_label("API key", exact=True)
    expect(key_input).to_be_focused()
    expect(page.locator("#history-message")).to_have_text(
        "The service needs an API key: enter it above, then try again."
    )
    screenshot(page, "api-key-asked")

    key_input.fill("not-the-key")
    page.get_by_role("button", name="Use this key").click()
    expect(page.locator("#api-key-message")).to_have_text(
        "The service did not accept that key; check it and enter it again."
    )
    key_input.fill(KEY)
    page.get_by_role("button", name="Use this key").click()
    expect(form).to_be_hidden()
    expect(page.locator("#history-message")).to_be_hidden()

    rows = catalogue("K1", ROWS)
    rows[10][2] = "not a price"
    path = write_xlsx(tmp_path / "keyed.xlsx", rows)
    page.locator("#file-input").set_input_files(str(path))
    page.get_by_label("Review before importing").uncheck()
    gate = Gate(stack.hold_dir, path.name)
    gate.arm(after_rows=1)
    page.get_by_role("button", name="Import", exact=True).click()
    expect(page.get_by_role("heading", name="Import of keyed.xlsx")).to_be_visible()
    record_progress(page)
    with held(gate):  # so the counts are seen mid-way on any machine
        expect(page.locator("#count-created")).not_to_have_text("0")
        expect(page.locator("#job-progress-text")).to_contain_text("Processing ")
    expect_finished(page, "completed")
    expect(page.locator("#job-progress-text")).to_have_text("Processed 6,000 / 6,000 items")
    expect(page.locator("#count-created")).to_have_text("5,999")
    expect(page.locator("#count-failed")).to_have_text("1")
    expect(page.locator("#job-connection")).to_be_hidden()

    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download CSV").click()
    download = download_info.value
    assert download.suggested_filename == f"import-{job_id_in(page)}-errors.csv"
    records = list(csv.reader(io.StringIO(Path(download.path()).read_text("utf-8-sig"))))
    assert records[1][:3] == ["11", "price", "not a price"]

    # The counts grew on the page as batches committed, fed by the event stream, which
    # carried the key in a header.
    created = [c for _, _, c in seen_progress(page)]
    assert created == sorted(created) and len(set(created)) > 2, created
    assert [r.status for r in streams] == [200], [r.status for r in streams]
    after_key = [r for r in requests if r.headers.get("authorization") == f"Bearer {KEY}"]
    assert {re.sub(r"[0-9a-f-]{36}", "ID", r.url.split("/api/")[1]) for r in after_key} >= {
        "excel/import",
        "excel/import/ID/progress",
        "excel/import/ID/events",
        "excel/imports?limit=20",
        "excel/import/ID/errors?limit=25",
        "excel/import/ID/errors.csv",
    }
    assert not [r.url for r in requests if KEY in r.url]
    assert page.evaluate("() => sessionStorage.getItem('importer.apiKey')") == KEY

    # A reload keeps the key for this tab: the job shows at once, nothing is asked.
    page.reload()
    expect_finished(page, "completed")
    expect(form).to_be_hidden()
    screenshot(page, "api-key-job-done")


def test_with_a_key_the_template_and_export_links_fetch_with_it_and_save_the_file(
    page: Page, console: Console, stack: RunningStack
) -> None:
    console.allow_refusal(401)
    page.goto("/")
    page.get_by_label("API key", exact=True).fill(KEY)
    page.get_by_role("button", name="Use this key").click()
    expect(page.get_by_role("region", name="API key needed")).to_be_hidden()
    for name, filename in (
        ("Download template", "items-template.xlsx"),
        ("Export items", "items.xlsx"),
        ("Export items as CSV", "items.csv"),
    ):
        with page.expect_download() as info:
            page.get_by_role("link", name=name, exact=True).click()
        assert info.value.suggested_filename == filename
        data = Path(info.value.path()).read_bytes()
        assert data.startswith(b"\xef\xbb\xbf" if filename.endswith(".csv") else b"PK"), data[:8]
    expect(page.locator("#file-links-message")).to_be_hidden()
