"""The HTTP API: upload a spreadsheet, follow its import job, list and control jobs."""

from settings import apply_prefect_defaults

# The API talks to Prefect; its defaults must be in place before Prefect reads its settings,
# which happens when any module of this package first imports Prefect.
apply_prefect_defaults()
