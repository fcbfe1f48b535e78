"""The rejected rows of an import as a file to fix and upload again.

The rows are read again from the import's stored file, in a parse child and under the
reading the import used (sheet, encoding, delimiter, header row; `itemsheet.sheet.row_pick`),
by the row numbers of the job's kept row errors (not the rows its mode skipped): every
column as it was, the header row above them, and an `Error` column with each row's
message, which an import ignores (`itemsheet.sheet.header.ERROR_HEADER`). A job keeps the
errors of its first `IMPORTER_MAX_ROW_ERRORS` failing rows; when more rows failed, a last
row holding only an Error cell says how many and after which row, and an import skips it
as empty.
"""

from __future__ import annotations

import re
import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db.models import ImportJob, RowError
from db.session import session_scope
from itemsheet.downloads.csv_writer import CsvText, guard_cell, guard_formula
from itemsheet.downloads.xlsx_writer import Cell, SheetLayout, XlsxStream
from itemsheet.files.storage import fetch_local
from itemsheet.jobs.mappings import mapping_choice
from itemsheet.jobs.views import load_job, removed_reason
from itemsheet.sandbox.child import parse_limits, pick_in_child
from itemsheet.sheet.errors import SheetError
from itemsheet.sheet.formats import FileFormat
from itemsheet.sheet.header import ERROR_HEADER, MappingChoice, is_error_header
from itemsheet.sheet.reader import TextOptions
from itemsheet.sheet.row_pick import RowPick
from itemsheet.sheet.text import How
from settings import Settings, get_settings, make_private_dir

FORMATS = ("xlsx", "csv")
_INTEGER = re.compile(r"-?\d{1,15}")


class RejectedGone(Exception):
    """The import's stored file is no longer there to read the rows from; `str()` says why."""


class NoRejectedRows(Exception):
    """The import has no failed rows."""


@dataclass(frozen=True)
class RejectedSource:
    """What a rejected-rows file is made of, read from the job in one short transaction."""

    file_uri: str
    pick: RowPick
    messages: dict[int, str]
    more_failed: int
    last_kept_row: int
    delimiter: str
    text_file: bool = False


def _chosen(job: ImportJob, name: str) -> str | None:
    """A reading choice the import was given or took from a saved mapping; None where it
    detected (the same bytes are detected the same way again)."""
    given: str | None = getattr(job, name)
    if given:
        return given
    read = (job.reading or {}).get(name) or {}
    return read.get("value") if read.get("how") in (How.GIVEN, How.SAVED) else None


def rejected_source(session: Session, job: ImportJob) -> RejectedSource:
    """The rows to read and their messages; `RejectedGone` when the import keeps no file,
    `NoRejectedRows` when none of its rows failed."""
    if job.files_removed_at is not None:
        raise RejectedGone(removed_reason(job.files_removed_at))
    if not job.file_uri:
        raise RejectedGone("this import keeps no file: it was refused before it was stored")
    # Rows the import's mode skipped are no failures: they are not handed back.
    rows = session.execute(
        select(RowError.row, RowError.message)
        .where(RowError.job_id == job.id, RowError.skipped.is_(False))
        .order_by(RowError.row, RowError.id)
    ).all()
    messages: dict[int, str] = {}
    for row, message in rows:
        messages.setdefault(int(row), message)
    if not messages:
        raise NoRejectedRows("this import has no failed rows")
    last = session.scalar(select(func.max(RowError.row)).where(RowError.job_id == job.id)) or 0
    choice = mapping_choice(session, job)
    pick = RowPick(
        rows=sorted(messages),
        filename=job.filename,
        sheet=job.sheet_name or job.sheet,
        options=TextOptions(_chosen(job, "encoding"), _chosen(job, "delimiter")),
        header_row=(job.header_map or {}).get("row"),
        choice=MappingChoice(choice.explicit, choice.saved, job.header_row),
    )
    delimiter = ((job.reading or {}).get("delimiter") or {}).get("value") or ","
    return RejectedSource(
        job.file_uri,
        pick,
        messages,
        max(job.failed - len(messages), 0),
        int(last),
        delimiter,
        text_file=job.file_format == FileFormat.CSV,
    )


def more_note(more: int, after_row: int, limit: int) -> str:
    """What the last row of a rejected-rows file says when not every failed row is in it."""
    rows = "row" if more == 1 else "rows"
    return (
        f"{more:,} more {rows} failed after row {after_row:,} and are not in this file: the"
        f" import keeps the errors of its first {limit:,} failing rows; import the rows after"
        f" row {after_row:,} of the original file again to find them"
    )


def _as_number(text: str) -> Cell:
    """A workbook number cell's text as the number it is."""
    if _INTEGER.fullmatch(text):
        return int(text)
    try:
        return float(text)
    except ValueError:
        return text


def rejected_table(
    picked: pl.DataFrame, messages: dict[int, str], note: str | None
) -> list[list[Cell]]:
    """The header row with an Error column, then each picked row with its message (and
    the note, alone in its Error cell, last). A file that has an Error column already (a
    rejected-rows file that failed again) keeps it, with the new messages."""
    cells = [c for c in picked.columns if re.fullmatch(r"c\d+", c)]
    used = [
        i
        for i, c in enumerate(cells)
        if picked.get_column(c).str.strip_chars().str.len_chars().fill_null(0).max() or 0
    ]
    width = used[-1] + 1 if used else 0
    header = picked.filter(pl.col("header")).select(cells[:width]).row(0)
    error_at = next((i for i, label in enumerate(header) if is_error_header(label)), width)
    size = max(width, error_at + 1)

    def laid_out(values: Sequence[Cell], message: str) -> list[Cell]:
        row = [*values, *[None] * (size - len(values))]
        row[error_at] = message
        return row

    table = [laid_out(list(header), ERROR_HEADER)]
    flags = [f"n{c[1:]}" for c in cells[:width]]
    numbers = all(f in picked.columns for f in flags)
    for record in picked.filter(~pl.col("header")).iter_rows(named=True):
        values: list[Cell] = []
        for c, flag in zip(cells[:width], flags, strict=True):
            text = record[c]
            values.append(_as_number(text) if numbers and record[flag] and text else text)
        table.append(laid_out(values, messages.get(record["row"], "")))
    if note:
        table.append(laid_out([], note))
    return table


def table_csv(table: list[list[Cell]], delimiter: str, *, text_file: bool) -> bytes:
    """A table as CSV (`itemsheet.downloads.csv_writer.CsvText`) with the file's delimiter, its text
    cells guarded against formulas so that an import reads each back as it read the row
    the first time: a text file's cells as that file held them (`guard_formula`), a
    workbook's text as the text it is (`guard_cell`)."""
    guard = guard_formula if text_file else guard_cell
    rows = [[guard(v) if isinstance(v, str) else v for v in row] for row in table]
    return CsvText(delimiter=delimiter).rows(rows).encode("utf-8")


def table_xlsx(table: list[list[Cell]]) -> bytes:
    """A table as the only sheet of a workbook, its first row a frozen bold header."""
    book = XlsxStream(["Rejected rows"])
    chunks = [book.begin_sheet(SheetLayout()), book.rows(table), book.end_sheet(), book.close()]
    return b"".join(chunks)


def _read_rows(source: RejectedSource, settings: Settings) -> pl.DataFrame:
    try:
        local = fetch_local(source.file_uri, settings.work_dir)
    except SheetError as exc:
        raise RejectedGone(exc.reason) from exc
    with tempfile.TemporaryDirectory(dir=settings.work_dir, prefix="rejected-") as scratch:
        out = Path(scratch) / "rows.arrow"
        package, limits = parse_limits(settings)
        pick_in_child(
            local,
            out,
            pick=source.pick,
            package=package,
            limits=limits,
        )
        return pl.read_ipc(out)


def rejected_file(job_id: uuid.UUID, kind: str) -> tuple[str, bytes]:
    """The job's rejected rows as an `xlsx` or `csv` file: (file name, content).

    Raises `JobNotFound`, `RejectedGone`, `NoRejectedRows`, and `SheetError` when the
    stored file cannot be read again.
    """
    settings = get_settings()
    make_private_dir(settings.work_dir)
    with session_scope(write=False) as session:
        job = load_job(session, job_id)
        source = rejected_source(session, job)
        stem = Path(job.filename).stem or "import"
    picked = _read_rows(source, settings)
    note = None
    if source.more_failed:
        note = more_note(source.more_failed, source.last_kept_row, settings.max_row_errors)
    table = rejected_table(picked, source.messages, note)
    name = f"{stem}-rejected.{kind}"
    if kind == "csv":
        return name, table_csv(table, source.delimiter, text_file=source.text_file)
    return name, table_xlsx(table)
