"""An import in create_only or update_only mode, stopped after any batch and resumed, skips,
counts and reports exactly what an undisturbed one does, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from db.models import ImportMode, Item
from db.repository import get_job
from db.session import session_scope
from tests.itemsheet.attempts import Files, attempt, fake_parse_child, new_job, outcome

KINDS = "vvf vvv nvv v"  # 10 rows in 4 batches: a bad price, a new SKU without a name
STORED = (2, 5, 6, 9)  # rows whose SKUs are stored items before the import


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def files(importer_env: Path, monkeypatch: pytest.MonkeyPatch) -> Files:
    return fake_parse_child(monkeypatch)


def seed(prefix: str) -> None:
    """The stored items of `prefix`: rows 2 and 6 as the sheet has them, 5 and 9 renamed."""
    with session_scope() as session:
        session.add_all(
            Item(sku=f"{prefix}-{row}", name=f"Item {row}" if row in (2, 6) else "Old name")
            for row in STORED
        )


def seen(job_id: uuid.UUID, prefix: str) -> dict[str, Any]:
    """The job's outcome with its skipped count, SKUs named without their prefix."""
    found = outcome(job_id)
    with session_scope(write=False) as session:
        job = get_job(session, job_id)
        assert job is not None
        found["skipped"] = job.skipped
    for error in found["errors"]:
        error["message"] = error["message"].replace(f"'{prefix}-", "'")
        error["value"] = (error["value"] or "").replace(f"{prefix}-", "")
    return found


def stored_names(prefix: str) -> dict[int, str]:
    with session_scope(write=False) as session:
        items = session.query(Item).filter(Item.sku.startswith(f"{prefix}-")).all()
        return {int(i.sku.split("-")[1]): i.name for i in items}


@pytest.mark.parametrize("mode", [ImportMode.CREATE_ONLY, ImportMode.UPDATE_ONLY])
@pytest.mark.parametrize("crash_after", [1, 2, 3])
def test_a_resumed_import_skips_exactly_what_an_undisturbed_one_skips(
    mode: ImportMode, crash_after: int, files: Files
) -> None:
    seed("A")
    seed("B")
    undisturbed = new_job(files, KINDS, "A", mode=mode)
    attempt(undisturbed)

    resumed = new_job(files, KINDS, "B", mode=mode)
    attempt(resumed, until_batch=crash_after)  # its process dies after that commit
    attempt(resumed)

    assert seen(resumed, "B") == seen(undisturbed, "A")
    assert stored_names("B") == stored_names("A")
    result = seen(resumed, "B")
    created, updated, unchanged, failed, processed = result["counts"]
    assert created + updated + unchanged + failed + result["skipped"] == processed == 10
    if mode is ImportMode.UPDATE_ONLY:
        # Rows 5 and 9 renamed, 2 and 6 unchanged; the 5 new SKUs skipped (the nameless
        # one too), the bad price failed; nothing created.
        assert (created, updated, unchanged, failed, result["skipped"]) == (0, 2, 2, 1, 5)
        assert set(stored_names("B")) == set(STORED)
    else:
        # The 4 stored SKUs skipped and left as they were; 4 created, the nameless one and
        # the bad price failed.
        assert (created, updated, unchanged, failed, result["skipped"]) == (4, 0, 0, 2, 4)
        assert stored_names("B")[5] == "Old name"


@pytest.mark.parametrize(
    ("mode", "skipped", "sentence"),
    [
        (
            ImportMode.UPSERT,
            (0, 0),
            "the preview counted 0 created, 4 updated, 0 unchanged, 0 failed;"
            " the import made 0 created, 2 updated, 2 unchanged, 0 failed",
        ),
        (
            ImportMode.UPDATE_ONLY,
            (1, 2),
            "the preview counted 0 created, 4 updated, 0 unchanged, 1 skipped, 0 failed;"
            " the import made 0 created, 2 updated, 2 unchanged, 2 skipped, 0 failed",
        ),
    ],
    ids=["upsert", "update_only"],
)
def test_a_reviews_drift_names_skipped_rows_only_where_its_mode_skipped_some(
    mode: ImportMode, skipped: tuple[int, int], sentence: str
) -> None:
    from db.models import ImportJob
    from itemsheet.jobs.review import drift_warning

    said, made = skipped
    counts = {"total_rows": 4 + said, "created": 0, "updated": 4, "unchanged": 0}
    job = ImportJob(
        review=True,
        mode=mode,
        preview={"counts": counts | {"skipped": said, "failed": 0}},
        total_rows=4 + made,
        created=0,
        updated=2,
        unchanged=2,
        skipped=made,
        failed=0,
    )
    assert drift_warning(job) == f"the items changed between the preview and the import: {sentence}"
