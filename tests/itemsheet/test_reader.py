"""Reading real files of every format: sheet choice, row numbers, cell rendering."""

from __future__ import annotations

from pathlib import Path

import pytest

from itemsheet.sheet.errors import SheetError
from itemsheet.sheet.formats import FileFormat, detect_format
from itemsheet.sheet.reader import read_grid
from tests.contract.workbooks import (
    ErrorValue,
    write_csv,
    write_ods,
    write_raw_xlsx,
    write_xls,
    write_xlsx,
)

ROWS = [
    ["Catalogue"],
    [],
    ["SKU", "Name", "Price"],
    [12345, "Widget", 12.5],
    ["000123", "Gadget", 3],
]


def grid_rows(
    path: Path, sheet: str | None = None, *, error_cells: bool = True
) -> list[tuple[int, list[str | None]]]:
    data = path.read_bytes()
    fmt = detect_format(data, filename=path.name)
    grid = read_grid(data, fmt, sheet=sheet, error_cells=error_cells)
    return list(zip(grid.rows.to_list(), [list(r) for r in grid.frame.iter_rows()], strict=True))


# A package searched for error cells is read straight to Arrow, its sheet chosen from its
# workbook part; every other read loads the sheet first. Both choose alike.
BOTH_READS = pytest.mark.parametrize("error_cells", [True, False], ids=["loaded", "straight"])


@pytest.mark.parametrize(
    ("writer", "suffix", "fmt"),
    [
        (write_xlsx, ".xlsx", FileFormat.XLSX),
        (write_xls, ".xls", FileFormat.XLS),
        (write_ods, ".ods", FileFormat.ODS),
    ],
)
def test_workbooks_keep_sheet_row_numbers_and_render_numbers_as_text(
    tmp_path: Path, writer: object, suffix: str, fmt: FileFormat
) -> None:
    path = writer(tmp_path / f"items{suffix}", ROWS)  # type: ignore[operator]
    assert detect_format(path.read_bytes()) is fmt
    rows = dict(grid_rows(path))
    assert rows[3][:3] == ["SKU", "Name", "Price"]
    assert rows[4][:3] == ["12345", "Widget", "12.5"]
    assert rows[5][:3] == ["000123", "Gadget", "3"]


def test_csv_rows_are_line_numbers_even_with_quoted_line_breaks(tmp_path: Path) -> None:
    path = tmp_path / "items.csv"
    path.write_bytes('\ufeffSKU;Name\r\n\r\nA;"two\nlines"\r\nB;b\r\n'.encode())
    assert grid_rows(path) == [
        (1, ["SKU", "Name"]),
        (2, [None, None]),
        (3, ["A", "two\nlines"]),
        (5, ["B", "b"]),
    ]


@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
def test_csv_delimiter_is_detected(tmp_path: Path, delimiter: str) -> None:
    path = write_csv(
        tmp_path / "items.csv",
        [["Title, with comma"], ["SKU", "Name", "Price"], ["A", "x", "1,5"]],
        delimiter=delimiter,
    )
    rows = dict(grid_rows(path))
    assert rows[2][:3] == ["SKU", "Name", "Price"]


def test_csv_in_a_windows_code_page_reads_as_its_writer_saw_it() -> None:
    grid = read_grid("SKU;Name\nA;Müller\n".encode("cp1252"), FileFormat.CSV)
    assert grid.frame.row(1) == ("A", "Müller")
    assert grid.text is not None and grid.text.encoding.label == "Windows-1252"


@BOTH_READS
def test_first_visible_sheet_is_the_default_and_sheets_can_be_chosen(
    tmp_path: Path, error_cells: bool
) -> None:
    path = write_xlsx(
        tmp_path / "book.xlsx",
        sheets={
            "Hidden": [["SKU", "Name"], ["H", "h"]],
            "Also <hidden> & 'so'": [["SKU", "Name"], ["A", "a"]],
            'R&D "Main"': [["SKU", "Name"], ["M", "m"]],
            "Other": [["SKU", "Name"], ["O", "o"]],
        },
        hidden=["Hidden", "Also <hidden> & 'so'"],
    )
    read = lambda *sheet: grid_rows(path, *sheet, error_cells=error_cells)  # noqa: E731
    assert read()[1][1] == ["M", "m"]
    assert read("Other")[1][1] == ["O", "o"]
    assert read('R&D "Main"')[1][1] == ["M", "m"]
    assert read("0")[1][1] == ["H", "h"]
    assert read("1")[1][1] == ["A", "a"]
    with pytest.raises(SheetError, match=r"^sheet 'Nope' not found; sheets: Hidden, Also"):
        read("Nope")
    with pytest.raises(SheetError, match=r"^sheet '4' not found"):
        read("4")


def test_a_sheet_option_is_an_index_only_in_the_digits_0_to_9(tmp_path: Path) -> None:
    path = write_xlsx(
        tmp_path / "book.xlsx",
        sheets={"Main": [["SKU", "Name"], ["M", "m"]], "Other": [["SKU", "Name"], ["O", "o"]]},
    )
    assert grid_rows(path, " 1 ")[1][1] == ["O", "o"]
    # "²" passes isdigit() but int() refuses it; an Arabic-Indic or fullwidth one int() reads
    # as 1. Each is a name, and no sheet has it: the reason says so, no crash, no sheet 1.
    for option in ("²", "\u0661", "\uff11"):
        with pytest.raises(SheetError, match=rf"^sheet '{option}' not found; sheets: Main, Other$"):
            grid_rows(path, option)


def test_a_sheet_named_like_a_digit_is_chosen_by_its_name(tmp_path: Path) -> None:
    path = write_xlsx(
        tmp_path / "book.xlsx",
        sheets={"Main": [["SKU", "Name"], ["M", "m"]], "²": [["SKU", "Name"], ["S", "s"]]},
    )
    assert grid_rows(path, "²")[1][1] == ["S", "s"]


def test_error_cells_are_reported_with_their_excel_code(tmp_path: Path) -> None:
    path = write_raw_xlsx(
        tmp_path / "e.xlsx", [["SKU", "Name", "Price"], ["A", "a", ErrorValue("#N/A")]]
    )
    data = path.read_bytes()
    grid = read_grid(data, FileFormat.XLSX)
    assert grid.error_cells.rows() == [(1, 2, "#N/A")]


def test_a_csv_whose_header_line_is_over_128_kib_is_read(tmp_path: Path) -> None:
    # Legal CSV: a note column whose header is 200,000 characters long.
    path = tmp_path / "wide.csv"
    path.write_text(f"SKU,Name,{'N' * 200_000}\nA,Apple,x\n", encoding="utf-8")
    rows = dict(grid_rows(path))
    assert rows[1][:2] == ["SKU", "Name"] and len(rows[1][2] or "") == 200_000
    assert rows[2] == ["A", "Apple", "x"]


def test_a_header_line_longer_than_a_chunk_is_read_whole(tmp_path: Path) -> None:
    # 600 unknown headers of 2,000 characters: the header line alone is 1.2 MB.
    headers = ["SKU", *(f"{i:04d}" + "x" * 1996 for i in range(600))]
    text = ",".join(headers) + "\nA-1," + ",".join("v" for _ in range(600)) + "\n"
    for data in (text.encode(), text.encode("cp1252")):
        grid = read_grid(data, FileFormat.CSV, scratch=tmp_path)
        assert grid.frame.width == 601
        assert grid.frame.row(1)[:2] == ("A-1", "v")
    latin = ("Größe," + text).encode("cp1252")  # not UTF-8: read from the transcoded file
    assert read_grid(latin, FileFormat.CSV, scratch=tmp_path).frame.width == 602
