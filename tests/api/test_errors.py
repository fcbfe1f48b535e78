"""A job's row errors as a JSON page and as a CSV download with formula cells neutralised."""

from __future__ import annotations

import csv
import io
import uuid

import pytest
from fastapi.testclient import TestClient

from tests.api.helpers import add_job, add_row_errors


def test_errors_come_in_sheet_order_pages_with_their_total(client: TestClient) -> None:
    job_id = add_job(status="completed")
    add_row_errors(
        job_id, [(row, "price", f"x{row}", "price is not a number") for row in (9, 3, 5)]
    )
    add_row_errors(add_job(), [(2, "sku", None, "sku is empty")])  # another job's error

    first = client.get(f"/api/excel/import/{job_id}/errors", params={"limit": 2}).json()
    second = client.get(
        f"/api/excel/import/{job_id}/errors", params={"limit": 2, "offset": 2}
    ).json()

    assert (first["total"], first["limit"], first["offset"]) == (3, 2, 0)
    assert [e["row"] for e in first["items"]] == [3, 5]
    assert first["items"][0] == {
        "row": 3,
        "column": "price",
        "value": "x3",
        "message": "price is not a number",
    }
    assert [e["row"] for e in second["items"]] == [9]
    assert second["total"] == 3


def test_errors_page_by_row_key_to_the_end(client: TestClient) -> None:
    job_id = add_job(status="completed")
    add_row_errors(job_id, [(row, "price", None, "price is required") for row in range(2, 12)])
    url = f"/api/excel/import/{job_id}/errors"

    seen: list[int] = []
    after: int | None = None
    while True:
        params = {"limit": 4} | ({"after_row": after} if after is not None else {})
        page = client.get(url, params=params).json()
        seen += [e["row"] for e in page["items"]]
        if (after := page["next_after_row"]) is None:
            break

    assert seen == list(range(2, 12))
    assert page["total"] == 10


@pytest.mark.parametrize(
    "params",
    [{"offset": 2**63}, {"offset": 10**9}, {"after_row": 2**63}, {"after_row": -1}, {"limit": 0}],
)
def test_out_of_range_paging_is_refused_with_a_sentence(
    client: TestClient, params: dict[str, int]
) -> None:
    job_id = add_job()

    response = client.get(f"/api/excel/import/{job_id}/errors", params=params)

    assert response.status_code == 422
    assert response.json()["detail"].startswith(f"{next(iter(params))} is not valid:")


def test_errors_of_a_job_without_errors_are_an_empty_page(client: TestClient) -> None:
    job_id = add_job()

    body = client.get(f"/api/excel/import/{job_id}/errors").json()

    assert (body["total"], body["items"]) == (0, [])


def test_errors_of_an_unknown_job_are_404(client: TestClient) -> None:
    missing = uuid.uuid4()
    assert client.get(f"/api/excel/import/{missing}/errors").status_code == 404
    assert client.get(f"/api/excel/import/{missing}/errors.csv").status_code == 404


def test_error_csv_is_a_download_with_the_four_columns(client: TestClient) -> None:
    job_id = add_job()
    add_row_errors(
        job_id,
        [(4, "name", None, "name is empty"), (2, "price", "1,2,3", 'not a "number"')],
    )

    response = client.get(f"/api/excel/import/{job_id}/errors.csv")

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"] == (
        f'attachment; filename="import-{job_id}-errors.csv"'
    )
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows == [
        ["row", "column", "value", "message"],
        ["2", "price", "1,2,3", 'not a "number"'],
        ["4", "name", "", "name is empty"],
    ]


def test_error_csv_prefixes_cells_a_spreadsheet_would_run_as_formulas(
    client: TestClient,
) -> None:
    job_id = add_job()
    dangerous = ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"]
    add_row_errors(
        job_id,
        [(row, "sku", value, value) for row, value in enumerate(dangerous, start=2)]
        + [(9, "=cmd", "plain", "a - b is fine inside")],
    )

    text = client.get(f"/api/excel/import/{job_id}/errors.csv").content.decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))[1:]

    assert [row[2] for row in rows[:-1]] == ["'" + value for value in dangerous]
    assert [row[3] for row in rows[:-1]] == ["'" + value for value in dangerous]
    assert rows[-1] == ["9", "'=cmd", "plain", "a - b is fine inside"]


def _split_outside_quotes(line: str, separator: str) -> list[str]:
    """A line cut at `separator` where it stands outside double quotes, as Excel reads it."""
    cells, cell, quoted = [], "", False
    for char in line:
        if char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            cells.append(cell)
            cell = ""
            continue
        cell += char
    return [*cells, cell]


def test_error_csv_quotes_every_cell_so_a_semicolon_locale_does_not_split_one(
    client: TestClient,
) -> None:
    # Excel in de, fr, nl, ... reads a CSV at `;`: an unquoted cell would become a formula.
    job_id = add_job()
    sneaky = 'x;=HYPERLINK("https://evil.example","click")'
    add_row_errors(job_id, [(2, "a;@b", sneaky, "price; -1 is not a number")])

    text = client.get(f"/api/excel/import/{job_id}/errors.csv").content.decode("utf-8-sig")

    lines = text.split("\r\n")[:-1]
    for line in lines:
        cells = _split_outside_quotes(line, ",")
        assert all(cell.startswith('"') and cell.endswith('"') for cell in cells), line
        assert _split_outside_quotes(line, ";") == [line], line
    assert list(csv.reader(io.StringIO(text)))[1] == [
        "2",
        "a;@b",
        sneaky,
        "price; -1 is not a number",
    ]


def test_error_csv_holds_every_error_of_a_large_report(client: TestClient) -> None:
    job_id = add_job()
    add_row_errors(job_id, [(row, "sku", None, "sku is empty") for row in range(2, 5002)])

    text = client.get(f"/api/excel/import/{job_id}/errors.csv").content.decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))[1:]

    assert [int(row[0]) for row in rows] == list(range(2, 5002))
