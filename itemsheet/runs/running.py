"""One attempt at an import, step by step: what the `import-items` flow's tasks carry out.

The flow (`flows/import_items.py`) only wires these steps into Prefect tasks and hooks;
everything an attempt does to the job, the items and the work files is here:

1. `begin`: take the job under a new attempt (None when it has already ended);
2. `heartbeat`: beat for the attempt while the block runs, the long parse included;
3. `load`: parse and validate the file in a child process; the number of batches, or
   None when the file cannot be imported (the job is failed with the one-line reason);
4. `write`: wait for the writer's turn, then commit each remaining batch;
5. `finish` / `settle`: end the job, or leave it to the reconciler, and remove the files.

`attempt` is that sequence, given the load and write steps to call: the flow passes its
Prefect tasks (retried, with a progress artifact), and is left with what a run makes of
the attempt's end (its state, its log lines, its artifacts).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import polars as pl
from sqlalchemy.orm import Session

from db.item_snapshot import StoredItems, count_stored, read_stored
from db.models import ImportMode, JobStatus, OnError, utcnow
from db.repository import get_job, list_row_errors
from db.session import commit_without_waiting, session_scope, writers_waiting
from itemsheet.files.storage import fetch_local
from itemsheet.jobs.claims import beat, mark_interrupted
from itemsheet.jobs.dispatching import runs_waiting
from itemsheet.jobs.importing import (
    CancelRequested,
    GuardMeasure,
    ReadyBatch,
    apply_batch,
    begin_attempt,
    finish_job,
    measure_for_guard,
    prepare_batch,
    record_abort,
    record_check,
    record_summary,
)
from itemsheet.jobs.mappings import mapping_choice
from itemsheet.jobs.recovery import CANCELLED_REASON, INTERRUPTED_REASON, Outcome
from itemsheet.jobs.review import (
    await_answer,
    end_preview,
    record_problem,
    review_text,
)
from itemsheet.jobs.views import JobView, job_view, removed_reason
from itemsheet.runs.batch_hooks import BatchPoint, before_batch
from itemsheet.runs.writer_turn import wait_for_writer_turn, written_besides
from itemsheet.sandbox.child import parse_limits, prepare_in_child
from itemsheet.sandbox.row_batches import RowBatches
from itemsheet.sandbox.warm import lower_priority
from itemsheet.sheet.errors import MappingNeeded, SheetError
from itemsheet.sheet.markdown import md_text
from itemsheet.sheet.prepare import SheetSummary
from itemsheet.sheet.reader import TextOptions
from settings import Settings, get_settings

# A pause between two batch transactions on SQLite when another writer waits for the
# write lock (an upload's job insert, `db.session.writers_waiting`), so that it gets it
# between them instead of after the whole import. Paused between every two batches, a
# million rows took 0.4 s longer. PostgreSQL has no lock an upload waits for.
BATCH_GAP_S = 0.002
# How often progress is shown outside the database (Prefect's artifact API writes to its
# own database: at most once a second).
SHOW_EVERY_S = 1.0
# The guardrails' pass writes no item, so it reads whole batches in transactions of at
# least this many rows: each costs a claim, a progress write and a commit, and 50,000
# rows measured in SQL hold SQLite's write lock about 80 ms.
GUARD_STEP_ROWS = 50_000
# On PostgreSQL its steps are measured in reader transactions of their own, this many at
# once and up to `GUARD_AHEAD` steps ahead of the one being recorded: the server does most
# of the work, in a process per connection, so two cores measure at once (1.9 s -> 1.1 s
# for 1M rows). SQLite's work is in this process, where threads only took turns (1.45 s
# -> 1.8 s): there each step is measured in the transaction that records it.
GUARD_THREADS = 2
GUARD_AHEAD = 3
# A big sheet's guardrails' pass measures against the stored items as read while its file
# is parsed (`db.item_snapshot`; 1M rows against 500,000 items: 0.15 s after the parse,
# against 1.3-2.5 s joined in the database), and its writing pass sends the database no
# row equal to its stored item, for a file of at least `AHEAD_MIN_BYTES`.
# At most one stored item per `AHEAD_BYTES_PER_ITEM` bytes of the file is read: a row
# takes 20-50 bytes of an xlsx file (more of a text file), so about as many items as
# the sheet likely has rows or fewer, and never more than `AHEAD_MOST_ITEMS` (about
# 80 MB a million items of the benchmark's kind).
AHEAD_MIN_BYTES = 4_000_000
AHEAD_BYTES_PER_ITEM = 20
AHEAD_MOST_ITEMS = 2_000_000
SUMMARY_ERRORS = 10


def rows_path(settings: Settings, job_id: uuid.UUID, attempt: int) -> Path:
    """Where an attempt's validated rows wait between the two steps.

    One file per attempt: a stale attempt must never read or remove a newer one's rows.
    """
    return settings.work_dir / f"{job_id}.{attempt}.arrow"


def summary_path(settings: Settings, job_id: uuid.UUID, attempt: int) -> Path:
    """Beside an attempt's rows: how they were read (`reading_key`) and their summary."""
    return settings.work_dir / f"{job_id}.{attempt}.summary"


def forget_rows(job_id: uuid.UUID) -> None:
    """Remove every attempt's rows (and their summaries) of a job that has ended."""
    work_dir = get_settings().work_dir
    for pattern in (f"{job_id}.*.arrow", f"{job_id}.*.summary"):
        for path in work_dir.glob(pattern):
            path.unlink(missing_ok=True)


def reading_key(**reading: Any) -> str:
    """A digest of everything a parse reads (the file's digest, its sheet, the mapping
    and reading choices, the batch size, the limits): equal keys, equal rows."""
    text = json.dumps(reading, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()


def keep_summary(
    settings: Settings, job_id: uuid.UUID, attempt: int, key: str, summary: SheetSummary
) -> None:
    """Note beside an attempt's rows how they were read, so that a later attempt that
    reads the file the same way takes them instead (`kept_rows`)."""
    path = summary_path(settings, job_id, attempt)
    partial = path.with_name(f"{path.name}.partial")
    partial.write_text(json.dumps({"key": key, "summary": dataclasses.asdict(summary)}))
    partial.replace(path)


def kept_rows(settings: Settings, job_id: uuid.UUID, attempt: int, key: str) -> SheetSummary | None:
    """The rows an earlier attempt on this machine read the same way (a review's preview,
    confirmed), moved to this attempt's file; their summary, or None if there are none.

    Only an earlier attempt's files are taken: a newer attempt's are never touched.
    """
    for noted in settings.work_dir.glob(f"{job_id}.*.summary"):
        try:
            earlier = int(noted.name.split(".")[1])
            kept = json.loads(noted.read_text())
        except (ValueError, OSError):
            continue
        rows = rows_path(settings, job_id, earlier)
        if earlier >= attempt or kept.get("key") != key or not rows.exists():
            continue
        try:
            rows.replace(rows_path(settings, job_id, attempt))
        except FileNotFoundError:  # taken meanwhile by another attempt
            continue
        noted.unlink(missing_ok=True)
        return SheetSummary(**kept["summary"])
    return None


def filename_of(job_id: str) -> str | None:
    """The job's file name, for the run's name; None for an unknown or malformed id."""
    try:
        key = uuid.UUID(job_id)
    except ValueError:
        return None
    with session_scope(write=False) as session:
        job = get_job(session, key)
        return job.filename if job else None


# A review held in its run's process gives its worker slot back (it suspends) once another
# job's run has waited this long for one: a run that finds a free slot begins well within it.
SLOT_WANTED_AFTER_S = 2.0


def slot_wanted(job_id: uuid.UUID) -> bool:
    """Whether another job's run waits for a worker slot (see `SLOT_WANTED_AFTER_S`)."""
    with session_scope(write=False) as session:
        return runs_waiting(session, for_longer_than_s=SLOT_WANTED_AFTER_S, besides=job_id)


def view(job_id: uuid.UUID) -> JobView:
    """The job as it stands."""
    with session_scope(write=False) as session:
        job = get_job(session, job_id)
        assert job is not None
        return job_view(job)


def begin(job_id: uuid.UUID, flow_run_id: uuid.UUID | None) -> int | None:
    """Take the job under a new attempt owned by `flow_run_id`; None: it has already ended.

    Imports are batch work: uploads and progress requests on the same machine come first,
    so the attempt's process gives up some priority.
    """
    lower_priority(get_settings().import_nice)
    with session_scope() as session:
        return begin_attempt(session, job_id, flow_run_id=flow_run_id)


class Pulse:
    """The attempt's own sign of progress: touched by the work, read by the heartbeat.

    A beat from a thread alone would go on while the work itself hangs (a stuck database
    call, a deadlock); the heartbeat beats only while the work has touched its pulse
    within the stale limit, so a hung attempt falls silent and is resumed elsewhere.
    """

    def __init__(self) -> None:
        self._last = time.monotonic()

    def touch(self) -> None:
        """The work moved on (a batch committed, the parse child answered, a wait looked)."""
        self._last = time.monotonic()

    def quiet_for(self) -> float:
        """Seconds since the work last moved on."""
        return time.monotonic() - self._last


_pulse = Pulse()


def touch() -> None:
    """Tell this attempt's heartbeat that the work moved on."""
    _pulse.touch()


@contextmanager
def heartbeat(job_id: uuid.UUID, attempt: int) -> Iterator[None]:
    """Beat for `attempt` every few seconds while the work moves on, the long parse
    included, until the block ends."""
    global _pulse
    stop = threading.Event()
    settings = get_settings()
    interval = settings.heartbeat_s
    _pulse = pulse = Pulse()

    def run() -> None:
        while not stop.wait(interval):
            if pulse.quiet_for() >= settings.stale_after_s:
                continue  # the work is stuck: fall silent, so the job is resumed elsewhere
            try:
                with session_scope() as session:
                    alive = beat(session, job_id, attempt=attempt)
            except Exception:  # the database is away for a moment; beat again later
                alive = True
            if not alive:
                return  # a newer attempt owns the job, or it ended

    beater = threading.Thread(target=run, name=f"heartbeat-{job_id}", daemon=True)
    beater.start()
    try:
        yield
    finally:
        stop.set()
        beater.join(timeout=interval + 5)


def load(job_id: uuid.UUID, attempt: int) -> int | None:
    """Parse and validate the job's file in a child process; return the number of batches.

    A file that cannot be imported is not an error of the run: the job is failed here with
    the one-line reason and None returned, so the user sees the reason, not a traceback,
    and the run is not retried.
    """
    settings = get_settings()
    with session_scope(write=False) as session:
        job = get_job(session, job_id)
        assert job is not None
        file_uri, filename, sheet = job.file_uri, job.filename, job.sheet
        file_sha256 = job.file_sha256
        on_error, batch_size = job.on_error, job.batch_size
        removed_at = job.files_removed_at
        previewing, review, mode = job.previewing, job.review, job.mode
        dry_run = job.dry_run
        choice = mapping_choice(session, job)
        options = TextOptions(job.encoding, job.delimiter, job.decimal)
    if removed_at is not None:  # a retry from the Prefect UI of a job past retention
        finish(job_id, JobStatus.FAILED, reason=removed_reason(removed_at))
        return None
    out = rows_path(settings, job_id, attempt)
    package, limits = parse_limits(settings)
    key = reading_key(
        file=file_sha256,
        filename=filename,
        sheet=sheet,
        choice=choice.to_json(),
        options=options,
        batch_rows=batch_size,
        package=package,
        limits=limits,
    )
    try:
        # A confirmed review writes the rows its preview read, when they are still here.
        summary = kept_rows(settings, job_id, attempt, key)
        if summary is None:
            local = fetch_local(file_uri, settings.work_dir)
            # For the guardrails' pass and the writing pass (a review's preview counts in
            # the database, and may wait for its answer far longer than the copy holds).
            if not review and not dry_run and mode is not ImportMode.CREATE_ONLY:
                read_stored_ahead(job_id, attempt, local)  # while the child parses
            summary = prepare_in_child(
                local,
                out,
                filename=filename,
                sheet=sheet,
                package=package,
                limits=limits,
                choice=choice,
                options=options,
                batch_rows=batch_size,
                on_poll=touch,
            )
        keep_summary(settings, job_id, attempt, key, summary)
    except MappingNeeded as exc:
        if not (previewing and review):  # the guardrails' pass has nobody to ask
            finish(job_id, JobStatus.FAILED, reason=exc.reason)
            return None
        # A review shows the likeliest header's columns, for a person to map them.
        with session_scope() as session:
            record_problem(session, job_id, exc)
        return 0
    except SheetError as exc:
        finish(job_id, JobStatus.FAILED, reason=exc.reason)
        return None
    with session_scope() as session:
        record_summary(session, job_id, summary)
        aborted = False
        # Rows without a name are errors only for new SKUs, which the database tells. A
        # review's preview counts them all, and says so; the abort comes when it is
        # confirmed. A guardrails pass has nobody to show them to: it aborts here.
        abort_check = on_error is OnError.ABORT and not (previewing and review)
        if abort_check and (summary.invalid_rows or summary.unnamed_rows):
            with RowBatches(out) as batches:
                reason = record_abort(session, job_id, batches)
            if reason is not None:
                finish_job(session, job_id, JobStatus.FAILED, reason=reason)
                aborted = True
    if aborted:
        forget_rows(job_id)
        return None
    return math.ceil(summary.total_rows / batch_size)


def write(
    job_id: uuid.UUID, attempt: int, batches: int, show: Callable[[float, int], None]
) -> bool:
    """Commit each remaining batch with its row errors and progress in one transaction.

    `show(percent, total_rows)` is called at the start and then at most every `SHOW_EVERY_S` and at
    the end. Returns False when the job was cancelled before or between batches. A retry
    starts after the last committed batch, so nothing is written twice. Only the batch
    being written is read from the rows file, which holds one record batch per batch.
    """
    with session_scope(write=False) as session:
        job = get_job(session, job_id)
        assert job is not None
        size, total = job.batch_size, job.total_rows or 0
        columns, mode = list(job.columns), job.mode
        # The guardrails' own pass writes no item: no hook is told of its batches, and
        # it takes several in one transaction.
        checking = job.checking_guard
        dialect = session.get_bind().dialect.name
        ahead_of_time = checking and dialect != "sqlite"
        # A batch's rows are made ready for its write while the batch before it is written
        # (the database works without the GIL meanwhile); a pass that writes nothing on
        # SQLite would not use them.
        ready_ahead = not checking and (dialect != "sqlite" or not (job.dry_run or job.previewing))
        # The writing pass sends no row equal to its stored item, when it has a copy of
        # them (`importing.prepare_batch`): the only pass whose counts cannot tell.
        leave_same = (
            not checking
            and not (job.dry_run or job.previewing)
            and mode in (ImportMode.UPSERT, ImportMode.UPDATE_ONLY)
        )
    step = -(-GUARD_STEP_ROWS // size) if checking else 1  # whole batches, at least the rows
    # The stored items read while the file was parsed (this attempt's, in this process):
    # the guardrails' pass leaves them to the writing pass.
    key = (job_id, attempt)
    read_ahead = _stored_ahead.get(key) if checking else _stored_ahead.pop(key, None)
    copied: list[StoredItems | None] = []

    def stored(session: Session) -> StoredItems | None:
        """The copy, once this job holds the writer's turn: None when another import may
        have written items since it was read."""
        if not copied:
            found = None
            if read_ahead is not None:
                found = read_ahead.items.result()
                if found is not None and written_besides(session, job_id, since=read_ahead.since):
                    found = None
            copied.append(found)
        return copied[0]

    with (
        RowBatches(rows_path(get_settings(), job_id, attempt)) as rows,
        ThreadPoolExecutor(GUARD_THREADS) as pool,  # no thread starts until it is asked
    ):
        ahead: dict[int, Future[tuple[int, GuardMeasure]]] = {}

        def read(batch_no: int) -> pl.DataFrame:
            batch = rows.batch(batch_no - 1)
            expected = min(size, total - (batch_no - 1) * size)
            if batch.height != expected:
                raise RuntimeError(f"batch {batch_no} read {batch.height:,} rows, not {expected:,}")
            return batch

        def measured(first: int) -> tuple[int, GuardMeasure]:
            """The measure of the step from batch `first`; this step and the next ones are
            measured in the pool, each in a reader's transaction of its own, while the
            steps before them are recorded."""
            for n in range(first, min(first + GUARD_AHEAD * step, batches + 1), step):
                if n not in ahead:
                    frame = pl.concat([read(k) for k in range(n, min(n + step, batches + 1))])
                    ahead[n] = pool.submit(_measure_step, frame, columns, mode)
            return ahead.pop(first).result()

        upcoming: dict[int, Future[tuple[pl.DataFrame, ReadyBatch]]] = {}

        def made_ready(batch_no: int, copy: StoredItems | None) -> tuple[pl.DataFrame, ReadyBatch]:
            batch = read(batch_no)
            return batch, prepare_batch(batch, columns, dialect, copy)

        def commit(session: Session, batch_no: int) -> int:
            if checking:
                last = min(batch_no + step - 1, batches)
                copy = stored(session)
                if ahead_of_time and copy is None:
                    height, found = measured(batch_no)
                else:
                    frame = pl.concat([read(k) for k in range(batch_no, last + 1)])
                    height = frame.height
                    found = measure_for_guard(
                        session, frame, columns=columns, mode=mode, stored=copy
                    )
                record_check(
                    session,
                    job_id,
                    attempt=attempt,
                    first=batch_no,
                    last=last,
                    rows=height,
                    measured=found,
                )
                return min(last * size, total)
            if not ready_ahead:
                batch, prepared = read(batch_no), None
            else:
                copy = stored(session) if leave_same else None
                coming = upcoming.pop(batch_no, None)
                batch, prepared = coming.result() if coming else made_ready(batch_no, copy)
                if batch_no < batches:
                    upcoming[batch_no + 1] = pool.submit(made_ready, batch_no + 1, copy)
            apply_batch(
                session, job_id, attempt=attempt, batch_no=batch_no, rows=batch, prepared=prepared
            )
            return min(batch_no * size, total)

        try:
            return commit_batches(
                job_id, attempt, batches, show, commit, hooks=not checking, step=step
            )
        finally:
            pool.shutdown(cancel_futures=True)


@dataclasses.dataclass(frozen=True)
class StoredAhead:
    """The stored items being read for an attempt's guardrails' pass and writing pass
    (None: not read), and when the read began."""

    items: Future[StoredItems | None]
    since: datetime


_stored_ahead: dict[tuple[uuid.UUID, int], StoredAhead] = {}


def read_stored_ahead(job_id: uuid.UUID, attempt: int, file: Path) -> None:
    """Read the stored items in a thread while `file` is parsed, for the attempt's
    guardrails' pass and writing pass, when the file is big enough and there are not too
    many items (`AHEAD_MIN_BYTES`); `write` takes them."""
    try:
        file_bytes = file.stat().st_size
    except OSError:
        return  # gone: the parse says so
    if file_bytes < AHEAD_MIN_BYTES:
        return
    since = utcnow()

    def read() -> StoredItems | None:
        with session_scope(write=False) as session:
            if written_besides(session, job_id, since=since):
                return None  # another import is writing: its items would soon be stale
            most = min(AHEAD_MOST_ITEMS, file_bytes // AHEAD_BYTES_PER_ITEM)
            return read_stored(session) if count_stored(session) <= most else None

    items: Future[StoredItems | None] = Future()

    def run() -> None:
        try:
            items.set_result(read())
        except Exception:  # the pass measures in the database instead
            items.set_result(None)

    threading.Thread(target=run, name=f"stored-items-{job_id}", daemon=True).start()
    _stored_ahead[(job_id, attempt)] = StoredAhead(items, since)


def _measure_step(
    frame: pl.DataFrame, columns: list[str], mode: ImportMode
) -> tuple[int, GuardMeasure]:
    """The guardrails' measure of one step's rows, in a reader's transaction: its rows and
    what they would change."""
    with session_scope(write=False) as session:
        return frame.height, measure_for_guard(session, frame, columns=columns, mode=mode)


def commit_batches(
    job_id: uuid.UUID,
    attempt: int,
    batches: int,
    show: Callable[[float, int], None],
    commit: Callable[[Session, int], int],
    *,
    hooks: bool = True,
    step: int = 1,
) -> bool:
    """The writer's loop of a job, an import's or an undo's: wait for the writer's turn,
    then `commit(session, batch_no)` each batch after the last committed one, in a
    transaction of its own, returning the rows done after it; with the heartbeat touched,
    the `before_batch` hooks called (unless `hooks` is false: a pass that writes no item)
    and `show(percent, total)` at the start, at most every
    `SHOW_EVERY_S` and at the end. False when the job was cancelled before or between
    batches. With `step`, one transaction takes that many batches from `batch_no` on
    (`commit` is called with the first).
    """
    settings = get_settings()
    with session_scope(write=False) as session:
        job = get_job(session, job_id)
        assert job is not None
        start, total, filename = job.last_batch + 1, job.total_rows or 0, job.filename
        done = job.processed_rows

    def percent(rows: int) -> float:
        return 100.0 * min(rows, total) / max(total, 1)

    show(percent(done), total)
    try:
        wait_for_writer_turn(job_id, attempt, deadline_s=settings.writer_wait_s, on_wait=touch)
    except CancelRequested:
        return False
    shown = time.monotonic()
    for batch_no in range(start, batches + 1, step):
        if hooks:
            before_batch(BatchPoint(job_id, filename, batch_no, min(done, total), keep_alive=touch))
        try:
            with session_scope() as session:
                commit_without_waiting(session)  # 5 ms a batch on PostgreSQL
                done = commit(session, batch_no)
        except CancelRequested:
            return False
        touch()
        if writers_waiting(session):
            time.sleep(BATCH_GAP_S)
        if time.monotonic() - shown >= SHOW_EVERY_S or batch_no + step > batches:
            show(percent(done), total)
            shown = time.monotonic()
    return True


class End(StrEnum):
    """How one attempt at a job ended."""

    ENDED = "ended"  # the job had already ended (or awaits its review): nothing was done
    FAILED = "failed"  # the file cannot be imported, or may not be written: job failed
    CANCELLED = "cancelled"  # cancelled before or between batches: job cancelled
    REVIEW = "review"  # previewed: the job is to wait for its review
    COMPLETED = "completed"  # every batch written: job completed


def attempt(
    job_id: uuid.UUID,
    run_id: uuid.UUID | None,
    *,
    load: Callable[[uuid.UUID, int], int | None],
    write: Callable[[uuid.UUID, int, int], bool],
) -> tuple[End, JobView]:
    """One pass at the job under a new attempt owned by `run_id`: begin, then (while the
    heartbeat beats) `load(job_id, attempt)` and `write(job_id, attempt, batches)` as the
    job asks (a review's preview first), and end the job; how it ended and the job then.

    `load` and `write` carry out `load` and `write` (the flow's tasks do, with retries).
    """
    number = begin(job_id, run_id)
    if number is None:
        return End.ENDED, view(job_id)
    try:
        return _steps(job_id, number, load=load, write=write)
    finally:
        _stored_ahead.pop((job_id, number), None)  # read for a pass that did not come


def _steps(
    job_id: uuid.UUID,
    number: int,
    *,
    load: Callable[[uuid.UUID, int], int | None],
    write: Callable[[uuid.UUID, int, int], bool],
) -> tuple[End, JobView]:
    """The steps of `attempt` under attempt `number`."""
    with heartbeat(job_id, number):
        if (batches := load(job_id, number)) is None:
            return End.FAILED, view(job_id)
        # The guardrails' pass, or a review's preview (also one the guardrails' pass
        # asked for: it is then previewed in full before it waits).
        while is_previewing(job_id):
            if batches and not write(job_id, number, batches):
                return End.CANCELLED, finish(job_id, JobStatus.CANCELLED, reason=CANCELLED_REASON)
            if close_preview(job_id):
                shown = view(job_id)
                # Confirmed during its preview, but may not be written: failed.
                return (End.FAILED if shown.status is JobStatus.FAILED else End.REVIEW), shown
        if not write(job_id, number, batches):
            return End.CANCELLED, finish(job_id, JobStatus.CANCELLED, reason=CANCELLED_REASON)
        done = finish(job_id, JobStatus.COMPLETED)
    return End.COMPLETED, done


def preview_text(job_id: uuid.UUID) -> str:
    """The job's preview as Markdown."""
    with session_scope(write=False) as session:
        job = get_job(session, job_id)
        assert job is not None
        return review_text(job)


def is_previewing(job_id: uuid.UUID) -> bool:
    """The job's next pass is a review's preview (nothing is written)."""
    return view(job_id).previewing


def close_preview(job_id: uuid.UUID) -> bool:
    """End a preview pass: True when the job is to wait for its review (its rows file is
    kept: a confirmation on this machine writes them without reading the file again, see
    `kept_rows`); False when the run goes on: it was
    confirmed meanwhile, or passed the guardrails, and is written now, from its first
    batch, or a guardrail held it back and it is previewed in full first. A job that may
    not be written (on_error=abort with invalid rows) is failed, and True returned too."""
    with session_scope() as session:
        outcome = end_preview(session, job_id)
    if outcome == "":
        return False
    if outcome is not None:
        finish(job_id, JobStatus.FAILED, reason=outcome)
    return True


def await_review(job_id: uuid.UUID, *, run_ended: bool) -> JobView:
    """The job waits for its answer from now on: its run has suspended, or (`run_ended`)
    has ended in its caller's process, and the answer starts a new run then."""
    with session_scope() as session:
        job = await_answer(session, job_id)
        if job is not None and run_ended:
            job.flow_run_id = None
    return view(job_id)


def finish(
    job_id: uuid.UUID,
    status: JobStatus,
    *,
    reason: str | None = None,
    flow_run_id: uuid.UUID | None = None,
) -> JobView:
    """End the job (with `flow_run_id`: only while that run owns it) and, once it has
    ended for good, remove its work files."""
    with session_scope() as session:
        job = finish_job(session, job_id, status, reason=reason, flow_run_id=flow_run_id)
        assert job is not None
        ended = job.status.is_terminal and (flow_run_id is None or job.flow_run_id == flow_run_id)
        final = job_view(job)
    if ended:
        forget_rows(job_id)
    return final


def cancel_was_requested(job_id: uuid.UUID) -> bool:
    """A person asked to cancel the job (through the API)."""
    with session_scope(write=False) as session:
        job = get_job(session, job_id)
        return job is not None and job.cancel_requested


def settle(
    job_id: uuid.UUID, flow_run_id: uuid.UUID, outcome: Outcome, *, error: str, why: str
) -> None:
    """Carry out what `recovery.after_run` made of a run's abnormal end.

    `error` is the run's one-line failure reason; `why` what stopped it, for a job left to
    the reconciler ("crashed", "its worker shut down").
    """
    if outcome is Outcome.FAIL:
        finish(job_id, JobStatus.FAILED, reason=error, flow_run_id=flow_run_id)
    elif outcome is Outcome.CANCEL:
        finish(job_id, JobStatus.CANCELLED, reason=CANCELLED_REASON, flow_run_id=flow_run_id)
    else:
        reason = INTERRUPTED_REASON.format(why=" ".join(why.split())[:200].rstrip("."))
        with session_scope() as session:
            mark_interrupted(session, job_id, reason=reason, flow_run_id=flow_run_id)


def summary(job_id: uuid.UUID) -> tuple[str, list[dict[str, Any]]]:
    """The job's file name and a table of its counts and first row errors, for the run
    (the Prefect UI renders each text cell as Markdown: an error quotes the file)."""
    with session_scope(write=False) as session:
        job = get_job(session, job_id)
        assert job is not None
        shown = job_view(job)
        errors = list_row_errors(session, job.id, limit=SUMMARY_ERRORS)
    counts = ("total_rows", "created", "updated", "unchanged", "failed", "rows_per_s", "elapsed_s")
    table: list[dict[str, Any]] = [{"measure": k, "value": getattr(shown, k)} for k in counts]
    table += [{"measure": f"row {e['row']}", "value": md_text(e["message"])} for e in errors]
    return shown.filename, table
