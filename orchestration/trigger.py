"""Start and cancel import flow runs through the Prefect API (the API's only Prefect link)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from prefect.client.orchestration import PrefectClient, get_client
from prefect.client.schemas.objects import StateType
from prefect.client.schemas.responses import SetStateStatus
from prefect.exceptions import ObjectNotFound
from prefect.settings import PREFECT_WORKER_HEARTBEAT_SECONDS
from prefect.states import Cancelled, Cancelling, Crashed

from itemsheet.jobs.recovery import RunState
from orchestration.names import (
    IMPORT_DEPLOYMENT,
    IMPORT_FLOW,
    UNDO_DEPLOYMENT,
    UNDO_FLOW,
    WORK_POOL,
    prefixed,
    qualified,
)
from orchestration.retries import SoonAgain

TRY_AGAIN = "; try again shortly"
# How long a review's answer waits for its run to suspend: 40 looks, 0.25 s apart.
RESUME_LOOKS = 40
RESUME_LOOK_S = 0.25
# A worker that has not beaten for this many heartbeat intervals is taken as gone.
WORKER_SILENCE_BEATS = 3


@dataclass(frozen=True)
class Readiness:
    """How far the orchestration is from starting an import now."""

    prefect: bool
    deployment: bool = False
    workers: int = 0

    @property
    def ready(self) -> bool:
        """An upload would start its run at once."""
        return self.prefect and self.deployment and self.workers > 0

    @property
    def waiting_for(self) -> str | None:
        """What an upload sent now would wait for, in words; None when ready."""
        if not self.prefect:
            return "the Prefect API is not reachable yet"
        if not self.deployment:
            return "no worker has registered the import deployment yet"
        if not self.workers:
            return "no worker is polling the importer work pool"
        return None


class TriggerUnavailable(Exception):
    """Prefect could not be reached or has no import deployment; `str()` says why."""


@contextmanager
def reaching_prefect(then: str = "") -> Iterator[None]:
    """Turn a failure to reach Prefect into `TriggerUnavailable` with its one-line reason.

    `ObjectNotFound` (Prefect answered: no such run or deployment) passes through, since
    each caller means something different by it. `then` is appended to the reason.
    """
    try:
        yield
    except ObjectNotFound:
        raise
    except Exception as exc:  # httpx errors, timeouts, a server that is starting
        raise TriggerUnavailable(
            f"the Prefect API is not reachable yet ({type(exc).__name__}){then}"
        ) from exc


class PrefectTrigger:
    """Creates flow runs of the import deployment (of the undo deployment for an undo job);
    each deployment id is looked up once."""

    def __init__(self, deployment: str | None = None) -> None:
        self.deployment = deployment or qualified(IMPORT_FLOW, prefixed(IMPORT_DEPLOYMENT))
        self.undo_deployment = qualified(UNDO_FLOW, prefixed(UNDO_DEPLOYMENT))
        self._deployment_id: uuid.UUID | None = None
        self._undo_id: uuid.UUID | None = None
        self._client: PrefectClient | None = None

    async def _prefect(self) -> PrefectClient:
        # One long-lived client keeps its connections: a new one per call costs 60-160 ms.
        if self._client is None:
            # A request Prefect answers 503 (busy) is sent again within 25-200 ms.
            client = get_client(httpx_settings={"transport": SoonAgain()})
            await client.__aenter__()
            self._client = client
        return self._client

    async def aclose(self) -> None:
        """Close the Prefect client (on application shutdown)."""
        if self._client is not None:
            client, self._client = self._client, None
            await client.__aexit__(None, None, None)

    async def _resolve(self) -> uuid.UUID:
        if self._deployment_id is None:
            client = await self._prefect()
            deployment = await client.read_deployment_by_name(self.deployment)
            self._deployment_id = deployment.id
        return self._deployment_id

    async def start_import(
        self, job_id: uuid.UUID, *, filename: str, key: str | None = None, undo: bool = False
    ) -> uuid.UUID:
        """Create a flow run for `job_id` under idempotency key `key` (default: the job id).

        The same key gives the same run, so two dispatchers racing for one job agree.
        """
        return await self._start(job_id, filename=filename, key=key or str(job_id), undo=undo)

    async def retry_import(
        self, job_id: uuid.UUID, *, filename: str, attempt: int, undo: bool = False
    ) -> uuid.UUID:
        """A new flow run for a job that ended; it resumes after the last committed batch."""
        # Unique per request: a retry whose run was cancelled before it started must not
        # get that cancelled run back from Prefect's idempotency check.
        key = f"{job_id}-retry-{attempt}-{uuid.uuid4().hex[:8]}"
        return await self._start(job_id, filename=filename, key=key, undo=undo)

    async def _undo_deployment(self) -> uuid.UUID:
        if self._undo_id is None:
            client = await self._prefect()
            self._undo_id = (await client.read_deployment_by_name(self.undo_deployment)).id
        return self._undo_id

    async def _start(
        self, job_id: uuid.UUID, *, filename: str, key: str, undo: bool = False
    ) -> uuid.UUID:
        # An undo job runs the `undo-import` flow: its first run and its resumes alike.
        name = self.undo_deployment if undo else self.deployment
        try:
            with reaching_prefect():
                deployment_id = await (self._undo_deployment() if undo else self._resolve())
                client = await self._prefect()
                run = await client.create_flow_run_from_deployment(
                    deployment_id,
                    parameters={"job_id": str(job_id)},
                    name=(filename if undo else f"import {filename}")[:200],
                    idempotency_key=key,
                )
        except ObjectNotFound as exc:
            self._deployment_id = self._undo_id = None  # looked up again next time
            raise TriggerUnavailable(
                f"no worker has registered the deployment '{name}' with Prefect"
                " yet (start one with `importer worker`)"
            ) from exc
        except TriggerUnavailable:
            self._deployment_id = self._undo_id = None
            raise
        return run.id

    async def cancel(self, flow_run_id: uuid.UUID) -> None:
        """Ask Prefect to cancel a flow run that has not finished; ignore one that has."""
        with suppress(ObjectNotFound), reaching_prefect(TRY_AGAIN):
            client = await self._prefect()
            run = await client.read_flow_run(flow_run_id)
            if run.state is None or run.state.is_final():
                return
            # No process runs these (a suspended review's neither): cancelled at once.
            if run.state.type in (StateType.SCHEDULED, StateType.PENDING, StateType.PAUSED):
                await client.set_flow_run_state(flow_run_id, Cancelled(), force=True)
            else:
                await client.set_flow_run_state(flow_run_id, Cancelling(), force=True)

    async def resume_review(self, flow_run_id: uuid.UUID, answer: dict[str, Any]) -> str:
        """Resume a review's suspended run with the person's answer (`ReviewInput`'s
        fields): "resumed"; "busy" when the run is already on its way again (someone
        answered first); "ended" when it ended or is gone, so a new run must carry on."""
        with reaching_prefect(TRY_AGAIN):
            client = await self._prefect()
            # The run suspends a moment after its job shows `awaiting_review`.
            for _ in range(RESUME_LOOKS):
                try:
                    run = await client.read_flow_run(flow_run_id)
                except ObjectNotFound:
                    return "ended"
                state = run.state
                if state is None or state.is_final():
                    return "ended"
                if state.is_paused():
                    result = await client.resume_flow_run(flow_run_id, run_input=answer)
                    return "resumed" if result.status is SetStateStatus.ACCEPT else "busy"
                if not state.is_running():
                    return "busy"
                await asyncio.sleep(RESUME_LOOK_S)
        return "busy"

    async def run_state(self, flow_run_id: uuid.UUID) -> RunState | None:
        """The state of a flow run; None when Prefect does not know it."""
        with suppress(ObjectNotFound), reaching_prefect(TRY_AGAIN):
            client = await self._prefect()
            run = await client.read_flow_run(flow_run_id)
            return RunState(run.state.type.value) if run.state is not None else None
        return None

    async def mark_crashed(self, flow_run_id: uuid.UUID, message: str) -> None:
        """Record a run whose process died unnoticed (no heartbeat) as Crashed in Prefect."""
        with suppress(ObjectNotFound), reaching_prefect(TRY_AGAIN):
            client = await self._prefect()
            await client.set_flow_run_state(flow_run_id, Crashed(message=message), force=True)

    async def readiness(self) -> Readiness:
        """Whether Prefect answers, knows the import deployment and has a worker polling."""
        try:
            client = await self._prefect()
            if await client.api_healthcheck() is not None:
                return Readiness(prefect=False)
        except Exception:
            return Readiness(prefect=False)
        try:
            await self._resolve()
        except Exception:
            self._deployment_id = None
            return Readiness(prefect=True)
        try:
            workers = await client.read_workers_for_work_pool(prefixed(WORK_POOL))
        except Exception:
            return Readiness(prefect=True, deployment=True)
        recent = datetime.now(UTC) - timedelta(
            seconds=WORKER_SILENCE_BEATS * PREFECT_WORKER_HEARTBEAT_SECONDS.value()
        )
        online = sum(1 for w in workers if w.last_heartbeat_time and w.last_heartbeat_time > recent)
        return Readiness(prefect=True, deployment=True, workers=online)
