"""The scheduled `reconcile-imports` flow (for plain Prefect workers) against a real server."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from prefect import flow

from db.models import ImportJob, JobSource, JobStatus, utcnow
from db.session import session_scope
from flows.reconcile_imports import reconcile_imports
from itemsheet.importing import JobOptions, create_job
from itemsheet.storage import StoredFile


def stalled_job(*, resumes: int, silent_s: float) -> uuid.UUID:
    """A job that was processing when its run stopped beating `silent_s` ago."""
    with session_scope() as session:
        job = create_job(
            session,
            stored=StoredFile(uri="unused", sha256="0" * 64, size=1),
            filename="items.xlsx",
            source=JobSource.UPLOAD,
            options=JobOptions(),
        )
        job.status = JobStatus.PROCESSING
        job.attempt = 1 + resumes
        job.resumes = resumes
        job.processed_rows = 5000
        job.heartbeat_at = utcnow() - timedelta(seconds=silent_s)
        return job.id


def job(job_id: uuid.UUID) -> ImportJob:
    with session_scope(write=False) as session:
        found = session.get(ImportJob, job_id)
        assert found is not None
        return found


def test_a_silent_job_out_of_attempts_is_failed_and_a_live_one_left_alone(
    importer_env: Path, prefect_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IMPORTER_MAX_ATTEMPTS", "3")
    dead = stalled_job(resumes=2, silent_s=600)
    alive = stalled_job(resumes=0, silent_s=1)
    assert asyncio.run(reconcile_imports()) == {str(dead): "failed"}
    failed = job(dead)
    assert failed.status == JobStatus.FAILED
    assert failed.error is not None and "resume after row 5,000" in failed.error
    assert job(alive).status == JobStatus.PROCESSING


@flow(name="stand-in-import")
def stand_in_import() -> None:
    """A flow whose runs stand in for import runs that never began."""


def pending_job(flow_run_id: uuid.UUID, *, quiet_s: float) -> uuid.UUID:
    """A job waiting for its flow run, unchanged for `quiet_s`."""
    with session_scope() as session:
        job = create_job(
            session,
            stored=StoredFile(uri="unused", sha256="1" * 64, size=1),
            filename="items.xlsx",
            source=JobSource.UPLOAD,
            options=JobOptions(),
        )
        job.flow_run_id = flow_run_id
        job.updated_at = utcnow() - timedelta(seconds=quiet_s)
        return job.id


def test_a_pending_job_whose_run_ended_or_vanished_before_it_began_is_ended(
    importer_env: Path, prefect_server: str
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.states import Cancelled, Crashed, Scheduled

    with get_client(sync_client=True) as client:
        runs = {}
        for name, state in (
            ("cancelled", Cancelled()),
            ("crashed", Crashed(message="the process could not start")),
            ("waiting", Scheduled()),
            ("cancelled just now", Cancelled()),
        ):
            runs[name] = client.create_flow_run(stand_in_import, state=Scheduled()).id
            if not state.is_scheduled():
                client.set_flow_run_state(runs[name], state, force=True)
    runs["vanished"] = uuid.uuid4()
    jobs = {
        name: pending_job(run_id, quiet_s=1 if name.endswith("just now") else 600)
        for name, run_id in runs.items()
    }

    done = asyncio.run(reconcile_imports())

    assert done == {
        str(jobs["cancelled"]): "cancelled",
        str(jobs["crashed"]): "failed",
        str(jobs["vanished"]): "failed",
    }
    assert job(jobs["cancelled"]).status == JobStatus.CANCELLED
    assert job(jobs["crashed"]).error == (
        "its Prefect flow run ended as Crashed before the import began; retry the job"
    )
    assert job(jobs["vanished"]).error == (
        "its Prefect flow run is gone from Prefect before the import began; retry the job"
    )
    # Waiting for a worker, or too recent to judge (a retry whose new run is being started).
    assert job(jobs["waiting"]).status == JobStatus.PENDING
    assert job(jobs["cancelled just now"]).status == JobStatus.PENDING
