"""Which runs a spare may take: the environment-compatibility rule, in-process."""

from __future__ import annotations

import logging
import uuid

import pytest
from prefect.client.schemas.objects import FlowRun

from deployments.worker import ImporterJobConfiguration, _compatible

SPARE_ENV = {"HOME": "/home/importer", "IMPORTER_BATCH_SIZE": "500", "PREFECT_API_URL": "http://p"}


@pytest.mark.parametrize(
    "job_env",
    [
        {},
        {"IMPORTER_BATCH_SIZE": "500"},  # what the spare has already
        # Per-run variables are sent with the run, whatever their value.
        {"PREFECT__FLOW_RUN_ID": str(uuid.uuid4()), "PREFECT__CONTROL_PORT": "4711"},
    ],
    ids=["nothing", "same value", "per-run only"],
)
def test_a_run_asking_for_nothing_the_spare_lacks_starts_warm(job_env: dict[str, str]) -> None:
    assert _compatible(SPARE_ENV, job_env)


@pytest.mark.parametrize(
    ("job_env", "named"),
    [
        ({"IMPORTER_BATCH_SIZE": "7"}, "IMPORTER_BATCH_SIZE"),
        ({"EXTRA_INDEX": "x", "PREFECT__FLOW_RUN_ID": "1"}, "EXTRA_INDEX"),  # the spare has none
        # A Prefect setting (one underscore) is a setting, not a per-run variable.
        ({"PREFECT_API_URL": "http://other"}, "PREFECT_API_URL"),
    ],
    ids=["other value", "variable the spare lacks", "prefect setting"],
)
def test_a_run_setting_what_the_spare_was_not_started_with_starts_cold_and_says_why(
    job_env: dict[str, str], named: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="prefect.importer.worker"):
        assert not _compatible(SPARE_ENV, job_env)
    assert f"the run sets {named} unlike the spares; it starts cold" in caplog.text


def test_only_what_the_deployment_sets_is_compared_not_what_prefect_adds_per_run() -> None:
    config = ImporterJobConfiguration(env={"IMPORTER_BATCH_SIZE": "7", "UNSET": None})
    flow_run = FlowRun(flow_id=uuid.uuid4())
    config.prepare_for_flow_run(flow_run)
    assert config.job_env == {"IMPORTER_BATCH_SIZE": "7"}
    # Prefect put the run's own variables and the worker's settings into the environment;
    # a spare started with the deployment's variable still fits.
    assert config.env["PREFECT__FLOW_RUN_ID"] == str(flow_run.id)
    assert _compatible({"IMPORTER_BATCH_SIZE": "7"}, config.job_env)
