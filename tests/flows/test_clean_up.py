"""The scheduled `clean-up` flow against a real Prefect server, and how workers deploy it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from db.models import JobStatus
from deployments.serve import build_deployments
from flows.clean_up import clean_up
from orchestration.names import CLEAN_UP_DEPLOYMENT
from settings import get_settings
from tests.itemsheet.old_jobs import LONG_AGO, add_job, error_count, job_row, store_old


def test_a_clean_up_run_removes_an_expired_jobs_file_and_errors_and_reports_it(
    importer_env: Path, prefect_server: str
) -> None:
    file = store_old(b"expired sheet")
    job_id = add_job(file, JobStatus.CANCELLED, ended_ago=LONG_AGO, errors=4)

    report = clean_up()

    assert (report["jobs"], report["row_errors"], report["stored_files"]) == (1, 4, 1)
    assert report["stored_bytes"] == len(b"expired sheet")
    assert not Path(file.uri).exists() and error_count(job_id) == 0
    assert job_row(job_id).files_removed_at is not None


def test_workers_deploy_the_clean_up_on_the_configured_schedule(
    importer_env: Path, prefect_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IMPORTER_CLEAN_UP_CRON", "15 4 * * 0")
    get_settings.cache_clear()

    deployments = {d.name: d for d in asyncio.run(build_deployments(get_settings()))}

    cleaning = deployments[CLEAN_UP_DEPLOYMENT]
    assert [getattr(s.schedule, "cron", None) for s in cleaning.schedules or []] == ["15 4 * * 0"]
    assert cleaning.entrypoint == "flows.clean_up.clean_up"
