"""The transactions of crash recovery, on the database itself."""

from __future__ import annotations

import uuid
from pathlib import Path

from db.models import ImportJob, JobStatus, utcnow
from db.session import session_scope
from itemsheet.jobs.claims import mark_runs_interrupted
from tests.api.helpers import add_job


def test_a_stopping_worker_leaves_only_its_own_runs_jobs_to_be_resumed(
    importer_env: Path,
) -> None:
    mine, theirs = uuid.uuid4(), uuid.uuid4()
    own_job = add_job(status=JobStatus.PROCESSING, flow_run_id=mine, heartbeat_at=utcnow())
    other_job = add_job(status=JobStatus.PROCESSING, flow_run_id=theirs, heartbeat_at=utcnow())
    ended = add_job(status=JobStatus.COMPLETED, flow_run_id=mine)

    with session_scope() as session:
        assert mark_runs_interrupted(session, {mine}, reason="stopped") == 1

    with session_scope(write=False) as session:
        own, other, done = (session.get(ImportJob, j) for j in (own_job, other_job, ended))
        assert own is not None and other is not None and done is not None
        assert (own.heartbeat_at, own.error) == (None, "stopped")
        assert other.heartbeat_at is not None and other.error is None  # another worker's
        assert (done.status, done.error) == (JobStatus.COMPLETED, None)
