"""The web page as a person uses it: upload, live progress, errors, cancel, links, small screens."""

from __future__ import annotations

import csv
import io
import re
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from devtools.stack import MAX_UPLOAD_BYTES, RunningStack, wait_for
from tests.contract.workbooks import write_csv, write_xlsx
from tests.e2e.workers import Gate, held, import_gate
from tests.web.conftest import Console, screenshot, watch

pytestmark = pytest.mark.stack

FINISH_S = 180  # seconds for a flow run to start and an import to end on a busy 2-core machine
FINISH_MS = FINISH_S * 1000
DASH = "\u2013"  # the en dash of "Rows 1-25 of 30"


def catalogue(prefix: str, n: int, *, price: Any = 2.5) -> list[list[Any]]:
    return [["SKU", "Name", "Price", "Qty"]] + [
        [f"{prefix}-{i:06d}", f"Item {i}", price, i] for i in range(n)
    ]


def with_errors(prefix: str, n: int, bad: dict[int, tuple[Any, Any]]) -> list[list[Any]]:
    """`n` item rows whose data row i (0-based) gets (price, qty) from `bad`."""
    rows = catalogue(prefix, n)
    for i, (price, qty) in bad.items():
        rows[i + 1][2:4] = [price, qty]
    return rows


def upload_through_page(page: Page, path: Path, **options: Any) -> None:
    """Choose the file with the picker, set the options, and press Import."""
    page.goto("/")
    page.locator("#file-input").set_input_files(str(path))
    if "sheet" in options:
        page.get_by_label("Sheet").fill(options["sheet"])
    if "on_error" in options:
        page.get_by_label("When a row is invalid").select_option(options["on_error"])
    if options.get("dry_run"):
        page.get_by_label("Dry run").check()
    if not options.get("review"):  # on by default
        page.get_by_label("Review before importing").uncheck()
    page.get_by_role("button", name="Import", exact=True).click()


def record_progress(page: Page) -> None:
    """Keep every state the job card shows (bar value, sentence, created count) in the page,
    from the one it shows now."""
    page.evaluate(
        """() => {
        window.__seen = [];
        const bar = document.getElementById("job-progress");
        const text = document.getElementById("job-progress-text");
        const created = document.getElementById("count-created");
        const keep = () => {
            const state = [bar.getAttribute("aria-valuenow"), text.textContent, created.textContent];
            const last = window.__seen[window.__seen.length - 1];
            if (!last || last.join("|") !== state.join("|")) window.__seen.push(state);
        };
        keep();
        new MutationObserver(keep).observe(document.getElementById("job"), {
            subtree: true, childList: true, characterData: true, attributes: true,
        });
    }"""
    )


def seen_progress(page: Page) -> list[tuple[float | None, str, int]]:
    return [
        (None if now is None else float(now), text, int(created.replace(",", "")))
        for now, text, created in page.evaluate("() => window.__seen")
    ]


def job_id_in(page: Page) -> str:
    match = re.search(r"[?&]job=([0-9a-f-]{36})", page.url)
    assert match, page.url
    return match.group(1)


def expect_finished(page: Page, status: str) -> None:
    expect(page.locator("#job-status")).to_have_text(status.capitalize(), timeout=FINISH_MS)


def test_upload_shows_live_progress_until_the_bar_is_full_with_the_right_counts(
    page: Page, stack: RunningStack, tmp_path: Path
) -> None:
    path = write_xlsx(tmp_path / "catalogue.xlsx", catalogue("W1", 9713))
    page.goto("/")
    expect(page.get_by_role("heading", name="Import a spreadsheet")).to_be_visible()
    page.locator("#file-input").set_input_files(str(path))
    expect(page.locator("#file-info")).to_contain_text(
        f"catalogue.xlsx · {path.stat().st_size / 1024:.1f} KiB"
    )
    screenshot(page, "upload-file-chosen")
    page.get_by_label("Review before importing").uncheck()  # on by default: straight in
    # Held mid-import for a moment, so the bar is seen between 0 and 100 on any machine.
    with import_gate(stack.hold_dir, path.name) as gate:
        page.get_by_role("button", name="Import", exact=True).click()

        expect(page).to_have_url(re.compile(r"\?job=[0-9a-f-]{36}$"))
        expect(page.get_by_role("heading", name="Import of catalogue.xlsx")).to_be_visible()
        record_progress(page)
        bar = page.get_by_role("progressbar")
        expect(bar).to_have_attribute("aria-valuemin", "0")
        expect(bar).to_have_attribute("aria-valuemax", "100")
        with held(gate):
            expect(page.locator("#count-created")).not_to_have_text("0", timeout=FINISH_MS)
            expect(page.locator("#job-progress-text")).to_contain_text(
                "Processing", timeout=FINISH_MS
            )
            screenshot(page, "progress-running")
    expect(bar).to_have_attribute("aria-valuenow", "100", timeout=FINISH_MS)
    expect_finished(page, "completed")

    expect(page.locator("#job-progress-text")).to_have_text("Processed 9,713 / 9,713 items")
    expect(bar).to_have_attribute("aria-valuetext", "9,713 of 9,713 items, 100 %")
    for name, value in [
        ("created", "9,713"),
        ("updated", "0"),
        ("unchanged", "0"),
        ("failed", "0"),
    ]:
        expect(page.locator(f"#count-{name}")).to_have_text(value)
    expect(page.get_by_role("status")).to_have_text(
        "Import completed: 9,713 created, 0 updated, 0 unchanged, 0 failed."
    )
    expect(page.locator("#job-rate")).to_have_text(re.compile(r"[\d,]+ rows/s"))
    expect(page.get_by_role("link", name="Open the run in Prefect")).to_have_attribute(
        "href", re.compile(r"^http://.*/runs/flow-run/[0-9a-f-]{36}$")
    )
    expect(page.locator("#row-errors")).to_be_hidden()
    row = page.locator(f"#history-body tr[data-job-id='{job_id_in(page)}']")
    expect(row).to_contain_text("Completed")
    expect(row).to_contain_text("9,713")
    screenshot(page, "progress-completed")

    seen = seen_progress(page)
    values = [v for v, _, _ in seen if v is not None]
    assert values == sorted(values), seen
    middle = [(v, text) for v, text, _ in seen if v is not None and 0 < v < 100]
    assert middle, f"the bar never showed a value between 0 and 100: {seen}"
    assert all(re.fullmatch(r"Processing [\d,]+ / 9,713 items", t) for _, t in middle), middle
    created = [c for _, _, c in seen]
    assert created == sorted(created) and len(set(created)) > 2, created


def test_row_errors_are_paged_in_a_table_and_download_as_csv(page: Page, tmp_path: Path) -> None:
    # 30 bad rows of 60: two pages of 25. Cell values are user data: markup must stay text.
    bad: dict[int, tuple[Any, Any]] = {i: ("abc", i) for i in range(0, 60, 2)}
    bad[0] = ("<img src=x onerror=alert(1)>", 0)
    bad[2] = ("@SUM(A1)", 2)  # openpyxl would store "=..." as a formula
    rows = with_errors("W2", 60, bad)
    rows[0].append("Colour")  # not an item field: a warning
    path = write_xlsx(tmp_path / "with-errors.xlsx", rows)
    upload_through_page(page, path)
    expect_finished(page, "completed")
    expect(page.locator("#job-warnings-list li")).to_have_text(
        ["column 'Colour' is not an item field and was ignored"]
    )
    expect(page.locator("#job-progress-text")).to_have_text("Processed 60 / 60 items")
    expect(page.locator("#count-created")).to_have_text("30")
    expect(page.locator("#count-failed")).to_have_text("30")

    table = page.get_by_role("table", name="Rows that were not imported, in sheet order")
    expect(page.get_by_role("heading", name="Row errors (30)")).to_be_visible()
    expect(table.locator("tbody tr")).to_have_count(25)
    first = table.locator("tbody tr").first
    expect(first.locator("td")).to_have_text(
        ["2", "price", "<img src=x onerror=alert(1)>", "price is not a number"]
    )
    assert table.locator("img").count() == 0
    expect(page.locator("#errors-range")).to_have_text(f"Rows 1{DASH}25 of 30")
    expect(page.get_by_role("button", name="Previous")).to_be_disabled()
    screenshot(page, "row-errors")
    page.get_by_role("button", name="Next").click()
    expect(page.locator("#errors-range")).to_have_text(f"Rows 26{DASH}30 of 30")
    expect(table.locator("tbody tr")).to_have_count(5)
    expect(table.locator("tbody tr").last.locator("td").first).to_have_text("60")
    expect(page.get_by_role("button", name="Next")).to_be_disabled()
    page.get_by_role("button", name="Previous").click()
    expect(page.locator("#errors-range")).to_have_text(f"Rows 1{DASH}25 of 30")

    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download CSV").click()
    download = download_info.value
    assert download.suggested_filename == f"import-{job_id_in(page)}-errors.csv"
    data = Path(download.path()).read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")
    records = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert records[0] == ["row", "column", "value", "message"]
    assert len(records) == 31
    assert records[1] == ["2", "price", "<img src=x onerror=alert(1)>", "price is not a number"]
    assert records[2] == ["4", "price", "'@SUM(A1)", "price is not a number"]
    assert [int(r[0]) for r in records[1:]] == list(range(2, 62, 2))


def test_cancel_from_the_page_stops_a_long_import_and_retry_finishes_it(
    page: Page, console: Console, stack: RunningStack, tmp_path: Path
) -> None:
    path = write_xlsx(tmp_path / "page-long.xlsx", catalogue("W3", 30_000))
    gate = Gate(stack.hold_dir, path.name)
    gate.arm(after_rows=1)
    upload_through_page(page, path)
    expect(page.get_by_role("heading", name="Import of page-long.xlsx")).to_be_visible()
    job_id = job_id_in(page)

    # The same file again while the first import runs: the server's 409, said as a sentence.
    console.allow_refusal(409)
    page.locator("#file-input").set_input_files(str(path))
    page.get_by_role("button", name="Import", exact=True).click()
    refusal = page.locator("#upload-message")
    expect(refusal).to_contain_text("This file is already being imported with the same options")
    screenshot(page, "upload-409")
    page.get_by_role("button", name="Open the running import").click()
    expect(refusal).to_be_hidden()
    assert job_id_in(page) == job_id

    # Cancel once a batch is committed, so the cancelled job has something to resume from.
    expect(page.locator("#job-progress-text")).to_have_text(
        re.compile(r"^Processing [1-9][\d,]* / 30,000 items$"), timeout=FINISH_MS
    )
    with held(gate), page.expect_response(re.compile(r"/cancel$")) as sent:
        page.get_by_role("button", name="Cancel import").click()
    assert sent.value.status == 202
    expect_finished(page, "cancelled")
    text = page.locator("#job-progress-text").inner_text()
    match = re.fullmatch(r"Cancelled at ([\d,]+) / 30,000 items", text)
    assert match, text
    processed = int(match.group(1).replace(",", ""))
    assert 0 < processed < 30_000
    expect(page.locator("#count-created")).to_have_text(f"{processed:,}")
    expect(page.get_by_role("button", name="Cancel import")).to_be_hidden()
    expect(page.get_by_role("status")).to_contain_text("Import cancelled")
    screenshot(page, "cancelled")

    page.get_by_role("button", name="Retry import").click()
    expect_finished(page, "completed")
    expect(page.locator("#job-progress-text")).to_have_text("Processed 30,000 / 30,000 items")
    expect(page.locator("#count-created")).to_have_text("30,000")
    expect(page.get_by_role("button", name="Retry import")).to_be_hidden()


def test_a_job_link_opened_later_shows_that_job_live(
    browser: Browser, stack: RunningStack, api: httpx.Client, tmp_path: Path
) -> None:
    path = write_xlsx(tmp_path / "linked.xlsx", catalogue("W4", 5000))
    gate = Gate(stack.hold_dir, path.name)
    gate.arm(after_rows=1)
    with path.open("rb") as f:
        job_id = api.post("/api/excel/import", files={"file": (path.name, f)}).json()["job_id"]
    for address in (f"/?job={job_id}", f"/#job={job_id}"):
        console = Console()
        context = browser.new_context(base_url=stack.api, viewport={"width": 1024, "height": 800})
        tab = context.new_page()
        watch(tab, console)
        live = address.startswith("/?")
        if live:  # opened mid-import (held there while it opens): the page follows the job
            with held(gate):
                tab.goto(address)
                expect(tab.get_by_role("heading", name="Import of linked.xlsx")).to_be_visible()
                record_progress(tab)
                expect(tab.locator("#job-progress-text")).to_contain_text("Processing ")
        else:
            tab.goto(address)
            expect(tab.get_by_role("heading", name="Import of linked.xlsx")).to_be_visible()
        expect_finished(tab, "completed")
        expect(tab.locator("#job-progress-text")).to_have_text("Processed 5,000 / 5,000 items")
        expect(tab.locator("#count-created")).to_have_text("5,000")
        if live:
            texts = [text for _, text, _ in seen_progress(tab)]
            assert any(t.startswith("Processing ") for t in texts), texts
        expect(tab.locator(f"#history-body tr[data-job-id='{job_id}']")).to_have_attribute(
            "aria-current", "true"
        )
        # Reloading keeps the job in view.
        tab.reload()
        expect(tab.get_by_role("heading", name="Import of linked.xlsx")).to_be_visible()
        expect(tab.get_by_role("progressbar")).to_have_attribute("aria-valuenow", "100")
        context.close()
        assert not console.unexpected(), console.unexpected()


def test_history_filters_by_status_and_opens_a_job(
    page: Page, api: httpx.Client, tmp_path: Path
) -> None:
    path = write_xlsx(tmp_path / "history.xlsx", catalogue("W5", 50))
    with path.open("rb") as f:
        job_id = api.post("/api/excel/import", files={"file": (path.name, f)}).json()["job_id"]
    wait_for(api, job_id, {"completed"}, timeout=FINISH_S)
    page.goto("/")
    rows = page.locator("#history-body tr")
    expect(rows.first).to_be_visible()
    page.get_by_label("Status").select_option("cancelled")
    expect(page.locator("#history-body tr[data-job-id='" + job_id + "']")).to_have_count(0)
    for badge in rows.locator(".badge").all():
        expect(badge).to_have_text("Cancelled")
    page.get_by_label("Status").select_option("completed")
    link = page.locator(f"#history-body tr[data-job-id='{job_id}']").get_by_role(
        "link", name="history.xlsx"
    )
    link.focus()
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(rf"\?job={job_id}$"))
    expect(page.get_by_role("heading", name="Import of history.xlsx")).to_be_visible()
    expect(page.locator("#job-progress-text")).to_have_text("Processed 50 / 50 items")
    page.go_back()
    expect(page.locator("#job")).to_be_hidden()


def test_refused_uploads_are_explained_in_one_sentence(
    page: Page, console: Console, tmp_path: Path
) -> None:
    page.goto("/")
    expect(page.locator("#upload-hint")).to_contain_text("up to 1 MiB")
    console.allow_refusal(413)
    console.allow_refusal(415)
    message = page.locator("#upload-message")
    # Just over the limit (refused while stored) and far over it (refused by its length).
    for size in (MAX_UPLOAD_BYTES + 10, 3 * MAX_UPLOAD_BYTES):
        big = tmp_path / f"big-{size}.csv"
        big.write_bytes(b"SKU,Name\n" + b"A,b\n" * (size // 4))
        page.locator("#file-input").set_input_files(str(big))
        expect(page.locator("#file-info")).to_contain_text("larger than the 1 MiB limit")
        page.get_by_role("button", name="Import", exact=True).click()
        # The page and the server state the limit alike.
        expect(message).to_have_text("The file is larger than the limit of 1 MiB.")
        expect(message).to_have_attribute("role", "alert")
    screenshot(page, "upload-413")
    photo = tmp_path / "photo.png"
    photo.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    page.locator("#file-input").set_input_files(str(photo))
    page.get_by_role("button", name="Import", exact=True).click()
    expect(message).to_contain_text("This file is not a spreadsheet we can read")
    expect(page).not_to_have_url(re.compile("job="))


def test_page_fits_a_360_px_screen_without_horizontal_scrolling(
    browser: Browser, stack: RunningStack, api: httpx.Client, tmp_path: Path
) -> None:
    bad = {i: ("not a price " * 8, i) for i in range(0, 20, 3)}
    path = write_xlsx(
        tmp_path / "a-rather-long-file-name-for-a-small-screen.xlsx", with_errors("W6", 20, bad)
    )
    with path.open("rb") as f:
        job_id = api.post("/api/excel/import", files={"file": (path.name, f)}).json()["job_id"]
    wait_for(api, job_id, {"completed"}, timeout=FINISH_S)
    console = Console()
    context = browser.new_context(
        base_url=stack.api, viewport={"width": 360, "height": 780}, is_mobile=True, has_touch=True
    )
    tab = context.new_page()
    watch(tab, console)
    for address in ("/", f"/?job={job_id}"):
        tab.goto(address)
        expect(tab.locator("#history-body tr").first).to_be_visible()
        if "job=" in address:
            expect(tab.locator("#row-errors-body tr")).to_have_count(7)
        widths = tab.evaluate(
            "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
        )
        assert widths[0] <= widths[1] == 360, f"{address}: page is {widths[0]} px wide"
    screenshot(tab, "mobile-360-job")
    context.close()
    assert not console.unexpected(), console.unexpected()


def test_progress_falls_back_to_polling_when_the_event_stream_drops(
    page: Page, console: Console, tmp_path: Path
) -> None:
    console.allow(r"console\.error: Failed to load resource: net::ERR_FAILED @ .*/events")
    page.route(re.compile(r".*/api/excel/import/[^/]+/events$"), lambda route: route.abort())
    path = write_xlsx(tmp_path / "polled.xlsx", catalogue("W7", 2000))
    upload_through_page(page, path)
    note = page.locator("#job-connection")
    expect(note).to_have_text(
        "Live updates stopped; checking the progress every 2 seconds instead."
    )
    expect_finished(page, "completed")
    expect(page.locator("#job-progress-text")).to_have_text("Processed 2,000 / 2,000 items")
    expect(page.get_by_role("progressbar")).to_have_attribute("aria-valuenow", "100")
    expect(note).to_be_hidden()


def test_progress_stays_live_when_the_server_ends_a_stream_at_its_longest_life(
    page: Page, tmp_path: Path
) -> None:
    # The first stream ends at once as one reaching IMPORTER_EVENT_STREAM_MAX_S does.
    opened: list[str] = []

    def events(route: Any) -> None:
        opened.append(route.request.url)
        if len(opened) > 1:
            route.continue_()
            return
        route.fulfill(
            status=200,
            headers={"content-type": "text/event-stream"},
            body=": this stream reached its longest life; reconnect\nretry: 200\n\n",
        )

    page.route(re.compile(r".*/api/excel/import/[^/]+/events$"), events)
    # Every note the connection line shows, from the page's first moment.
    page.add_init_script(
        """document.addEventListener("DOMContentLoaded", () => {
            window.__notes = [];
            const note = document.getElementById("job-connection");
            new MutationObserver(() => window.__notes.push(note.textContent)).observe(
                note, {subtree: true, childList: true, characterData: true});
        });"""
    )
    path = write_xlsx(tmp_path / "reconnected.xlsx", catalogue("W8", 2000))
    upload_through_page(page, path)
    expect_finished(page, "completed")

    expect(page.locator("#job-progress-text")).to_have_text("Processed 2,000 / 2,000 items")
    assert len(opened) >= 2, opened
    assert not [n for n in page.evaluate("() => window.__notes") if "stopped" in n]


def test_every_control_has_a_label_and_the_keyboard_reaches_them(page: Page) -> None:
    page.goto("/")
    unlabelled = page.evaluate(
        """() => [...document.querySelectorAll("input, select, textarea, button, a[href]")]
            .filter((node) => !node.closest("[hidden]"))
            .filter((node) => {
                const labelled = node.labels && node.labels.length > 0;
                const named = (node.getAttribute("aria-label") || node.textContent || "").trim();
                return !(labelled || named);
            })
            .map((node) => node.outerHTML)"""
    )
    assert unlabelled == []
    order = []
    for _ in range(15):
        page.keyboard.press("Tab")
        order.append(
            page.evaluate(
                "() => document.activeElement.id || document.activeElement.textContent.trim()"
            )
        )
    expected = [
        "file-input",
        "sheet-input",
        "encoding-select",
        "delimiter-select",
        "decimal-select",
        "on-error-select",
        "mode-select",
        "review-input",
        "dry-run-input",
        "upload-button",
    ]
    positions = [order.index(name) for name in expected]
    assert positions == sorted(positions), order
    page.locator("#dry-run-input").focus()
    page.keyboard.press("Space")
    expect(page.get_by_label("Dry run")).to_be_checked()
    page.get_by_role("button", name="Import", exact=True).focus()
    page.keyboard.press("Enter")
    expect(page.locator("#upload-message")).to_have_text("Choose a file to import first.")
    expect(page.locator("#file-input")).to_be_focused()


def test_a_dropped_file_is_the_one_imported(page: Page) -> None:
    page.goto("/")
    # What a drag from the desktop delivers: a DataTransfer holding one File.
    page.evaluate(
        """() => {
        const text = "SKU,Name,Price\\nD-1,Dropped one,1.25\\nD-2,Dropped two,2.50\\n";
        const transfer = new DataTransfer();
        transfer.items.add(new File([text], "dropped.csv", { type: "text/csv" }));
        const zone = document.getElementById("dropzone");
        for (const type of ["dragenter", "dragover", "drop"]) {
            zone.dispatchEvent(new DragEvent(type, { bubbles: true, cancelable: true, dataTransfer: transfer }));
        }
    }"""
    )
    expect(page.locator("#file-info")).to_have_text("dropped.csv · 57 bytes")
    page.get_by_label("Review before importing").uncheck()
    page.get_by_role("button", name="Import", exact=True).click()
    expect(page.get_by_role("heading", name="Import of dropped.csv")).to_be_visible()
    expect_finished(page, "completed")
    expect(page.locator("#job-progress-text")).to_have_text("Processed 2 / 2 items")
    expect(page.locator("#count-created")).to_have_text("2")


def test_review_maps_a_column_shows_the_changes_and_confirms_to_the_full_bar(
    page: Page, api: httpx.Client, stack: RunningStack, tmp_path: Path
) -> None:
    base = write_csv(
        tmp_path / "page-base.csv",
        [["SKU", "Name", "Price"], ["RV-1", "Bolt", 1], ["RV-2", "Nut", 2]],
    )
    with base.open("rb") as f:
        job = api.post("/api/excel/import", files={"file": (base.name, f)}).json()["job_id"]
    wait_for(api, job, {"completed"}, FINISH_S)
    # "Preis" is no alias: the price column is ignored until it is mapped here.
    rows = [
        ["SKU", "Name", "Preis"],
        ["RV-1", "Bolt", 1.5],
        ["RV-2", "Nut", 2],
        ["RV-3", "Washer", 0.1],
    ]
    upload_through_page(page, write_csv(tmp_path / "page-prices.csv", rows), review=True)

    review = page.locator("#review")
    expect(review).to_be_visible(timeout=FINISH_MS)
    expect(page.locator("#job-status")).to_have_text("Awaiting review")
    expect(page.locator("#review-summary")).to_have_text(
        "3 rows: 1 to create, 0 to update, 2 unchanged, 0 failing."
        " Nothing is written until you confirm."
    )
    preis = page.get_by_label("Field for the column Preis")
    expect(preis).to_have_value("")  # ignored
    preis.select_option("price")
    page.get_by_role("button", name="Preview with these settings").click()

    expect(page.locator("#review-summary")).to_contain_text(
        "3 rows: 1 to create, 1 to update, 1 unchanged", timeout=FINISH_MS
    )
    changes = page.locator("#review-changes-body tr")
    expect(changes).to_have_count(2)
    expect(changes.nth(0)).to_contain_text("RV-1")
    expect(changes.nth(0)).to_contain_text("price: 1 → 1.5")
    expect(changes.nth(1)).to_contain_text("New item")
    screenshot(page, "review")

    page.get_by_role("button", name="Confirm import").click()
    expect_finished(page, "completed")
    expect(page.get_by_role("progressbar")).to_have_attribute("aria-valuenow", "100")
    expect(page.locator("#count-updated")).to_have_text("1")
    expect(page.locator("#count-created")).to_have_text("1")
    expect(review).to_be_hidden()
    with sqlite3.connect(stack.data_dir / "importer.db") as db:
        prices = dict(db.execute("SELECT sku, price FROM item WHERE sku LIKE 'RV-%'").fetchall())
    assert prices == {"RV-1": 1.5, "RV-2": 2, "RV-3": 0.1}
