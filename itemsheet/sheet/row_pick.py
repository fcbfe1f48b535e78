"""Read chosen rows of a stored file as they are written in it: the parse child's second
job, for a rejected-rows download (`itemsheet.downloads.rejected`).

The file is read under the same rules as the import read it (its format from the bytes,
the package checks, the sheet, encoding and delimiter the import used), and every cell
of the header row and of each chosen row is kept as the reader gives it, with whether a
workbook cell holds a number, so the rows can be written back as they were.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from itemsheet.sheet.checked import read_checked
from itemsheet.sheet.errors import SheetError
from itemsheet.sheet.formats import PackageLimits, detect_format
from itemsheet.sheet.header import MappingChoice, find_header
from itemsheet.sheet.reader import TextOptions


@dataclass(frozen=True)
class RowPick:
    """Which rows of which file to read, and how the import read it.

    `header_row` is the header's row number as the import found it (None for a job that
    did not record it: the header is then found again with `choice`); `rows` are data row
    numbers as a user sees them.
    """

    rows: list[int]
    filename: str | None = None
    sheet: str | None = None
    options: TextOptions = field(default_factory=TextOptions)
    header_row: int | None = None
    choice: MappingChoice = field(default_factory=MappingChoice)

    def to_json(self) -> dict[str, Any]:
        """As plain JSON values (for the parse child)."""
        return {
            "rows": self.rows,
            "filename": self.filename,
            "sheet": self.sheet,
            "options": self.options.to_json(),
            "header_row": self.header_row,
            "choice": self.choice.to_json(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RowPick:
        """The inverse of `to_json`."""
        return cls(
            rows=[int(r) for r in data["rows"]],
            filename=data.get("filename"),
            sheet=data.get("sheet"),
            options=TextOptions.from_json(data.get("options") or {}),
            header_row=data.get("header_row"),
            choice=MappingChoice.from_json(data.get("choice") or {}),
        )


def pick_rows(
    data: bytes, pick: RowPick, *, limits: PackageLimits, scratch: Path | None = None
) -> pl.DataFrame:
    """The header row and the chosen rows of a file, in sheet order.

    Columns: `row` (the row number a user sees), `header` (true for the header row), the
    grid's cells `c0..cN` as text (a spreadsheet error as its code, `#N/A`), and for a
    workbook `n0..nN`, true where the cell holds a number.
    """
    fmt = detect_format(data, filename=pick.filename, encoding=pick.options.encoding)
    grid = read_checked(
        data, fmt, limits=limits, sheet=pick.sheet, options=pick.options, scratch=scratch
    )
    if grid.frame.height * max(grid.frame.width, 1) > limits.max_cells:
        raise SheetError(f"the sheet holds more than {limits.max_cells:,} cells")
    numbers = grid.rows.to_list()
    if pick.header_row is not None and pick.header_row in numbers:
        header = numbers.index(pick.header_row)
    else:
        header = find_header(grid.frame, grid.rows, pick.choice).index
    frame = grid.frame.with_columns(
        grid.rows.alias("row"), pl.int_range(pl.len(), dtype=pl.Int64).alias("index")
    )
    if grid.numeric_cells is not None and grid.frame.width:
        flags = grid.numeric_cells(list(range(grid.frame.width)))
        frame = pl.concat([frame, flags], how="horizontal")
    chosen = pl.col("row").is_in(pick.rows) & (pl.col("index") > header)
    frame = frame.filter((pl.col("index") == header) | chosen)
    # An error cell reads as empty; it is written back as the code it showed.
    codes = grid.error_cells.filter(pl.col("index").is_in(frame.get_column("index").implode()))
    for (col,), cells in codes.group_by("col"):
        name = f"c{col}"
        if name in frame.columns:
            frame = (
                frame.join(cells.select("index", "code"), on="index", how="left")
                .with_columns(pl.coalesce("code", name).alias(name))
                .drop("code")
            )
    # A join need not keep the order: sheet order again.
    frame = frame.sort("index")
    return frame.with_columns((pl.col("index") == header).alias("header")).drop("index")


def write_picked(frame: pl.DataFrame, path: Path) -> None:
    """Keep picked rows for the parent (Arrow IPC, moved into place once whole)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".partial")
    frame.write_ipc(tmp, compression="uncompressed")
    tmp.replace(path)
