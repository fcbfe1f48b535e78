"""The writer's loop calls the `importer.before_batch` hooks installed packages declare."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from db.models import Item, JobStatus
from db.session import session_scope
from itemsheet.runs import batch_hooks
from itemsheet.runs.batch_hooks import BatchPoint
from itemsheet.runs.running import commit_batches
from tests.api.helpers import add_job

PLUGINS = Path(__file__).resolve().parents[1] / "plugins"


@pytest.fixture
def hooks(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[batch_hooks.Hook]]:
    """The hooks this process calls, as a list the test fills."""
    declared: list[batch_hooks.Hook] = []
    monkeypatch.setattr(batch_hooks, "before_batch_hooks", lambda: tuple(declared))
    yield declared


def stored_items() -> int:
    with session_scope(write=False) as session:
        return session.scalar(select(func.count()).select_from(Item)) or 0


def test_a_hook_sees_every_batch_before_it_is_written_with_the_rows_committed_so_far(
    importer_env: Path, hooks: list[batch_hooks.Hook]
) -> None:
    job_id = add_job(status=JobStatus.PROCESSING, attempt=1, total_rows=6)
    seen: list[tuple[int, int, int]] = []
    hooks.append(lambda p: seen.append((p.batch_no, p.committed_rows, stored_items())))

    def commit(session: object, batch_no: int) -> int:
        with session_scope() as writing:
            writing.add(Item(sku=f"H-{batch_no}", name="n"))
        return batch_no * 2

    assert commit_batches(job_id, 1, 3, lambda percent, total: None, commit)

    # Called outside the batch's transaction: each saw what the batches before it wrote.
    assert seen == [(1, 0, 0), (2, 2, 1), (3, 4, 2)]


def test_a_hook_that_raises_is_skipped_and_the_import_goes_on(
    importer_env: Path, hooks: list[batch_hooks.Hook], caplog: pytest.LogCaptureFixture
) -> None:
    job_id = add_job(status=JobStatus.PROCESSING, attempt=1, total_rows=2)
    after: list[int] = []

    def broken(point: BatchPoint) -> None:
        raise RuntimeError("a broken extension")

    hooks.extend([broken, lambda p: after.append(p.batch_no)])

    assert commit_batches(job_id, 1, 2, lambda percent, total: None, lambda s, n: n)
    assert after == [1, 2]
    assert "the before-batch hook" in caplog.text and "a broken extension" in caplog.text


def test_hooks_are_found_through_the_entry_point_group_of_an_installed_package(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    batch_hooks.before_batch_hooks.cache_clear()
    assert batch_hooks.before_batch_hooks() == ()  # the service declares none itself
    monkeypatch.syspath_prepend(str(PLUGINS))  # the test harness's gate, as a package
    batch_hooks.before_batch_hooks.cache_clear()
    try:
        found = batch_hooks.before_batch_hooks()
        assert [f"{h.__module__}.{h.__name__}" for h in found] == [
            "importer_test_gates.hold_if_asked"
        ]
        # Armed by nothing, the gate lets a batch through at once.
        monkeypatch.delenv("TEST_GATE_DIR", raising=False)
        batch_hooks.before_batch(BatchPoint(uuid.uuid4(), "f.xlsx", 1, 0, lambda: None))
    finally:
        sys.modules.pop("importer_test_gates", None)
        batch_hooks.before_batch_hooks.cache_clear()
