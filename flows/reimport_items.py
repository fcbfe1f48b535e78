"""The `reimport-items` flow: import a file from a path or fsspec URL on a schedule.

Whether the import runs at all (an unchanged file, or one still being reimported, does
not) is decided by `itemsheet.runs.reimport`; the import itself is the `import-items` flow, run
as a subflow so it shows under this run in the Prefect UI.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.states import Failed

from db.models import ImportMode, JobStatus, OnError
from flows.import_items import import_items
from itemsheet.runs import running
from itemsheet.runs.reimport import plan_reimport


@flow(name="reimport-items", flow_run_name="reimport {source}", log_prints=True)
def reimport_items(
    source: str,
    sheet: str | None = None,
    on_error: OnError = OnError.SKIP,
    mode: ImportMode = ImportMode.UPSERT,
) -> dict[str, Any]:
    """Import `source` again, unless it is unchanged since the last completed import."""
    plan = plan_reimport(source, sheet=sheet, on_error=on_error, mode=mode)
    if plan.run_import:
        get_run_logger().info("importing %s as job %s", source, plan.job_id)
        import_items(job_id=str(plan.job_id), return_state=True)
    final = running.view(plan.job_id)
    if final.status is JobStatus.FAILED:
        return Failed(message=final.error or "the import failed")  # type: ignore[return-value]
    return final.model_dump(mode="json")
