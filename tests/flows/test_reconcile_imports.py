"""The scheduled `reconcile-imports` flow (for plain Prefect workers) against a real server."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from pathlib import Path

import pytest

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
