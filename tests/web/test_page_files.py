"""The page's template and export links: the files they download are the real ones."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import openpyxl
import pytest
from playwright.sync_api import Page

from devtools.stack import wait_for
from itemsheet.sheet.fields import FIELDS
from tests.contract.workbooks import write_xlsx

pytestmark = pytest.mark.stack


def workbook(path: Path) -> openpyxl.Workbook:
    """A downloaded workbook (saved without a suffix, which openpyxl wants)."""
    return openpyxl.load_workbook(io.BytesIO(Path(path).read_bytes()))


def test_the_template_link_and_the_export_button_download_the_real_files(
    page: Page, api: httpx.Client, tmp_path: Path
) -> None:
    rows = [["SKU", "Name", "Price"]] + [[f"WX-{i:03d}", f"Item {i}", 2.5] for i in range(30)]
    with write_xlsx(tmp_path / "files.xlsx", rows).open("rb") as f:
        job = api.post("/api/excel/import", files={"file": ("files.xlsx", f)}).json()
    assert wait_for(api, job["job_id"], {"completed", "failed"}, 180)["status"] == "completed"

    page.goto("/")
    with page.expect_download() as template_info:
        page.get_by_role("link", name="Download template", exact=True).click()
    template = template_info.value
    assert template.suggested_filename == "items-template.xlsx"
    book = workbook(template.path())
    assert book.sheetnames == ["Items", "Fields"]
    header = [c.value for c in book["Items"][1]]
    assert [h.rstrip(" *") for h in header] == [f.label for f in FIELDS]

    with page.expect_download() as export_info:
        page.get_by_role("link", name="Export items", exact=True).click()
    export = export_info.value
    assert export.suggested_filename == "items.xlsx"
    sheet = workbook(export.path()).worksheets[0]
    exported = {r[0]: r[1:] for r in sheet.iter_rows(min_row=2, values_only=True)}
    assert {f"WX-{i:03d}" for i in range(30)} <= set(exported)
    assert exported["WX-007"][0] == "Item 7" and exported["WX-007"][4] == 2.5
