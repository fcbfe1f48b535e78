"""The parse child: names that look like options, and the limits it runs under."""

from __future__ import annotations

from pathlib import Path

import pytest

from itemsheet.sandbox.child import ChildLimits, keep_spare_child, prepare_in_child
from itemsheet.sheet.errors import SheetError
from itemsheet.sheet.formats import PackageLimits
from itemsheet.sheet.header import MappingChoice
from tests.conftest import mode_of
from tests.contract.workbooks import with_sheet_appended, write_csv, write_xlsx

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


def test_an_allocation_past_the_address_space_backstop_ends_with_the_memory_reason(
    tmp_path: Path,
) -> None:
    rows = [["SKU", "Name", "Price"]] + [[f"S{i}", f"Item {i}", i] for i in range(50_000)]
    book = write_xlsx(tmp_path / "items.xlsx", rows)
    # Less address space than the child already maps: its next large mapping fails,
    # before the resident-size poll could see anything.
    tight = ChildLimits(timeout_s=120, memory_bytes=2**31, address_space_bytes=64 * 2**20)

    with pytest.raises(SheetError) as stopped:
        prepare_in_child(
            book,
            tmp_path / "out.arrow",
            filename="items.xlsx",
            sheet=None,
            package=PACKAGE,
            limits=tight,
        )

    assert stopped.value.reason == (
        "reading the file needed more than 2 GiB of memory; it is too large or malformed"
    )


def test_the_default_backstop_leaves_room_for_an_ordinary_parse(tmp_path: Path) -> None:
    rows = [["SKU", "Name"]] + [[f"S{i}", f"Item {i}"] for i in range(20_000)]
    book = write_xlsx(tmp_path / "items.xlsx", rows)
    modest = ChildLimits(timeout_s=120, memory_bytes=512 * 2**20)  # + 4 GiB of address space

    summary = prepare_in_child(
        book,
        tmp_path / "out.arrow",
        filename="items.xlsx",
        sheet=None,
        package=PACKAGE,
        limits=modest,
    )

    assert summary.total_rows == 20_000


@pytest.mark.usefixtures("umask_022")
@pytest.mark.parametrize("spare", [False, True], ids=["fresh child", "spare child"])
def test_work_files_are_private_whatever_the_umask(tmp_path: Path, spare: bool) -> None:
    csv = write_csv(tmp_path / "items.csv", [["SKU", "Name"], ["A", "Apple"]])
    work_dir = tmp_path / "var" / "work"
    if spare:
        keep_spare_child(work_dir)
    seen: dict[str, int] = {}

    def look() -> None:  # while the child runs: its answer file and the mapping it reads
        seen.update({p.name: mode_of(p) for p in work_dir.iterdir()})

    prepare_in_child(
        csv,
        work_dir / "job.1.arrow",
        filename="items.csv",
        sheet=None,
        package=PACKAGE,
        limits=LIMITS,
        choice=MappingChoice(explicit={"name": "name"}),
        on_poll=look,
    )

    assert {"job.1.result", "job.1.mapping.json"} <= seen.keys()
    assert set(seen.values()) == {0o600}
    assert mode_of(work_dir / "job.1.arrow") == 0o600
    assert mode_of(work_dir) == mode_of(work_dir.parent) == 0o700


def test_a_package_its_check_refuses_ends_the_child_with_the_checks_reason(
    tmp_path: Path,
) -> None:
    rows = [["SKU", "Name"]] + [[f"S{i}", f"Item {i}"] for i in range(20_000)]
    book = with_sheet_appended(
        write_xlsx(tmp_path / "items.xlsx", rows), b"<!-- <!ENTITY lol 'x'> -->"
    )
    source = tmp_path / "declared.xlsx"
    source.write_bytes(book)

    with pytest.raises(SheetError) as refused:
        prepare_in_child(
            source,
            tmp_path / "out.arrow",
            filename="declared.xlsx",
            sheet=None,
            package=PACKAGE,
            limits=LIMITS,
        )

    assert refused.value.reason == (
        "part 'xl/worksheets/sheet1.xml' declares a DOCTYPE or entities, which are not allowed"
    )
    assert not (tmp_path / "out.arrow").exists()
