"""Review from the command line: show a preview, then confirm or reject it."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cli.progress import run_followed
from db.repository import get_job, list_row_errors
from db.session import session_scope
from itemsheet.jobs.review import (
    ReviewAnswer,
    reading_text,
)
from itemsheet.jobs.views import job_view
from itemsheet.sheet.header import explicit_mapping
from itemsheet.sheet.text import check_choices

err = Console(stderr=True)
out = Console(soft_wrap=True)


def parse_choices(
    encoding: str | None, delimiter: str | None, decimal: str | None
) -> dict[str, str | None]:
    """`--encoding`, `--delimiter`, `--decimal` checked; BadParameter says what is wrong."""
    try:
        return check_choices(encoding, delimiter, decimal)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def parse_maps(given: list[str] | None) -> dict[str, str | None] | None:
    """`--map` options as an explicit mapping; BadParameter says what is wrong."""
    if not given:
        return None
    pairs: dict[str, str | None] = {}
    for item in given:
        header, sep, target = item.rpartition("=")
        if not sep or not header.strip():
            raise typer.BadParameter(f'"{item}" is not Header=field', param_hint="--map")
        pairs[header] = target.strip() or None
    try:
        return explicit_mapping(pairs)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--map") from None


def print_preview(job_id: uuid.UUID) -> dict[str, Any]:
    """Show the job's preview; returns it."""
    with session_scope(write=False) as session:
        job = get_job(session, job_id)
        assert job is not None
        preview = dict(job.preview or {})
        filename = job.filename
        read = reading_text(job.reading)
    out.print(f"[bold]{filename}[/] [cyan]awaiting review[/] (job {job_id}): nothing written yet")
    if preview.get("problem"):
        out.print(f"  [red]problem:[/] {preview['problem']}")
    for trip in preview.get("guard") or []:
        out.print(f"  [yellow]unusual:[/] {escape(trip['sentence'])}")
    if preview.get("guard"):
        out.print("  a guardrail tripped, so this import waits for you (--no-guard skips them)")
    if read:
        out.print(f"  read as: {read} (change with --encoding, --delimiter, --decimal)")
    columns = Table("header", "field", "from", "samples", title="Columns")
    for c in preview.get("columns") or []:
        columns.add_row(
            c["header"], c["field"] or "(ignored)", c["source"] or "", ", ".join(c["samples"])
        )
    out.print(columns)
    if counts := preview.get("counts"):
        out.print(
            f"  rows {counts['total_rows']:,}: create {counts['created']:,},"
            f" update {counts['updated']:,}, unchanged {counts['unchanged']:,},"
            f" skipped by the mode {counts.get('skipped', 0):,}, failed {counts['failed']:,}"
        )
    title = "Changes (largest first)" if preview.get("guard") else "Changes (first 50)"
    changes = Table("row", "sku", "change", title=title)
    for change in preview.get("changes") or []:
        text = "; ".join(f"{f}: {b} -> {a}" for f, (b, a) in change["fields"].items())
        changes.add_row(str(change["row"]), change["sku"], f"{change['action']}: {text}")
    if preview.get("changes"):
        out.print(changes)
    for e in preview.get("errors") or []:
        out.print(f"  [red]row {e['row']}:[/] {e['message']}")
    return preview


def ask(job_id: uuid.UUID, *, as_json: bool) -> ReviewAnswer | None:
    """Show the preview and, on a terminal, ask whether to write it; None: leave it."""
    preview = print_preview(job_id) if not as_json else {}
    if as_json or not sys.stdin.isatty():
        err.print(f"confirm with `importer confirm {job_id}` or `importer reject {job_id}`")
        return None
    if preview.get("problem"):
        err.print("map the columns with `importer confirm JOB_ID --map Header=field`")
        return None
    return ReviewAnswer(confirm=typer.confirm("Write these changes?", default=False))


def answer_review(job_id: uuid.UUID, answer: ReviewAnswer) -> bool:
    """Answer through the review service (`orchestration.answers`), as the API does; True
    when a run in this process must carry the job on.

    A review started through the service waits in a suspended Prefect run, which is
    resumed with the answer (a worker then carries it on); one started by `importer
    import --review` has no run left, and continues here.
    """
    from orchestration.answers import (
        AnswerConflict,
        AnswerInvalid,
        CarryOn,
        answer_review,
    )
    from orchestration.trigger import PrefectTrigger, TriggerUnavailable

    async def answer_now() -> CarryOn:
        trigger = PrefectTrigger()
        try:
            with session_scope() as session:
                answered = await answer_review(session, job_id, answer, trigger, run_here=True)
            return answered.carry_on
        finally:
            await trigger.aclose()

    try:
        return asyncio.run(answer_now()) is CarryOn.CALLER
    except LookupError:
        raise typer.BadParameter(f"no import job {job_id}") from None
    except (AnswerConflict, AnswerInvalid) as exc:
        raise typer.BadParameter(str(exc)) from None
    except TriggerUnavailable as exc:  # nothing was applied: the same answer may be given again
        err.print(f"[red]could not hand the answer to its run:[/] {exc}")
        raise typer.Exit(1) from None


def run_here(job_id: uuid.UUID, *, as_json: bool) -> None:
    """Carry the job on in this process, with a progress bar."""
    from flows.import_items import import_items

    def run() -> object:
        return import_items(job_id=str(job_id), return_state=True)

    run_followed(job_id, run, err, quiet=as_json and not err.is_terminal)


def view_json(job_id: uuid.UUID, *, errors: int = 100) -> str:
    """The job as `--json` prints it (its first row errors too), with its preview."""
    with session_scope(write=False) as session:
        job = get_job(session, job_id)
        assert job is not None
        shown = job_view(job).model_dump(mode="json")
        first = list_row_errors(session, job_id, limit=errors)
        return json.dumps({**shown, "errors": first, "preview": job.preview})
