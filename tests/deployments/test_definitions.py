"""`prefect.yaml` and `importer worker` deploy the same deployments, from one definition."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import prefect
import pytest
import yaml

from deployments.definitions import REGENERATE, deployment_specs, prefect_yaml
from deployments.serve import build_deployments
from settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def defaults() -> Settings:
    """The settings the committed prefect.yaml is made for: every default, no environment."""
    return Settings.model_construct()


def test_committed_prefect_yaml_is_the_one_the_code_makes() -> None:
    made = prefect_yaml(defaults(), prefect.__version__)
    committed = (ROOT / "prefect.yaml").read_text(encoding="utf-8")
    assert committed == made, (
        f"prefect.yaml differs from deployments/definitions.py; write it again with `{REGENERATE}`"
        " (with no IMPORTER_* variable set)"
    )


def _as_yaml_has_it(deployment: Any) -> dict[str, Any]:
    """What a built RunnerDeployment says, in prefect.yaml's terms."""
    module, _, function = deployment.entrypoint.rpartition(".")
    limit = deployment.concurrency_options
    schedules = []
    for s in deployment.schedules or []:
        if getattr(s.schedule, "cron", None):
            schedules.append({"cron": s.schedule.cron, "timezone": s.schedule.timezone})
        else:
            seconds = s.schedule.interval.total_seconds()
            schedules.append({"interval": int(seconds), "timezone": s.schedule.timezone})
    said: dict[str, Any] = {
        "name": deployment.name,
        "description": deployment.description,
        "entrypoint": f"{module.replace('.', '/')}.py:{function}",
        "tags": deployment.tags,
        "work_pool": {"name": deployment.work_pool_name, "work_queue_name": "default"},
    }
    if deployment.concurrency_limit is not None:
        said["concurrency_limit"] = {
            "limit": deployment.concurrency_limit,
            "collision_strategy": limit.collision_strategy.value,
        }
    if deployment.parameters:
        said["parameters"] = deployment.parameters
    if schedules:
        said["schedules"] = schedules
    return said


# Building a cron schedule has Prefect's croniter run `file` on the interpreter once.
@pytest.mark.subprocess
def test_the_worker_registers_what_prefect_yaml_deploys_and_pauses_only_the_reconciler() -> None:
    deployed = yaml.safe_load(prefect_yaml(defaults(), prefect.__version__))["deployments"]
    built = asyncio.run(build_deployments(defaults()))

    assert [_as_yaml_has_it(d) for d in built] == deployed
    assert {d.name: bool(d.paused) for d in built} == {
        "import-items": False,
        "reimport-items": False,
        "clean-up": False,
        "undo-import": False,
        "reconcile-imports": True,
    }


def test_imports_and_undos_have_no_deployment_wide_limit_so_workers_add_capacity() -> None:
    limited = {s.name: s.concurrency for s in deployment_specs(defaults())}

    assert limited["import-items"] is None and limited["undo-import"] is None
    assert (
        limited["clean-up"] is not None and limited["clean-up"].collision_strategy == "CANCEL_NEW"
    )


# Building a cron schedule has Prefect's croniter run `file` on the interpreter once.
@pytest.mark.subprocess
def test_a_configured_reimport_is_scheduled_alike_in_prefect_yaml_and_the_worker() -> None:
    settings = Settings.model_construct(
        reimport_source="/srv/feeds/items.xlsx", reimport_cron="0 2 * * *", clean_up_cron=""
    )
    deployed = {d["name"]: d for d in yaml.safe_load(prefect_yaml(settings, "3"))["deployments"]}
    built = {d.name: _as_yaml_has_it(d) for d in asyncio.run(build_deployments(settings))}

    assert deployed["reimport-items"] == built["reimport-items"]
    assert deployed["reimport-items"]["schedules"] == [{"cron": "0 2 * * *", "timezone": "UTC"}]
    assert deployed["reimport-items"]["parameters"] == {
        "source": "/srv/feeds/items.xlsx",
        "sheet": None,
        "mode": "upsert",
    }
    assert "schedules" not in deployed["clean-up"] and "schedules" not in built["clean-up"]
