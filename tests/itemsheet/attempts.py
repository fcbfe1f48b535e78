"""An import attempt's steps run in-process as the flow runs them (`running.load`, then
`running.write`), with the parse child replaced by one that keeps its rows where and as
the real one does, so no process is started. Sheets are spelled one letter per row."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from db.models import JobSource, JobStatus
from db.repository import get_job, list_row_errors
from db.session import session_scope
from itemsheet.files.storage import StoredFile
from itemsheet.jobs.importing import JobOptions, begin_attempt, create_job
from itemsheet.jobs.views import JobView
from itemsheet.runs import running
from itemsheet.sheet.prepare import SheetSummary
from itemsheet.sheet.validate import unnamed
from tests.api.helpers import add_job

BATCH = 3
UNKNOWN_COLUMN = "column 'Colour' is not a known field and was ignored"
Files = dict[str, pl.DataFrame]


def sheet(kinds: str, prefix: str = "SKU") -> pl.DataFrame:
    """Validated rows from sheet row 2 on, one per letter (spaces ignored): `v` valid, `f`
    failed when read (a bad price), `n` a new SKU without a name (fails when its batch is
    written)."""
    kinds = kinds.replace(" ", "")
    rows = range(2, 2 + len(kinds))
    return pl.DataFrame(
        {
            "row": list(rows),
            "sku": [f"{prefix}-{r}" for r in rows],
            "name": [None if k == "n" else f"Item {r}" for r, k in zip(rows, kinds, strict=True)],
            "error_column": ["price" if k == "f" else None for k in kinds],
            "error_value": ["abc" if k == "f" else None for k in kinds],
            "error_message": ["price 'abc' is not a number" if k == "f" else None for k in kinds],
        },
        schema_overrides={c: pl.String for c in ("error_column", "error_value", "error_message")},
    )


def failing_rows(kinds: str) -> list[int]:
    """The row numbers of a sheet's `f` and `n` rows."""
    return [r for r, k in enumerate(kinds.replace(" ", ""), start=2) if k in "fn"]


def fake_parse_child(monkeypatch: pytest.MonkeyPatch) -> Files:
    """Make `running.load` read the sheet `files[file_uri]`: kept in record batches of the
    `batch_rows` it is asked for, as `prepare.write_rows` in the real child keeps them."""
    files: Files = {}

    def prepare_in_child(source: Path, out: Path, **options: Any) -> SheetSummary:
        frame = files[str(source)]
        out.parent.mkdir(parents=True, exist_ok=True)
        batch_rows = options.get("batch_rows")
        frame.write_ipc(out, compression="uncompressed", record_batch_size=batch_rows)
        invalid = frame.get_column("error_message").is_not_null().sum()
        return SheetSummary(
            "csv",
            None,
            [c for c in frame.columns if c != "row" and not c.startswith("error_")],
            frame.height,
            int(invalid),
            [UNKNOWN_COLUMN],
            unnamed(frame).height,
        )

    monkeypatch.setattr(running, "fetch_local", lambda uri, work_dir: Path(uri))
    monkeypatch.setattr(running, "prepare_in_child", prepare_in_child)
    return files


def new_job(files: Files, kinds: str, prefix: str = "SKU", **options: Any) -> uuid.UUID:
    """A job of the sheet `kinds` (SKUs `<prefix>-<row>`, batches of `BATCH` rows), as an
    upload leaves it."""
    uri = f"sheet-{uuid.uuid4().hex}.csv"
    files[uri] = sheet(kinds, prefix)
    return add_job(file_uri=uri, batch_size=BATCH, columns=["sku", "name"], **options)


def attempt(job_id: uuid.UUID, *, until_batch: int | None = None) -> int | None:
    """One attempt as the flow runs it: begin, load, write and end the job (a preview
    waits for its review), or stop after batch `until_batch` as if its process died
    there; the batches, or None when load ended the job."""
    with session_scope() as session:
        number = begin_attempt(session, job_id, flow_run_id=None)
    assert number is not None
    batches = running.load(job_id, number)
    if batches is None:
        return None
    assert running.write(job_id, number, until_batch or batches, lambda percent, total: None)
    if until_batch is not None:
        return batches
    if running.is_previewing(job_id):
        assert running.close_preview(job_id)
        running.await_review(job_id, run_ended=True)
    else:
        running.finish(job_id, JobStatus.COMPLETED)
    return batches


def outcome(job_id: uuid.UUID) -> dict[str, Any]:
    """What a person sees of a job: status, counts, warnings, reason and row errors."""
    with session_scope(write=False) as session:
        job = get_job(session, job_id)
        assert job is not None
        return {
            "status": job.status,
            "counts": (job.created, job.updated, job.unchanged, job.failed, job.processed_rows),
            "warnings": job.warnings,
            "error": job.error,
            "errors": list_row_errors(session, job_id, limit=1000),
        }


def quiet(percent: float, total: int) -> None:
    """A writing pass's progress, shown to nobody."""


def run(job_id: uuid.UUID) -> JobView:
    """One attempt as the flow runs it; a job that is to wait then waits."""
    end, _ = running.attempt(
        job_id,
        None,
        load=running.load,
        write=lambda job, number, batches: running.write(job, number, batches, quiet),
    )
    if end is running.End.REVIEW:
        running.await_review(job_id, run_ended=True)
    return running.view(job_id)


def read_ahead_job(
    files: Files,
    frame: pl.DataFrame,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    **options: Any,
) -> uuid.UUID:
    """A job of the validated rows `frame` whose file is big enough for its stored items
    to be read during its parse (the fake child ignores the file; its size decides)."""
    monkeypatch.setattr(running, "AHEAD_MIN_BYTES", 0)
    path = tmp_path / f"sheet-{uuid.uuid4().hex}.csv"
    path.write_bytes(b"x" * 1000)  # room for 50 stored items
    files[str(path)] = frame
    with session_scope() as session:
        return create_job(
            session,
            stored=StoredFile(uri=str(path), sha256="ab" * 32, size=1000),
            filename="items.csv",
            source=JobSource.UPLOAD,
            options=JobOptions(batch_size=BATCH, **options),
        ).id
