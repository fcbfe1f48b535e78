"""Names shared by whoever serves, deploys or triggers the flows."""

from __future__ import annotations

IMPORT_FLOW = "import-items"
IMPORT_DEPLOYMENT = "import-items"
REIMPORT_FLOW = "reimport-items"
REIMPORT_DEPLOYMENT = "reimport-items"
# The work pool `importer worker` polls and `prefect.yaml` deploys onto.
WORK_POOL = "importer"


def qualified(flow: str, deployment: str) -> str:
    """The `flow/deployment` name Prefect looks deployments up by."""
    return f"{flow}/{deployment}"
