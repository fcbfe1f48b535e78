"""A confirmed review writes the rows its preview read, when they are still on this
machine: the file is not read again, unless the answer changed how it is read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from db.models import JobStatus
from itemsheet.jobs.review import ReviewAnswer
from itemsheet.runs import running
from orchestration.answers import apply_in_run
from settings import get_settings
from tests.itemsheet.attempts import Files, fake_parse_child
from tests.itemsheet.test_guard import N, new_job, run, sheet, store, stored_values


@pytest.fixture
def files(importer_env: Path, monkeypatch: pytest.MonkeyPatch) -> Files:
    return fake_parse_child(monkeypatch)


@pytest.fixture
def parses(files: Files, monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The rows files the parse child was asked to write, in order."""
    asked: list[Path] = []
    child = running.prepare_in_child

    def counted(source: Path, out: Path, **options: Any) -> Any:
        asked.append(out)
        return child(source, out, **options)

    monkeypatch.setattr(running, "prepare_in_child", counted)
    return asked


def test_a_confirmed_review_writes_the_rows_its_preview_read(
    files: Files, parses: list[Path]
) -> None:
    store()
    waiting = run(new_job(files, sheet(["11"] * N, [6] * N), review=True))
    assert waiting.status is JobStatus.AWAITING_REVIEW
    assert len(parses) == 1

    apply_in_run(waiting.job_id, ReviewAnswer(confirm=True))
    done = run(waiting.job_id)

    assert len(parses) == 1  # the preview's rows, not a second read
    assert done.status is JobStatus.COMPLETED
    assert (done.updated, done.processed_rows, done.attempt) == (N, N, 2)
    assert set(stored_values().values()) == {("11", 6)}
    # Nothing of the job is left in the work folder once it has ended.
    assert not list(get_settings().work_dir.glob(f"{done.job_id}.*"))


def test_a_review_answered_with_another_reading_reads_the_file_again(
    files: Files, parses: list[Path]
) -> None:
    store()
    waiting = run(new_job(files, sheet(["11"] * N, [6] * N), review=True))

    apply_in_run(waiting.job_id, ReviewAnswer(confirm=True, decimal=","))
    done = run(waiting.job_id)

    # Read again under the decimal comma for its new preview, whose rows are then written.
    assert len(parses) == 2
    assert done.status is JobStatus.COMPLETED


def test_kept_rows_are_taken_only_from_an_earlier_attempt_read_the_same_way(
    files: Files, parses: list[Path]
) -> None:
    store()
    waiting = run(new_job(files, sheet(["11"] * N, [6] * N), review=True))
    settings = get_settings()
    kept = running.summary_path(settings, waiting.job_id, 1)
    assert kept.exists() and running.rows_path(settings, waiting.job_id, 1).exists()

    assert running.kept_rows(settings, waiting.job_id, 2, "another reading") is None
    assert running.kept_rows(settings, waiting.job_id, 1, _key_of(kept)) is None  # not earlier
    taken = running.kept_rows(settings, waiting.job_id, 3, _key_of(kept))

    assert taken is not None and taken.total_rows == N
    assert running.rows_path(settings, waiting.job_id, 3).exists()
    assert not running.rows_path(settings, waiting.job_id, 1).exists()
    assert not kept.exists()


def _key_of(summary: Path) -> str:
    import json

    return str(json.loads(summary.read_text())["key"])
