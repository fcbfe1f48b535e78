"""Serve the import and reimport deployments from this process (`importer worker`)."""

from __future__ import annotations

from prefect import serve
from prefect.deployments.runner import RunnerDeployment

from deployments.names import IMPORT_DEPLOYMENT, REIMPORT_DEPLOYMENT
from deployments.reconcile import start_reconciler
from flows.import_items import import_items
from flows.reimport_items import reimport_items
from settings import Settings, get_settings


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


def serve_deployments() -> None:
    """Run the deployments, and resume imports whose run died, until interrupted."""
    settings = get_settings()
    start_reconciler(settings)
    serve(*build_deployments(settings), limit=settings.worker_limit, pause_on_shutdown=False)
