"""Read one sheet of a workbook (fastexcel) or a CSV file (polars) into a grid of text."""

from __future__ import annotations

import contextlib
import csv
import ctypes
import io
import re
from dataclasses import dataclass

import fastexcel
import polars as pl

from itemsheet.errors import SheetError
from itemsheet.fields import field_for_header
from itemsheet.formats import PASSWORD_PROTECTED, FileFormat
from itemsheet.header import HEADER_SEARCH_ROWS

ERROR_CODES = {
    "Div0": "#DIV/0!",
    "NA": "#N/A",
    "Name": "#NAME?",
    "Null": "#NULL!",
    "Num": "#NUM!",
    "Ref": "#REF!",
    "Value": "#VALUE!",
    "GettingData": "#GETTING_DATA",
}
_ERROR_DETAIL = re.compile(r"Error\((\w+)\)")
_DELIMITERS = (",", ";", "\t")
_SNIFF_LINES = 50


@dataclass(frozen=True)
class Grid:
    """A sheet as text cells: `frame` has string columns `c0..cN`, one row per sheet row.

    `rows` holds the row number a user sees for each frame row (Excel row, CSV line);
    `error_cells` lists cells that hold a spreadsheet error: (index, col, code).
    """

    frame: pl.DataFrame
    rows: pl.Series
    error_cells: pl.DataFrame
    sheet_name: str | None
    spreadsheet: bool


def read_grid(
    data: bytes, fmt: FileFormat, *, sheet: str | None = None, error_cells: bool = True
) -> Grid:
    """Read the chosen sheet (default: the first visible one) or the CSV text.

    `error_cells=False` says the workbook holds no error values (its package was
    searched), so the reader skips collecting them.
    """
    if fmt is FileFormat.CSV:
        return _read_csv(data)
    return _read_workbook(data, sheet, error_cells=error_cells)


def _no_errors() -> pl.DataFrame:
    return pl.DataFrame(schema={"index": pl.Int64, "col": pl.Int64, "code": pl.String})


def _reader_failure(exc: Exception) -> SheetError:
    text = " ".join(str(exc).split())
    if "password" in text.lower() or "encrypt" in text.lower():
        return SheetError(PASSWORD_PROTECTED)
    detail = text.split(" Context:")[0].removeprefix("calamine error: ")[:120]
    return SheetError(f"the file is corrupt or not a readable workbook ({detail})")


def _open_workbook(data: bytes) -> fastexcel.ExcelReader:
    try:
        return fastexcel.read_excel(data)
    except Exception as exc:
        raise _reader_failure(exc) from exc


def _resolve_sheet(reader: fastexcel.ExcelReader, sheet: str | None) -> tuple[int, object]:
    names: list[str] = list(reader.sheet_names)
    if not names:
        raise SheetError("the workbook has no worksheets")
    if sheet is None:
        for index in range(len(names)):
            loaded = _load(reader, index)
            if str(loaded.visible) == "visible":
                return index, loaded
        raise SheetError("the workbook has no visible worksheet; choose one with the sheet option")
    if sheet in names:
        index = names.index(sheet)
    elif sheet.strip().isdigit() and int(sheet) < len(names):
        index = int(sheet)
    else:
        raise SheetError(f"sheet '{sheet}' not found; sheets: {', '.join(names)}")
    return index, _load(reader, index)


def _load(reader: fastexcel.ExcelReader, index: int) -> fastexcel.ExcelSheet:
    try:
        # header_row=None with skip_rows=0 keeps leading blank rows, so frame row i is
        # sheet row i + 1; every cell comes as text (numbers without a spurious ".0").
        return reader.load_sheet(index, header_row=None, skip_rows=0, dtypes="string")
    except Exception as exc:
        raise _reader_failure(exc) from exc


def release_free_memory() -> None:
    """Hand memory the C heap holds but no longer uses back to the system (glibc only).

    The parser frees its cell store after a read, but glibc keeps the pages; polars
    allocates from its own heap and cannot reuse them, so without this a 1M-row sheet
    holds ~350 MB more than it needs while it is validated.
    """
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to do
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _read_workbook(data: bytes, sheet: str | None, *, error_cells: bool) -> Grid:
    grid = _read_sheet(data, sheet, error_cells=error_cells)
    release_free_memory()
    return grid


def _read_sheet(data: bytes, sheet: str | None, *, error_cells: bool) -> Grid:
    reader = _open_workbook(data)
    index, loaded = _resolve_sheet(reader, sheet)
    try:
        if error_cells:
            batch, cell_errors = loaded.to_arrow_with_errors()  # type: ignore[attr-defined]
        else:
            batch, cell_errors = loaded.to_arrow(), None  # type: ignore[attr-defined]
    except Exception as exc:
        raise _reader_failure(exc) from exc
    frame = pl.from_arrow(batch)
    assert isinstance(frame, pl.DataFrame)
    frame = frame.rename({old: f"c{i}" for i, old in enumerate(frame.columns)})
    errors = _no_errors()
    if cell_errors is not None and cell_errors.errors:
        records = []
        for error in cell_errors.errors:
            match = _ERROR_DETAIL.search(error.detail)
            if match:
                code = ERROR_CODES.get(match.group(1), f"#{match.group(1).upper()}")
                records.append((error.position[0], error.position[1], code))
        if records:
            errors = pl.DataFrame(records, schema=errors.schema, orient="row")
    rows = pl.int_range(1, frame.height + 1, eager=True, dtype=pl.Int64).alias("row")
    return Grid(frame, rows, errors, str(reader.sheet_names[index]), spreadsheet=True)


def _decode_csv(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SheetError(
            f"the CSV file is not UTF-8 text (bad byte at offset {exc.start});"
            " save it as 'CSV UTF-8' and upload it again"
        ) from exc


def _has_sku_cell(record: list[str]) -> bool:
    return any(field_for_header(cell) == "sku" for cell in record)


def _sniff_layout(text: str) -> tuple[str, int]:
    """Pick the delimiter and the widest line among the first lines.

    The delimiter that splits out a recognisable SKU header wins (widest header first);
    otherwise the one that splits most lines into the same number of fields.
    """
    sample = [line for line in text.splitlines()[: _SNIFF_LINES * 4] if line.strip()]
    sample = sample[:_SNIFF_LINES]
    # Python's csv module refuses fields over 128 KiB by default; a header line that long
    # is still legal CSV (polars reads it), so the sniffer may read any line it was given.
    longest = max((len(line) for line in sample), default=0)
    csv.field_size_limit(max(csv.field_size_limit(), longest + 1))
    best, best_score, width = ",", (-1, -1, -1, -1), 1
    for delimiter in _DELIMITERS:
        records = list(csv.reader(sample, delimiter=delimiter))
        headers = (r for r in records[:HEADER_SEARCH_ROWS] if _has_sku_cell(r))
        header = next(headers, [])
        counts = [len(r) for r in records if len(r) > 1]
        mode = max(set(counts), key=counts.count) if counts else 1
        score = (len(header), counts.count(mode), mode, -_DELIMITERS.index(delimiter))
        if score > best_score:
            best, best_score = delimiter, score
            width = max((len(r) for r in records), default=1)
    return best, max(width, 1)


def _read_csv(data: bytes) -> Grid:
    text = _decode_csv(data)
    if "\x00" in text:
        raise SheetError("the CSV file contains NUL bytes; it is probably not a text file")
    delimiter, width = _sniff_layout(text)
    schema = {f"c{i}": pl.String for i in range(width)}
    try:
        frame = pl.read_csv(
            io.BytesIO(text.encode("utf-8")),
            has_header=False,
            schema=schema,
            separator=delimiter,
            quote_char='"',
            truncate_ragged_lines=True,
            missing_columns="insert",
            raise_if_empty=False,
        )
    except Exception as exc:
        raise SheetError(
            f"the CSV file cannot be parsed ({' '.join(str(exc).split())[:160]})"
        ) from exc
    # A record's line number moves on by the line breaks quoted inside earlier records.
    breaks = pl.sum_horizontal(
        pl.col(c).str.count_matches("\n", literal=True).fill_null(0) for c in frame.columns
    )
    rows = frame.select(
        (
            pl.int_range(1, pl.len() + 1, dtype=pl.Int64) + breaks.cum_sum().shift(1, fill_value=0)
        ).alias("row")
    ).to_series()
    return Grid(frame, rows, _no_errors(), None, spreadsheet=False)
