"""The page's Undo button: a finished import is undone as a new job the page then follows."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.contract.workbooks import write_xlsx
from tests.web.conftest import Console, screenshot
from tests.web.test_page import FINISH_MS, catalogue, expect_finished, job_id_in
from tests.web.test_page import upload_through_page as upload

pytestmark = pytest.mark.stack


def test_undo_from_the_page_restores_the_items_and_marks_the_import_undone(
    page: Page, console: Console, api: httpx.Client, tmp_path: Path
) -> None:
    upload(page, write_xlsx(tmp_path / "base.xlsx", catalogue("WU", 300)))
    expect_finished(page, "completed")
    # The second sheet changes 100 prices (by 30 %, within the guardrails) and adds 50 items.
    rows = catalogue("WU", 100, price=3.25) + catalogue("WN", 50)[1:]
    upload(page, write_xlsx(tmp_path / "prices.xlsx", rows))
    expect_finished(page, "completed")
    import_id = job_id_in(page)
    expect(page.locator("#count-updated")).to_have_text("100")
    undo = page.get_by_role("button", name="Undo import")
    expect(undo).to_be_visible()
    expect(page.get_by_label("also restore items changed since")).not_to_be_checked()
    screenshot(page, "undo-offered")

    undo.click()
    expect(page).not_to_have_url(re.compile(import_id), timeout=FINISH_MS)
    expect(page.get_by_role("heading", name="Undo of prices.xlsx")).to_be_visible()
    expect_finished(page, "completed")
    expect(page.locator("#job-progress-text")).to_have_text("Processed 150 / 150 items")
    note = page.locator("#undo-note")
    expect(note).to_have_text(
        "Undo of this import: 50 created items deleted, 100 items restored,"
        " 0 left alone (changed since the import)."
    )
    expect(page.get_by_role("button", name="Undo import")).to_be_hidden()  # no undo of an undo
    # The undo's own cards count what it did, in its words.
    cards = page.locator("#job-counts")
    expect(cards.locator(".count-created")).to_have_text(re.compile(r"Deleted\s*50"))
    expect(cards.locator(".count-updated")).to_have_text(re.compile(r"Restored\s*100"))
    expect(cards.locator(".count-failed")).to_have_text(re.compile(r"Left alone\s*0"))
    undo_row = page.locator("#history-body tr").filter(has_text="undo of prices.xlsx")
    expect(undo_row.locator("td[data-label='Deleted']")).to_have_text("-50")
    screenshot(page, "undo-completed")
    row = page.locator(f"#history-body tr[data-job-id='{import_id}']")
    expect(row).to_contain_text("Undone", timeout=FINISH_MS)

    note.get_by_role("link", name="this import").click()
    expect_finished(page, "undone")
    expect(page.locator("#count-updated")).to_have_text("100")  # its counts stay
    expect(page.locator("#label-created")).to_have_text("Created")
    expect(page.get_by_role("button", name="Undo import")).to_be_hidden()
    # Asked again anyway (another tab): the server's 409, said as a sentence.
    again = api.post(f"/api/excel/import/{import_id}/undo")
    assert again.status_code == 409 and again.json()["detail"] == (
        "this import has already been undone"
    )
    items = api.get("/api/excel/imports", params={"status": "undone"}).json()["items"]
    assert import_id in [i["job_id"] for i in items]  # with other tests' undone imports
    assert {i["status"] for i in items} == {"undone"}
