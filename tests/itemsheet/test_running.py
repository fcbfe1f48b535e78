"""An attempt's liveness follows its progress, and a wait for the writer's turn ends."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from db.models import ImportJob, JobStatus, utcnow
from db.session import session_scope
from itemsheet.runs import running
from itemsheet.runs.writer_turn import WriterTurnTimeout, wait_for_writer_turn
from settings import get_settings
from tests.api.helpers import add_job


def heartbeat_at(job_id: uuid.UUID) -> object:
    with session_scope(write=False) as session:
        job = session.get(ImportJob, job_id)
        assert job is not None
        return job.heartbeat_at


def test_the_heartbeat_stops_when_the_work_stops_moving(
    importer_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IMPORTER_HEARTBEAT_S", "0.05")
    monkeypatch.setenv("IMPORTER_STALE_AFTER_S", "0.5")
    get_settings.cache_clear()
    job_id = add_job(status=JobStatus.PROCESSING, attempt=1)

    with running.heartbeat(job_id, 1):
        # Moving: the job beats.
        for _ in range(10):
            running.touch()
            time.sleep(0.05)
        assert heartbeat_at(job_id) is not None
        # Stuck (nothing touches the pulse): past the stale limit, the beats stop.
        time.sleep(0.8)
        silent = heartbeat_at(job_id)
        time.sleep(0.4)
        assert heartbeat_at(job_id) == silent
        # Moving again: beating again.
        for _ in range(6):
            running.touch()
            time.sleep(0.05)
        assert heartbeat_at(job_id) != silent


def test_a_wait_for_the_writers_turn_ends_at_its_deadline_naming_the_holder(
    importer_env: Path,
) -> None:
    holder = add_job(status=JobStatus.PROCESSING, attempt=1, writing_since=utcnow())
    waiter = add_job(status=JobStatus.PROCESSING, attempt=1)
    looks: list[float] = []

    with pytest.raises(WriterTurnTimeout) as refused:
        wait_for_writer_turn(
            waiter, 1, deadline_s=0.2, poll_s=0.02, on_wait=lambda: looks.append(1.0)
        )

    assert refused.value.reason.startswith(f"another import (job {holder}) was still writing")
    assert refused.value.reason.endswith("retry the job once it has finished")
    assert len(looks) >= 3  # each look told the heartbeat the wait is alive
