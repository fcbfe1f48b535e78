"""POST /api/excel/import: sniff, size limits, content-addressed storage, duplicates, trigger."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.deps import get_trigger
from db.models import JobSource, JobStatus, utcnow
from db.repository import get_job
from db.session import session_scope
from itemsheet.sheet.formats import ACCEPTED
from orchestration.dispatch import dispatch_once
from settings import get_settings
from tests.api.helpers import (
    UNAVAILABLE,
    FakeTrigger,
    UnavailableTrigger,
    all_jobs,
    read_job,
    stored_files,
    update_job,
)
from tests.contract.workbooks import write_csv, write_png, write_xlsx

URL = "/api/excel/import"
MIB = 1024 * 1024


def post_file(client: TestClient, path: Path, name: str | None = None, **form: Any) -> Any:
    with path.open("rb") as stream:
        files = {"file": (name or path.name, stream, "application/octet-stream")}
        data = {k: str(v).lower() if isinstance(v, bool) else v for k, v in form.items()}
        return client.post(URL, files=files, data=data)


def test_upload_answers_202_with_job_id_status_and_follow_urls(
    client: TestClient, workbook: Path
) -> None:
    response = post_file(client, workbook)

    assert response.status_code == 202, response.text
    body = response.json()
    assert set(body) == {"job_id", "status", "progress_url", "events_url"}
    job_id = uuid.UUID(body["job_id"])
    assert body["status"] == "pending"
    assert body["progress_url"] == f"/api/excel/import/{job_id}/progress"
    assert body["events_url"] == f"/api/excel/import/{job_id}/events"
    assert client.get(body["progress_url"]).status_code == 200


def test_upload_creates_a_pending_upload_job_with_the_options_and_starts_its_flow_run(
    client: TestClient, workbook: Path, trigger: FakeTrigger
) -> None:
    response = post_file(
        client, workbook, name="Spring items.xlsx", sheet="Items", on_error="abort", dry_run=True
    )

    job = read_job(uuid.UUID(response.json()["job_id"]))
    assert job.status == JobStatus.PENDING
    assert job.source == JobSource.UPLOAD
    assert job.filename == "Spring items.xlsx"
    assert (job.sheet, job.on_error, job.dry_run) == ("Items", "abort", True)
    assert job.file_size == workbook.stat().st_size
    assert trigger.started == [(job.id, "Spring items.xlsx", job.flow_run_id)]


def test_upload_defaults_to_first_sheet_skip_and_a_real_run(
    client: TestClient, workbook: Path
) -> None:
    job = read_job(uuid.UUID(post_file(client, workbook).json()["job_id"]))

    assert (job.sheet, job.on_error, job.dry_run) == (None, "skip", False)


def test_upload_stores_the_file_under_its_sha256(
    client: TestClient, workbook: Path, importer_env: Path
) -> None:
    job = read_job(uuid.UUID(post_file(client, workbook).json()["job_id"]))

    content = workbook.read_bytes()
    sha = hashlib.sha256(content).hexdigest()
    assert job.file_sha256 == sha
    assert stored_files(importer_env) == [importer_env / "files" / sha[:2] / sha]
    assert (importer_env / "files" / sha[:2] / sha).read_bytes() == content


def test_client_file_name_is_kept_for_display_only_never_as_a_path(
    client: TestClient, workbook: Path, importer_env: Path
) -> None:
    response = post_file(client, workbook, name="../../etc\\evil/items.xlsx")

    job = read_job(uuid.UUID(response.json()["job_id"]))
    assert job.filename == "items.xlsx"
    sha = hashlib.sha256(workbook.read_bytes()).hexdigest()
    assert stored_files(importer_env) == [importer_env / "files" / sha[:2] / sha]


def test_csv_upload_is_accepted(client: TestClient, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "items.csv", [["SKU", "Name"], ["A", "Apple"]])

    assert post_file(client, path).status_code == 202


@pytest.mark.parametrize(
    ("codec", "bom"),
    [("cp1252", b""), ("shift_jis", b""), ("utf-16-le", b"\xff\xfe"), ("gb18030", b"")],
)
def test_text_in_any_encoding_is_accepted_and_binary_is_not(
    client: TestClient, tmp_path: Path, codec: str, bom: bytes
) -> None:
    text = "SKU;Name;Price\r\nA-1;Größe Schraube;9,99\r\n"
    if codec != "cp1252" and not codec.startswith("utf"):
        text = "SKU;Name;Price\r\nA-1;六角ボルト;120\r\n" if codec == "shift_jis" else text
        text = "SKU;Name;Price\r\nA-1;六角螺栓;120\r\n" if codec == "gb18030" else text
    file = tmp_path / "items.csv"
    file.write_bytes(bom + text.encode(codec))
    assert post_file(client, file).status_code == 202
    junk = tmp_path / "junk.csv"
    junk.write_bytes(bytes(range(1, 32)) * 500)
    response = post_file(client, junk)
    assert response.status_code == 415
    assert ACCEPTED in response.json()["detail"]


def test_reading_choices_are_kept_on_the_job_and_bad_ones_refused_with_422(
    client: TestClient, tmp_path: Path
) -> None:
    file = tmp_path / "items.csv"
    file.write_bytes("SKU;Name\r\nA;Größe\r\n".encode("cp1252"))
    response = post_file(client, file, encoding="Windows-1252", delimiter="tab", decimal=",")
    assert response.status_code == 202, response.text
    job = read_job(uuid.UUID(response.json()["job_id"]))
    assert (job.encoding, job.delimiter, job.decimal) == ("cp1252", "\t", ",")
    progress = client.get(response.json()["progress_url"]).json()
    assert (progress["encoding"], progress["delimiter"], progress["decimal"]) == (
        "cp1252",
        "\t",
        ",",
    )
    for field, value, says in [
        ("encoding", "no-such-codec", "not an encoding Python knows"),
        ("encoding", "base64", "not an encoding Python knows"),
        ("delimiter", ":", "delimiter must be one of"),
        ("decimal", "x", "decimal mark must be"),
    ]:
        bad = post_file(client, file, force=True, **{field: value})
        assert bad.status_code == 422, (field, bad.text)
        assert says in bad.json()["detail"]


def test_the_same_file_with_another_encoding_is_not_a_duplicate(
    client: TestClient, tmp_path: Path
) -> None:
    file = tmp_path / "items.csv"
    file.write_bytes("SKU;Name\r\nA;Größe\r\n".encode("cp1252"))
    assert post_file(client, file).status_code == 202
    assert post_file(client, file).status_code == 409
    assert post_file(client, file, encoding="cp1250").status_code == 202


def test_png_is_refused_with_415_naming_the_accepted_formats(
    client: TestClient, tmp_path: Path, importer_env: Path, trigger: FakeTrigger
) -> None:
    response = post_file(client, write_png(tmp_path / "photo.png"), name="photo.xlsx")

    assert response.status_code == 415
    assert ACCEPTED in response.json()["detail"]
    assert stored_files(importer_env) == []
    assert all_jobs() == []
    assert trigger.started == []


def test_upload_declaring_more_than_the_limit_is_refused_with_413_and_nothing_stored(
    client: TestClient, tmp_path: Path, importer_env: Path, upload_limit: int
) -> None:
    big = tmp_path / "big.csv"
    big.write_bytes(b"SKU,Name\n" + b"A,Apple\n" * 20_000)  # ~160 KB, well past limit + framing

    response = post_file(client, big)

    assert response.status_code == 413
    assert response.json()["detail"].startswith("the file is larger than the limit of")
    assert stored_files(importer_env) == []
    assert all_jobs() == []


def test_file_just_over_the_limit_is_refused_with_413_and_nothing_stored(
    client: TestClient, tmp_path: Path, importer_env: Path, upload_limit: int
) -> None:
    path = tmp_path / "edge.csv"
    path.write_bytes(b"SKU,Name\n" + b"A" * (upload_limit - 8))  # limit + 1 byte

    response = post_file(client, path)

    assert response.status_code == 413
    assert "larger than the limit" in response.json()["detail"]
    assert stored_files(importer_env) == []
    assert all_jobs() == []


def test_file_exactly_at_the_limit_is_accepted(
    client: TestClient, tmp_path: Path, upload_limit: int
) -> None:
    path = tmp_path / "edge.csv"
    path.write_bytes(b"SKU,Name\n" + b"A" * (upload_limit - 9))

    assert post_file(client, path).status_code == 202


def test_chunked_upload_past_the_limit_is_cut_off_early_and_nothing_stored(
    app: FastAPI, importer_env: Path, upload_limit: int
) -> None:
    boundary = "limit-test-boundary"
    pulled = 0

    async def endless_body() -> Any:
        nonlocal pulled
        yield (
            f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="file"; filename="huge.xlsx"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode() + b"PK\x03\x04"
        for _ in range(2048):  # 2 GiB if it were all read
            pulled += 1
            yield bytes(MIB)
        yield f"\r\n--{boundary}--\r\n".encode()

    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.post(
                URL,
                content=endless_body(),
                headers={"content-type": f"multipart/form-data; boundary={boundary}"},
            )

    response = asyncio.run(send())

    assert response.status_code == 413
    assert "larger than the limit" in response.json()["detail"]
    assert response.headers["connection"] == "close"  # the server stops reading the body
    assert pulled <= 2
    assert stored_files(importer_env) == []
    assert all_jobs() == []


def test_declared_oversize_body_is_refused_before_a_byte_of_it_is_read(
    app: FastAPI, upload_limit: int
) -> None:
    messages: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        raise AssertionError("the body was read")

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": URL,
        "raw_path": URL.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"test"), (b"content-length", str(2 * 1024 * MIB).encode())],
        "client": ("test", 1),
        "server": ("test", 80),
    }
    asyncio.run(app(scope, receive, send))

    assert messages[0]["status"] == 413


def test_same_file_and_options_while_its_job_is_active_answers_409_with_that_job(
    client: TestClient, workbook: Path, trigger: FakeTrigger
) -> None:
    first = post_file(client, workbook, sheet="Items").json()["job_id"]

    response = post_file(client, workbook, sheet="Items")

    assert response.status_code == 409
    assert response.json()["job_id"] == first
    assert "force" in response.json()["detail"]
    assert len(all_jobs()) == 1
    assert len(trigger.started) == 1


def test_duplicate_is_detected_while_the_job_is_processing(
    client: TestClient, workbook: Path
) -> None:
    first = uuid.UUID(post_file(client, workbook).json()["job_id"])
    update_job(first, status=JobStatus.PROCESSING)

    assert post_file(client, workbook).status_code == 409


def test_force_imports_the_same_file_again(client: TestClient, workbook: Path) -> None:
    first = post_file(client, workbook).json()["job_id"]

    response = post_file(client, workbook, force=True)

    assert response.status_code == 202
    assert response.json()["job_id"] != first
    assert len(all_jobs()) == 2


@pytest.mark.parametrize(
    "other", [{"sheet": "Other"}, {"on_error": "abort"}, {"dry_run": True}], ids=str
)
def test_same_file_with_other_options_is_not_a_duplicate(
    client: TestClient, workbook: Path, other: dict[str, Any]
) -> None:
    post_file(client, workbook)

    assert post_file(client, workbook, **other).status_code == 202


@pytest.mark.parametrize("ended", [JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED])
def test_same_file_after_its_job_ended_is_accepted(
    client: TestClient, workbook: Path, ended: JobStatus
) -> None:
    first = uuid.UUID(post_file(client, workbook).json()["job_id"])
    update_job(first, status=ended)

    assert post_file(client, workbook).status_code == 202


def test_prefect_unavailable_the_upload_is_accepted_and_waits_saying_why(
    app: FastAPI, client: TestClient, workbook: Path, trigger: FakeTrigger
) -> None:
    app.dependency_overrides[get_trigger] = lambda: UnavailableTrigger()

    response = post_file(client, workbook)

    assert response.status_code == 202
    [job] = all_jobs()
    assert (job.status, job.error, job.flow_run_id) == (JobStatus.PENDING, None, None)
    progress = client.get(response.json()["progress_url"]).json()
    assert (progress["status"], progress["waiting_for"]) == ("pending", UNAVAILABLE)
    # Prefect answers again: the next round of the dispatcher starts the job's run.
    asyncio.run(dispatch_once(trigger, get_settings()))
    [(job_id, _, run)] = trigger.started
    assert job_id == job.id
    progress = client.get(response.json()["progress_url"]).json()
    assert (progress["flow_run_id"], progress["waiting_for"]) == (str(run), None)


def asked_long_ago(job_id: uuid.UUID) -> None:
    """The job asked for its run longer ago than the dispatch timeout."""
    timeout = timedelta(seconds=get_settings().dispatch_timeout_s + 1)
    update_job(job_id, run_requested_at=utcnow() - timeout)


def test_a_job_that_waits_longer_than_the_dispatch_timeout_fails_with_the_reason(
    app: FastAPI, client: TestClient, workbook: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app.dependency_overrides[get_trigger] = lambda: UnavailableTrigger()
    post_file(client, workbook)
    [job] = all_jobs()
    assert job.status == JobStatus.PENDING
    asked_long_ago(job.id)

    asyncio.run(dispatch_once(UnavailableTrigger(), get_settings()))

    [job] = all_jobs()
    assert job.status == JobStatus.FAILED
    assert job.error is not None and job.error.endswith(UNAVAILABLE)
    assert job.error.startswith("the import could not be started within ")
    assert job.finished_at is not None and job.flow_run_id is None


def test_two_dispatchers_racing_for_one_job_give_it_one_run(
    client: TestClient, workbook: Path, trigger: FakeTrigger
) -> None:
    post_file(client, workbook)
    [job] = all_jobs()
    first = job.flow_run_id
    with session_scope() as session:  # as if the API died before it recorded the run
        stored = get_job(session, job.id)
        assert stored is not None
        stored.flow_run_id = None
        stored.run_requested_at = stored.created_at
        stored.run_key = str(job.id)

    async def two() -> None:
        await asyncio.gather(
            dispatch_once(trigger, get_settings()), dispatch_once(trigger, get_settings())
        )

    asyncio.run(two())
    assert {run for _, _, run in trigger.started} == {first}
    assert all_jobs()[0].flow_run_id == first


def test_a_failed_start_does_not_block_uploading_the_file_again(
    app: FastAPI, client: TestClient, workbook: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app.dependency_overrides[get_trigger] = lambda: UnavailableTrigger()
    post_file(client, workbook)
    asked_long_ago(all_jobs()[0].id)
    asyncio.run(dispatch_once(UnavailableTrigger(), get_settings()))
    assert all_jobs()[0].status == JobStatus.FAILED
    app.dependency_overrides[get_trigger] = lambda: FakeTrigger()

    assert post_file(client, workbook).status_code == 202


def test_unknown_on_error_is_refused_with_a_one_sentence_422(
    client: TestClient, workbook: Path
) -> None:
    response = post_file(client, workbook, on_error="ignore")

    assert response.status_code == 422
    detail = response.json()["detail"]
    assert isinstance(detail, str)
    assert detail.startswith("on_error is not valid: ")


def test_upload_without_a_file_is_refused_with_422(client: TestClient) -> None:
    response = client.post(URL, data={"sheet": "Items"})

    assert response.status_code == 422
    assert response.json()["detail"].startswith("file is not valid")


def test_upload_of_a_ten_thousand_row_workbook_reads_no_rows(
    client: TestClient, tmp_path: Path
) -> None:
    rows = [["SKU", "Name", "Price"]] + [[f"S{i}", f"Item {i}", i / 10] for i in range(10_000)]
    path = write_xlsx(tmp_path / "large.xlsx", rows)

    response = post_file(client, path)

    assert response.status_code == 202
    job = read_job(uuid.UUID(response.json()["job_id"]))
    assert (job.total_rows, job.processed_rows, job.columns) == (None, 0, [])
