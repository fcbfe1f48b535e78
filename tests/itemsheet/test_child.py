"""The parse child: names that look like options, and the limits it runs under."""

from __future__ import annotations

from pathlib import Path

import pytest

from itemsheet.child import ChildLimits, prepare_in_child
from itemsheet.formats import PackageLimits
from tests.contract.workbooks import write_csv, write_xlsx

pytestmark = pytest.mark.subprocess

PACKAGE = PackageLimits(
    max_uncompressed_bytes=2**30, max_compression_ratio=200, max_entries=10_000, max_cells=10**7
)
LIMITS = ChildLimits(timeout_s=120, memory_bytes=2**31)


def test_file_and_sheet_names_that_begin_with_a_dash_are_read(tmp_path: Path) -> None:
    csv = write_csv(tmp_path / "-prices.csv", [["SKU", "Name"], ["A", "Apple"]])
    summary = prepare_in_child(
        csv,
        tmp_path / "csv.arrow",
        filename="-prices.csv",
        sheet=None,
        package=PACKAGE,
        limits=LIMITS,
    )
    assert summary.total_rows == 1

    book = write_xlsx(
        tmp_path / "--help.xlsx",
        sheets={"Other": [["x"]], "-Prices": [["SKU", "Name"], ["B", "b"]]},
    )
    summary = prepare_in_child(
        book,
        tmp_path / "book.arrow",
        filename="--help.xlsx",
        sheet="-Prices",
        package=PACKAGE,
        limits=LIMITS,
    )
    assert (summary.sheet_name, summary.total_rows) == ("-Prices", 1)
