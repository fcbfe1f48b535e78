"""Whether the service is up (uploads are accepted) and ready (imports start at once)."""

from __future__ import annotations

import logging

import anyio
from fastapi import APIRouter, Response, status
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

from api.deps import TriggerDep
from api.schemas import HealthOut
from db.session import session_scope
from orchestration.trigger import Readiness

log = logging.getLogger(__name__)
router = APIRouter(tags=["health"])
PREFECT_TIMEOUT_S = 5.0


@router.get("/health", responses={503: {"model": HealthOut}})
async def health(trigger: TriggerDep, response: Response) -> HealthOut:
    """200 while uploads are accepted (the database answers), else 503; never needs a key.

    `ready` is true when an upload would start its import at once: Prefect answers, has the
    import deployment and a worker polls for it. Until then uploads are accepted and wait.
    """
    database = await run_in_threadpool(_database_answers)
    readiness = Readiness(prefect=False)
    with anyio.move_on_after(PREFECT_TIMEOUT_S):
        readiness = await trigger.readiness()
    ready = database and readiness.ready
    if not database:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return HealthOut(
        status="ready" if ready else "up" if database else "down",
        ready=ready,
        database="ok" if database else "error",
        prefect="ok" if readiness.prefect else "error",
        workers=readiness.workers,
        waiting_for=None if ready else (readiness.waiting_for or "the database does not answer"),
    )


def _database_answers() -> bool:
    try:
        with session_scope(write=False) as session:
            session.execute(text("SELECT 1"))
    except Exception as exc:  # any failure means "not healthy"; the log says which
        log.warning("database health check failed: %s", exc)
        return False
    return True
