"""From file bytes to validated rows: sniff, check the package, read, find header, validate."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from itemsheet.errors import SheetError
from itemsheet.formats import FileFormat, PackageLimits, check_package, detect_format
from itemsheet.header import MappingChoice, find_header
from itemsheet.messages import quoted
from itemsheet.reader import read_grid
from itemsheet.validate import Validated, unnamed, validate

NO_DATA_ROWS = "the sheet has no data rows below its header"


@dataclass
class SheetSummary:
    """What a prepared sheet holds, apart from its rows."""

    file_format: str
    sheet_name: str | None
    fields: list[str]
    total_rows: int
    invalid_rows: int
    warnings: list[str] = field(default_factory=list)
    # Valid rows without a name: each fails at write time if its SKU is new.
    unnamed_rows: int = 0
    # The header: its row number, how it was mapped ("explicit", "saved", "aliases"), the
    # identity of its set of headers, its whole mapping and each column described.
    header_row: int = 0
    mapping_source: str = "aliases"
    header_key: str = ""
    mapping: dict[str, str | None] = field(default_factory=dict)
    columns: list[dict[str, Any]] = field(default_factory=list)


def prepare(
    data: bytes,
    *,
    filename: str | None,
    sheet: str | None,
    limits: PackageLimits,
    choice: MappingChoice | None = None,
) -> tuple[Validated, SheetSummary]:
    """Read and validate a whole file; raise `SheetError` with a one-line reason if it can't be."""
    fmt = detect_format(data, filename=filename)
    error_cells = True
    if fmt in (FileFormat.XLSX, FileFormat.XLSM, FileFormat.XLSB, FileFormat.ODS):
        report = check_package(data, limits)
        # Only an .xlsx/.xlsm worksheet is searched; others always collect error cells.
        error_cells = report.may_hold_error_cells or fmt not in (FileFormat.XLSX, FileFormat.XLSM)
    warnings: list[str] = []
    if fmt is FileFormat.CSV and sheet not in (None, "", "0"):
        warnings.append(
            f"a CSV file has a single sheet; the sheet option {quoted(sheet)} was ignored"
        )
        sheet = None
    grid = read_grid(data, fmt, sheet=sheet, error_cells=error_cells)
    if grid.frame.height * max(grid.frame.width, 1) > limits.max_cells:
        raise SheetError(
            f"the sheet holds {grid.frame.height * grid.frame.width:,} cells;"
            f" the limit is {limits.max_cells:,}"
        )
    header = find_header(grid.frame, grid.rows, choice)
    validated = validate(grid, header)
    warnings.extend(header.warnings)
    total = validated.frame.height
    if total == 0:
        warnings.append(NO_DATA_ROWS)
    invalid = validated.frame.get_column("error_message").is_not_null().sum()
    summary = SheetSummary(
        fmt.value,
        grid.sheet_name,
        validated.fields,
        total,
        int(invalid),
        warnings,
        unnamed(validated.frame).height,
        header.row,
        header.source,
        header.key,
        header.mapping,
        header.described,
    )
    return validated, summary


def write_rows(validated: Validated, path: Path) -> None:
    """Keep the validated rows for the writer, as uncompressed Arrow IPC (cheap to read)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".partial")
    validated.frame.write_ipc(tmp, compression="uncompressed")
    tmp.replace(path)


def read_rows(path: Path) -> pl.DataFrame:
    """The rows `write_rows` kept."""
    return pl.read_ipc(path)
