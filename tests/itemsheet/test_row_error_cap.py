"""A job keeps at most IMPORTER_MAX_ROW_ERRORS row errors, the first by row, and counts
every failing row: written, dry, previewed, aborted and resumed, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from db.models import JobStatus, OnError
from settings import get_settings
from tests.itemsheet.attempts import (
    UNKNOWN_COLUMN,
    Files,
    attempt,
    failing_rows,
    fake_parse_child,
    new_job,
    outcome,
)

CAP = 5


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def files(importer_env: Path, monkeypatch: pytest.MonkeyPatch) -> Files:
    monkeypatch.setenv("IMPORTER_MAX_ROW_ERRORS", str(CAP))
    get_settings.cache_clear()
    return fake_parse_child(monkeypatch)


SKIPPED = "vfn fvf fvv nff vv"  # 8 failures, 2 of them when written, in 5 batches


@pytest.mark.parametrize(
    "options",
    [{}, {"dry_run": True}, {"review": True, "previewing": True}],
    ids=["written", "dry-run", "review-preview"],
)
def test_a_job_keeps_the_first_row_errors_by_row_and_counts_every_failed_row(
    options: dict[str, Any], files: Files
) -> None:
    job_id = new_job(files, SKIPPED, **options)

    assert attempt(job_id) == 5
    seen = outcome(job_id)

    assert [e["row"] for e in seen["errors"]] == failing_rows(SKIPPED)[:CAP]
    assert seen["errors"][1] == {
        "row": 4,
        "column": "name",
        "value": None,
        "message": "name is required to create item 'SKU-4'",
    }
    assert seen["counts"] == (6, 0, 0, 8, 14)  # a dry run and a preview count as they would
    assert seen["warnings"] == ["8 rows failed; the first 5 row errors are kept", UNKNOWN_COLUMN]


def test_a_job_within_the_cap_keeps_every_error_and_warns_nothing_more(files: Files) -> None:
    kinds = "vfv vnf vff"
    job_id = new_job(files, kinds)

    attempt(job_id)

    seen = outcome(job_id)
    assert [e["row"] for e in seen["errors"]] == failing_rows(kinds)
    assert seen["counts"][3] == CAP
    assert seen["warnings"] == [UNKNOWN_COLUMN]


@pytest.mark.parametrize("crash_after", [1, 2, 3, 4])
def test_a_resumed_import_keeps_exactly_the_row_errors_of_an_undisturbed_one(
    crash_after: int, files: Files
) -> None:
    # The cap is reached inside batch 2 (rows 2-5 and 7 fail), batch 3's failing row 9 is
    # only counted, and batches 4 and 5 fail nothing: a resume after batch 3 or 4 says
    # how many errors were kept from what is stored.
    kinds = "fff fvf vfv vvv vv"
    undisturbed = new_job(files, kinds, "A")
    attempt(undisturbed)

    resumed = new_job(files, kinds, "B")
    attempt(resumed, until_batch=crash_after)  # its process dies after that commit
    attempt(resumed)

    assert outcome(resumed) == outcome(undisturbed)
    assert [e["row"] for e in outcome(resumed)["errors"]] == failing_rows(kinds)[:CAP]
    assert outcome(resumed)["warnings"][0] == "6 rows failed; the first 5 row errors are kept"


def test_on_error_abort_keeps_the_first_row_errors_by_row_and_counts_every_invalid_row(
    files: Files,
) -> None:
    kinds = "vnf vvn fff vvv nf"  # 8 invalid: 3 new SKUs without a name, 5 bad prices
    job_id = new_job(files, kinds, on_error=OnError.ABORT)

    assert attempt(job_id) is None
    seen = outcome(job_id)

    assert seen["status"] is JobStatus.FAILED
    assert seen["error"] == "8 of 14 rows are invalid and on_error is abort; nothing was imported"
    assert [e["row"] for e in seen["errors"]] == failing_rows(kinds)[:CAP]
    assert seen["counts"] == (0, 0, 0, 8, 0)
    assert seen["warnings"] == ["8 rows failed; the first 5 row errors are kept", UNKNOWN_COLUMN]
