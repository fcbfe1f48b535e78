"""The `importer` command line: import files, inspect jobs, clean up, manage the database."""

from __future__ import annotations

import getpass
import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from cli import options
from db.enums import ImportMode, JobSource, JobStatus, OnError
from settings import SettingsError, apply_prefect_defaults, get_settings

if TYPE_CHECKING:
    from itemsheet.downloads.exports import FileFormat
    from itemsheet.jobs.importing import JobOptions
    from itemsheet.jobs.views import JobView

# Each command imports what it acts on when it runs: `importer up` starts its Prefect
# server before anything loads polars, Alembic or the import logic.

app = typer.Typer(help="Import item catalogues from spreadsheets.", no_args_is_help=True)
db_app = typer.Typer(help="Manage the importer's database.", no_args_is_help=True)
app.add_typer(db_app, name="db")
automations_app = typer.Typer(
    help="Prefect automations that act on import events.", no_args_is_help=True
)
app.add_typer(automations_app, name="automations")
err = Console(stderr=True)
out = Console(soft_wrap=True)
ERRORS_IN_JSON = 100


@app.callback()
def _check_settings() -> None:
    # Before any command does anything: settings that are not valid stop it with their
    # sentence (exit 2, as a usage error), not with a traceback half-way.
    try:
        get_settings()
    except SettingsError as exc:
        err.print(f"error: {exc}", soft_wrap=True, markup=False, highlight=False)
        raise typer.Exit(2) from None


def _prepare_database() -> None:
    """Upgrade the embedded SQLite database on first use; PostgreSQL is upgraded on purpose."""
    from db.migrate import upgrade_database

    if get_settings().resolved_database_url().startswith("sqlite"):
        upgrade_database()


def _report(job_id: uuid.UUID) -> tuple[JobView, list[dict[str, Any]]]:
    """The job and its first row errors."""
    from db.repository import get_job, list_row_errors
    from db.session import session_scope
    from itemsheet.jobs.views import job_view

    with session_scope(write=False) as session:
        job = get_job(session, job_id)
        if job is None:
            raise typer.BadParameter(f"no import job {job_id}")
        return job_view(job), list_row_errors(session, job_id, limit=ERRORS_IN_JSON)


@app.command("import")
def import_file(
    file: Annotated[Path, typer.Argument(help="The spreadsheet or CSV file to import.")],
    sheet: Annotated[
        str | None,
        typer.Option(help="Sheet name, or 0-based index in the digits 0-9; a name wins."),
    ] = None,
    on_error: Annotated[
        OnError,
        typer.Option(help="skip: import valid rows; abort: import nothing if any row is invalid."),
    ] = OnError.SKIP,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Compute everything, write no items.")
    ] = False,
    batch_size: Annotated[int | None, typer.Option(min=1, help="Rows per committed batch.")] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the finished job as JSON on the last line.")
    ] = False,
    maps: options.MapOption = None,
    header_row: Annotated[
        int | None, typer.Option(min=1, help="The header's row number, if not found by itself.")
    ] = None,
    with_review: Annotated[
        bool,
        typer.Option("--review", help="Show what would change, and write only once confirmed."),
    ] = False,
    encoding: options.EncodingOption = None,
    delimiter: options.DelimiterOption = None,
    decimal: options.DecimalOption = None,
    mode: Annotated[
        ImportMode,
        typer.Option(
            help="upsert: create and update; create_only: leave stored items alone;"
            " update_only: create no items. Rows left alone count as skipped."
        ),
    ] = ImportMode.UPSERT,
    guard: Annotated[
        bool,
        typer.Option(
            "--guard/--no-guard",
            help="--no-guard: skip the guardrails (an unusual import otherwise waits for"
            " a review).",
        ),
    ] = True,
) -> None:
    """Import FILE now, in this process, showing progress."""
    from cli import review
    from itemsheet.jobs.importing import JobOptions

    apply_prefect_defaults()
    from orchestration.events import flush_events

    settings = get_settings()
    _prepare_database()
    if with_review and dry_run:
        raise typer.BadParameter(
            "a dry run writes nothing, so it needs no review", param_hint="--review"
        )
    options = JobOptions(
        sheet=sheet,
        on_error=on_error,
        dry_run=dry_run,
        mode=mode,
        batch_size=batch_size or settings.rows_per_batch(),
        mapping=review.parse_maps(maps),
        header_row=header_row,
        **review.parse_choices(encoding, delimiter, decimal),
        review=with_review,
        guard=guard,
        requested_by=_who(),
    )
    try:
        _import_now(file, options, as_json=as_json)
    finally:
        # The job's events are queued for Prefect; deliver them before this process exits.
        flush_events()


def _import_now(file: Path, options: JobOptions, *, as_json: bool) -> None:
    """Create FILE's job and run its flow here; exits with the job's outcome."""
    from cli import review
    from db.session import session_scope
    from itemsheet.jobs.uploads import job_for_path

    with session_scope() as session:
        job = job_for_path(
            session, file, source=JobSource.CLI, options=options, source_uri=str(file.resolve())
        )
        job_id, refused = job.id, job.status is JobStatus.FAILED
    if refused:  # missing, unreadable or too big: its job says why
        _print_report(job_id, as_json=as_json)
        raise typer.Exit(1)
    review.run_here(job_id, as_json=as_json)
    _after_run(job_id, as_json=as_json)


def _after_run(job_id: uuid.UUID, *, as_json: bool) -> None:
    """Ask about a review, or report the finished job; exit 0 when it completed (or
    awaits its review), 1 otherwise."""
    from cli import review
    from db.repository import get_job
    from db.session import session_scope

    with session_scope(write=False) as session:
        job = get_job(session, job_id)
        waiting = job is not None and job.status is JobStatus.AWAITING_REVIEW
    if waiting:
        answer = review.ask(job_id, as_json=as_json)
        if answer is None:
            if as_json:
                print(review.view_json(job_id))
            raise typer.Exit(0)
        if review.answer_review(job_id, answer):
            review.run_here(job_id, as_json=as_json)
    status = _print_report(job_id, as_json=as_json)
    raise typer.Exit(0 if status is JobStatus.COMPLETED else 1)


@app.command("undo")
def undo(
    job_id: Annotated[uuid.UUID, typer.Argument(help="The import to undo.")],
    force: Annotated[
        bool, typer.Option("--force", help="Restore items changed since the import too.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the finished undo job as JSON on the last line.")
    ] = False,
) -> None:
    """Undo an import now, in this process: delete the items it created, restore the rest."""
    from db.session import session_scope
    from itemsheet.jobs.undoing import UndoRefused, create_undo_job

    apply_prefect_defaults()
    from flows.undo_import import undo_import
    from orchestration.events import flush_events

    _prepare_database()
    try:
        with session_scope() as session:
            undo_id = create_undo_job(
                session, job_id, force=force, undo_days=get_settings().undo_days
            ).id
    except LookupError:
        raise typer.BadParameter(f"no import job {job_id}") from None
    except UndoRefused as exc:
        if as_json:
            print(json.dumps({"detail": str(exc)}))
        else:
            err.print(f"[red]cannot undo:[/] {exc}")
        raise typer.Exit(1) from None
    try:
        _run_followed(undo_id, lambda: undo_import(job_id=str(undo_id), return_state=True), as_json)
    finally:
        flush_events()


def _run_followed(job_id: uuid.UUID, run: Callable[[], object], as_json: bool) -> None:
    """Run a flow in this process with a progress bar, print the job and exit with 0 when
    it completed, 1 otherwise."""
    from cli.progress import run_followed

    run_followed(job_id, run, err, quiet=as_json and not err.is_terminal)
    status = _print_report(job_id, as_json=as_json)
    raise typer.Exit(0 if status is JobStatus.COMPLETED else 1)


def _who() -> str:
    """Who runs the command, for a saved mapping's record."""
    try:
        return f"cli ({getpass.getuser()})"
    except (KeyError, OSError):
        return "cli"


@app.command("confirm")
def confirm(
    job_id: Annotated[uuid.UUID, typer.Argument(help="The job awaiting review.")],
    maps: options.MapOption = None,
    encoding: options.EncodingOption = None,
    delimiter: options.DelimiterOption = None,
    decimal: options.DecimalOption = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Write an import that awaits its review (another --map, --encoding, --delimiter or
    --decimal is previewed first)."""
    from cli import review
    from itemsheet.jobs.review import ReviewAnswer

    apply_prefect_defaults()
    from orchestration.events import flush_events

    _prepare_database()
    review.parse_choices(encoding, delimiter, decimal)
    answer = ReviewAnswer(
        confirm=True,
        mapping=review.parse_maps(maps),
        encoding=encoding,
        delimiter=delimiter,
        decimal=decimal,
    )
    try:
        if review.answer_review(job_id, answer):
            review.run_here(job_id, as_json=as_json)
            _after_run(job_id, as_json=as_json)
    finally:
        flush_events()
    err.print(f"confirmed; a worker writes import {job_id} (`importer job {job_id}`)")


@app.command("reject")
def reject(job_id: Annotated[uuid.UUID, typer.Argument(help="The job awaiting review.")]) -> None:
    """Cancel an import that awaits its review: nothing is written."""
    from cli import review
    from itemsheet.jobs.review import ReviewAnswer

    apply_prefect_defaults()
    from orchestration.events import flush_events

    _prepare_database()
    try:
        review.answer_review(job_id, ReviewAnswer(confirm=False))
    finally:
        flush_events()
    _print_report(job_id, as_json=False)


def _print_report(job_id: uuid.UUID, *, as_json: bool) -> JobStatus:
    """Print the job (with its first row errors); returns its status."""
    view, errors = _report(job_id)
    report = {**view.model_dump(mode="json"), "errors": errors}
    if as_json:
        print(json.dumps(report))
    else:
        _print_job(report)
    return view.status


def _print_job(view: dict[str, Any]) -> None:
    colour = {
        "completed": "green",
        "failed": "red",
        "cancelled": "yellow",
        "undone": "magenta",
    }.get(view["status"], "cyan")
    out.print(f"[bold]{view['filename']}[/] [{colour}]{view['status']}[/] (job {view['job_id']})")
    out.print(
        f"  rows {view['total_rows'] or 0:,}: created {view['created']:,},"
        f" updated {view['updated']:,},"
        f" unchanged {view['unchanged']:,}, skipped {view['skipped']:,} ({view['mode']}),"
        f" failed {view['failed']:,}"
        f"{' (dry run: nothing written)' if view['dry_run'] else ''}"
    )
    if view["undo_of"]:
        out.print(
            f"  undo of {view['undo_of']}: deleted {view['deleted']:,}, restored"
            f" {view['updated']:,}, left alone (changed since) {view['failed']:,}"
        )
    if view["elapsed_s"] is not None:
        out.print(f"  {view['elapsed_s']:.2f} s, {view['rows_per_s']:,.0f} rows/s")
    if view["error"]:
        out.print(f"  [red]reason:[/] {view['error']}")
    if view["files_removed_at"]:
        out.print(f"  file and row errors removed by retention on {view['files_removed_at'][:10]}")
    for warning in view["warnings"]:
        out.print(f"  [yellow]warning:[/] {warning}")
    errors = view.get("errors") or []
    if errors:
        table = Table("row", "column", "value", "message", title="Row errors (first 100)")
        for e in errors:
            table.add_row(str(e["row"]), e["column"] or "", e["value"] or "", e["message"])
        out.print(table)


@app.command("jobs")
def jobs(
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 20,
    status: Annotated[JobStatus | None, typer.Option()] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List recent import jobs, newest first."""
    from db.session import session_scope
    from itemsheet.jobs.views import job_view, list_history

    _prepare_database()
    with session_scope(write=False) as session:
        page = list_history(session, limit=limit, status=status)
        views = [job_view(j).model_dump(mode="json") for j in page.jobs]
    if as_json:
        print(json.dumps(views))
        return
    table = Table(
        "job",
        "status",
        "source",
        "file",
        "rows",
        "created",
        "updated",
        "unchanged",
        "failed",
        "started",
    )
    for v in views:
        table.add_row(
            v["job_id"],
            v["status"],
            v["source"],
            v["filename"],
            str(v["total_rows"] or 0),
            str(v["created"]),
            str(v["updated"]),
            str(v["unchanged"]),
            str(v["failed"]),
            (v["started_at"] or v["created_at"])[:19],
        )
    out.print(table)


@app.command("job")
def job(
    job_id: Annotated[uuid.UUID, typer.Argument(help="The job id.")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Show one import job with its first row errors."""
    _prepare_database()
    _print_report(job_id, as_json=as_json)


@app.command("gc")
def gc(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only count what would be removed.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the figures as one JSON object.")
    ] = False,
) -> None:
    """Remove what retention lets go of and the leftovers of interrupted work, now."""
    from itemsheet.housekeeping.retention import clean_up

    _prepare_database()
    report = clean_up(get_settings(), dry_run=dry_run)
    if as_json:
        print(json.dumps(report.as_dict()))
        return
    for line in report.lines():
        out.print(line)


def _file_format(file: Path) -> FileFormat:
    """The format a file's suffix names (`.xlsx` or `.csv`), or a usage error."""
    from itemsheet.downloads.exports import FileFormat

    try:
        return FileFormat(file.suffix.lower().removeprefix("."))
    except ValueError:
        raise typer.BadParameter(
            f"{file.name!r} ends in neither .xlsx nor .csv; the suffix picks the format",
            param_hint="FILE",
        ) from None


@app.command("template")
def template(
    file: Annotated[Path, typer.Argument(help="Where to write it: a .xlsx or .csv file.")],
) -> None:
    """Write the import template: the columns, an example row and (xlsx) what each field takes."""
    from itemsheet.downloads.template import template_bytes

    data = template_bytes(_file_format(file))
    try:
        file.write_bytes(data)
    except OSError as exc:
        raise typer.BadParameter(
            f"cannot write {file}: {exc.strerror}", param_hint="FILE"
        ) from None
    err.print(f"wrote the import template to {file}")


@app.command("export")
def export(
    file: Annotated[Path, typer.Argument(help="Where to write them: a .xlsx or .csv file.")],
    sku_prefix: Annotated[
        str | None, typer.Option(help="Only SKUs that start with this (case-sensitive).")
    ] = None,
    changed_since: Annotated[
        str | None,
        typer.Option(help="Only items changed at or after this ISO 8601 time (UTC if none)."),
    ] = None,
    import_id: Annotated[
        uuid.UUID | None,
        typer.Option("--import", help="Only the items this import created or updated."),
    ] = None,
) -> None:
    """Export items to FILE in the import's shape: importing it back changes nothing."""
    from datetime import UTC, datetime

    from db.item_pages import ItemFilter
    from db.session import session_scope
    from itemsheet.downloads.exports import check_import_export, file_chunks, iter_item_pages
    from itemsheet.jobs.views import JobConflict, JobNotFound

    fmt = _file_format(file)
    if sku_prefix and not sku_prefix.isprintable():
        raise typer.BadParameter("holds a control character", param_hint="--sku-prefix")
    since = None
    if changed_since is not None:
        try:
            since = datetime.fromisoformat(changed_since)
        except ValueError:
            raise typer.BadParameter(
                f"{changed_since!r} is not an ISO 8601 time such as 2026-12-01T08:00:00Z",
                param_hint="--changed-since",
            ) from None
        since = since if since.tzinfo is not None else since.replace(tzinfo=UTC)
    _prepare_database()
    if import_id is not None:
        try:
            with session_scope(write=False) as session:
                check_import_export(session, import_id)
        except JobNotFound:
            raise typer.BadParameter(f"no import job {import_id}", param_hint="--import") from None
        except JobConflict as exc:
            err.print(f"[red]cannot export:[/] {exc}", soft_wrap=True)
            raise typer.Exit(1) from None
    chosen = ItemFilter(sku_prefix=sku_prefix or None, changed_since=since)
    exported = 0

    def counted() -> Iterator[Any]:
        nonlocal exported
        for page in iter_item_pages(chosen, job_id=import_id):
            exported += len(page)
            yield page

    try:
        out_file = file.open("wb")
    except OSError as exc:
        raise typer.BadParameter(
            f"cannot write {file}: {exc.strerror}", param_hint="FILE"
        ) from None
    with out_file:
        for chunk in file_chunks(fmt, counted()):
            out_file.write(chunk)
    err.print(f"exported {exported:,} item{'' if exported == 1 else 's'} to {file}")


@app.command("up")
def up(
    host: Annotated[str | None, typer.Option(help="Address of the API and web page.")] = None,
    port: Annotated[int | None, typer.Option(help="Port of the API and web page.")] = None,
    prefect_port: Annotated[
        int | None, typer.Option(help="Port of the local Prefect server.")
    ] = None,
) -> None:
    """Start everything: Prefect server (unless PREFECT_API_URL is set), worker and API."""
    from cli.stack import run_stack
    from db.migrate import upgrade_database

    apply_prefect_defaults()
    settings = get_settings()
    overrides = {"host": host, "port": port, "prefect_port": prefect_port}
    settings = settings.model_copy(update={k: v for k, v in overrides.items() if v is not None})
    raise typer.Exit(run_stack(settings, err, prepare=upgrade_database))


@app.command("worker")
def worker() -> None:
    """Serve the import deployments (more machines can run this against one Prefect server)."""
    apply_prefect_defaults()
    _prepare_database()
    from deployments.serve import serve_deployments

    serve_deployments()


@app.command("deployments")
def deployments(
    yaml: Annotated[
        bool, typer.Option("--yaml", help="Print them as prefect.yaml for `prefect deploy`.")
    ] = False,
) -> None:
    """The deployments `importer worker` registers, for the current settings."""
    import prefect

    from deployments.definitions import deployment_specs, prefect_yaml

    settings = get_settings()
    if yaml:
        typer.echo(prefect_yaml(settings, prefect.__version__), nl=False)
        return
    for spec in deployment_specs(settings):
        schedule = spec.cron or (f"every {spec.interval_s} s" if spec.interval_s else "none")
        limit = spec.concurrency.limit if spec.concurrency else "none"
        out.print(
            f"{settings.name_prefix}{spec.name}: {spec.entrypoint}, schedule {schedule},"
            f" concurrency limit {limit}",
            markup=False,
            highlight=False,
        )


@app.command("config")
def config(
    markdown: Annotated[
        bool, typer.Option("--markdown", help="Print the settings as the docs' Markdown table.")
    ] = False,
    into: Annotated[
        Path | None,
        typer.Option(help="Rewrite the table between the markers of this Markdown file."),
    ] = None,
) -> None:
    """Every IMPORTER_* setting with its default and meaning (from settings.py)."""
    from cli.configuration import docs_with_table, settings_table

    if not markdown:
        err.print("error: say --markdown (the only format so far)")
        raise typer.Exit(2)
    if into is None:
        typer.echo(settings_table(), nl=False)
        return
    into.write_text(docs_with_table(into.read_text(encoding="utf-8")), encoding="utf-8")
    err.print(f"wrote the configuration table into {into}")


@automations_app.command("apply")
def automations_apply(
    file: Annotated[
        Path | None,
        typer.Option(help="The automations file; default: the one in the repository."),
    ] = None,
) -> None:
    """Create or update, in Prefect, the example automations that post import events to
    IMPORTER_NOTIFY_WEBHOOK_URL (disabled while it is unset). Safe to run again."""
    import asyncio

    from prefect.settings import PREFECT_API_URL, temporary_settings

    from orchestration.automations import (
        SPEC_FILE,
        AutomationsError,
        apply_automations,
        load_spec,
    )

    apply_prefect_defaults()
    settings = get_settings()
    # Next to `importer up`, its own Prefect server; never a temporary one that would
    # forget the automations as soon as this command ends.
    api_url = PREFECT_API_URL.value() or f"http://127.0.0.1:{settings.prefect_port}/api"
    try:
        spec = load_spec(file or SPEC_FILE)
        with temporary_settings({PREFECT_API_URL: api_url}):
            applied = asyncio.run(apply_automations(spec, webhook_url=settings.notify_webhook_url))
    except AutomationsError as exc:
        err.print(f"[red]error:[/] {exc}", soft_wrap=True)  # one line, whatever the width
        raise typer.Exit(1) from None
    target = applied.webhook or "nowhere: IMPORTER_NOTIFY_WEBHOOK_URL is not set"
    out.print(f"notification block '{applied.block}' posts to {target}")
    for name, event, enabled, created in applied.automations:
        state = "enabled" if enabled else "disabled"
        verb = "created" if created else "updated"
        out.print(f"automation '{name}' on {event}: {state} ({verb})")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending database migration."""
    from db.migrate import upgrade_database

    upgrade_database()
    err.print("database is up to date")


def main() -> None:
    """Console entry point."""
    app()


if __name__ == "__main__":
    main()
