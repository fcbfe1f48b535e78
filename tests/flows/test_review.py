"""Review before writing, in the flow: a preview pass that writes nothing, then the answer.

These runs are in-process (no deployment), as `importer import --review` runs them: the
run ends when the preview is ready and the answer starts a new one. The suspended run of
a deployment is the end-to-end tests' (tests/e2e/test_review.py).
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
from sqlalchemy import select

from db.models import ColumnMapping, ImportJob, JobStatus, OnError
from db.repository import count_row_errors
from db.session import session_scope
from itemsheet.jobs.recovery import Act
from itemsheet.jobs.review import REJECTED_REASON, ReviewAnswer, accept
from orchestration.reconcile import reconcile_once
from orchestration.trigger import PrefectTrigger
from settings import get_settings
from tests.contract.workbooks import write_csv, write_xlsx
from tests.flows.test_import_items import catalogue, counts, queue_job, run_job, stored_items
from tests.itemsheet.test_markdown import FILENAME, HEADER, rendered

pytestmark = pytest.mark.usefixtures("prefect_server", "importer_env")

COUNTED = ("total_rows", "created", "updated", "unchanged", "failed")


def answer(job_id: uuid.UUID, given: ReviewAnswer) -> ImportJob:
    """Apply a person's answer to the current preview; run the job on if it asks for it."""
    with session_scope() as session:
        job = session.get(ImportJob, job_id)
        assert job is not None and job.status is JobStatus.AWAITING_REVIEW
        assert accept(session, job_id, round_=job.review_round, answer=given)
        carry_on = job.status is JobStatus.PENDING
    return run_job(job_id) if carry_on else reload(job_id)


def reload(job_id: uuid.UUID) -> ImportJob:
    with session_scope(write=False) as session:
        job = session.get(ImportJob, job_id)
        assert job is not None
        return job


def preview_counts(job: ImportJob) -> dict[str, Any]:
    assert job.preview is not None and job.preview["counts"] is not None
    return {k: job.preview["counts"][k] for k in COUNTED}


def mixed_sheet(tmp_path: Path) -> Path:
    """Against `catalogue(10)`: 4 updated, 3 unchanged, 3 new, 1 with a bad price (the
    last two stored items are not in it)."""
    rows = catalogue(10)
    rows[1][2] = 99  # SKU-00000: new price
    rows[2][1] = "Renamed"  # SKU-00001: new name
    rows[3][3] = 77  # SKU-00002: new quantity
    rows[4][2] = 0  # SKU-00003: new price
    rows[5][2] = "cheap"  # SKU-00004: invalid price
    keep = rows[:5] + rows[5:9]  # rows of SKU-00005..7 unchanged; 8, 9 dropped
    new = [[f"NEW-{i}", f"New {i}", 5, 1] for i in range(3)]
    return write_xlsx(tmp_path / "mixed.xlsx", keep + new)


def test_a_preview_writes_nothing_and_the_confirmed_import_makes_exactly_its_counts(
    tmp_path: Path,
) -> None:
    run_job(queue_job(write_csv(tmp_path / "base.csv", catalogue(10))))
    before = stored_items()

    job_id = queue_job(mixed_sheet(tmp_path), batch_size=3, review=True)
    waiting = run_job(job_id)

    assert waiting.status is JobStatus.AWAITING_REVIEW
    assert stored_items() == before  # the preview pass wrote no item
    expected = {"total_rows": 11, "created": 3, "updated": 4, "unchanged": 3, "failed": 1}
    assert preview_counts(waiting) == expected
    assert waiting.flow_run_id is None  # its run ended; the answer starts a new one
    preview = waiting.preview
    assert preview is not None
    assert [c["field"] for c in preview["columns"]] == ["sku", "name", "price", "quantity"]
    assert preview["errors"] == [
        {"row": 6, "column": "price", "value": "cheap", "message": "price is not a number"}
    ]
    # A price set to 0 and one 66 times higher trip the guardrails (the factor rule; two
    # changed prices are too few for a share): the changes that made it trip come first,
    # largest first, then the others by row.
    assert [t["rule"] for t in preview["guard"]] == ["price_factor"]
    assert [c["sku"] for c in preview["changes"]] == [
        "SKU-00003",
        "SKU-00000",
        "SKU-00001",
        "SKU-00002",
        "NEW-0",
        "NEW-1",
        "NEW-2",
    ]
    assert preview["changes"][1:4] == [
        {"row": 2, "sku": "SKU-00000", "action": "update", "fields": {"price": ["1.5", "99"]}},
        {
            "row": 3,
            "sku": "SKU-00001",
            "action": "update",
            "fields": {"name": ["Item 1", "Renamed"]},
        },
        {"row": 4, "sku": "SKU-00002", "action": "update", "fields": {"quantity": [2, 77]}},
    ]

    done = answer(job_id, ReviewAnswer(confirm=True))

    assert counts(done) | {"status": done.status} == {
        "status": JobStatus.COMPLETED,
        "processed_rows": 11,
        **expected,
    }
    assert not any("changed between" in w for w in done.warnings)
    with session_scope(write=False) as session:
        assert count_row_errors(session, job_id) == 1  # the preview's errors were not doubled
    items = stored_items()
    assert items["SKU-00000"][2] == Decimal("99.0000")
    assert items["SKU-00001"][0] == "Renamed"
    assert items["SKU-00004"] == before["SKU-00004"]
    assert len(items) == 13


def test_a_rejected_review_is_cancelled_and_writes_nothing(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "new.csv", catalogue(5))
    job_id = queue_job(path, review=True)
    assert run_job(job_id).status is JobStatus.AWAITING_REVIEW

    rejected = answer(job_id, ReviewAnswer(confirm=False))

    assert (rejected.status, rejected.error) == (JobStatus.CANCELLED, REJECTED_REASON)
    assert stored_items() == {}
    # A job that was answered cannot be answered again.
    with session_scope() as session:
        assert not accept(session, job_id, round_=0, answer=ReviewAnswer(confirm=True))


def test_items_changed_between_preview_and_confirmation_are_said_in_the_warnings(
    tmp_path: Path,
) -> None:
    run_job(queue_job(write_csv(tmp_path / "base.csv", catalogue(4))))
    job_id = queue_job(write_csv(tmp_path / "raise.csv", catalogue(4, price=3)), review=True)
    assert preview_counts(run_job(job_id))["updated"] == 4
    # Meanwhile another import sets two of those prices already (60 % and 100 % up, past
    # the guardrails, which this one skips).
    run_job(queue_job(write_csv(tmp_path / "other.csv", catalogue(2, price=3)), guard=False))

    done = answer(job_id, ReviewAnswer(confirm=True))

    assert (done.status, done.updated, done.unchanged) == (JobStatus.COMPLETED, 2, 2)
    assert done.warnings[-1] == (
        "the items changed between the preview and the import: the preview counted 0 created,"
        " 4 updated, 0 unchanged, 0 failed; the import made 0 created, 2 updated,"
        " 2 unchanged, 0 failed"
    )


CSV_NAME = FILENAME.removesuffix(".xlsx") + ".csv"


def test_a_file_named_like_markdown_is_shown_as_its_name_in_the_runs_artifacts(
    tmp_path: Path,
) -> None:
    rows = [
        ["SKU", "Name", "Price", HEADER],
        ["A-1", "Apple", 1.5, "x"],
        ["A-2", "Pear", "<b>", "y"],
    ]
    job_id = queue_job(write_csv(tmp_path / CSV_NAME, rows), review=True)
    assert run_job(job_id).status is JobStatus.AWAITING_REVIEW
    assert answer(job_id, ReviewAnswer(confirm=True)).status is JobStatus.COMPLETED

    preview, summary = (job_artifact(job_id, key) for key in ("import-preview", "import-summary"))

    tags, seen = rendered(preview.data)
    assert tags == {"p", "strong", "ul", "li"}  # its title and its changes: no link or image
    assert f"Review of {CSV_NAME}" in seen
    assert f"{HEADER} → (ignored)" in seen
    tags, seen = rendered(summary.description or "")
    assert tags == {"p", "a"}  # the link to the job page, and no other
    assert seen.startswith(f"Import of {CSV_NAME}: job page")


def job_artifact(job_id: uuid.UUID, key: str) -> Any:
    """The artifact `key` of the job's runs, as the Prefect server keeps it."""
    with get_client(sync_client=True) as client:
        for artifact in client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key]))
        ):
            assert artifact.flow_run_id is not None
            if client.read_flow_run(artifact.flow_run_id).parameters["job_id"] == str(job_id):
                return artifact
    raise AssertionError(f"the job's runs have no artifact {key!r}")


GERMAN = [["Artikelnummer", "Bezeichnung", "Preis"], ["A-1", "Apfel", 1.5], ["A-2", "Birne", 2]]
MAPPING = {"Artikelnummer": "sku", "Bezeichnung": "name", "Preis": "price"}


def test_a_sheet_without_an_sku_column_waits_for_a_mapping_which_is_then_saved(
    tmp_path: Path,
) -> None:
    job_id = queue_job(write_xlsx(tmp_path / "de.xlsx", GERMAN), review=True)
    waiting = run_job(job_id)

    assert waiting.status is JobStatus.AWAITING_REVIEW
    assert waiting.preview is not None and waiting.preview["counts"] is None
    assert waiting.preview["problem"].startswith("no header row with an SKU column was found")
    assert [(c["header"], c["samples"]) for c in waiting.preview["columns"]] == [
        ("Artikelnummer", ["A-1", "A-2"]),
        ("Bezeichnung", ["Apfel", "Birne"]),
        ("Preis", ["1.5", "2"]),
    ]

    # Confirmed with a mapping: previewed under it, then written by the same run.
    done = answer(job_id, ReviewAnswer(confirm=True, mapping=MAPPING))

    assert (done.status, done.created, done.review_round) == (JobStatus.COMPLETED, 2, 1)
    assert preview_counts(done) == {
        "total_rows": 2,
        "created": 2,
        "updated": 0,
        "unchanged": 0,
        "failed": 0,
    }
    assert stored_items()["A-2"][:1] == ("Birne",)
    with session_scope(write=False) as session:
        saved = session.scalars(select(ColumnMapping)).one()
    assert (saved.columns, saved.job_id) == (
        {"artikelnummer": "sku", "bezeichnung": "name", "preis": "price"},
        job_id,
    )

    # The next sheet with those headers needs neither a mapping nor a review.
    again = run_job(queue_job(write_csv(tmp_path / "de2.csv", [GERMAN[0], ["A-3", "Kirsche", 3]])))
    assert (again.status, again.created) == (JobStatus.COMPLETED, 1)
    assert again.warnings[0].startswith("columns were mapped by the mapping saved")


def test_a_new_preview_under_another_mapping_waits_again_in_a_new_round(tmp_path: Path) -> None:
    rows = [["SKU", "Name", "Price", "List price"], ["A-1", "Apfel", 1, 9]]
    job_id = queue_job(write_csv(tmp_path / "two-prices.csv", rows), review=True)
    first = run_job(job_id)
    assert first.preview is not None and first.preview["changes"][0]["fields"]["price"] == [
        None,
        "1",
    ]

    again = answer(
        job_id,
        ReviewAnswer(
            confirm=False, preview_only=True, mapping={"Price": None, "List price": "price"}
        ),
    )

    assert (again.status, again.review_round, again.reviewed_at) == (
        JobStatus.AWAITING_REVIEW,
        1,
        None,
    )
    assert again.preview is not None and again.preview["changes"][0]["fields"]["price"] == [
        None,
        "9",
    ]
    assert stored_items() == {}
    assert answer(job_id, ReviewAnswer(confirm=True)).status is JobStatus.COMPLETED
    assert stored_items()["A-1"][2] == Decimal("9.0000")


def test_confirming_an_abort_import_with_invalid_rows_fails_it_with_nothing_written(
    tmp_path: Path,
) -> None:
    rows = catalogue(3)
    rows[2][2] = "n/a"
    job_id = queue_job(write_csv(tmp_path / "bad.csv", rows), review=True, on_error=OnError.ABORT)
    assert preview_counts(run_job(job_id))["failed"] == 1

    done = answer(job_id, ReviewAnswer(confirm=True))

    assert (done.status, done.error) == (
        JobStatus.FAILED,
        "1 of 3 rows are invalid and on_error is abort; nothing was imported",
    )
    assert stored_items() == {}


def test_an_unanswered_review_expires_cancelled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = queue_job(write_csv(tmp_path / "late.csv", catalogue(2)), review=True)
    assert run_job(job_id).status is JobStatus.AWAITING_REVIEW
    with session_scope() as session:
        job = session.get(ImportJob, job_id)
        assert job is not None and job.review_ready_at is not None
        job.review_ready_at -= timedelta(hours=3)
        job.updated_at = job.review_ready_at
    monkeypatch.setenv("IMPORTER_REVIEW_TTL_H", "2")
    get_settings.cache_clear()

    async def one_round() -> dict[uuid.UUID, Act]:
        trigger = PrefectTrigger()
        try:
            return await reconcile_once(trigger, get_settings())
        finally:
            await trigger.aclose()

    assert asyncio.run(one_round()) == {job_id: Act.CANCEL}
    expired = reload(job_id)
    assert (expired.status, expired.error) == (
        JobStatus.CANCELLED,
        "nobody confirmed the import within 2 h of its preview; nothing was written",
    )
    assert stored_items() == {}
