"""Whether the service can work: its database and the Prefect API both answer."""

from __future__ import annotations

import logging

import anyio
from fastapi import APIRouter, Response, status
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

from api.deps import TriggerDep
from api.schemas import HealthOut
from db.session import session_scope

log = logging.getLogger(__name__)
router = APIRouter(tags=["health"])
PREFECT_TIMEOUT_S = 5.0


@router.get("/health", responses={503: {"model": HealthOut}})
async def health(trigger: TriggerDep, response: Response) -> HealthOut:
    """200 when the database and Prefect both answer, else 503; never needs credentials."""
    database = await run_in_threadpool(_database_answers)
    prefect = False
    with anyio.move_on_after(PREFECT_TIMEOUT_S):
        prefect = await trigger.healthy()
    if not (database and prefect):
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return HealthOut(database="ok" if database else "error", prefect="ok" if prefect else "error")


def _database_answers() -> bool:
    try:
        with session_scope(write=False) as session:
            session.execute(text("SELECT 1"))
    except Exception as exc:  # any failure means "not healthy"; the log says which
        log.warning("database health check failed: %s", exc)
        return False
    return True
