"""Serve the import and reimport deployments from this process (`importer worker`)."""

from __future__ import annotations

import time

import httpx
from prefect import serve
from prefect.deployments.runner import RunnerDeployment
from prefect.logging import get_logger
from prefect.settings import PREFECT_API_URL

from deployments.names import IMPORT_DEPLOYMENT, REIMPORT_DEPLOYMENT
from deployments.reconcile import start_reconciler
from flows.import_items import import_items
from flows.reimport_items import reimport_items
from settings import Settings, get_settings

# How long a worker waits for its Prefect server to answer before it gives up.
PREFECT_WAIT_S = 240.0

logger = get_logger("importer.worker")


def build_deployments(settings: Settings) -> list[RunnerDeployment]:
    """The deployments a worker serves; the reimport is scheduled only when configured."""
    imports = import_items.to_deployment(
        name=IMPORT_DEPLOYMENT,
        description="Import one uploaded file (parameter: job_id).",
        tags=["importer"],
    )
    scheduled = bool(settings.reimport_source and settings.reimport_cron)
    parameters = (
        {"source": settings.reimport_source, "sheet": settings.reimport_sheet} if scheduled else {}
    )
    reimports = reimport_items.to_deployment(
        name=REIMPORT_DEPLOYMENT,
        description="Import a file from a path or fsspec URL again, skipping it when unchanged.",
        cron=settings.reimport_cron if scheduled else None,
        parameters=parameters,
        concurrency_limit=1,
        tags=["importer"],
    )
    assert isinstance(imports, RunnerDeployment) and isinstance(reimports, RunnerDeployment)
    return [imports, reimports]


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


def serve_deployments() -> None:
    """Run the deployments, and resume imports whose run died, until interrupted."""
    settings = get_settings()
    wait_for_prefect()
    start_reconciler(settings)
    serve(*build_deployments(settings), limit=settings.worker_limit, pause_on_shutdown=False)
