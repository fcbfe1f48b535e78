"""`importer worker` at start: it removes leftovers of interrupted work and registers the
scheduled clean-up (and the paused reconcile deployment), but leaves retention to that
schedule."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client

from db.models import JobStatus
from orchestration.names import (
    CLEAN_UP_DEPLOYMENT,
    RECONCILE_DEPLOYMENT,
    prefixed,
    qualified,
)
from settings import get_settings
from tests.e2e.workers import running_workers
from tests.itemsheet.old_jobs import LONG_AGO, add_job, age, store_old

pytestmark = pytest.mark.stack


def test_a_starting_worker_removes_leftovers_and_deploys_the_clean_up_schedule(
    importer_env: Path, prefect_server: str
) -> None:
    settings = get_settings()
    ended = add_job(store_old(b"ended"), JobStatus.FAILED, ended_ago=timedelta(days=1))
    expired_file = store_old(b"past retention")
    add_job(expired_file, JobStatus.COMPLETED, ended_ago=LONG_AGO, errors=1)
    settings.work_dir.mkdir(parents=True, exist_ok=True)
    rows = settings.work_dir / f"{ended}.1.arrow"
    rows.write_bytes(b"rows of a run killed before it ended its job")
    stored = Path(expired_file.uri)
    partial = stored.parent / f"{stored.name}.{'5' * 32}.partial"
    partial.write_bytes(b"half")
    age(partial, timedelta(hours=2))
    fresh = stored.parent / f"{stored.name}.{'6' * 32}.partial"
    fresh.write_bytes(b"being written")

    with running_workers(importer_env, prefect_server, count=1) as workers:
        deadline = time.monotonic() + 180
        # The removal is logged before the worker registers its deployments.
        while "leftover file(s)" not in workers.logs():
            alive = all(p.poll() is None for p in workers.procs)
            assert time.monotonic() < deadline and alive, workers.logs()
            time.sleep(0.2)
        with get_client(sync_client=True) as client:
            while True:
                try:
                    deployment = client.read_deployment_by_name(
                        qualified("clean-up", prefixed(CLEAN_UP_DEPLOYMENT))
                    )
                    reconciling = client.read_deployment_by_name(
                        qualified("reconcile-imports", prefixed(RECONCILE_DEPLOYMENT))
                    )
                    break
                except Exception:
                    assert time.monotonic() < deadline, workers.logs()
                    time.sleep(0.2)
    assert not rows.exists() and not partial.exists(), workers.logs()
    assert fresh.exists()
    assert stored.read_bytes() == b"past retention"  # retention is the schedule's job
    crons = [getattr(s.schedule, "cron", None) for s in deployment.schedules]
    assert crons == [settings.clean_up_cron]
    assert "removed 2 leftover file(s)" in workers.logs()
    assert deployment.concurrency_options.collision_strategy == "CANCEL_NEW"
    # The worker reconciles in a thread of its own: the deployment plain workers need is
    # there, its schedule paused.
    assert reconciling.paused
    assert [s.schedule.interval.total_seconds() for s in reconciling.schedules] == [30]
