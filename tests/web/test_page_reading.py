"""How the page reads a text file: the upload's reading choices, and a review that shows the
encoding, delimiter and decimal mark the server used and changes them before writing."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from devtools.stack import RunningStack
from tests.web.conftest import screenshot
from tests.web.test_page import FINISH_MS, expect_finished, job_id_in

pytestmark = pytest.mark.stack

# What Excel writes for "CSV" on a German Windows: Windows-1252, ';' between cells. Its
# prices read either way ('1.000' is one or one thousand), so nothing in the file decides
# the decimal mark and the server reads them with '.', and says so. (Headers of its own:
# the reading confirmed here is saved for them, and the stack is shared with other tests.)
GERMAN_CSV = (
    "SKU;Product name;Price\r\n"
    "RD-1;Schraube Größe 5;1.000\r\n"
    "RD-2;Mutter für Holz;2.500\r\n"
    "RD-3;Scheibe weiß;12\r\n"
)


# The text fields of each upload's form, kept as the page hands the form to XMLHttpRequest.
KEEP_UPLOAD_FORMS = """(() => {
    window.__forms = [];
    const send = XMLHttpRequest.prototype.send;
    XMLHttpRequest.prototype.send = function (body) {
        if (body instanceof FormData) {
            window.__forms.push(Object.fromEntries(
                [...body.entries()].filter(([, value]) => typeof value === "string")));
        }
        return send.call(this, body);
    };
})();"""


def last_upload_form(page: Page) -> dict[str, str]:
    forms: list[dict[str, str]] = page.evaluate("() => window.__forms")
    assert forms, "no upload was sent"
    return forms[-1]


def test_review_shows_how_a_text_file_was_read_and_a_changed_decimal_mark_is_written(
    page: Page, api: httpx.Client, stack: RunningStack, tmp_path: Path
) -> None:
    path = tmp_path / "preise.csv"
    path.write_bytes(GERMAN_CSV.encode("cp1252"))
    page.add_init_script(KEEP_UPLOAD_FORMS)
    page.goto("/")
    expect(page.locator("#upload-hint")).to_contain_text("text (.csv, .txt, .tsv) in any encoding")
    expect(page.locator("#file-input")).to_have_attribute(
        "accept", re.compile(r"\.csv,\.txt,\.tsv$")
    )
    page.locator("#file-input").set_input_files(str(path))
    upload = page.locator("#upload")
    for label in ("Encoding", "Delimiter", "Decimal mark"):
        expect(upload.get_by_label(label)).to_have_value("")  # detect
    # A choice made is sent with the file; one left at "Detect" is not sent at all.
    upload.get_by_label("Delimiter").select_option(label="Semicolon ( ; )")
    page.get_by_role("button", name="Import", exact=True).click()
    review = page.locator("#review")
    expect(review).to_be_visible(timeout=FINISH_MS)
    form = last_upload_form(page)
    assert form["delimiter"] == ";" and form["review"] == "true"
    assert not {"encoding", "decimal"} & form.keys(), form

    encoding = review.get_by_label("Encoding")
    delimiter = review.get_by_label("Delimiter")
    decimal = review.get_by_label("Decimal mark")
    expect(encoding).to_have_value("cp1252")
    expect(encoding.locator("option:checked")).to_have_text("Windows-1252 (detected)")
    expect(delimiter).to_have_value(";")
    expect(delimiter.locator("option:checked")).to_have_text("Semicolon (chosen)")
    expect(delimiter.locator("option").first).to_have_text("Detect")  # back to detection
    expect(decimal).to_have_value(".")
    expect(decimal.locator("option:checked")).to_have_text("Point (assumed: no value decides it)")
    # The same in words, whole on any screen.
    expect(page.locator("#review-reading-text")).to_have_text(
        "Read as Windows-1252 (detected), ';'-separated (chosen),"
        " decimal mark '.' (assumed: no value decides it)."
    )
    warnings = page.locator("#job-warnings-list")
    expect(warnings).to_contain_text("read as Windows-1252 (detected), ';'-separated")
    expect(page.locator("#job-reading")).to_be_hidden()  # the review says it
    expect(warnings).to_contain_text("read with '.' as the decimal mark")
    changes = page.locator("#review-changes-body tr")
    expect(changes).to_have_count(3)
    rd1 = changes.filter(has_text="RD-1")
    expect(rd1).to_contain_text("name: Schraube Größe 5")
    expect(rd1.locator(".diff div").filter(has_text="price")).to_have_text("price: 1")

    apply = page.get_by_role("button", name="Preview with these settings")
    expect(apply).to_be_hidden()
    decimal.select_option(",")
    expect(apply).to_be_visible()
    expect(page.get_by_role("button", name="Preview and import")).to_be_visible()
    with page.expect_request(re.compile(r"/preview$")) as sent:
        apply.click()
    # Only what the person changed: the encoding and delimiter stay as they were.
    assert json.loads(sent.value.post_data or "") == {"mapping": None, "decimal": ","}

    expect(rd1.locator(".diff div").filter(has_text="price")).to_have_text(
        "price: 1000", timeout=FINISH_MS
    )
    expect(changes.filter(has_text="RD-2")).to_contain_text("price: 2500")
    expect(changes.filter(has_text="RD-3")).to_contain_text("price: 12")
    expect(page.locator("#review-summary")).to_have_text(
        "3 rows: 3 to create, 0 to update, 0 unchanged, 0 failing."
        " Nothing is written until you confirm."
    )
    expect(decimal).to_have_value(",")
    expect(decimal.locator("option:checked")).to_have_text("Comma (chosen)")
    expect(decimal.locator("option").first).to_have_text("Detect")
    expect(encoding.locator("option:checked")).to_have_text("Windows-1252 (detected)")
    expect(warnings).not_to_contain_text("decimal mark")
    expect(apply).to_be_hidden()
    screenshot(page, "review-reading")

    # The review with its reading controls fits a 360 px screen.
    page.set_viewport_size({"width": 360, "height": 780})
    widths = page.evaluate(
        "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert widths[0] <= widths[1] == 360, f"the review is {widths[0]} px wide"
    screenshot(page, "review-reading-360")
    page.set_viewport_size({"width": 1280, "height": 900})

    with page.expect_request(re.compile(r"/confirm$")) as sent:
        page.get_by_role("button", name="Confirm import").click()
    assert json.loads(sent.value.post_data or "") == {"mapping": None}
    expect_finished(page, "completed")
    expect(page.get_by_role("progressbar")).to_have_attribute("aria-valuenow", "100")
    expect(page.locator("#count-created")).to_have_text("3")
    expect(review).to_be_hidden()
    expect(page.locator("#job-reading")).to_have_text(
        "Read as Windows-1252 (detected), ';'-separated, decimal mark ','"
    )
    screenshot(page, "reading-completed")

    job = api.get(f"/api/excel/import/{job_id_in(page)}/progress").json()
    assert job["decimal"] == ","
    assert job["encoding"] is None and job["delimiter"] == ";"
    assert job["reading"]["decimal"]["how"] == "given"
    assert job["reading"]["encoding"] == {
        "value": "cp1252",
        "label": "Windows-1252",
        "how": "detected",
    }
    with sqlite3.connect(stack.data_dir / "importer.db") as db:
        items = db.execute("SELECT sku, name, price FROM item WHERE sku LIKE 'RD-%'").fetchall()
    assert sorted(items) == [
        ("RD-1", "Schraube Größe 5", 1000),
        ("RD-2", "Mutter für Holz", 2500),
        ("RD-3", "Scheibe weiß", 12),
    ]
