"""Build in-memory grids (what the reader returns) for logic tests."""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from itemsheet.sheet.reader import Grid


def grid_of(
    rows: Sequence[Sequence[str | None]],
    *,
    errors: Sequence[tuple[int, int, str]] = (),
    spreadsheet: bool = True,
) -> Grid:
    """A grid whose frame row i is sheet row i + 1; `errors` are (index, col, code)."""
    width = max((len(r) for r in rows), default=1)
    columns = {f"c{j}": [r[j] if j < len(r) else None for r in rows] for j in range(width)}
    frame = pl.DataFrame(columns, schema={c: pl.String for c in columns})
    error_cells = pl.DataFrame(
        list(errors), schema={"index": pl.Int64, "col": pl.Int64, "code": pl.String}, orient="row"
    )
    numbers = pl.Series("row", range(1, len(rows) + 1), dtype=pl.Int64)
    return Grid(frame, numbers, error_cells, "Sheet1" if spreadsheet else None, spreadsheet)
