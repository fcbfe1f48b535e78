"""The `reconcile-imports` flow: one round of the reconciler, as a scheduled deployment.

`importer worker` (and so `importer up`) runs the reconciler in a thread of its own.
Workers started with `prefect worker start` from `prefect.yaml` do not; there this flow,
scheduled every 30 s, resumes or fails imports whose run died.
"""

from __future__ import annotations

from prefect import flow, get_run_logger

from orchestration.reconcile import reconcile_once
from orchestration.trigger import PrefectTrigger
from settings import get_settings


@flow(name="reconcile-imports")
async def reconcile_imports() -> dict[str, str]:
    """Resume each import whose heartbeat stopped, or fail it when out of attempts."""
    trigger = PrefectTrigger()
    try:
        done = await reconcile_once(trigger, get_settings())
    finally:
        await trigger.aclose()
    for job_id, claim in done.items():
        get_run_logger().info("import job %s: %s", job_id, claim.value)
    return {str(job_id): claim.value for job_id, claim in done.items()}
