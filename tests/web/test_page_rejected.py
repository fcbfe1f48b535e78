"""The rejected rows on the page: downloaded beside the error table, fixed, uploaded again."""

from __future__ import annotations

from pathlib import Path

import openpyxl
import pytest
from playwright.sync_api import Page, expect

from tests.contract.workbooks import write_xlsx
from tests.web.test_page import expect_finished, job_id_in
from tests.web.test_page import upload_through_page as upload

pytestmark = pytest.mark.stack


def test_rejected_rows_download_beside_the_errors_and_import_once_fixed(
    page: Page, tmp_path: Path
) -> None:
    rows = [
        ["Stock list"],
        ["SKU", "Name", "Price", "Shelf"],
        ["WR-1", "Bolt", 0.5, "A1"],
        ["WR-2", "Nut", "n/a", "A2"],
        ["WR-3", "Washer", 0.1, "A3"],
        ["WR-4", None, 0.2, "B1"],
    ]
    upload(page, write_xlsx(tmp_path / "stock.xlsx", rows))
    expect_finished(page, "completed")
    expect(page.locator("#count-failed")).to_have_text("2")
    first_job = job_id_in(page)

    link = page.get_by_role("link", name="Download rejected rows")
    expect(link).to_be_visible()
    with page.expect_download() as download_info:
        link.click()
    download = download_info.value
    assert download.suggested_filename == "stock-rejected.xlsx"
    fixed = tmp_path / "stock-rejected.xlsx"
    download.save_as(fixed)
    book = openpyxl.load_workbook(fixed)
    sheet = book.worksheets[0]
    table = [list(r) for r in sheet.iter_rows(values_only=True)]
    assert table[0] == ["SKU", "Name", "Price", "Shelf", "Error"]
    assert [r[:4] for r in table[1:]] == [["WR-2", "Nut", "n/a", "A2"], ["WR-4", None, 0.2, "B1"]]
    assert table[1][4].startswith("price") and "name is required" in table[2][4]

    sheet["C2"] = 0.25
    sheet["B3"] = "Spring"
    sheet.append(["WR-1", "Bolt", 0.75, "A1", None])  # stored already: create_only skips it
    book.save(fixed)
    page.goto("/")
    page.locator("#file-input").set_input_files(str(fixed))
    page.get_by_label("Mode").select_option("create_only")
    page.get_by_label("Review before importing").uncheck()
    page.get_by_role("button", name="Import", exact=True).click()
    expect_finished(page, "completed")
    assert job_id_in(page) != first_job
    expect(page.locator("#job-meta")).to_contain_text("create only")
    expect(page.locator("#count-created")).to_have_text("2")
    expect(page.locator("#count-failed")).to_have_text("0")
    expect(page.locator("#count-skipped")).to_have_text("1")
    # The Error column is recognised: only the shelf is not an item field.
    expect(page.locator("#job-warnings-list li")).to_have_text(
        ["column 'Shelf' is not an item field and was ignored"]
    )
    table = page.get_by_role("table", name="Rows that were not imported, in sheet order")
    expect(table.locator("tbody tr")).to_have_count(1)
    expect(table.locator("tbody tr td").last).to_have_text(
        "item 'WR-1' exists and the mode is create_only; it was left alone"
    )
