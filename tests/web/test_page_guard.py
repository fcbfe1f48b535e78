"""A guardrail on the page: an upload with its price and stock columns swapped waits, the
review says why in one sentence at its top and draws how far prices and quantities would
move, and Confirm writes it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from devtools.stack import RunningStack, wait_for
from tests.contract.workbooks import write_csv
from tests.web.conftest import screenshot
from tests.web.test_page import FINISH_MS, FINISH_S, expect_finished, upload_through_page

pytestmark = pytest.mark.stack

HEADER = ["SKU", "Name", "Price", "Qty"]
ITEMS = 12


def test_swapped_columns_wait_with_the_guardrails_sentence_and_charts_then_confirm_writes(
    page: Page, api: httpx.Client, stack: RunningStack, tmp_path: Path
) -> None:
    stock = [HEADER] + [[f"PG-{i:02d}", f"Part {i}", 24.5, 2] for i in range(ITEMS)]
    base = write_csv(tmp_path / "guard-stock.csv", stock)
    with base.open("rb") as f:
        job = api.post("/api/excel/import", files={"file": (base.name, f)}).json()["job_id"]
    assert wait_for(api, job, {"completed"}, FINISH_S)["created"] == ITEMS

    # Not asked for a review: the guardrail holds it back all the same.
    swapped = [HEADER] + [[f"PG-{i:02d}", f"Part {i}", 2, 24] for i in range(ITEMS)]
    upload_through_page(page, write_csv(tmp_path / "guard-swapped.csv", swapped))

    expect(page.locator("#job-status")).to_have_text("Awaiting review", timeout=FINISH_MS)
    guard = page.locator("#review-guard")
    expect(guard).to_be_visible()
    expect(guard.get_by_role("heading")).to_have_text(
        "This import looks unusual, so it waits for you"
    )
    expect(guard.locator("li")).to_have_text(
        [
            "12 of 12 updated prices (100 %) would change by more than 50 %;"
            " e.g. PG-00 24.50 -> 2.00, PG-01 24.50 -> 2.00, PG-02 24.50 -> 2.00.",
            "12 of 12 updated prices would change by a factor of 10 or more (cents read as"
            " euros?); e.g. PG-00 24.50 -> 2.00, PG-01 24.50 -> 2.00, PG-02 24.50 -> 2.00.",
        ]
    )
    # The chart of price changes: an image named by its summary, the bars beyond the
    # threshold marked, and the threshold drawn.
    prices = page.get_by_role("img", name="12 stored items' prices would change:")
    expect(prices).to_be_visible()
    expect(page.locator("#chart-prices-summary")).to_have_text(
        "12 stored items' prices would change: 12 by -90 % or less. 12 lie beyond the"
        " guardrail's threshold (more than 50 % either way)."
    )
    expect(page.locator("#chart-prices rect.beyond")).to_have_count(4)
    expect(page.locator("#chart-prices line.chart-threshold")).to_have_count(2)
    expect(page.locator("#chart-quantities-summary")).to_have_text(
        "12 stored items' quantities would change: 12 up over 50 %."
    )
    expect(page.locator("#review-changes-title")).to_have_text("Largest changes first")
    screenshot(page, "review-guard")
    with sqlite3.connect(stack.data_dir / "importer.db") as db:
        before = dict(db.execute("SELECT sku, price FROM item WHERE sku LIKE 'PG-%'").fetchall())
    assert set(before.values()) == {24.5}  # nothing written while it waits

    page.get_by_role("button", name="Confirm import").click()
    expect_finished(page, "completed")
    expect(page.locator("#count-updated")).to_have_text(str(ITEMS))
    with sqlite3.connect(stack.data_dir / "importer.db") as db:
        after = dict(db.execute("SELECT sku, quantity FROM item WHERE sku LIKE 'PG-%'").fetchall())
    assert set(after.values()) == {24}
