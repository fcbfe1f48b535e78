"""The review endpoints: the preview, and confirm / new preview / reject with their refusals."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from db.models import ColumnMapping, JobStatus, utcnow
from db.session import session_scope
from itemsheet.jobs.review import REJECTED_REASON, ReviewAnswer
from tests.api.helpers import UNAVAILABLE, FakeTrigger, UnavailableTrigger, add_job, read_job

PREVIEW: dict[str, Any] = {
    "round": 0,
    "header_row": 1,
    "columns": [
        {
            "column": "c0",
            "key": "sku",
            "header": "SKU",
            "field": "sku",
            "source": "aliases",
            "samples": ["A-1"],
        },
        {
            "column": "c1",
            "key": "preis",
            "header": "Preis",
            "field": None,
            "source": None,
            "samples": ["2"],
        },
    ],
    "changes": [{"row": 2, "sku": "A-1", "action": "create", "fields": {"price": [None, "2"]}}],
    "counts": {"total_rows": 1, "created": 1, "updated": 0, "unchanged": 0, "failed": 0},
    "errors": [],
    "problem": None,
}


def waiting_job(*, run: uuid.UUID | None = None, **fields: Any) -> uuid.UUID:
    """A job whose preview is ready and waits for an answer."""
    return add_job(
        status=JobStatus.AWAITING_REVIEW,
        review=True,
        previewing=True,
        total_rows=1,
        processed_rows=1,
        created=1,
        last_batch=1,
        flow_run_id=run,
        preview=PREVIEW,
        review_ready_at=utcnow(),
        **fields,
    )


def test_the_preview_shows_columns_counts_changes_and_when_it_expires(client: TestClient) -> None:
    job_id = waiting_job(run=uuid.uuid4())

    body = client.get(f"/api/excel/import/{job_id}/preview").json()

    assert body["ready"] is True and body["status"] == "awaiting_review"
    assert [(c["header"], c["field"]) for c in body["columns"]] == [("SKU", "sku"), ("Preis", None)]
    assert body["counts"]["created"] == 1
    assert body["changes"] == PREVIEW["changes"]
    assert [f["name"] for f in body["fields"] if f["required"]] == ["sku"]
    assert body["expires_at"] is not None


def test_an_import_without_review_has_no_preview(client: TestClient) -> None:
    job_id = add_job(status=JobStatus.COMPLETED)
    response = client.get(f"/api/excel/import/{job_id}/preview")
    assert response.status_code == 409
    assert response.json() == {
        "detail": "this import was not started with review, so it has no preview"
    }


def test_confirm_resumes_the_suspended_run_with_the_answer(
    client: TestClient, trigger: FakeTrigger
) -> None:
    run = uuid.uuid4()
    job_id = waiting_job(run=run)

    response = client.post(f"/api/excel/import/{job_id}/confirm")

    assert response.status_code == 202
    assert trigger.resumed == [(run, ReviewAnswer(confirm=True).to_form())]
    job = read_job(job_id)
    # Written from its first batch: the preview's progress is gone, its counts are kept.
    assert (job.status, job.previewing, job.processed_rows, job.created) == ("pending", False, 0, 0)
    assert job.reviewed_at is not None and job.preview is not None
    assert trigger.started == []  # the resumed run carries it on


def test_confirm_with_another_mapping_previews_it_before_writing(
    client: TestClient, trigger: FakeTrigger
) -> None:
    job_id = waiting_job(run=uuid.uuid4())

    response = client.post(
        f"/api/excel/import/{job_id}/confirm", json={"mapping": {"Preis": "price"}}
    )

    assert response.status_code == 202
    assert trigger.resumed[0][1]["mapping"] == {"Preis": "price"}
    job = read_job(job_id)
    assert (job.status, job.previewing, job.review_round) == ("pending", True, 1)
    assert job.mapping == {"preis": "price"} and job.reviewed_at is not None


def test_a_new_preview_waits_again_without_confirming(client: TestClient) -> None:
    job_id = waiting_job(run=uuid.uuid4())

    response = client.post(
        f"/api/excel/import/{job_id}/preview", json={"mapping": {"Preis": "price"}}
    )

    assert response.status_code == 202
    job = read_job(job_id)
    assert (job.status, job.previewing, job.review_round, job.reviewed_at) == (
        "pending",
        True,
        1,
        None,
    )


def test_a_review_whose_run_ended_is_carried_on_by_a_new_run(
    client: TestClient, trigger: FakeTrigger
) -> None:
    trigger.resume_answer = "ended"  # cancelled in the Prefect UI, or started by the CLI
    job_id = waiting_job(run=uuid.uuid4())

    assert client.post(f"/api/excel/import/{job_id}/confirm").status_code == 202

    assert [started[0] for started in trigger.started] == [job_id]
    job = read_job(job_id)
    assert job.flow_run_id == trigger.started[0][2]


def test_a_command_line_review_without_a_run_gets_one(
    client: TestClient, trigger: FakeTrigger
) -> None:
    job_id = waiting_job(run=None)
    assert client.post(f"/api/excel/import/{job_id}/confirm").status_code == 202
    assert trigger.resumed == [] and [s[0] for s in trigger.started] == [job_id]


def test_reject_cancels_the_job_and_its_suspended_run(
    client: TestClient, trigger: FakeTrigger
) -> None:
    run = uuid.uuid4()
    job_id = waiting_job(run=run)

    response = client.post(f"/api/excel/import/{job_id}/reject")

    assert response.status_code == 202
    assert (response.json()["status"], response.json()["error"]) == ("cancelled", REJECTED_REASON)
    assert trigger.cancelled == [run] and trigger.resumed == []


@pytest.mark.parametrize("status", [JobStatus.PENDING, JobStatus.PROCESSING, JobStatus.COMPLETED])
def test_only_a_job_awaiting_review_takes_an_answer(client: TestClient, status: JobStatus) -> None:
    job_id = add_job(status=status, review=True, flow_run_id=uuid.uuid4())
    for action in ("confirm", "reject"):
        response = client.post(f"/api/excel/import/{job_id}/{action}")
        assert response.status_code == 409
        assert response.json() == {
            "detail": f"the import is {status}, not awaiting review; there is nothing to confirm"
        }


def test_a_second_answer_to_the_same_preview_is_refused(
    client: TestClient, trigger: FakeTrigger
) -> None:
    job_id = waiting_job(run=uuid.uuid4())
    assert client.post(f"/api/excel/import/{job_id}/confirm").status_code == 202
    assert client.post(f"/api/excel/import/{job_id}/reject").status_code == 409


def test_the_preview_says_how_the_file_was_read(client: TestClient) -> None:
    reading = {
        "encoding": {"value": "cp1252", "label": "Windows-1252", "how": "detected"},
        "decimal": {"value": ".", "how": "default", "detail": "default"},
    }
    job_id = waiting_job(run=uuid.uuid4(), reading=reading)
    assert client.get(f"/api/excel/import/{job_id}/preview").json()["reading"] == reading


def test_confirm_with_another_decimal_mark_previews_it_before_writing(
    client: TestClient, trigger: FakeTrigger
) -> None:
    job_id = waiting_job(run=uuid.uuid4(), encoding="cp1250")

    response = client.post(
        f"/api/excel/import/{job_id}/confirm", json={"decimal": ",", "encoding": ""}
    )

    assert response.status_code == 202, response.text
    assert trigger.resumed[0][1]["decimal"] == ","
    job = read_job(job_id)
    assert (job.status, job.previewing, job.review_round) == ("pending", True, 1)
    # "" goes back to detection; the mapping is kept as it was.
    assert (job.decimal, job.encoding, job.mapping) == (",", None, None)
    assert job.reviewed_at is not None


def test_a_new_preview_takes_reading_choices_without_a_mapping(client: TestClient) -> None:
    job_id = waiting_job(run=uuid.uuid4())
    response = client.post(
        f"/api/excel/import/{job_id}/preview", json={"delimiter": ";", "encoding": "latin-1"}
    )
    assert response.status_code == 202, response.text
    job = read_job(job_id)
    assert (job.delimiter, job.encoding, job.previewing, job.reviewed_at) == (
        ";",
        "iso8859-1",
        True,
        None,
    )


def test_a_reading_choice_that_is_not_valid_is_refused_and_nothing_changes(
    client: TestClient,
) -> None:
    job_id = waiting_job(run=uuid.uuid4())
    response = client.post(f"/api/excel/import/{job_id}/confirm", json={"decimal": ";"})
    assert response.status_code == 422
    assert response.json()["detail"] == "the decimal mark must be '.' or ','"
    assert read_job(job_id).status == "awaiting_review"


def test_a_mapping_naming_no_field_is_refused_and_nothing_changes(client: TestClient) -> None:
    job_id = waiting_job(run=uuid.uuid4())

    response = client.post(
        f"/api/excel/import/{job_id}/confirm", json={"mapping": {"Preis": "cost"}}
    )

    assert response.status_code == 422
    assert response.json()["detail"].startswith("the mapping of 'Preis' names 'cost'")
    assert read_job(job_id).status == "awaiting_review"


def test_without_prefect_the_answer_is_refused_and_can_be_given_again(
    client: TestClient, app: Any
) -> None:
    from api.deps import get_trigger

    app.dependency_overrides[get_trigger] = lambda: UnavailableTrigger()
    job_id = waiting_job(run=uuid.uuid4())

    response = client.post(f"/api/excel/import/{job_id}/confirm")

    assert response.status_code == 503
    assert response.json()["detail"].startswith(UNAVAILABLE)
    assert read_job(job_id).status == "awaiting_review"


def upload(client: TestClient, path: Path, **form: str) -> Any:
    with path.open("rb") as f:
        return client.post("/api/excel/import", files={"file": (path.name, f)}, data=form)


def test_an_upload_takes_a_mapping_a_header_row_and_review(
    client: TestClient, workbook: Path
) -> None:
    response = upload(
        client,
        workbook,
        review="true",
        header_row="2",
        mapping=json.dumps({"Artikelnummer": "sku", "Notiz": None}),
    )
    assert response.status_code == 202
    job = read_job(uuid.UUID(response.json()["job_id"]))
    assert (job.review, job.previewing, job.header_row) == (True, True, 2)
    assert job.mapping == {"artikelnummer": "sku", "notiz": None}


@pytest.mark.parametrize(
    ("form", "detail"),
    [
        ({"mapping": "[1]"}, "mapping must be a JSON object of header -> field or null"),
        ({"mapping": "{not json"}, "mapping must be a JSON object of header -> field or null"),
        ({"mapping": '{"Preis": "cost"}'}, "the mapping of 'Preis' names 'cost'"),
        ({"review": "true", "dry_run": "true"}, "a dry run writes nothing, so it needs no review"),
    ],
)
def test_an_upload_with_an_unusable_mapping_or_options_is_refused_in_one_sentence(
    client: TestClient, workbook: Path, form: dict[str, str], detail: str
) -> None:
    response = upload(client, workbook, **form)
    assert response.status_code == 422
    assert response.json()["detail"].startswith(detail)


def test_saved_mappings_are_listed_with_who_saved_them_and_when(client: TestClient) -> None:
    job_id = add_job(status=JobStatus.COMPLETED)
    with session_scope() as session:
        session.add(
            ColumnMapping(
                header_key="k" * 32,
                headers=["Artikelnummer", "Preis"],
                columns={"artikelnummer": "sku", "preis": "price"},
                saved_by="API key ...1a2b",
                saved_at=utcnow() - timedelta(days=1),
                job_id=job_id,
            )
        )

    [saved] = client.get("/api/excel/mappings").json()

    assert saved["headers"] == ["Artikelnummer", "Preis"]
    assert (saved["saved_by"], saved["job_id"]) == ("API key ...1a2b", str(job_id))


LONG_KEY = "x" * 300
LONG_KEY_REFUSED = (
    "the mapping names a header of 300 characters; name a header by at most its first 255"
    " characters, as the preview's key shows it"
)
# 300 headers of 255 characters: under the count of keys a body may name, over 64 KiB.
BIG_MAPPING = {f"{i:05d}" + "h" * 250: None for i in range(300)}


@pytest.mark.parametrize("answer", ["confirm", "preview"])
@pytest.mark.parametrize(
    ("mapping", "detail"),
    [
        ({LONG_KEY: "sku"}, LONG_KEY_REFUSED),
        (BIG_MAPPING, "the mapping is 78,901 bytes of JSON; the most is 65,536"),
    ],
)
def test_a_review_answer_with_a_long_mapping_key_or_a_big_mapping_is_refused(
    client: TestClient, answer: str, mapping: dict[str, str | None], detail: str
) -> None:
    job_id = waiting_job(run=uuid.uuid4())

    response = client.post(f"/api/excel/import/{job_id}/{answer}", json={"mapping": mapping})

    assert response.status_code == 422
    assert response.json()["detail"].startswith(detail)
    job = read_job(job_id)
    assert (job.status, job.mapping, job.review_round) == ("awaiting_review", None, 0)


@pytest.mark.parametrize(
    ("mapping", "detail"),
    [
        ({LONG_KEY: "sku"}, LONG_KEY_REFUSED),
        (BIG_MAPPING, "the mapping is 78,901 bytes of JSON; the most is 65,536"),
    ],
)
def test_an_upload_with_a_long_mapping_key_or_a_big_mapping_is_refused(
    client: TestClient, workbook: Path, mapping: dict[str, str | None], detail: str
) -> None:
    response = upload(client, workbook, mapping=json.dumps(mapping, separators=(",", ":")))
    assert response.status_code == 422
    assert response.json()["detail"].startswith(detail)
