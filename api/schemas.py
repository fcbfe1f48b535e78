"""Response bodies of the API, so the OpenAPI document describes every answer."""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from db.models import JobStatus
from itemsheet.jobs.views import GuardTrip, JobView
from itemsheet.sheet.header import check_mapping_size


class ErrorOut(BaseModel):
    """Any refused request: one sentence that says what is wrong and what to do."""

    detail: str = Field(examples=["there is no import job 5f0c...; check the id"])


class DuplicateOut(ErrorOut):
    """The same file is already being imported with the same options."""

    job_id: uuid.UUID = Field(description="The job that is importing this file now.")
    status: JobStatus = Field(
        description="That job's status: `awaiting_review` when it waits for a person's answer."
    )


class ImportAccepted(BaseModel):
    """An upload became a pending job; follow it with the two URLs."""

    job_id: uuid.UUID
    status: JobStatus
    progress_url: str = Field(description="GET: the job's progress as JSON.")
    events_url: str = Field(description="GET: the job's progress as Server-Sent Events.")


class JobProgress(JobView):
    """A job with what a progress display needs besides its counts."""

    eta_s: float | None = Field(
        description="Seconds until done, from rows/s and the remaining rows; null when unknown."
    )
    flow_run_url: str | None = Field(description="The flow run in the Prefect UI, when known.")
    errors_url: str = Field(description="GET: the job's row errors as JSON (`.csv`: as CSV).")


class JobPage(BaseModel):
    """A page of jobs, newest first."""

    items: list[JobView]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null: last.")


class RowErrorOut(BaseModel):
    """Why one data row was not imported (row numbers as Excel shows them)."""

    row: int
    column: str | None
    value: str | None = Field(description="The cell as text, cut at 200 characters.")
    message: str


class RowErrorPage(BaseModel):
    """A page of a job's row errors in sheet order."""

    job_id: uuid.UUID
    total: int
    limit: int
    offset: int
    after_row: int | None = Field(default=None, description="The page starts after this row.")
    next_after_row: int | None = Field(
        default=None, description="Pass as `after_row` for the next page; null: last page."
    )
    items: list[RowErrorOut]


class HealthOut(BaseModel):
    """Whether uploads are accepted (`up`) and whether imports start at once (`ready`)."""

    status: Literal["ready", "up", "down"] = Field(
        description="ready: imports start at once; up: uploads are accepted and wait for"
        " the orchestrator; down: the database does not answer (503)."
    )
    ready: bool
    database: Literal["ok", "error"]
    prefect: Literal["ok", "error"]
    workers: int = Field(description="Workers polling the importer work pool.")
    waiting_for: str | None = Field(description="Why the service is not ready, in words.")


class ReadingIn(BaseModel):
    """Reading choices a review may change: null keeps the import's, "" detects again."""

    encoding: str | None = Field(
        default=None,
        max_length=40,
        description="A text file's encoding (windows-1252, utf-16, shift_jis, ...).",
    )
    delimiter: str | None = Field(
        default=None, max_length=9, description="A text file's delimiter: , ; tab or |."
    )
    decimal: str | None = Field(
        default=None, max_length=1, description="The decimal mark of numbers written as text."
    )


class MappingIn(ReadingIn):
    """Reading choices and a column mapping, bounded before anything keeps it."""

    mapping: dict[str, str | None] | None = Field(
        default=None,
        max_length=500,
        description="Sheet header (at most 255 characters: a preview column's `key`) -> field"
        " (sku, name, description, category, unit, price, quantity, barcode), or null to"
        " ignore the column; at most 64 KiB of JSON.",
    )

    @field_validator("mapping", mode="before")
    @classmethod
    def _bounded(cls, value: object) -> object:
        # Before the keys are validated: an error about a 5 MB key would quote it.
        if isinstance(value, dict):
            check_mapping_size(value)
        return value


class ReviewIn(MappingIn):
    """An answer to a review: optionally another column mapping or reading; a mapping that
    changes the columns is previewed again before anything is written."""


class RemapIn(MappingIn):
    """Another column mapping or reading to preview the import under."""


class PreviewColumn(BaseModel):
    """One column of the sheet's header row."""

    column: str = Field(description="The grid column (c0, c1, ...).")
    key: str = Field(default="", description="The header as a mapping names it (normalised).")
    header: str
    field: str | None = Field(description="The field it feeds; null: ignored.")
    source: str | None = Field(description="explicit, saved or aliases; null: not mapped.")
    samples: list[str] = Field(description="The first few values below the header.")


class PreviewChange(BaseModel):
    """One row that would change the catalogue, field by field: [stored, new]."""

    row: int | None
    sku: str
    action: Literal["create", "update"]
    fields: dict[str, list[object | None]]


class ChartBucket(BaseModel):
    """Items whose value would change by an amount in one range."""

    label: str = Field(examples=["+50 to +900 %", "to 0"])
    from_pct: float | None = Field(
        default=None, description="Lower bound of a price bucket, percent; null: none."
    )
    to_pct: float | None = Field(
        default=None, description="Upper bound of a price bucket, percent; null: none."
    )
    items: int
    beyond: bool = Field(description="Beyond the threshold of a guardrail that tripped.")


class ChartDistribution(BaseModel):
    """How many stored items would change by how much (one field)."""

    items: int = Field(description="Stored items whose value would change.")
    buckets: list[ChartBucket]
    threshold: str | None = Field(description="The tripped guardrail's threshold, in words.")


class PreviewChart(BaseModel):
    """The distributions of price and quantity changes a review draws, computed in the
    preview pass (price buckets between the guardrails' thresholds)."""

    prices: ChartDistribution
    quantities: ChartDistribution


class PreviewField(BaseModel):
    """A field a column can be mapped to."""

    name: str
    required: bool


class PreviewOut(BaseModel):
    """What a confirmed import would do, computed against the items as they are."""

    job_id: uuid.UUID
    status: JobStatus
    round: int = Field(description="How many previews came before this one.")
    ready: bool = Field(description="The preview is complete (the job awaits its review).")
    problem: str | None = Field(description="Why the import cannot be confirmed as mapped.")
    header_row: int | None
    columns: list[PreviewColumn]
    fields: list[PreviewField]
    counts: dict[str, int] | None = Field(
        description="total_rows, created, updated, unchanged, failed; null until complete."
    )
    changes: list[PreviewChange] = Field(
        description="Up to 50 rows that would change: the first ones, or the largest first"
        " when a guardrail tripped."
    )
    errors: list[RowErrorOut] = Field(description="The first row errors.")
    on_error: str
    expires_at: str | None = Field(description="When an unanswered review is cancelled.")
    reading: dict[str, dict[str, str]] | None = Field(
        default=None,
        description="How the file was read: encoding, delimiter (text files) and decimal"
        " mark, each with `value` and `how`; change them with /preview or /confirm.",
    )
    guard: list[GuardTrip] = Field(
        default_factory=list,
        description="The guardrails the import tripped; its changes are then the largest"
        " first, those that made it trip.",
    )
    chart: PreviewChart | None = Field(
        default=None, description="How far prices and quantities would move; null until complete."
    )


class SavedMappingOut(BaseModel):
    """A column mapping saved by an import, used for later sheets with the same headers."""

    header_key: str
    headers: list[str]
    columns: dict[str, str | None]
    saved_by: str
    saved_at: str
    job_id: uuid.UUID | None
