"""The importer's deployments, written once: what `importer worker` registers and what
`prefect.yaml` holds for `prefect deploy --all` are both made from `deployment_specs`.

`prefect.yaml` at the repository root is `prefect_yaml(<default settings>)`, written by
`importer deployments --yaml > prefect.yaml`; `tests/deployments/test_definitions.py`
fails when the committed file differs. The one difference between the two ways in is
`paused_in_worker`: `importer worker` runs the reconciler in a thread of its own every
IMPORTER_RECONCILE_INTERVAL_S, so it registers the `reconcile-imports` deployment with its
schedule paused, where plain Prefect workers need the schedule to resume dead imports.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from orchestration.names import (
    CLEAN_UP_DEPLOYMENT,
    CLEAN_UP_ENTRYPOINT,
    IMPORT_DEPLOYMENT,
    IMPORT_ENTRYPOINT,
    RECONCILE_DEPLOYMENT,
    RECONCILE_ENTRYPOINT,
    REIMPORT_DEPLOYMENT,
    REIMPORT_ENTRYPOINT,
    UNDO_DEPLOYMENT,
    UNDO_ENTRYPOINT,
    WORK_POOL,
)
from settings import Settings

TAGS = ("importer",)
# How often plain Prefect workers look for imports whose run died.
RECONCILE_EVERY_S = 30
REGENERATE = "uv run importer deployments --yaml > prefect.yaml"


@dataclass(frozen=True)
class Concurrency:
    """A deployment's concurrency limit and what Prefect does with a run over it."""

    limit: int
    collision_strategy: Literal["ENQUEUE", "CANCEL_NEW"]


@dataclass(frozen=True)
class DeploymentSpec:
    """One deployment as both ways in register it (names without the prefix)."""

    name: str
    entrypoint: str  # module path, as `importer worker` loads it
    description: str
    concurrency: Concurrency | None = None
    parameters: Mapping[str, Any] = field(default_factory=dict)
    cron: str | None = None
    interval_s: int | None = None
    paused_in_worker: bool = False

    @property
    def file_entrypoint(self) -> str:
        """The entrypoint as `prefect.yaml` writes it: a file relative to the repo root."""
        module, _, function = self.entrypoint.rpartition(".")
        return f"{module.replace('.', '/')}.py:{function}"


def deployment_specs(settings: Settings) -> list[DeploymentSpec]:
    """The deployments for these settings; the reimport is scheduled only when configured.

    Imports and undos have no deployment-wide limit: each worker runs at most
    IMPORTER_WORKER_LIMIT runs, so adding workers adds capacity, and the writer's turn
    keeps imports of shared SKUs one after the other.
    """
    scheduled = bool(settings.reimport_source and settings.reimport_cron)
    reimport_parameters: dict[str, Any] = (
        {
            "source": settings.reimport_source,
            "sheet": settings.reimport_sheet,
            "mode": settings.reimport_mode.value,
        }
        if scheduled
        else {}
    )
    return [
        DeploymentSpec(
            name=IMPORT_DEPLOYMENT,
            entrypoint=IMPORT_ENTRYPOINT,
            description="Import one uploaded file (parameter job_id). Batches that hit a"
            " database error are retried with backoff by the write-batches task; a re-run"
            " resumes after the last committed batch.",
        ),
        DeploymentSpec(
            name=REIMPORT_DEPLOYMENT,
            entrypoint=REIMPORT_ENTRYPOINT,
            description="Import a file from a path or fsspec URL again, skipping it when"
            " unchanged. Scheduled by IMPORTER_REIMPORT_SOURCE and IMPORTER_REIMPORT_CRON.",
            # Two reimports of one source never overlap: later runs wait for the running one.
            concurrency=Concurrency(1, "ENQUEUE"),
            parameters=reimport_parameters,
            cron=settings.reimport_cron if scheduled else None,
        ),
        DeploymentSpec(
            name=CLEAN_UP_DEPLOYMENT,
            entrypoint=CLEAN_UP_ENTRYPOINT,
            description="Remove the stored files and row errors of jobs that ended more than"
            " IMPORTER_RETENTION_DAYS ago (job rows and counts stay), and leftovers of"
            " interrupted work; `importer gc` does the same by hand.",
            # A second run while one is under way would find nothing left to do.
            concurrency=Concurrency(1, "CANCEL_NEW"),
            cron=settings.clean_up_cron or None,
        ),
        DeploymentSpec(
            name=UNDO_DEPLOYMENT,
            entrypoint=UNDO_ENTRYPOINT,
            description="Undo one import (parameter job_id, the undo job) batch by batch from"
            " its before-images; resumed after the last committed batch like an import.",
        ),
        DeploymentSpec(
            name=RECONCILE_DEPLOYMENT,
            entrypoint=RECONCILE_ENTRYPOINT,
            description="Resume imports whose run died (no heartbeat for"
            " IMPORTER_STALE_AFTER_S), or fail them once IMPORTER_MAX_ATTEMPTS runs are used"
            " up. `importer worker` does this in a thread of its own and keeps this schedule"
            " paused; plain Prefect workers need it.",
            concurrency=Concurrency(1, "CANCEL_NEW"),
            interval_s=RECONCILE_EVERY_S,
            paused_in_worker=True,
        ),
    ]


_HEADER = f"""\
# Made by `{REGENERATE}`
# from deployments/definitions.py (the deployments `importer worker` registers), for the
# default settings: do not edit by hand.
#
# Deployments for production: `prefect deploy --all` from the repository root onto the
# `importer` work pool, whose worker type `importer` starts each run in a pre-started
# interpreter. Run `importer worker` (or `prefect worker start --pool importer --type
# importer`) on each worker machine, with this repository and its virtual environment
# installed and IMPORTER_* pointing at the shared database and storage. `importer worker`
# also registers these deployments itself and runs the reconciler; `importer up` does all
# of it locally. For a scheduled reimport or another clean-up schedule, set
# IMPORTER_REIMPORT_SOURCE, IMPORTER_REIMPORT_CRON or IMPORTER_CLEAN_UP_CRON and write the
# file again with the command above.
"""


def _field(key: str, text: str, indent: int) -> str:
    """`key: "text"` as YAML (JSON's double quotes), folded onto lines of at most 92."""
    lines = textwrap.wrap(
        f"{key}: {json.dumps(text)}",
        width=92,
        initial_indent=" " * indent,
        subsequent_indent=" " * (indent + 2),
        break_long_words=False,
        break_on_hyphens=False,
    )
    return "\n".join(lines)


def prefect_yaml(settings: Settings, prefect_version: str) -> str:
    """`prefect.yaml` for these settings: the same deployments `importer worker` registers."""
    prefix = settings.name_prefix
    out = [
        _HEADER,
        "name: item-importer",
        f"prefect-version: {prefect_version}",
        "",
        "build: null",
        "push: null",
        "pull:",
        "  # Workers run the flows from the checkout they were started in.",
        "  - prefect.deployments.steps.set_working_directory:",
        '      directory: "{{ $PWD }}"',
        "",
        "definitions:",
        "  work_pool: &pool",
        f"    name: {prefix}{WORK_POOL}",
        "    work_queue_name: default",
        "  tags: &tags",
        *(f"    - {tag}" for tag in TAGS),
        "",
        "deployments:",
    ]
    for spec in deployment_specs(settings):
        out += [
            f"  - name: {prefix}{spec.name}",
            _field("description", spec.description, 4),
            f"    entrypoint: {spec.file_entrypoint}",
            "    tags: *tags",
            "    work_pool: *pool",
        ]
        if spec.concurrency is not None:
            out += [
                "    concurrency_limit:",
                f"      limit: {spec.concurrency.limit}",
                f"      collision_strategy: {spec.concurrency.collision_strategy}",
            ]
        if spec.parameters:
            out.append("    parameters:")
            out += [f"      {k}: {json.dumps(v)}" for k, v in spec.parameters.items()]
        if spec.cron is not None:
            out += ["    schedules:", f"      - cron: {json.dumps(spec.cron)}"]
            out.append("        timezone: UTC")
        if spec.interval_s is not None:
            out += ["    schedules:", f"      - interval: {spec.interval_s}"]
            out.append("        timezone: UTC")
        out.append("")
    return "\n".join(out)
