"""Guardrails: each rule trips just past its threshold and not at it, on SQLite and
PostgreSQL; a tripped import waits, writes only once confirmed, writes nothing when
rejected, and resumes exactly after a crash before or after its check."""

from __future__ import annotations

import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from db.models import ImportJob, Item, JobSource, JobStatus
from db.session import session_scope
from itemsheet.files.storage import StoredFile
from itemsheet.jobs.importing import JobOptions, create_job
from itemsheet.jobs.review import ReviewAnswer
from itemsheet.jobs.views import JobView, job_view
from itemsheet.runs import running
from orchestration.answers import apply_in_run
from settings import get_settings
from tests.itemsheet.attempts import (
    BATCH,
    Files,
    attempt,
    fake_parse_child,
    quiet,
    read_ahead_job,
    run,
)

N = 10  # stored items per test, sheets name all of them


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def files(importer_env: Path, monkeypatch: pytest.MonkeyPatch) -> Files:
    return fake_parse_child(monkeypatch)


def store(prices: list[str] | None = None, quantities: list[int] | None = None) -> None:
    """Items G-1 .. G-10 (price 10, quantity 5 unless given)."""
    prices = prices or ["10"] * N
    quantities = quantities or [5] * N
    with session_scope() as session:
        session.add_all(
            Item(sku=f"G-{k}", name=f"Item {k}", price=Decimal(p), quantity=q)
            for k, (p, q) in enumerate(zip(prices, quantities, strict=True), start=1)
        )


def sheet(prices: list[str] | None = None, quantities: list[int] | None = None) -> pl.DataFrame:
    """Validated rows naming G-1 .. G-10: their names as stored, then the prices and
    quantities given (a sheet of price alone, or of quantity alone, when one is None)."""
    columns: dict[str, Any] = {
        "row": list(range(2, 2 + N)),
        "sku": [f"G-{k}" for k in range(1, N + 1)],
    }
    if prices is not None and quantities is not None:
        columns["name"] = [f"Item {k}" for k in range(1, N + 1)]
    frame = pl.DataFrame(columns)
    if prices is not None:
        frame = frame.with_columns(pl.Series("price", prices).cast(pl.Decimal(18, 4)))
    if quantities is not None:
        frame = frame.with_columns(pl.Series("quantity", quantities, dtype=pl.Int64))
    return frame.with_columns(
        pl.lit(None, pl.String).alias(c) for c in ("error_column", "error_value", "error_message")
    )


def new_job(files: Files, frame: pl.DataFrame, **options: Any) -> uuid.UUID:
    """A job of `frame` as an upload creates it (guarded unless told otherwise)."""
    uri = f"sheet-{uuid.uuid4().hex}.csv"
    files[uri] = frame
    with session_scope() as session:
        job = create_job(
            session,
            stored=StoredFile(uri=uri, sha256="ab" * 32, size=1),
            filename="items.csv",
            source=JobSource.UPLOAD,
            options=JobOptions(batch_size=BATCH, **options),
        )
        return job.id


def stored_values() -> dict[str, tuple[str, int | None]]:
    with session_scope(write=False) as session:
        return {
            i.sku: (format(Decimal(str(i.price)).normalize(), "f"), i.quantity)
            for i in session.query(Item)
        }


def preview_of(job_id: uuid.UUID) -> dict[str, Any]:
    from db.repository import get_job

    with session_scope(write=False) as session:
        job = get_job(session, job_id)
        assert job is not None
        return dict(job.preview or {})


def rules(view: JobView) -> list[str]:
    return [t.rule for t in view.guard.tripped]


@pytest.mark.parametrize(
    ("prices", "tripped"),
    [
        # 2 of 10 by more than 50 % (and one by exactly 50 %, which is not more): 20 %.
        (["16", "16", "15"] + ["11"] * 7, []),
        # 3 of 10: 30 %, more than 20 %.
        (["16", "16", "16"] + ["11"] * 7, ["price_change"]),
        # Downwards too: 4.99 is more than 50 % below 10.
        (["4.99", "4.99", "4.99"] + ["11"] * 7, ["price_change"]),
    ],
    ids=["at-the-share", "past-the-share", "down"],
)
def test_the_price_change_rule_trips_past_its_share_of_updated_prices(
    files: Files, prices: list[str], tripped: list[str]
) -> None:
    store()
    before = stored_values()
    job = run(new_job(files, sheet(prices, [5] * N)))

    assert rules(job) == tripped
    if not tripped:
        assert job.status is JobStatus.COMPLETED
        assert stored_values()["G-1"] == ("16", 5)
        return
    assert job.status is JobStatus.AWAITING_REVIEW
    assert stored_values() == before  # nothing written
    trip = job.guard.tripped[0]
    new = f"{Decimal(prices[0]):.2f}"
    assert trip.sentence == (
        "3 of 10 updated prices (30 %) would change by more than 50 %;"
        f" e.g. G-1 10.00 -> {new}, G-2 10.00 -> {new}, G-3 10.00 -> {new}"
    )
    assert (trip.seen, trip.of, trip.percent) == (3, 10, 30.0)
    assert trip.threshold == {"share_pct": 20.0, "change_pct": 50.0}
    assert [e.sku for e in trip.examples] == ["G-1", "G-2", "G-3"]


def test_a_share_of_fewer_items_than_the_minimum_is_not_judged(files: Files) -> None:
    # 9 of 10 stored prices change, all by 60 %: 100 % of the changed prices, but of 9.
    store()
    job = run(new_job(files, sheet(["16"] * (N - 1) + ["10"], [5] * N)))

    assert job.status is JobStatus.COMPLETED
    assert not job.guard.tripped


@pytest.mark.parametrize(
    ("old", "new", "tripped"),
    [
        ("2", "19.99", []),  # by 9.995: not quite 10
        ("2", "20", ["price_factor"]),  # cents read as euros
        ("20", "2", ["price_factor"]),  # euros read as tens of cents
    ],
    ids=["under", "up", "down"],
)
def test_any_price_changing_by_the_factor_trips(
    files: Files, old: str, new: str, tripped: list[str]
) -> None:
    # One price of ten moves by the factor; the nine others by 10 %, so the share of
    # large changes (1 of 10) stays under its threshold.
    store(prices=[old] + ["10"] * (N - 1))
    job = run(new_job(files, sheet([new] + ["11"] * (N - 1), [5] * N)))

    assert rules(job) == tripped
    assert job.status is (JobStatus.AWAITING_REVIEW if tripped else JobStatus.COMPLETED)
    if tripped:
        trip = job.guard.tripped[0]
        assert trip.sentence == (
            "1 of 10 updated prices would change by a factor of 10 or more (cents read as"
            f" euros?); e.g. G-1 {Decimal(old):.2f} -> {Decimal(new):.2f}"
        )
        # The preview shows the item that made it trip first.
        assert preview_of(job.job_id)["changes"][0]["sku"] == "G-1"


@pytest.mark.parametrize(
    ("zeroes", "tripped"), [(2, []), (3, ["quantity_zero"])], ids=["at-the-share", "past"]
)
def test_the_quantity_zero_rule_trips_past_its_share_of_stored_items(
    files: Files, zeroes: int, tripped: list[str]
) -> None:
    # G-10 had none and keeps none: named by the sheet, but not emptied by it.
    store(quantities=[5] * (N - 1) + [0])
    quantities = [0] * zeroes + [7] * (N - 1 - zeroes) + [0]
    job = run(new_job(files, sheet(["10"] * N, quantities)))

    assert rules(job) == tripped
    if tripped:
        assert job.status is JobStatus.AWAITING_REVIEW
        assert job.guard.tripped[0].sentence == (
            "3 of 10 stored items in the sheet (30 %) would get quantity 0 where it was"
            " positive; e.g. G-1 5 -> 0, G-2 5 -> 0, G-3 5 -> 0"
        )
        assert stored_values()["G-1"] == ("10", 5)
    else:
        assert job.status is JobStatus.COMPLETED
        assert stored_values()["G-1"] == ("10", 0)


@pytest.mark.parametrize(
    ("changed", "tripped"), [(8, []), (9, ["partial_sheet"])], ids=["at-the-share", "past"]
)
def test_a_partial_sheet_updating_most_stored_items_trips(
    files: Files, changed: int, tripped: list[str]
) -> None:
    store()
    # A sheet of prices alone, 10 % up on `changed` of the 10 stored items.
    job = run(new_job(files, sheet(["11"] * changed + ["10"] * (N - changed), None)))

    assert rules(job) == tripped
    if tripped:
        assert job.guard.tripped[0].sentence == (
            "a sheet of only price would update 9 of all 10 stored items (90 %), more than"
            " 80 %; e.g. G-1 price 10.00 -> 11.00, G-2 price 10.00 -> 11.00,"
            " G-3 price 10.00 -> 11.00"
        )
    else:
        assert job.status is JobStatus.COMPLETED


def test_swapped_columns_wait_and_a_confirmation_writes_them_once(files: Files) -> None:
    store(quantities=[4] * N)
    swapped = run(new_job(files, sheet(["4"] * N, [10] * N)))  # price 10, quantity 4
    assert swapped.status is JobStatus.AWAITING_REVIEW
    assert "price_change" in rules(swapped)
    preview = preview_of(swapped.job_id)
    chart = preview["chart"]
    assert chart["prices"]["items"] == N
    assert sum(b["items"] for b in chart["prices"]["buckets"] if b["beyond"]) == N
    assert chart["prices"]["threshold"] == "more than 50 % either way"
    assert chart["quantities"]["items"] == N

    apply_in_run(swapped.job_id, ReviewAnswer(confirm=True))
    done = run(swapped.job_id)

    assert done.status is JobStatus.COMPLETED  # confirmed: not checked again
    assert (done.updated, done.unchanged) == (N, 0)
    assert stored_values()["G-4"] == ("4", 10)
    assert not any("changed between the preview" in w for w in done.warnings)


def test_a_held_back_import_previewed_again_waits_again_though_nothing_trips(
    files: Files,
) -> None:
    store(quantities=[4] * N)
    job = run(new_job(files, sheet(["4"] * N, [10] * N)))
    assert job.status is JobStatus.AWAITING_REVIEW and job.review

    # Meanwhile the items come to hold what the sheet says: nothing would trip now. But
    # a person asked only to see it again, so it waits for them.
    with session_scope() as session:
        for item in session.query(Item):
            item.price, item.quantity = Decimal("4"), 10
    apply_in_run(job.job_id, ReviewAnswer(preview_only=True))
    again = run(job.job_id)

    assert again.status is JobStatus.AWAITING_REVIEW
    assert not again.guard.tripped
    assert again.updated == 0


def test_a_rejected_guarded_import_writes_nothing(files: Files) -> None:
    store(quantities=[4] * N)
    before = stored_values()
    job = run(new_job(files, sheet(["4"] * N, [10] * N)))
    apply_in_run(job.job_id, ReviewAnswer(confirm=False))

    assert running.view(job.job_id).status is JobStatus.CANCELLED
    assert stored_values() == before


@pytest.mark.parametrize("how", ["form", "setting"])
def test_guard_off_writes_at_once(files: Files, monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    store()
    if how == "setting":
        monkeypatch.setenv("IMPORTER_GUARD", "off")
        get_settings.cache_clear()
    job = run(new_job(files, sheet(["4"] * N, [10] * N), guard=how != "form"))

    assert job.status is JobStatus.COMPLETED
    assert not job.guard.checked and not job.guard.tripped
    assert stored_values()["G-1"] == ("4", 10)


def test_a_pass_stopped_during_its_check_resumes_to_the_same_trip(files: Files) -> None:
    store()
    undisturbed = run(new_job(files, sheet(["16"] * 3 + ["11"] * 7, [0] * 3 + [5] * 7)))

    stopped = new_job(files, sheet(["16"] * 3 + ["11"] * 7, [0] * 3 + [5] * 7))
    attempt(stopped, until_batch=2)  # its process dies after the check's second batch
    resumed = run(stopped)

    assert resumed.status is JobStatus.AWAITING_REVIEW
    assert resumed.guard == undisturbed.guard
    assert rules(resumed) == ["price_change", "quantity_zero"]
    assert preview_of(stopped)["chart"] == preview_of(undisturbed.job_id)["chart"]


def test_an_import_stopped_after_its_check_resumes_writing_exactly(files: Files) -> None:
    store()
    frame = sheet(["11"] * N, [6] * N)
    stopped = new_job(files, frame)
    with session_scope() as session:
        from itemsheet.jobs.importing import begin_attempt

        number = begin_attempt(session, stopped, flow_run_id=None)
    assert number is not None
    batches = running.load(stopped, number)
    assert batches is not None
    assert running.write(stopped, number, batches, quiet)  # the check's pass
    assert not running.close_preview(stopped)  # nothing tripped: it writes now
    assert running.write(stopped, number, 1, quiet)  # then dies after one batch

    resumed = run(stopped)

    assert resumed.status is JobStatus.COMPLETED
    assert (resumed.updated, resumed.unchanged, resumed.processed_rows) == (N, 0, N)
    assert resumed.guard.checked and not resumed.guard.tripped
    assert set(stored_values().values()) == {("11", 6)}


def test_the_check_counts_apart_so_progress_rises_once_from_the_first_write(
    files: Files,
) -> None:
    store()
    job_id = new_job(files, sheet(["11"] * N, [6] * N))
    attempt(job_id, until_batch=2)  # stopped in the check, after two batches counted

    with session_scope(write=False) as session:
        job = session.get(ImportJob, job_id)
        assert job is not None
        mid_check = job_view(job)
    assert mid_check.status is JobStatus.PROCESSING
    assert (mid_check.processed_rows, mid_check.percent) == (0, 0.0)
    assert mid_check.checked_rows == 2 * BATCH

    done = run(job_id)
    assert (done.processed_rows, done.percent, done.checked_rows) == (N, 100.0, None)


@pytest.mark.parametrize("step_rows", [2 * BATCH, 2 * BATCH - 1])
def test_the_check_takes_several_batches_to_a_transaction(
    files: Files, monkeypatch: pytest.MonkeyPatch, step_rows: int
) -> None:
    """A step is whole batches of at least `GUARD_STEP_ROWS` rows."""
    from sqlalchemy import event
    from sqlalchemy.orm import Session

    store()
    monkeypatch.setattr(running, "GUARD_STEP_ROWS", step_rows)
    job_id = new_job(files, sheet(["11"] * N, [6] * N))  # 4 batches of 3 rows
    checked: list[int] = []

    def flushed(session: Session, _context: object) -> None:
        for job in session.dirty:
            if isinstance(job, ImportJob) and job.checking_guard and job.last_batch:
                checked.append(job.last_batch)

    event.listen(Session, "after_flush", flushed)
    try:
        done = run(job_id)
    finally:
        event.remove(Session, "after_flush", flushed)

    assert checked == [2, 4]  # two transactions of two batches each
    assert done.status is JobStatus.COMPLETED
    assert (done.updated, done.processed_rows) == (N, N)
    assert set(stored_values().values()) == {("11", 6)}


def measured_in_database(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The rows each guardrails' step measured in the database, as they are measured."""
    from itemsheet.jobs import importing

    steps: list[int] = []
    measure = importing.measure_items

    def counted(session: Any, frame: pl.DataFrame, **options: Any) -> Any:
        steps.append(frame.height)
        return measure(session, frame, **options)

    monkeypatch.setattr(importing, "measure_items", counted)
    return steps


def test_a_big_sheet_is_judged_against_the_items_read_during_its_parse(
    files: Files, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store(["10"] * 8 + ["0", "10"], [5] * 9 + [0])
    frame = sheet(["16"] * 3 + ["0.5"] + ["11"] * 6, [0] * 3 + [5] * 6 + [7])
    steps = measured_in_database(monkeypatch)

    job_id = read_ahead_job(files, frame, tmp_path, monkeypatch)
    read_ahead = run(job_id)
    assert steps == []
    in_database = run(new_job(files, frame))  # a small file: measured in the database
    assert sum(steps) == N

    assert read_ahead.status is JobStatus.AWAITING_REVIEW
    assert rules(read_ahead) == ["price_factor", "quantity_zero"]
    assert read_ahead.guard == in_database.guard
    assert preview_of(job_id)["chart"] == preview_of(in_database.job_id)["chart"]


def test_items_another_import_may_have_written_meanwhile_are_measured_in_the_database(
    files: Files, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from itemsheet.jobs.importing import begin_attempt

    store()
    job_id = read_ahead_job(files, sheet(["11"] * N, [6] * N), tmp_path, monkeypatch)
    with session_scope() as session:
        number = begin_attempt(session, job_id, flow_run_id=None)
    assert number is not None
    batches = running.load(job_id, number)  # the stored items are read from here on
    assert batches is not None
    other = new_job(files, sheet(["12"] * N, [7] * N))
    running.finish(other, JobStatus.CANCELLED, reason="ended while the first was parsed")
    steps = measured_in_database(monkeypatch)

    assert running.write(job_id, number, batches, quiet)  # the guardrails' pass

    assert sum(steps) == N
    assert not running.close_preview(job_id)  # nothing tripped


def test_a_guarded_import_whose_stored_file_is_gone_fails_with_the_reason(
    importer_env: Path, tmp_path: Path
) -> None:
    with session_scope() as session:
        job_id = create_job(
            session,
            stored=StoredFile(uri=str(tmp_path / "gone.xlsx"), sha256="ab" * 32, size=1),
            filename="items.xlsx",
            source=JobSource.UPLOAD,
            options=JobOptions(batch_size=BATCH),
        ).id

    view = run(job_id)

    assert view.status is JobStatus.FAILED
    assert (
        view.error
        == "the stored file of this import is missing from storage; upload the file again"
    )
