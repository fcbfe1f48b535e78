"""`GET /api/excel/import/{id}/rejected.xlsx` and `.csv`: the failed rows of an upload, read
again from its stored file (by a real parse child), or a one-sentence refusal."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime
from pathlib import Path

import openpyxl
import pytest
from fastapi.testclient import TestClient

from itemsheet.runs import running
from tests.api.helpers import add_job, stored_files, update_job
from tests.contract.workbooks import write_xlsx

pytestmark = pytest.mark.subprocess  # the parse child

ROWS = [
    ["SKU", "Name", "Price", "Supplier"],
    ["R-1", "Apple", 1.5, "Acme"],
    ["R-2", "Pear", "cheap", "Acme"],
    ["R-3", None, 3, "Bolt & Co"],
]
KEY = "rejected-key-0123456789"


def import_here(client: TestClient, path: Path, headers: dict[str, str] | None = None) -> str:
    """Upload `path` and run its import's steps in this process, as a flow run would."""
    with path.open("rb") as stream:
        response = client.post(
            "/api/excel/import", files={"file": (path.name, stream)}, headers=headers or {}
        )
    assert response.status_code == 202, response.text
    job_id = response.json()["job_id"]
    end, view = running.attempt(
        uuid.UUID(job_id),
        None,
        load=running.load,
        write=lambda key, attempt, batches: running.write(key, attempt, batches, lambda *_: None),
    )
    assert end is running.End.COMPLETED, view
    assert (view.created, view.failed) == (1, 2)
    return str(job_id)


@pytest.fixture
def failing(tmp_path: Path) -> Path:
    return write_xlsx(tmp_path / "stock list.xlsx", ROWS)


def test_rejected_rows_download_as_a_workbook_and_as_csv(
    client: TestClient, failing: Path, tmp_path: Path
) -> None:
    job_id = import_here(client, failing)

    workbook = client.get(f"/api/excel/import/{job_id}/rejected.xlsx")
    text = client.get(f"/api/excel/import/{job_id}/rejected.csv")

    assert workbook.status_code == 200, workbook.text
    assert workbook.headers["content-type"].startswith("application/vnd.openxmlformats")
    assert 'filename="stock list-rejected.xlsx"' in workbook.headers["content-disposition"]
    path = tmp_path / "rejected.xlsx"
    path.write_bytes(workbook.content)
    sheet = openpyxl.load_workbook(path).worksheets[0]
    table = [list(r) for r in sheet.iter_rows(values_only=True)]
    assert table[0] == ["SKU", "Name", "Price", "Supplier", "Error"]
    assert [r[:4] for r in table[1:]] == [
        ["R-2", "Pear", "cheap", "Acme"],
        ["R-3", None, 3, "Bolt & Co"],
    ]
    assert "price" in table[1][4]
    assert table[2][4] == "name is required to create item 'R-3'"

    assert text.status_code == 200, text.text
    assert text.headers["content-type"] == "text/csv; charset=utf-8"
    rows = list(csv.reader(io.StringIO(text.content.decode("utf-8-sig"))))
    assert rows == [[str(c) if c is not None else "" for c in r] for r in table]


def test_rejected_rows_of_an_unknown_job_are_404(client: TestClient) -> None:
    response = client.get(f"/api/excel/import/{uuid.uuid4()}/rejected.xlsx")

    assert response.status_code == 404
    assert response.json()["detail"]


def test_an_unknown_format_is_not_a_route(client: TestClient) -> None:
    response = client.get(f"/api/excel/import/{uuid.uuid4()}/rejected.pdf")

    assert response.status_code == 422
    assert "\n" not in response.json()["detail"]


def test_rejected_rows_whose_file_is_gone_are_410_with_the_reason(
    client: TestClient, failing: Path, importer_env: Path
) -> None:
    job_id = import_here(client, failing)
    for path in stored_files(importer_env):
        path.unlink()

    response = client.get(f"/api/excel/import/{job_id}/rejected.csv")

    assert response.status_code == 410
    assert response.json() == {
        "detail": "the stored file of this import is missing from storage; upload the file again"
    }


def test_rejected_rows_after_retention_are_410_naming_the_clean_up(client: TestClient) -> None:
    job_id = add_job(status="completed", files_removed_at=datetime(2026, 3, 1, tzinfo=UTC))

    response = client.get(f"/api/excel/import/{job_id}/rejected.xlsx")

    assert response.status_code == 410
    detail = response.json()["detail"]
    assert "removed on 2026-03-01 by the retention clean-up" in detail
    assert "\n" not in detail


def test_rejected_rows_of_an_import_without_failures_are_409(
    client: TestClient, tmp_path: Path
) -> None:
    job_id = add_job(status="completed", file_uri=str(tmp_path / "x"))
    update_job(job_id, total_rows=3, created=3)

    response = client.get(f"/api/excel/import/{job_id}/rejected.xlsx")

    assert response.status_code == 409
    assert response.json() == {"detail": "this import has no failed rows"}


@pytest.fixture
def api_keys() -> str:
    return f"ops:{KEY}"


def test_rejected_rows_need_an_api_key_when_keys_are_set(keyed: TestClient, failing: Path) -> None:
    job_id = import_here(keyed, failing, {"Authorization": f"Bearer {KEY}"})

    refused = keyed.get(f"/api/excel/import/{job_id}/rejected.xlsx")
    served = keyed.get(
        f"/api/excel/import/{job_id}/rejected.xlsx", headers={"Authorization": f"Bearer {KEY}"}
    )

    assert refused.status_code == 401
    assert served.status_code == 200


def test_the_download_keeps_the_uploads_name_safely(client: TestClient, tmp_path: Path) -> None:
    job_id = import_here(client, write_xlsx(tmp_path / "Preisliste März.xlsx", ROWS))

    response = client.get(f"/api/excel/import/{job_id}/rejected.csv")

    assert response.status_code == 200
    assert response.headers["content-disposition"] == (
        'attachment; filename="Preisliste M_rz-rejected.csv";'
        " filename*=UTF-8''Preisliste%20M%C3%A4rz-rejected.csv"
    )
