"""Every kind of failure reason the import writes, and the class the metrics count it under."""

from __future__ import annotations

import pytest

from itemsheet.files.storage import too_large_reason
from itemsheet.jobs.failures import FailureClass, classify_failure
from itemsheet.sheet.formats import PASSWORD_PROTECTED, UNSUPPORTED

F = FailureClass

CASES = [
    # The file is not one we read.
    (UNSUPPORTED, F.UNSUPPORTED),
    (PASSWORD_PROTECTED, F.UNSUPPORTED),
    (
        "the CSV file is not UTF-8 text (bad byte at offset 12); save it as 'CSV UTF-8' and"
        " upload it again",
        F.UNSUPPORTED,
    ),
    ("the CSV file contains NUL bytes; it is probably not a text file", F.UNSUPPORTED),
    # Over a limit.
    (too_large_reason(50 * 1024 * 1024), F.TOO_LARGE),
    ("the file expands to 3.1 GiB when unpacked; the limit is 2 GiB", F.TOO_LARGE),
    ("the file expands to more than the limit of 2 GiB when unpacked", F.TOO_LARGE),
    ("the package holds 12,000 parts; the limit is 10,000", F.TOO_LARGE),
    ("the workbook declares 30,000,000 shared strings; the limit is 20,000,000 cells", F.TOO_LARGE),
    ("the sheet holds 21,000,000 cells; the limit is 20,000,000", F.TOO_LARGE),
    # Damaged.
    ("the file is corrupt or truncated: its zip package cannot be opened", F.CORRUPT),
    ("the file is corrupt: part 'xl/workbook.xml' cannot be read", F.CORRUPT),
    ("the file is corrupt: part 'xl/worksheets/sheet1.xml' cannot be unpacked", F.CORRUPT),
    ("the file is corrupt or not a readable workbook (Xlsx error: bad zip)", F.CORRUPT),
    ("the CSV file cannot be parsed (unterminated quote)", F.CORRUPT),
    (
        "the spreadsheet reader crashed on this file (SIGSEGV); it is corrupt or malformed",
        F.CORRUPT,
    ),
    # Built to hurt the service.
    (
        "part 'xl/worksheets/sheet1.xml' expands 4,000 times when unpacked; this looks like a zip bomb",
        F.HOSTILE,
    ),
    (
        "part 'xl/sharedStrings.xml' declares a DOCTYPE or entities, which are not allowed",
        F.HOSTILE,
    ),
    # The parse hit its limits: checked before "too large", which the sentences also say.
    (
        "reading the file needed more than 4 GiB of memory; it is too large or malformed",
        F.TIMEOUT_OR_MEMORY,
    ),
    ("reading the file took longer than 300 s; it is too large or malformed", F.TIMEOUT_OR_MEMORY),
    # The sheet is not laid out as the contract says.
    ("sheet 'Prices' not found; sheets: Items, Notes", F.LAYOUT),
    ("sheet 'corrupt' not found; sheets: zip bomb, the limit is", F.LAYOUT),
    ("the workbook has no worksheets", F.LAYOUT),
    ("the workbook has no visible worksheet; choose one with the sheet option", F.LAYOUT),
    (
        "no header row with an SKU column was found in the first 20 rows; name the column 'SKU'"
        " (or 'Item code', 'Code', 'Article', ...)",
        F.LAYOUT,
    ),
    ("required columns missing from the header: sku, name", F.LAYOUT),
    ("columns 'Qty' and 'Stock' both map to quantity; keep one of them", F.LAYOUT),
    # Rows.
    ("3 of 10 rows are invalid and on_error is abort; nothing was imported", F.INVALID_ROWS),
    # The file could not be fetched; user text in quotes does not decide.
    ("the file '/data/corrupt.xlsx' does not exist", F.UNREADABLE_SOURCE),
    ("the file '/data/items.xlsx' cannot be read: Permission denied", F.UNREADABLE_SOURCE),
    ("'/data/items' is a folder, not a file", F.UNREADABLE_SOURCE),
    ("the source 's3://bucket/zip bomb.xlsx' does not exist", F.UNREADABLE_SOURCE),
    ("the source 's3://bucket/items.xlsx' cannot be read: access denied", F.UNREADABLE_SOURCE),
    # The run never began; the wrapped reason does not decide.
    (
        "the import could not be started within 600 s: the Prefect API is not reachable yet"
        " (ConnectError)",
        F.NOT_STARTED,
    ),
    (
        "its Prefect flow run is gone from Prefect before the import began; retry the job",
        F.NOT_STARTED,
    ),
    ("its Prefect flow run ended as Failed before the import began; retry the job", F.NOT_STARTED),
    (
        "its Prefect flow run crashed 3 time(s) before the import began (worker stopped or"
        " process failed to start); retry the job",
        F.NOT_STARTED,
    ),
    (
        "the import was interrupted 3 time(s) (worker stopped or killed) and gets no more"
        " automatic attempts; retry the job to resume after row 20,000",
        F.INTERRUPTED,
    ),
    # Anything else.
    ("(psycopg.OperationalError) connection to server was lost", F.OTHER),
    ("the spreadsheet reader failed on this file (no output)", F.OTHER),
    ("", F.OTHER),
    (None, F.OTHER),
]


@pytest.mark.parametrize(("reason", "expected"), CASES)
def test_a_failure_reason_is_counted_under_its_class(
    reason: str | None, expected: FailureClass
) -> None:
    assert classify_failure(reason) is expected


def test_every_class_is_reached_by_some_reason() -> None:
    reached = {classify_failure(reason) for reason, _ in CASES}
    assert reached == set(FailureClass)
