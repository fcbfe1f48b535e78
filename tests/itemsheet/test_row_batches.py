"""The rows the parse child keeps are read back one batch at a time: by the writer, which
reads only the batches it writes, and by the abort check."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from db.models import OnError
from itemsheet.sandbox import row_batches
from itemsheet.sheet import prepare
from itemsheet.sheet.validate import PRICE_DTYPE, Validated
from tests.itemsheet.attempts import Files, attempt, fake_parse_child, new_job, sheet


@pytest.fixture
def files(importer_env: Path, monkeypatch: pytest.MonkeyPatch) -> Files:
    return fake_parse_child(monkeypatch)


def test_kept_rows_read_back_one_batch_at_a_time_as_they_were_validated(tmp_path: Path) -> None:
    frame = sheet("vfn fvf fvv n").with_columns(
        pl.Series("price", [Decimal(i) / 4 for i in range(10)], dtype=PRICE_DTYPE),
        pl.Series("quantity", range(10), dtype=pl.Int64),
    )
    path = tmp_path / "rows.arrow"
    prepare.write_rows(Validated(frame, ["sku", "name", "price", "quantity"]), path, batch_rows=3)

    with row_batches.RowBatches(path) as batches:
        assert len(batches) == 4
        assert batches.batch(2).equals(frame.slice(6, 3))
        assert pl.concat(list(batches)).equals(frame)


def test_the_writer_and_the_abort_check_read_one_batch_at_a_time(
    files: Files, monkeypatch: pytest.MonkeyPatch
) -> None:
    read: list[tuple[int, int]] = []
    real = row_batches.RowBatches.batch

    def batch(self: row_batches.RowBatches, index: int) -> pl.DataFrame:
        rows = real(self, index)
        read.append((index, rows.height))
        return rows

    monkeypatch.setattr(row_batches.RowBatches, "batch", batch)
    job_id = new_job(files, "vvv vvv vvv vvv vv")
    attempt(job_id, until_batch=2)
    assert read == [(0, 3), (1, 3)]

    read.clear()
    attempt(job_id)  # a resume reads only the batches it writes, one by one
    assert read == [(2, 3), (3, 3), (4, 2)]

    read.clear()
    attempt(new_job(files, "vvv fvv vv", on_error=OnError.ABORT))
    assert read == [(0, 3), (1, 3), (2, 2)]  # the abort check, one batch at a time
