"""GET /api/excel/imports: newest first, filters and cursor pagination."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi.testclient import TestClient

from db.models import JobSource, JobStatus
from tests.api.helpers import add_job, at

URL = "/api/excel/imports"


def ids(body: dict[str, Any]) -> list[uuid.UUID]:
    return [uuid.UUID(item["job_id"]) for item in body["items"]]


def test_history_lists_jobs_newest_first(client: TestClient) -> None:
    old = add_job(created_at=at(0))
    new = add_job(created_at=at(20))
    middle = add_job(created_at=at(10))

    body = client.get(URL).json()

    assert ids(body) == [new, middle, old]
    assert body["next_cursor"] is None


def test_history_items_are_job_views(client: TestClient) -> None:
    job_id = add_job(filename="a.xlsx", total_rows=3, processed_rows=3, status="completed")

    [item] = client.get(URL).json()["items"]

    assert item["job_id"] == str(job_id)
    assert (item["filename"], item["status"], item["percent"]) == ("a.xlsx", "completed", 100.0)


def test_history_filters_by_status_and_source(client: TestClient) -> None:
    add_job(status=JobStatus.COMPLETED, source=JobSource.CLI, created_at=at(0))
    wanted = add_job(status=JobStatus.FAILED, source=JobSource.UPLOAD, created_at=at(1))
    add_job(status=JobStatus.FAILED, source=JobSource.CLI, created_at=at(2))
    add_job(status=JobStatus.PENDING, source=JobSource.UPLOAD, created_at=at(3))

    assert len(ids(client.get(URL, params={"status": "failed"}).json())) == 2
    assert len(ids(client.get(URL, params={"source": "upload"}).json())) == 2
    both = client.get(URL, params={"status": "failed", "source": "upload"}).json()
    assert ids(both) == [wanted]


def test_cursor_pages_through_every_job_once_even_with_equal_timestamps(
    client: TestClient,
) -> None:
    created = {add_job(created_at=at(i // 3)): at(i // 3) for i in range(10)}  # 3 per second
    expected = sorted(created, key=lambda job_id: (created[job_id], job_id.hex), reverse=True)

    seen: list[uuid.UUID] = []
    cursor = None
    for _ in range(10):
        params: dict[str, Any] = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        body = client.get(URL, params=params).json()
        seen += ids(body)
        cursor = body["next_cursor"]
        if cursor is None:
            break

    assert seen == expected


def test_cursor_keeps_the_filters_of_the_request(client: TestClient) -> None:
    failed = [add_job(status=JobStatus.FAILED, created_at=at(i)) for i in range(3)]
    add_job(status=JobStatus.COMPLETED, created_at=at(1.5))

    first = client.get(URL, params={"status": "failed", "limit": 2}).json()
    second = client.get(
        URL, params={"status": "failed", "limit": 2, "cursor": first["next_cursor"]}
    ).json()

    assert ids(first) + ids(second) == failed[::-1]
    assert second["next_cursor"] is None


def test_a_full_last_page_has_no_next_cursor(client: TestClient) -> None:
    for i in range(2):
        add_job(created_at=at(i))

    assert client.get(URL, params={"limit": 2}).json()["next_cursor"] is None


def test_a_cursor_that_was_not_handed_out_is_refused_with_422(client: TestClient) -> None:
    response = client.get(URL, params={"cursor": "bm90LWEtY3Vyc29y"})

    assert response.status_code == 422
    assert response.json() == {
        "detail": "the cursor is not valid; pass next_cursor from the previous page"
    }


def test_unknown_status_filter_is_refused_with_422(client: TestClient) -> None:
    response = client.get(URL, params={"status": "done"})

    assert response.status_code == 422
    assert response.json()["detail"].startswith("status is not valid")


def test_limit_is_bounded(client: TestClient) -> None:
    assert client.get(URL, params={"limit": 0}).status_code == 422
    assert client.get(URL, params={"limit": 101}).status_code == 422
