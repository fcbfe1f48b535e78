"""Response models built from jobs: the job's `JobView` plus links, ETA and the Prefect UI link."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from starlette.requests import HTTPConnection

from api.schemas import JobProgress
from api.services.reports import eta_seconds, flow_run_url
from db.models import ImportJob
from itemsheet.jobs.views import job_view


@dataclass(frozen=True)
class JobLinks:
    """Where a client follows one job (paths under the app's root)."""

    progress_url: str
    events_url: str
    errors_url: str


def job_links(request: HTTPConnection, job_id: uuid.UUID) -> JobLinks:
    """The job's URLs as paths, so they hold behind any host name or proxy prefix."""

    def path(name: str) -> str:
        return request.url_for(name, job_id=str(job_id)).path

    return JobLinks(path("import_progress"), path("import_events"), path("import_errors"))


def job_progress(job: ImportJob, links: JobLinks) -> JobProgress:
    """A job as its progress endpoint and event stream show it."""
    view = job_view(job)
    return JobProgress(
        **dict(view),
        eta_s=eta_seconds(view),
        flow_run_url=flow_run_url(job.flow_run_id),
        errors_url=links.errors_url,
    )
