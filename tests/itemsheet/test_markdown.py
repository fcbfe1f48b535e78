"""Names, headers and values from a file are shown as themselves where Prefect renders
Markdown: the review's text and the summary table's cells make no link, image or cell."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from db.models import ImportJob
from itemsheet.jobs.review import review_text
from itemsheet.runs.running import summary
from itemsheet.sheet.markdown import md_text
from tests.api.helpers import add_job, add_row_errors

FILENAME = "[x](javascript:alert(1)) *b* | c.xlsx"
HEADER = "<img src=x>"
# CommonMark with raw HTML, and GitHub's tables, as the Prefect UI renders.
MARKDOWN = MarkdownIt("commonmark", {"html": True}).enable("table")


def rendered(markdown: str) -> tuple[set[str], str]:
    """The HTML tags `markdown` makes, and the text a reader sees."""
    page = MARKDOWN.render(markdown)
    return set(re.findall(r"<([a-z0-9]+)", page)), html.unescape(re.sub(r"<[^>]*>", "", page))


@pytest.mark.parametrize(
    "text",
    [
        FILENAME,
        HEADER,
        "a|b",
        "*b* _i_ `c` ~~s~~",
        "# h",
        "- 1",
        "1. x",
        "&amp; \\ <b>",
        "a\n|-|\nb",
    ],
)
def test_text_is_shown_as_it_is_on_one_line(text: str) -> None:
    tags, seen = rendered(md_text(text))

    assert tags == {"p"}
    assert seen.strip() == " ".join(text.split())


def test_the_review_text_shows_the_file_name_headers_and_values_as_they_are() -> None:
    job = ImportJob(
        filename=FILENAME,
        reading=None,
        preview={
            "problem": f"the column '{HEADER}' is not a field; map it or leave it out",
            "counts": {"total_rows": 1, "created": 0, "updated": 1, "unchanged": 0, "failed": 0},
            "columns": [{"header": HEADER, "field": None}, {"header": "SKU", "field": "sku"}],
            "changes": [
                {
                    "row": 2,
                    "action": "update",
                    "sku": "A|1",
                    "fields": {"name": ["*old*", "[new](javascript:alert(2))"]},
                }
            ],
        },
    )

    tags, seen = rendered(review_text(job))

    # Only the review's own Markdown: its bold title and its list of changes.
    assert tags == {"p", "strong", "ul", "li"}
    assert f"Review of {FILENAME}" in seen
    assert f"Columns: {HEADER} → (ignored); SKU → sku" in seen
    assert "row 2 update A|1: name: *old* → [new](javascript:alert(2))" in seen


def test_the_summary_table_cells_quote_the_file_as_it_is(importer_env: Path) -> None:
    job_id = add_job(filename=FILENAME)
    message = f"price '{HEADER}|x' is not a number\n|-|-|"
    add_row_errors(job_id, [(2, "price", f"{HEADER}|x", message)])

    _, table = summary(job_id)

    # The Prefect UI renders each text cell of a table artifact as Markdown of its own.
    error = next(row["value"] for row in table if row["measure"] == "row 2")
    tags, seen = rendered(error)
    assert tags == {"p"}
    assert seen.strip() == " ".join(message.split())
