"""The scheduled `reconcile-imports` flow (for plain Prefect workers) against a real server."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from prefect import flow
from sqlalchemy.orm import Session

from db.models import ImportJob, JobSource, JobStatus, utcnow
from db.session import session_scope
from flows.reconcile_imports import reconcile_imports
from itemsheet.files.storage import StoredFile
from itemsheet.jobs.importing import JobOptions, create_job
from itemsheet.jobs.recovery import Act
from orchestration.reconcile import reconcile_once
from orchestration.trigger import PrefectTrigger
from settings import get_settings


def new_job(session: Session) -> ImportJob:
    """A job of a file that is never read."""
    return create_job(
        session,
        stored=StoredFile(uri="unused", sha256="0" * 64, size=1),
        filename="items.xlsx",
        source=JobSource.UPLOAD,
        options=JobOptions(),
    )


def stalled_job(*, resumes: int, silent_s: float) -> uuid.UUID:
    """A job that was processing when its run stopped beating `silent_s` ago."""
    with session_scope() as session:
        job = new_job(session)
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


def pending_job(flow_run_id: uuid.UUID, *, quiet_s: float, resumes: int = 0) -> uuid.UUID:
    """A job waiting for its flow run (after `resumes` earlier runs), unchanged for `quiet_s`."""
    with session_scope() as session:
        job = new_job(session)
        job.flow_run_id = flow_run_id
        job.resumes = resumes
        job.updated_at = utcnow() - timedelta(seconds=quiet_s)
        return job.id


def test_a_pending_job_whose_run_ended_vanished_or_crashed_before_it_began(
    importer_env: Path, prefect_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.states import Cancelled, Crashed, Scheduled

    monkeypatch.setenv("IMPORTER_MAX_ATTEMPTS", "3")
    with get_client(sync_client=True) as client:
        # A deployment no worker serves: a restart's new run waits there, and is looked at.
        flow_id = client.create_flow(stand_in_import)
        client.create_deployment(flow_id=flow_id, name="restart-test")
        runs = {}
        for name, state in (
            ("cancelled", Cancelled()),
            ("crashed", Crashed(message="its worker stopped while starting it")),
            ("crashed again", Crashed(message="its worker stopped while starting it")),
            ("waiting", Scheduled()),
            ("cancelled just now", Cancelled()),
        ):
            runs[name] = client.create_flow_run(stand_in_import, state=Scheduled()).id
            if not state.is_scheduled():
                client.set_flow_run_state(runs[name], state, force=True)
    runs["vanished"] = uuid.uuid4()
    jobs = {
        name: pending_job(
            run_id,
            quiet_s=1 if name.endswith("just now") else 600,
            resumes=2 if name == "crashed again" else 0,  # its third run crashed
        )
        for name, run_id in runs.items()
    }

    async def one_round() -> dict[uuid.UUID, Act]:
        trigger = PrefectTrigger(deployment="stand-in-import/restart-test")
        try:
            return await reconcile_once(trigger, get_settings())
        finally:
            await trigger.aclose()

    done = asyncio.run(one_round())

    assert {k: str(v) for k, v in done.items()} == {
        jobs["cancelled"]: "cancelled",
        jobs["crashed"]: "restart",
        jobs["crashed again"]: "failed",
        jobs["vanished"]: "failed",
    }
    assert job(jobs["cancelled"]).status == JobStatus.CANCELLED
    assert job(jobs["vanished"]).error == (
        "its Prefect flow run is gone from Prefect before the import began; retry the job"
    )
    restarted = job(jobs["crashed"])
    assert (restarted.status, restarted.resumes) == (JobStatus.PENDING, 1)
    assert restarted.flow_run_id not in (None, runs["crashed"])
    with get_client(sync_client=True) as client:
        new_run = client.read_flow_run(restarted.flow_run_id)
    assert new_run.parameters == {"job_id": str(restarted.id)}
    assert new_run.state is not None and new_run.state.is_scheduled()
    out_of_attempts = job(jobs["crashed again"])
    assert out_of_attempts.status == JobStatus.FAILED
    assert out_of_attempts.error is not None and "crashed 3 time(s)" in out_of_attempts.error
    # Waiting for a worker, or too recent to judge (a retry whose new run is being started).
    assert job(jobs["waiting"]).status == JobStatus.PENDING
    assert job(jobs["cancelled just now"]).status == JobStatus.PENDING
    # A second round leaves the restarted job to its new, waiting run.
    assert asyncio.run(one_round()) == {}
