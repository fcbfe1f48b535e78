"""The `clean-up` flow: retention and leftovers, on a schedule (`IMPORTER_CLEAN_UP_CRON`).

What is removed, and why it is safe while imports run, is `itemsheet.housekeeping.retention` and
`itemsheet.housekeeping.leftovers`; here is only the Prefect part: the run and its log.
"""

from __future__ import annotations

from prefect import flow, get_run_logger

from itemsheet.housekeeping import retention
from settings import get_settings


@flow(name="clean-up")
def clean_up(dry_run: bool = False) -> dict[str, int | bool]:
    """Remove the files and row errors of jobs past retention, and leftovers of work."""
    report = retention.clean_up(get_settings(), dry_run=dry_run)
    logger = get_run_logger()
    for line in report.lines():
        logger.info(line)
    return report.as_dict()
