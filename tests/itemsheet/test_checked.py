"""A workbook read while its package is checked: the check's verdict decides."""

from __future__ import annotations

from pathlib import Path

import pytest

from itemsheet.sheet.checked import read_checked
from itemsheet.sheet.errors import SheetError
from itemsheet.sheet.formats import FileFormat, PackageLimits
from itemsheet.sheet.reader import read_grid
from tests.contract.workbooks import ErrorValue, with_sheet_appended, write_raw_xlsx, write_xlsx

LIMITS = PackageLimits(
    max_uncompressed_bytes=2**30, max_compression_ratio=200, max_entries=10_000, max_cells=10**7
)
SHEET = "xl/worksheets/sheet1.xml"


def test_a_package_the_check_refuses_fails_with_its_reason_though_the_sheet_parses(
    tmp_path: Path,
) -> None:
    book = write_xlsx(tmp_path / "items.xlsx", [["SKU", "Name"], ["A", "Apple"]])
    # A comment after the sheet's root: the parser reads the sheet, the check refuses it.
    data = with_sheet_appended(book, b"<!-- <!DOCTYPE lol> -->")
    assert read_grid(data, FileFormat.XLSX).frame.height == 2
    refusals: list[SheetError] = []

    with pytest.raises(SheetError) as refused:
        read_checked(data, FileFormat.XLSX, limits=LIMITS, on_refused=refusals.append)

    assert (
        refused.value.reason
        == f"part '{SHEET}' declares a DOCTYPE or entities, which are not allowed"
    )
    assert [r.reason for r in refusals] == [refused.value.reason]


def test_what_the_directory_declares_is_refused_before_anything_is_parsed(tmp_path: Path) -> None:
    book = write_xlsx(tmp_path / "items.xlsx", [["SKU", "Name"], ["A", "Apple"]])
    few = PackageLimits(
        max_uncompressed_bytes=2**30, max_compression_ratio=200, max_entries=2, max_cells=10**7
    )
    refusals: list[SheetError] = []

    with pytest.raises(SheetError, match="parts; the limit is 2"):
        read_checked(book.read_bytes(), FileFormat.XLSX, limits=few, on_refused=refusals.append)

    assert refusals == []  # refused before the check's thread, which alone calls it


def test_error_cells_found_by_the_check_are_read_with_their_code(tmp_path: Path) -> None:
    path = write_raw_xlsx(
        tmp_path / "e.xlsx", [["SKU", "Name", "Price"], ["A", "a", ErrorValue("#DIV/0!")]]
    )

    grid = read_checked(path.read_bytes(), FileFormat.XLSX, limits=LIMITS)

    assert grid.error_cells.rows() == [(1, 2, "#DIV/0!")]


def test_a_sheet_without_error_cells_reads_the_same_as_before(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "items.xlsx", [["SKU", "Price"], ["A", 1.5], ["B", "x"]])
    data = path.read_bytes()

    checked = read_checked(data, FileFormat.XLSX, limits=LIMITS)
    plain = read_grid(data, FileFormat.XLSX)

    assert checked.frame.equals(plain.frame)
    assert checked.error_cells.rows() == []
