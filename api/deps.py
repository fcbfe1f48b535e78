"""What routes are given: sessions (one unit of work per request), settings and the trigger."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from functools import lru_cache
from typing import Annotated, Protocol

from fastapi import Depends
from sqlalchemy.orm import Session

from db.session import session_scope
from deployments.trigger import PrefectTrigger
from settings import Settings, get_settings


class ImportTrigger(Protocol):
    """Starts and cancels import flow runs (`deployments.trigger.PrefectTrigger` in service)."""

    async def start_import(self, job_id: uuid.UUID, *, filename: str) -> uuid.UUID:
        """Create the flow run of a new job."""

    async def retry_import(self, job_id: uuid.UUID, *, filename: str, attempt: int) -> uuid.UUID:
        """Create a new flow run for a job that ended."""

    async def cancel(self, flow_run_id: uuid.UUID) -> None:
        """Cancel a flow run that has not finished."""

    async def healthy(self) -> bool:
        """True when the Prefect API answers."""


def get_session() -> Iterator[Session]:
    """A write unit of work: committed when the route returns, rolled back if it raises."""
    with session_scope(write=True) as session:
        yield session


def get_read_session() -> Iterator[Session]:
    """A read-only session that never takes SQLite's write lock."""
    with session_scope(write=False) as session:
        yield session


@lru_cache
def get_trigger() -> ImportTrigger:
    """The process's trigger; it caches the deployment id. Tests override this dependency."""
    return PrefectTrigger()


# scope="function": the unit of work ends before the response is sent, so a client never
# sees an answer whose commit then fails.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
ReadSessionDep = Annotated[Session, Depends(get_read_session, scope="function")]
SettingsDep = Annotated[Settings, Depends(get_settings)]
TriggerDep = Annotated[ImportTrigger, Depends(get_trigger)]
