"""The scheduled reimport flow: import a source, skip it when unchanged, never overlap."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from db.models import ImportJob, JobSource, JobStatus
from db.session import session_scope
from flows.reimport_items import reimport_items
from itemsheet.files.storage import StoredFile
from itemsheet.jobs.importing import JobOptions, create_job
from tests.contract.workbooks import write_xlsx

pytestmark = pytest.mark.usefixtures("prefect_server", "importer_env")


@pytest.fixture(autouse=True)
def sources_under_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Reimports may read this test's own folder."""
    from settings import get_settings

    monkeypatch.setenv("IMPORTER_REIMPORT_ALLOWED", str(tmp_path))
    get_settings.cache_clear()


def jobs() -> list[ImportJob]:
    with session_scope(write=False) as session:
        return list(session.scalars(select(ImportJob).order_by(ImportJob.created_at)))


def test_reimport_imports_then_skips_an_unchanged_file_then_imports_a_changed_one(
    tmp_path: Path,
) -> None:
    source = write_xlsx(tmp_path / "feed.xlsx", [["SKU", "Name"], ["A", "a"], ["B", "b"]])
    first = reimport_items(source=str(source))
    assert (first["status"], first["source"], first["created"]) == ("completed", "schedule", 2)

    second = reimport_items(source=str(source))
    assert second["status"] == "completed"
    assert second["created"] == second["updated"] == second["unchanged"] == 0
    assert any("unchanged since job" in w for w in second["warnings"])

    write_xlsx(source, [["SKU", "Name"], ["A", "a"], ["B", "renamed"]])
    third = reimport_items(source=str(source))
    assert (third["status"], third["updated"], third["unchanged"]) == ("completed", 1, 1)
    assert [j.source for j in jobs()] == [JobSource.SCHEDULE] * 3


def test_missing_source_fails_the_job_with_that_reason(tmp_path: Path) -> None:
    state = reimport_items(source=str(tmp_path / "gone.xlsx"), return_state=True)
    assert state.is_failed()
    [job] = jobs()
    assert job.status == JobStatus.FAILED
    assert job.error == f"the source '{tmp_path / 'gone.xlsx'}' does not exist"


def test_a_reimport_does_not_start_while_another_of_the_same_source_runs(tmp_path: Path) -> None:
    source = write_xlsx(tmp_path / "feed.xlsx", [["SKU", "Name"], ["A", "a"]])
    with session_scope() as session:
        running = create_job(
            session,
            stored=StoredFile(str(source), "0" * 64, 1),
            filename="feed.xlsx",
            source=JobSource.SCHEDULE,
            options=JobOptions(),
            source_uri=str(source),
        )
        running.status = JobStatus.PROCESSING
        running_id = running.id
    view = reimport_items(source=str(source))
    assert view["status"] == "cancelled"
    assert str(running_id) in view["error"]
