"""Names shared by whoever serves, deploys or triggers the flows."""

from __future__ import annotations

IMPORT_FLOW = "import-items"
IMPORT_DEPLOYMENT = "import-items"
REIMPORT_DEPLOYMENT = "reimport-items"
CLEAN_UP_DEPLOYMENT = "clean-up"
RECONCILE_DEPLOYMENT = "reconcile-imports"
UNDO_FLOW = "undo-import"
UNDO_DEPLOYMENT = "undo-import"
# Where the flows are, as module paths: workers load them by these names (as a deployment
# does), so nothing that serves or triggers runs imports the `flows` package itself.
IMPORT_ENTRYPOINT = "flows.import_items.import_items"
REIMPORT_ENTRYPOINT = "flows.reimport_items.reimport_items"
CLEAN_UP_ENTRYPOINT = "flows.clean_up.clean_up"
UNDO_ENTRYPOINT = "flows.undo_import.undo_import"
RECONCILE_ENTRYPOINT = "flows.reconcile_imports.reconcile_imports"
FLOW_MODULES = tuple(
    e.rpartition(".")[0] for e in (IMPORT_ENTRYPOINT, REIMPORT_ENTRYPOINT, UNDO_ENTRYPOINT)
)
# The work pool `importer worker` polls and `prefect.yaml` deploys onto.
WORK_POOL = "importer"


def prefixed(name: str) -> str:
    """The name this importer gives a work pool or deployment on its Prefect server:
    `IMPORTER_NAME_PREFIX` before `name` (none by default), so that several importers
    (staging beside production, say) share one server and never take each other's runs."""
    from settings import get_settings

    return f"{get_settings().name_prefix}{name}"


def qualified(flow: str, deployment: str) -> str:
    """The `flow/deployment` name Prefect looks deployments up by."""
    return f"{flow}/{deployment}"
