"""The rejected rows of an import, fixed and imported again (README "Rejected rows").

Each case imports a file with failing rows through the CLI, takes its rejected rows as
`GET .../rejected.xlsx` and `.csv` build them (`itemsheet.downloads.rejected.rejected_file`, with
the parse child a real process), fixes the cells with openpyxl or as text, imports the
fixed file and looks at the items.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Callable
from pathlib import Path

import openpyxl
import pytest

from tests.contract.test_cli_contract import (
    _DATABASE_URLS,
    BOTH_DATABASES,
    Importer,
    assert_completed,
    cli_in_process,
    item,
    items,
)
from tests.contract.workbooks import ErrorValue, Rows, csv_text, write_csv, write_raw_xlsx

pytestmark = pytest.mark.subprocess  # the parse child

ROWS = [
    ["Price list, December"],
    [],
    ["SKU", "Name", "Price", "Colour", "Qty"],
    ["RT-1", "Apple", 1.5, "red", 10],
    ["RT-2", "Pear", "abc", "green", 3],
    ["RT-3", "Plum", 2, "blue", "2.5"],
    ["RT-4", "Fig", 4, "purple", 1],
    ["RT-5", None, 5, "brown", 2],
    ["RT-6", "Kiwi", ErrorValue("#N/A"), "green", 6],
]


def rejected(data_dir: Path, job_id: str, kind: str, env: dict[str, str] | None = None) -> bytes:
    """The job's rejected-rows file, as the API's route builds it."""
    from itemsheet.downloads.rejected import rejected_file

    settings = dict(env or {})
    if data_dir in _DATABASE_URLS:
        settings["IMPORTER_DATABASE_URL"] = _DATABASE_URLS[data_dir]
    with cli_in_process(data_dir, settings, prefect=False):
        _, content = rejected_file(uuid.UUID(job_id), kind)
    return content


@BOTH_DATABASES
def test_rejected_rows_fixed_in_the_workbook_import_and_nothing_else_is_touched(
    tmp_path: Path, importer: Importer, data_dir: Path
) -> None:
    first = importer(write_raw_xlsx(tmp_path / "prices.xlsx", ROWS))
    assert_completed(first, created=2, failed=4)
    before = items(data_dir)

    path = tmp_path / "rejected.xlsx"
    path.write_bytes(rejected(data_dir, first.report["job_id"], "xlsx"))
    book = openpyxl.load_workbook(path)
    sheet = book.worksheets[0]
    table = [list(r) for r in sheet.iter_rows(values_only=True)]
    # The header row as it was, every column (Colour too, which the import ignored), the
    # failed rows as they were in the file, numbers as numbers, and an Error column.
    assert table[0] == ["SKU", "Name", "Price", "Colour", "Qty", "Error"]
    assert [r[:5] for r in table[1:]] == [
        ["RT-2", "Pear", "abc", "green", 3],
        ["RT-3", "Plum", 2, "blue", "2.5"],
        ["RT-5", None, 5, "brown", 2],
        ["RT-6", "Kiwi", "#N/A", "green", 6],  # an error cell, as the code it showed
    ]
    assert "price" in table[1][5] and "quantity" in table[2][5] and "name" in table[3][5]

    sheet["C2"] = 2.25  # Pear's price
    sheet["E3"] = 2  # Plum's quantity
    sheet["B4"] = "Walnut"  # the new item's name
    sheet["C5"] = 1.25  # Kiwi's price
    book.save(path)
    second = importer(path)
    assert_completed(second, created=4)
    assert not any("Error" in w for w in second.report["warnings"]), second.report["warnings"]
    after = items(data_dir)
    assert {sku: after[sku] for sku in before} == before
    assert after["RT-2"] == item("Pear", price="2.25", quantity=3)
    assert after["RT-3"] == item("Plum", price="2", quantity=2)
    assert after["RT-5"] == item("Walnut", price="5", quantity=2)
    assert after["RT-6"] == item("Kiwi", price="1.25", quantity=6)
    assert set(after) == {"RT-1", "RT-2", "RT-3", "RT-4", "RT-5", "RT-6"}


def test_rejected_rows_of_a_csv_keep_its_encoding_delimiter_and_decimal_mark(
    tmp_path: Path, importer: Importer, data_dir: Path
) -> None:
    rows = [
        ["Artikelnummer", "Bezeichnung", "Preis", "Notiz"],
        ["DE-1", "Käse", "9,99", "gut"],
        ["DE-2", "Würze", "x,5", "scharf"],
        ["DE-3", "Öl", "1.234,50", ""],
    ]
    path = tmp_path / "preise.csv"
    path.write_bytes(csv_text(rows, delimiter=";", crlf=True).encode("cp1252"))
    mapping = ["--map", "Artikelnummer=sku", "--map", "Bezeichnung=name", "--map", "Preis=price"]
    first = importer(path, *mapping)
    assert_completed(first, created=2, failed=1)

    content = rejected(data_dir, first.report["job_id"], "csv")
    assert content.startswith(b"\xef\xbb\xbf")
    table = list(csv.reader(io.StringIO(content.decode("utf-8-sig")), delimiter=";"))
    assert table[0] == ["Artikelnummer", "Bezeichnung", "Preis", "Notiz", "Error"]
    assert table[1][:4] == ["DE-2", "Würze", "x,5", "scharf"]
    assert "price" in table[1][4]
    assert len(table) == 2

    table[1][2] = "4,75"
    fixed = tmp_path / "preise-fixed.csv"
    with fixed.open("w", encoding="utf-8-sig", newline="") as out:
        csv.writer(out, delimiter=";").writerows(table)
    second = importer(fixed, *mapping)
    assert_completed(second, created=1)
    assert items(data_dir)["DE-2"] == item("Würze", price="4.75")
    assert items(data_dir)["DE-3"] == item("Öl", price="1234.5")


def test_past_the_kept_errors_the_file_says_how_many_rows_are_missing_and_imports_cleanly(
    tmp_path: Path, importer: Importer, data_dir: Path
) -> None:
    rows = [["SKU", "Name", "Price"], *[[f"CAP-{i}", "Item", "x"] for i in range(8)]]
    env = {"IMPORTER_MAX_ROW_ERRORS": "3"}
    first = importer(write_csv(tmp_path / "cap.csv", rows), env=env)
    assert_completed(first, failed=8)

    path = tmp_path / "rejected.xlsx"
    path.write_bytes(rejected(data_dir, first.report["job_id"], "xlsx", env))
    book = openpyxl.load_workbook(path)
    sheet = book.worksheets[0]
    table = [list(r) for r in sheet.iter_rows(values_only=True)]
    assert [r[0] for r in table[1:4]] == ["CAP-0", "CAP-1", "CAP-2"]
    note = table[4]
    assert note[:3] == [None, None, None]
    assert note[3].startswith("5 more rows failed after row 4 and are not in this file")

    for row in range(2, 5):
        sheet.cell(row=row, column=3, value=3.5)
    book.save(path)
    second = importer(path, env=env)
    # The note row is no data row: three rows, all created.
    assert_completed(second, created=3)
    assert set(items(data_dir)) == {"CAP-0", "CAP-1", "CAP-2"}


# Formula-like text in failing rows; each name is read back as the first import read it.
FORMULAS = [
    ["SKU", "Name", "Price"],
    ["FX-1", "=SUM(A1)", "x"],
    ["FX-2", "'=quoted", "x"],
    ["FX-3", "-5% off", "x"],
    ["FX-4", "@home", "x"],
]


def fixed_csv(content: bytes, path: Path) -> Path:
    """The rejected rows with a price in every row, saved as a spreadsheet saves a CSV
    (quoted only where needed): the guard's `'` stays in the cell as it was written."""
    table = list(csv.reader(io.StringIO(content.decode("utf-8-sig"))))
    for row in table[1:]:
        row[2] = "1.5"
    return write_csv(path, table)


@pytest.mark.parametrize(
    ("write", "guarded", "quoted"),
    [
        # A CSV's own guard (`'=quoted`) was read off the first time: left as it is.
        (write_csv, "'=quoted", "=quoted"),
        # A workbook's text is text, its `'` too: the guard adds one more.
        (write_raw_xlsx, "''=quoted", "'=quoted"),
    ],
    ids=["csv", "xlsx"],
)
def test_rejected_rows_as_csv_guard_formulas_and_read_back_as_the_first_import_did(
    write: Callable[[Path, Rows], Path],
    guarded: str,
    quoted: str,
    tmp_path: Path,
    importer: Importer,
    data_dir: Path,
) -> None:
    first = importer(write(tmp_path / "formulas", FORMULAS))
    assert_completed(first, failed=4)

    content = rejected(data_dir, first.report["job_id"], "csv")
    table = list(csv.reader(io.StringIO(content.decode("utf-8-sig"))))
    # No cell a spreadsheet would run as a formula.
    assert [r[1] for r in table[1:]] == ["'=SUM(A1)", guarded, "'-5% off", "'@home"]

    second = importer(fixed_csv(content, tmp_path / "fixed.csv"))
    assert_completed(second, created=4)
    stored = items(data_dir)
    assert {sku: stored[sku]["name"] for sku in stored} == {
        "FX-1": "=SUM(A1)",
        "FX-2": quoted,
        "FX-3": "-5% off",
        "FX-4": "@home",
    }
