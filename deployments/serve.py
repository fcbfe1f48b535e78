"""`importer worker`: register the deployments on the `importer` work pool and work for it.

The worker is Prefect's own worker machinery (`deployments.worker.ImporterWorker`, a
`BaseWorker`) polling one work pool, so any number of machines can work for one Prefect
server. It registers the deployments itself (module-path entrypoints: nothing is copied),
starts only once a warm interpreter is ready, and besides Prefect's regular poll it looks
at the importer database: a job that waits for its run wakes it at once. When it starts,
it removes what interrupted work left behind (`itemsheet.housekeeping.leftovers`).
"""

from __future__ import annotations

import asyncio
import signal
import time
from contextlib import suppress
from typing import Any

import httpx
from prefect import Flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.deployments.runner import RunnerDeployment
from prefect.exceptions import ObjectNotFound
from prefect.flows import load_flow_from_entrypoint
from prefect.logging import get_logger
from prefect.schedules import Cron, Interval
from prefect.settings import PREFECT_API_URL, PREFECT_WORKER_QUERY_SECONDS, temporary_settings
from prefect.types.entrypoint import EntrypointType
from starlette.concurrency import run_in_threadpool

from db.session import session_scope
from deployments.definitions import TAGS, deployment_specs
from deployments.worker import WORKER_TYPE, ImporterWorker
from itemsheet.housekeeping.leftovers import remove_leftovers
from itemsheet.jobs.dispatching import runs_waiting
from itemsheet.sheet.sizes import human_size
from orchestration.names import WORK_POOL, prefixed
from orchestration.reconcile import start_reconciler
from settings import Settings, get_settings

# How long a worker waits for its Prefect server to answer before it gives up.
PREFECT_WAIT_S = 240.0
# Between two database-woken polls of the work pool, at least this long.
WAKE_POLL_GAP_S = 0.2
# How often the worker looks for a run waiting in the database: half of it is, on average,
# part of every run's start (a look costs about half a millisecond).
WAKE_CHECK_S = 0.05
STOP_GRACE_S = 20.0

logger = get_logger("importer.worker")


async def build_deployments(settings: Settings) -> list[RunnerDeployment]:
    """The deployments a worker registers: `deployment_specs`, as `prefect.yaml` has them."""
    built = []
    for spec in deployment_specs(settings):
        flow: Flow[..., Any] = load_flow_from_entrypoint(spec.entrypoint)
        concurrency = (
            ConcurrencyLimitConfig(
                limit=spec.concurrency.limit,
                collision_strategy=ConcurrencyLimitStrategy(spec.concurrency.collision_strategy),
            )
            if spec.concurrency is not None
            else None
        )
        schedules = [Cron(spec.cron, timezone="UTC")] if spec.cron is not None else []
        if spec.interval_s is not None:
            schedules.append(Interval(spec.interval_s, timezone="UTC"))
        built.append(
            await flow.ato_deployment(
                name=prefixed(spec.name),
                description=spec.description,
                schedules=schedules or None,
                paused=spec.paused_in_worker or None,
                concurrency_limit=concurrency,
                parameters=dict(spec.parameters),
                tags=list(TAGS),
                work_pool_name=prefixed(WORK_POOL),
                entrypoint_type=EntrypointType.MODULE_PATH,
            )
        )
    return built


def remove_leftovers_at_start(settings: Settings) -> None:
    """Remove what interrupted work left behind (not retention: that is the schedule's).

    A worker that starts after a crash finds the rows and half-written copies of the runs
    that died with it; the leftover rules keep whatever another worker's runs still use.
    A failure here is logged and the worker starts all the same.
    """
    try:
        removed = remove_leftovers(settings)
    except Exception:
        logger.warning("removing leftovers at start failed", exc_info=True)
        return
    files = removed.work.files + removed.unfinished.files
    if files:
        size = human_size(removed.work.bytes + removed.unfinished.bytes)
        logger.info("removed %d leftover file(s) of interrupted work (%s)", files, size)


def wait_for_prefect(timeout_s: float = PREFECT_WAIT_S) -> None:
    """Wait until the configured Prefect API answers (a worker may start before its server).

    Without `PREFECT_API_URL`, Prefect starts a temporary server itself; nothing to wait for.
    """
    url = PREFECT_API_URL.value()
    if not url:
        return
    deadline = time.monotonic() + timeout_s
    told = False
    while True:
        try:
            # Any answer will do: a hosted API may want credentials even for /health.
            if httpx.get(f"{url.rstrip('/')}/health", timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"the Prefect API at {url} did not answer within {timeout_s:.0f} s")
        if not told:
            logger.info("waiting for the Prefect API at %s ...", url)
            told = True
        time.sleep(0.25)


async def ensure_work_pool() -> None:
    """Create the `importer` work pool (of this worker type, prefixed) unless it exists."""
    async with get_client() as client:
        try:
            await client.read_work_pool(prefixed(WORK_POOL))
            return
        except ObjectNotFound:
            pass
        with suppress(Exception):  # another worker created it at the same moment
            await client.create_work_pool(
                WorkPoolCreate(
                    name=prefixed(WORK_POOL),
                    type=WORKER_TYPE,
                    base_job_template=ImporterWorker.get_default_base_job_template(),
                    description="Item imports, run by `importer worker` in warm processes.",
                )
            )


def _runs_waiting() -> bool:
    """True when a job's run exists but the job has not begun: a worker should pick it up."""
    with session_scope(write=False) as session:
        return runs_waiting(session)


async def _wake_on_waiting_jobs(worker: ImporterWorker, stopping: asyncio.Event) -> None:
    """Poll the work pool as soon as the importer database shows a run waiting for a worker."""
    last = 0.0
    while not stopping.is_set():
        with suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), WAKE_CHECK_S)
        if stopping.is_set() or time.monotonic() - last < WAKE_POLL_GAP_S:
            continue
        if not worker.is_setup or worker.limiter.available_tokens < 1:
            continue
        try:
            if await run_in_threadpool(_runs_waiting):
                last = time.monotonic()
                await worker.get_and_submit_flow_runs()
        except Exception:  # the database or Prefect is away a moment; Prefect's poll goes on
            logger.debug("waking the worker failed", exc_info=True)


async def run_worker(settings: Settings) -> None:
    """Work for the `importer` pool until SIGTERM or SIGINT, then stop the runs cleanly."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    worker = ImporterWorker(
        work_pool_name=prefixed(WORK_POOL),
        limit=settings.worker_limit,
        spares=settings.warm_spares,
    )
    # The spares warm up (at low priority) while the Prefect server starts.
    await worker.spares.__aenter__()
    try:
        await _work(worker, settings, stopping)
    finally:
        await worker.spares.__aexit__(None, None, None)


async def _work(worker: ImporterWorker, settings: Settings, stopping: asyncio.Event) -> None:
    await asyncio.to_thread(remove_leftovers_at_start, settings)
    await asyncio.to_thread(wait_for_prefect)
    start_reconciler(settings)
    await ensure_work_pool()
    # Registered at once rather than one after another: each is a few round trips to
    # Prefect, and the service is ready only once all are there.
    deployments = await build_deployments(settings)
    await asyncio.gather(*(d.aapply(work_pool_name=prefixed(WORK_POOL)) for d in deployments))
    with temporary_settings({PREFECT_WORKER_QUERY_SECONDS: settings.worker_poll_s}):
        working = asyncio.create_task(worker.start(printer=logger.info))
        waking = asyncio.create_task(_wake_on_waiting_jobs(worker, stopping))
        await _first(stopping.wait(), working)
        stopping.set()
        if not working.done():
            worker.stopping = True
            await worker.stop_runs(STOP_GRACE_S)
        for task in (waking, working):
            task.cancel()
        for task in (waking, working):
            with suppress(asyncio.CancelledError):
                await task


async def _first(*waits: Any) -> None:
    tasks = [asyncio.ensure_future(w) for w in waits]
    done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        if task is not tasks[-1]:
            task.cancel()
    for task in done:
        if (error := task.exception()) is not None:
            raise error


def serve_deployments() -> None:
    """Run the deployments, and resume imports whose run died, until interrupted."""
    asyncio.run(run_worker(get_settings()))
