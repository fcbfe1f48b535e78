"""Prefect events for every job transition, sent once the transaction that made it commits.

The rest of the system learns of imports through Prefect's events, and Prefect automations
act on them (`orchestration.automations`). Jobs change status in many places and processes
(a flow run, the API's cancel, the reconciler, the dispatcher's time-out, a refused file),
always through `itemsheet.jobs.transitions.move`, which notes the job on its session; so one
session listener sees them all, in every process that has imported this module (it listens
from the import on). At each flush it takes the jobs moved in the transaction, as they are
then, and sends their events after the commit: a rolled-back change sends nothing, and a
commit that changed no status (a late hook of a job already ended) sends nothing either.
A bulk UPDATE would slip past it, so none may set a status
(`tests/orchestration/test_events.py` reads the code for one).

Sending is best effort and quick: Prefect's `EventsWorker` queues the event and delivers
it from its own thread; a failure is logged and never reaches the import.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prefect.events import emit_event
from prefect.events.worker import EventsWorker
from prefect.settings import PREFECT_API_URL
from pydantic import BaseModel, ConfigDict
from sqlalchemy import event
from sqlalchemy.orm import Session

from db.models import ImportMode, JobSource, JobStatus
from itemsheet.jobs.transitions import moved
from itemsheet.jobs.views import GuardView, JobView, job_view
from settings import get_settings

# The one place that says which transitions are told, and by what name: a new status
# gets its event by a line here (and an example automation in `automations.toml`).
EVENT_OF: dict[JobStatus, str] = {
    JobStatus.PROCESSING: "importer.import.started",
    JobStatus.COMPLETED: "importer.import.completed",
    JobStatus.FAILED: "importer.import.failed",
    JobStatus.CANCELLED: "importer.import.cancelled",
    JobStatus.AWAITING_REVIEW: "importer.import.awaiting-review",
    JobStatus.UNDONE: "importer.import.undone",
}
RESOURCE_PREFIX = "importer.job."

log = logging.getLogger("importer.events")


class ImportEventPayload(BaseModel):
    """What an import event tells about its job (the event's `payload`)."""

    model_config = ConfigDict(frozen=True)

    job_id: uuid.UUID
    status: JobStatus
    filename: str
    source: JobSource
    dry_run: bool
    mode: ImportMode
    total_rows: int | None
    processed_rows: int
    created: int
    updated: int
    unchanged: int
    skipped: int
    failed: int
    elapsed_s: float | None
    rows_per_s: float
    error: str | None
    attempt: int
    flow_run_id: uuid.UUID | None
    # Which guardrails the import tripped: an awaiting-review event names them, so an
    # automation can say why the import waits.
    guard: GuardView | None = None
    job_url: str
    page_url: str


@dataclass(frozen=True)
class JobEvent:
    """One event as Prefect's `emit_event` takes it."""

    event: str
    resource: dict[str, str]
    related: list[dict[str, str]]
    payload: ImportEventPayload


def job_api_url(job_id: uuid.UUID, base_url: str) -> str:
    """The job's progress in the API (the job with its counts, as JSON)."""
    return f"{base_url}/api/excel/import/{job_id}/progress"


def job_page_url(job_id: uuid.UUID, base_url: str) -> str:
    """The job on the web page."""
    return f"{base_url}/?job={job_id}"


def job_event(view: JobView, *, base_url: str) -> JobEvent | None:
    """The event that tells `view`'s status; None for a status that is not told."""
    name = EVENT_OF.get(view.status)
    if name is None:
        return None
    resource = {
        "prefect.resource.id": f"{RESOURCE_PREFIX}{view.job_id}",
        "prefect.resource.name": view.filename,
        # Labels an automation can match on, e.g. only scheduled imports.
        "importer.source": view.source.value,
        "importer.status": view.status.value,
    }
    related = [
        {
            "prefect.resource.id": f"importer.source.{view.source.value}",
            "prefect.resource.role": "source",
            "prefect.resource.name": view.source.value,
        }
    ]
    if view.file_sha256:  # a file refused before it was stored has no content to name
        related.append(
            {
                "prefect.resource.id": f"importer.file.{view.file_sha256}",
                "prefect.resource.role": "file",
                "prefect.resource.name": view.filename,
            }
        )
    if view.flow_run_id is not None:
        # The flow run's page in the Prefect UI shows the events that name its run.
        related.append(
            {
                "prefect.resource.id": f"prefect.flow-run.{view.flow_run_id}",
                "prefect.resource.role": "flow-run",
            }
        )
    payload = ImportEventPayload(
        **view.model_dump(include=set(ImportEventPayload.model_fields) - {"job_url", "page_url"}),
        job_url=job_api_url(view.job_id, base_url),
        page_url=job_page_url(view.job_id, base_url),
    )
    return JobEvent(name, resource, related, payload)


class JobEvents:
    """The session listener: notes the jobs moved at flush, sends their events at commit."""

    def __init__(self, send: Callable[[JobEvent], None]) -> None:
        self.send = send
        # Each listener keeps its own notes in the session, so two never take each other's.
        self._key = f"importer.job_events.{id(self)}"

    def attach(self) -> None:
        """Listen to every session of this process."""
        event.listen(Session, "after_flush", self._noted)
        event.listen(Session, "after_commit", self._committed)
        event.listen(Session, "after_rollback", self._rolled_back)

    def detach(self) -> None:
        """Stop listening."""
        event.remove(Session, "after_flush", self._noted)
        event.remove(Session, "after_commit", self._committed)
        event.remove(Session, "after_rollback", self._rolled_back)

    def _noted(self, session: Session, _context: Any) -> None:
        try:
            pending: dict[uuid.UUID, JobView] = session.info.setdefault(self._key, {})
            # A job moved in this transaction is seen again, at each flush, as it is then:
            # its event tells it as it is at the end.
            for job in moved(session):
                pending[job.id] = job_view(job)
        except Exception:
            log.warning("could not note a job transition for its event", exc_info=True)

    def _committed(self, session: Session) -> None:
        pending: dict[uuid.UUID, JobView] = session.info.pop(self._key, {})
        if not pending:
            return
        try:
            base_url = get_settings().public_base_url()
            for view in pending.values():
                if (told := job_event(view, base_url=base_url)) is not None:
                    self.send(told)
        except Exception:
            log.warning("could not send an import event", exc_info=True)

    def _rolled_back(self, session: Session) -> None:
        session.info.pop(self._key, None)


def send_to_prefect(told: JobEvent) -> None:
    """Queue the event for the configured Prefect server.

    Without `PREFECT_API_URL` there is no server to tell: Prefect would start a temporary
    one just for the event, so nothing is sent.
    """
    if not PREFECT_API_URL.value():
        return
    emit_event(
        event=told.event,
        resource=told.resource,
        related=told.related,
        payload=told.payload.model_dump(mode="json"),
    )


# Listening starts when this module is first imported, not when an entry point asks:
# the undo flow never asked, and its undone imports were never told. Every process that
# changes jobs loads this module through code it cannot do without: a flow run through
# `flows.import_items` (the hooks and writer every job flow uses), the API and workers
# through `orchestration.dispatch` (each runs a dispatcher), the CLI through
# `flush_events`. `tests/orchestration/test_events.py` checks every entry point for it.
PREFECT_LISTENER = JobEvents(send_to_prefect)
PREFECT_LISTENER.attach()


def flush_events(timeout_s: float = 5.0) -> None:
    """Deliver queued events before a short-lived process exits (at most `timeout_s`)."""
    try:
        EventsWorker.drain_all(timeout=timeout_s)
    except Exception:
        log.warning("could not deliver the queued events", exc_info=True)
