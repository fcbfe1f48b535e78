"""Whatever a file holds, what a job keeps of it in words stays short."""

from __future__ import annotations

from pathlib import Path

from db.models import JobSource
from db.session import session_scope
from itemsheet.jobs.importing import JobOptions, record_summary
from itemsheet.jobs.uploads import job_for_path
from itemsheet.jobs.views import job_view
from itemsheet.sheet.header import find_header
from itemsheet.sheet.messages import MAX_WARNINGS, MESSAGE_CHARS, capped, clip, with_kept_errors
from itemsheet.sheet.prepare import SheetSummary
from tests.itemsheet.grids import grid_of


def test_clip_keeps_one_short_line() -> None:
    assert clip("a\n  b\tc") == "a b c"
    long = clip("x" * 5000)
    assert len(long) == MESSAGE_CHARS and long.endswith("…")


def test_capped_says_how_many_more() -> None:
    kept = capped(f"warning {i}" for i in range(3000))
    assert len(kept) == MAX_WARNINGS
    assert kept[-2] == f"warning {MAX_WARNINGS - 2}"
    assert kept[-1] == f"... and {3000 - MAX_WARNINGS + 1:,} more"
    assert capped(["one", "two"]) == ["one", "two"]


def test_the_warning_about_kept_row_errors_comes_first_and_is_replaced_not_repeated() -> None:
    warnings = with_kept_errors(["unknown column 'X'"], failed=12_000, kept=10_000)
    assert warnings == [
        "12,000 rows failed; the first 10,000 row errors are kept",
        "unknown column 'X'",
    ]
    warnings = with_kept_errors(warnings, failed=300_000, kept=10_000)
    assert warnings == [
        "300,000 rows failed; the first 10,000 row errors are kept",
        "unknown column 'X'",
    ]
    assert with_kept_errors(warnings, failed=0, kept=0) == ["unknown column 'X'"]
    assert with_kept_errors([], failed=5, kept=1) == [
        "5 rows failed; the first 1 row error is kept"
    ]


def test_the_warning_about_kept_row_errors_stays_within_the_warnings_limit() -> None:
    full = capped(f"warning {i}" for i in range(30))
    warnings = with_kept_errors(full, failed=20_000, kept=10_000)
    assert len(warnings) == MAX_WARNINGS
    assert warnings[0] == "20,000 rows failed; the first 10,000 row errors are kept"
    assert warnings[-1] == f"... and {30 - MAX_WARNINGS + 2:,} more"
    assert with_kept_errors(full[:5], failed=20_000, kept=10_000)[1:] == full[:5]


def test_thousands_of_long_unknown_headers_leave_a_small_job(
    importer_env: Path, tmp_path: Path
) -> None:
    headers = ["SKU", "Name"] + [f"{i:04d}" + "h" * 2000 for i in range(3000)]
    header = find_header(grid_of([headers]).frame)
    assert all(len(w) <= MESSAGE_CHARS for w in header.warnings)
    path = tmp_path / "wide.csv"
    path.write_text("SKU,Name\n")
    with session_scope() as session:
        job = job_for_path(session, path, source=JobSource.CLI, options=JobOptions())
        summary = SheetSummary("csv", "S" * 1000, ["sku", "name"], 0, 0, header.warnings)
        record_summary(session, job.id, summary)
        view = job_view(job)
    assert len(view.model_dump_json()) < 10_000  # was 6.2 MB
    assert len(view.warnings) == MAX_WARNINGS
    assert view.warnings[0].startswith("column '0000hhh") and "…'" in view.warnings[0]
    assert view.warnings[-1] == f"... and {3000 - MAX_WARNINGS + 1:,} more"
    assert view.sheet is not None and len(view.sheet) == 255
