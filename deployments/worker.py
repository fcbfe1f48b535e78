"""The `importer` Prefect worker type: flow runs start in pre-started interpreters.

Prefect's process worker starts `python -m prefect.engine` for every run, and that new
interpreter spends seconds importing Prefect, the flow and its libraries before the first
line of the flow runs. This worker type (`prefect.workers.base.BaseWorker`, Prefect's
extension point for infrastructure) keeps `IMPORTER_WARM_SPARES` interpreters that have
done those imports already (`deployments.spare`) and hands each new run to one of them.
The spares are forks of a template process that imported Prefect once
(`deployments.forks`), so making one takes milliseconds and a fraction of the imports.

Everything else is Prefect's own machinery, as its process worker uses it: each run gets a
`FlowRunExecutorContext` (state proposals, the control channel through which a cancel is
delivered, the cancellation observer, crashed and cancellation hooks), and the run is its
own OS process whose pid Prefect records. So a run is cancelled from the UI or the API, a
killed run is reported Crashed, and a retry from the UI goes back to the work pool, exactly
as with `prefect worker start --type process`. A run whose environment differs from the
worker's (job variables that change settings) gets a fresh `python -m prefect.engine`.

This module is the `prefect.collections` entry point that makes the worker type known, so
every Prefect process that loads collections imports it (the Prefect server at each start,
before it answers): the flows, the database and the import logic are imported only inside
the functions of a working worker that use them.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

import anyio
import anyio.abc
import anyio.to_thread
import httpx
from prefect.client.schemas.objects import FlowRun
from prefect.exceptions import InfrastructureNotFound
from prefect.logging import get_logger
from prefect.runner._flow_run_executor import FlowRunExecutionResult, FlowRunExecutorContext
from prefect.runner._process_manager import ProcessHandle
from prefect.settings import get_current_settings
from prefect.workers.base import BaseJobConfiguration, BaseVariables, BaseWorker, BaseWorkerResult
from pydantic import PrivateAttr

from deployments.forks import ForkServer
from deployments.spare import READY
from itemsheet.sandbox.warm import WARM_NICE

if TYPE_CHECKING:
    from prefect.client.schemas.objects import Flow as APIFlow
    from prefect.client.schemas.objects import WorkPool
    from prefect.client.schemas.responses import DeploymentResponse
    from prefect.runner._control_channel import ControlChannel

WORKER_TYPE = "importer"
SPARE_START_TIMEOUT_S = 120.0
LEAVE_TIMEOUT_S = 3.0
# A label write Prefect's client gave up on (its own retries spent) is tried again after
# these pauses; the worker's stop cancels it wherever it is.
LABEL_RETRY_PAUSES_S = (1.0, 5.0, 15.0, 30.0, 60.0)

logger = get_logger("importer.worker")


class ImporterJobConfiguration(BaseJobConfiguration):
    """Per-run settings: the environment (Prefect's command is unused by spares)."""

    _job_env: dict[str, str] = PrivateAttr(default_factory=dict)

    def prepare_for_flow_run(
        self,
        flow_run: FlowRun,
        deployment: DeploymentResponse | None = None,
        flow: APIFlow | None = None,
        work_pool: WorkPool | None = None,
        worker_name: str | None = None,
        worker_id: UUID | None = None,
    ) -> None:
        # What the deployment's job variables ask for, before Prefect adds the worker's
        # own settings: a spare started with a different environment cannot take the run.
        self._job_env = {k: v for k, v in self.env.items() if v is not None}
        super().prepare_for_flow_run(
            flow_run, deployment, flow, work_pool, worker_name, worker_id=worker_id
        )

    @property
    def job_env(self) -> dict[str, str]:
        """The environment the deployment's job variables set."""
        return dict(self._job_env)


class ImporterVariables(BaseVariables):
    """What a deployment may set for its runs (the environment, as with process workers)."""


class ImporterWorkerResult(BaseWorkerResult):
    """How a run's process ended."""


class Spare:
    """One pre-started interpreter; `ready` once its imports are done."""

    def __init__(self, process: anyio.abc.Process, env: Mapping[str, str]) -> None:
        self.process = process
        self.env = dict(env)
        self.ready = False

    @property
    def alive(self) -> bool:
        return self.process.returncode is None


class SparePool:
    """Keeps `size` spares starting or ready; a taken one is replaced at once."""

    def __init__(self, size: int, cwd: Path, *, forking: bool = True) -> None:
        self.size = size
        self.cwd = cwd
        # Spares are forked from a template (`deployments.forks`) where it works, and
        # started as interpreters of their own where it does not.
        self._forking = forking
        self.forks: ForkServer | None = None
        self._template_env: dict[str, str] = {}
        self._spares: list[Spare] = []
        self._starting = 0  # spawns asked for whose process is not in `_spares` yet
        self._task_group: anyio.abc.TaskGroup | None = None
        self._output_fd = -1
        # Entered by `importer worker` early (while Prefect starts) and again by the worker's
        # setup: only the outermost exit, in the task that entered first, ends the pool
        # (anyio requires a task group to be left by the task that entered it).
        self._entered = 0
        # Until the first spare is ready the worker is starting and no import runs here:
        # spares then warm up at normal priority, since the worker says it is up (and the
        # service ready) only once one is. Refills later warm up at low priority.
        self._starting_up = True

    async def __aenter__(self) -> SparePool:
        self._entered += 1
        if self._task_group is not None:
            return self  # started early, while the worker waited for its Prefect server
        # What runs print goes where this worker's output goes (see `deployments.spare`).
        self._output_fd = os.dup(1)
        self._task_group = anyio.create_task_group()
        await self._task_group.__aenter__()
        if self.size:
            # Without spares (IMPORTER_WARM_SPARES=0) nothing is prepared ahead: the first
            # run starts the template, which costs it what a fresh interpreter would.
            await self._start_forks()
        self.refill()
        return self

    async def _start_forks(self) -> None:
        if not self._forking or self.forks is not None or self._task_group is None:
            return
        self.forks = ForkServer(self.cwd, self._output_fd)
        self._template_env = dict(os.environ)
        await self._task_group.start(self._run_forks, 0 if self._starting_up else WARM_NICE)

    async def _run_forks(self, nice: int, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        assert self.forks is not None
        await self.forks.run(nice=nice, task_status=task_status)

    async def __aexit__(self, *exc: object) -> None:
        assert self._task_group is not None
        self._entered -= 1
        if self._entered > 0:
            return
        for spare in self._spares:
            await _end_unused(spare)
        self._spares.clear()
        if self.forks is not None:
            await self.forks.stop()
        self._task_group.cancel_scope.cancel()
        await self._task_group.__aexit__(None, None, None)
        os.close(self._output_fd)
        self._task_group = None

    def ready_count(self) -> int:
        """Spares that would start a run now."""
        return sum(1 for s in self._spares if s.ready and s.alive)

    async def wait_ready(self, timeout_s: float = SPARE_START_TIMEOUT_S) -> bool:
        """Wait until one spare is ready (a worker says it is up only then)."""
        deadline = time.monotonic() + timeout_s
        while self.size and not self.ready_count():
            if time.monotonic() > deadline:
                return False
            self.refill()
            await anyio.sleep(0.05)
        self._starting_up = False
        return True

    def take(self, job_env: Mapping[str, str]) -> Spare | None:
        """A spare started with the environment the run asks for: a ready one, else one
        still warming up (it has a head start on a fresh interpreter); None if there is none."""
        self._spares = [s for s in self._spares if s.alive]
        fitting = [s for s in self._spares if _compatible(s.env, job_env)]
        for spare in sorted(fitting, key=lambda s: not s.ready):
            self._spares.remove(spare)
            self.refill()
            return spare
        return None

    def refill(self) -> None:
        """Start spares until `size` are starting or ready."""
        self._spares = [s for s in self._spares if s.alive]
        if self._task_group is None:
            return
        for _ in range(self.size - len(self._spares) - self._starting):
            self._starting += 1
            self._task_group.start_soon(self._start_one)

    async def fork_now(self, job_env: Mapping[str, str]) -> Spare | None:
        """A spare forked at once for a run that found none (it imports the rest at normal
        priority); None where forking does not work or the run's environment differs."""
        await self._start_forks()
        if self.forks is None or not _compatible(self._template_env, job_env):
            return None
        await self.forks.wait_ready()
        process = await self.forks.fork(nice=0)
        return None if process is None else Spare(process, self._template_env)

    async def _start_one(self) -> None:
        try:
            spare = await self._forked() or await self._started()
        finally:
            self._starting -= 1
        if spare is not None:
            await self._warm_up(spare)

    async def _forked(self) -> Spare | None:
        """A spare forked from the template; None where forking does not work."""
        if self.forks is None or not await self.forks.wait_ready():
            return None
        process = await self.forks.fork(nice=0 if self._starting_up else WARM_NICE)
        return None if process is None else Spare(process, self._template_env)

    async def _started(self) -> Spare | None:
        """A spare started as an interpreter of its own."""
        env = dict(os.environ)
        command = [sys.executable, "-m", "deployments.spare", "--output-fd", str(self._output_fd)]
        if self._starting_up:
            command += ["--nice", "0"]
        try:
            process = await anyio.open_process(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=None,
                cwd=self.cwd,
                env=env,
                pass_fds=(self._output_fd,),
            )
        except OSError:
            logger.exception("could not start a spare interpreter")
            return None
        return Spare(process, env)

    async def _warm_up(self, spare: Spare) -> None:
        """Keep `spare` and wait for its `ready`."""
        process = spare.process
        self._spares.append(spare)
        started = time.monotonic()
        assert process.stdout is not None
        said = b""
        with anyio.move_on_after(SPARE_START_TIMEOUT_S):
            with suppress(anyio.EndOfStream, anyio.BrokenResourceError):
                while READY not in said:
                    said += await process.stdout.receive()
        await process.stdout.aclose()
        if spare not in self._spares:
            return  # taken while it warmed up: it carries out its run now
        if READY in said and spare.alive:
            spare.ready = True
            logger.debug("spare %s ready in %.2f s", process.pid, time.monotonic() - started)
        else:
            logger.warning("a spare interpreter did not get ready; starting another")
            self._spares.remove(spare)
            await _end_unused(spare)
            await anyio.sleep(1)
            self.refill()


# Variables that differ per run and are read by the engine when the run starts; any other
# difference from a spare's environment means the spare's settings would be wrong.
PER_RUN_PREFIX = "PREFECT__"


def _compatible(spare_env: Mapping[str, str], job_env: Mapping[str, str]) -> bool:
    differ = [
        key
        for key, value in job_env.items()
        if not key.startswith(PER_RUN_PREFIX) and spare_env.get(key) != value
    ]
    if differ:
        logger.info("the run sets %s unlike the spares; it starts cold", ", ".join(differ))
    return not differ


async def _end_unused(spare: Spare) -> None:
    """An unused spare exits when its input ends."""
    if spare.process.stdin is not None:
        with suppress(Exception):
            await spare.process.stdin.aclose()
    with anyio.move_on_after(5):
        await spare.process.wait()
    if spare.alive:
        spare.process.kill()
        await spare.process.wait()


class SpareStarter:
    """A `ProcessStarter` for Prefect's flow run executor that hands runs to spares."""

    def __init__(
        self,
        pool: SparePool,
        *,
        env: Mapping[str, str | None],
        job_env: Mapping[str, str],
        cwd: Path,
        control_channel: ControlChannel | None,
        running: dict[anyio.abc.Process, UUID],
    ) -> None:
        self.pool = pool
        self.env = env
        self.job_env = job_env
        self.cwd = cwd
        self.control_channel = control_channel
        self.running = running

    def _run_env(self, flow_run: FlowRun) -> dict[str, str]:
        env: dict[str, str | None] = dict(os.environ)
        env.update(self.env)
        env.update(get_current_settings().to_environment_variables(exclude_unset=True))
        env["PREFECT__FLOW_RUN_ID"] = str(flow_run.id)
        # The executor, not the engine, runs crashed and cancellation hooks (as for
        # Prefect's process worker), so a killed run's hooks still run.
        env["PREFECT__ENABLE_CANCELLATION_AND_CRASHED_HOOKS"] = "false"
        if self.control_channel is not None:
            with suppress(RuntimeError):  # no loopback listener: cancel by signal only
                port, token = self.control_channel.register(flow_run.id)
                env["PREFECT__CONTROL_PORT"] = str(port)
                env["PREFECT__CONTROL_TOKEN"] = token
        return {k: v for k, v in env.items() if v is not None}

    async def start(
        self,
        flow_run: FlowRun,
        task_status: anyio.abc.TaskStatus[ProcessHandle] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        env = self._run_env(flow_run)
        spare = self.pool.take(self.job_env) or await self.pool.fork_now(self.job_env)
        if spare is not None:
            process = spare.process
            if not spare.ready:
                logger.debug("flow run %s waits for a spare still warming up", flow_run.id)
            order = {"flow_run_id": str(flow_run.id), "env": _per_run(env)}
            assert process.stdin is not None
            await process.stdin.send(json.dumps(order).encode() + b"\n")
            await process.stdin.aclose()
            logger.debug("flow run %s handed to spare %s", flow_run.id, process.pid)
        else:
            logger.info("no warm interpreter for flow run %s; starting one", flow_run.id)
            process = await anyio.open_process(
                [sys.executable, "-m", "prefect.engine"],
                stdin=subprocess.DEVNULL,
                stdout=None,
                stderr=None,
                cwd=self.cwd,
                env=env,
            )
        self.running[process] = flow_run.id
        try:
            task_status.started(ProcessHandle(process))
            await process.wait()
        finally:
            self.running.pop(process, None)


def _refused(exc: Exception) -> bool:
    """An answer no repeat changes (the run is gone, the request wrong), unlike a 5xx."""
    return isinstance(exc, httpx.HTTPStatusError) and exc.response.status_code < 500


def _per_run(env: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k.startswith(PER_RUN_PREFIX)}


class ImporterWorker(BaseWorker[ImporterJobConfiguration, ImporterVariables, ImporterWorkerResult]):
    """Runs flow runs of its work pool in pre-started interpreters (see the module doc)."""

    type = WORKER_TYPE
    job_configuration = ImporterJobConfiguration
    job_configuration_variables = ImporterVariables
    _description = "Runs flow runs as processes started ahead of time (fast starts)."
    _display_name = "Importer (warm processes)"

    def __init__(
        self, *args: Any, spares: int | None = None, cwd: Path | None = None, **kwargs: Any
    ):
        super().__init__(*args, **kwargs)
        self.cwd = cwd or Path.cwd()
        # `prefect worker start --type importer` passes none: IMPORTER_WARM_SPARES then.
        if spares is None:
            from settings import get_settings

            spares = get_settings().warm_spares
        count = spares
        self.spares = SparePool(count, self.cwd)
        # The runs this worker carries out, by their process.
        self.running: dict[anyio.abc.Process, UUID] = {}
        self.stopping = False
        # Label writes still trying (`_label_run`); a stopping worker cancels them.
        self._labelling: set[anyio.CancelScope] = set()

    async def setup(self) -> None:
        """Start the spares and wait for the first, then register with Prefect: the worker
        shows as online (and the API as ready) only once a run would start warm."""
        await self.spares.__aenter__()
        await self.spares.wait_ready()
        await super().setup()

    async def teardown(self, *exc_info: Any) -> None:
        """Leave the work pool's list of workers, stop polling and the spares (runs in
        progress were stopped by then)."""
        for scope in self._labelling:
            scope.cancel()
        try:
            await self._leave_work_pool()
            await super().teardown(*exc_info)
        finally:
            await self.spares.__aexit__(None, None, None)

    async def _leave_work_pool(self) -> None:
        """Delete this worker's record from its work pool, so that a service started next
        on the same Prefect server does not count it as polling until its last heartbeat
        ages out (about 90 s): its API would say ready while no worker polls yet."""
        if self._client is None or self._work_pool is None:
            return
        # The server may be stopping too (a stack going down at once, or dead): Prefect's
        # client would retry a refused call for about a minute, so the worker waits a few
        # seconds at most, and the record ages out as before.
        with suppress(Exception), anyio.move_on_after(LEAVE_TIMEOUT_S):
            await self._client.request(
                "DELETE",
                "/work_pools/{work_pool_name}/workers/{name}",
                path_params={"work_pool_name": self._work_pool_name, "name": self.name},
            )

    async def _give_worker_labels_to_flow_run(self, flow_run_id: UUID) -> None:
        """Label the run with this worker and its pool, as Prefect does, but while the
        run starts rather than before.

        Prefect's server reads the run's labels and then writes them in one transaction;
        on its SQLite database that write sometimes finds another committed first and
        answers 503 at once, and Prefect's client tries again 2 s later. Before the start,
        that made one run start in 1 of 10-20 take 2.5 s instead of 0.8 s.
        """
        if self._runs_task_group is None:
            await super()._give_worker_labels_to_flow_run(flow_run_id)
            return
        self._runs_task_group.start_soon(self._label_run, flow_run_id)

    async def _label_run(self, flow_run_id: UUID) -> None:
        """Write the worker's labels on the run, trying again while Prefect is busy.

        Prefect's client already repeats a write answered 503 (2, 4, 8, 16 and 32 s
        apart, then gives up 64 s after the last); the labels are how the Prefect UI
        tells which worker ran what, so a write Prefect keeps refusing beyond that is
        repeated a few times more. A worker that stops cancels it (`teardown`).
        """
        scope = anyio.CancelScope()
        self._labelling.add(scope)
        try:
            with scope:
                for pause in (*LABEL_RETRY_PAUSES_S, None):
                    try:
                        await super()._give_worker_labels_to_flow_run(flow_run_id)
                        return
                    except Exception as exc:
                        if pause is None or _refused(exc):
                            # A courtesy: the run goes on without its worker's labels.
                            logger.warning(
                                "could not label flow run %s with its worker: %s",
                                flow_run_id,
                                exc,
                            )
                            return
                    await anyio.sleep(pause)
        finally:
            self._labelling.discard(scope)

    async def get_and_submit_flow_runs(self) -> list[FlowRun]:
        """Prefect's poll of the work pool, except while the worker stops."""
        if self.stopping:
            return []
        return await super().get_and_submit_flow_runs()

    async def run(
        self,
        flow_run: FlowRun,
        configuration: ImporterJobConfiguration,
        task_status: anyio.abc.TaskStatus[int] | None = None,
    ) -> ImporterWorkerResult:
        """Carry out one run in its own process, under Prefect's flow run executor."""
        if task_status is None:
            task_status = anyio.TASK_STATUS_IGNORED
        from prefect.flows import load_flow_from_flow_run

        execution: FlowRunExecutionResult | None = None
        async with FlowRunExecutorContext() as ctx:
            starter = SpareStarter(
                self.spares,
                env=configuration.env,
                job_env=configuration.job_env,
                cwd=self.cwd,
                control_channel=ctx.control_channel,
                running=self.running,
            )
            executor = ctx.create_executor(
                flow_run, starter, resolve_flow=load_flow_from_flow_run, propose_submitting=False
            )

            async def execute(
                *, task_status: anyio.abc.TaskStatus[ProcessHandle] = anyio.TASK_STATUS_IGNORED
            ) -> None:
                nonlocal execution
                execution = await executor.submit(task_status=task_status)

            async with anyio.create_task_group() as group:
                handle = await group.start(execute)
                if handle.pid is None:
                    raise RuntimeError("the flow run's process has no pid")
                task_status.started(handle.pid)
        if execution is None or execution.status_code is None:
            raise RuntimeError("the flow run's process did not start")
        return ImporterWorkerResult(
            status_code=execution.status_code, identifier=str(execution.handle.pid)
        )

    async def kill_infrastructure(
        self,
        infrastructure_pid: str,
        configuration: ImporterJobConfiguration,
        grace_seconds: int = 30,
    ) -> None:
        """Stop a run's process (a run cancelled before it began)."""
        pid = int(infrastructure_pid.rsplit(":", 1)[-1])
        if not any(p.pid == pid for p in self.running):
            raise InfrastructureNotFound(f"no run process {pid} on this worker")
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_seconds
        while any(p.pid == pid for p in self.running) and time.monotonic() < deadline:
            await anyio.sleep(0.1)
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)

    async def stop_runs(self, grace_s: float = 20.0) -> None:
        """SIGTERM every run (the worker stops): each is reported Crashed and its hooks run,
        so its job is resumed by another worker rather than cancelled.

        The jobs of this worker's runs, and only those (other workers on a shared database
        go on), are then left to be resumed at once, also where a hook did not run.
        """
        runs = set(self.running.values())
        for process in list(self.running):
            with suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        # No limiter yet: stopped before it was set up, so no run was taken.
        while (
            self._limiter is not None
            and self._limiter.borrowed_tokens
            and time.monotonic() < deadline
        ):
            await asyncio.sleep(0.1)
        for process in list(self.running):
            with suppress(ProcessLookupError):
                process.kill()
        if runs:
            left = await anyio.to_thread.run_sync(_leave_to_resume, runs)
            logger.info("%d unfinished import(s) resume on the next worker", left)


STOPPED_REASON = "the worker carrying out the import stopped; it resumes on the next worker"


def _leave_to_resume(flow_run_ids: set[UUID]) -> int:
    from db.session import session_scope
    from itemsheet.jobs.claims import mark_runs_interrupted

    with session_scope() as session:
        return mark_runs_interrupted(session, flow_run_ids, reason=STOPPED_REASON)
