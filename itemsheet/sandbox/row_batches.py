"""The validated rows the parse child kept, read back one batch at a time.

The process that writes the batches has none of the parse child's limits, so it never
holds the whole sheet: the child keeps its rows in record batches of the job's batch size
(`prepare.write_rows`), and each is read from the file when it is written, then let go.
Read whole, a sheet of a million rows (SKU, name, price) cost the run process 150 MB more.
Only this process imports pyarrow: in the parse child it would cost 35 MB at every parse.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.ipc


class RowBatches:
    """The rows `prepare.write_rows` kept, one record batch at a time.

    Batches are read into memory, not memory-mapped: the mapped pages a reader touches
    would count in the process's resident size until it closes the file.
    """

    def __init__(self, path: Path) -> None:
        self._file = pa.OSFile(str(path))
        self._reader = pa.ipc.open_file(self._file)

    def __enter__(self) -> RowBatches:
        return self

    def __exit__(self, *exc: object) -> None:
        self._file.close()

    def __len__(self) -> int:
        return int(self._reader.num_record_batches)

    def __iter__(self) -> Iterator[pl.DataFrame]:
        return (self.batch(index) for index in range(len(self)))

    def batch(self, index: int) -> pl.DataFrame:
        """Record batch `index` (0-based) as a frame."""
        frame = pl.from_arrow(self._reader.get_batch(index))
        assert isinstance(frame, pl.DataFrame)
        return frame
