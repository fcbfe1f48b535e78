"""The import template and the export of items in the import's shape, through the real app
on SQLite and PostgreSQL: contents, filters, paging by key, the formula guard, keys and
refusals."""

from __future__ import annotations

import csv
import io
import uuid
import zipfile
from decimal import Decimal
from typing import Any

import openpyxl
import pytest
from fastapi.testclient import TestClient

from db.item_store import merge_items
from db.models import JobSource, JobStatus, utcnow
from db.session import session_scope
from itemsheet.downloads.template import REQUIRED_MARK, limit_of, type_of
from itemsheet.sheet.fields import FIELDS
from tests.api.helpers import add_job
from tests.db.test_item_store import frame
from tests.itemsheet.test_undoing import run_import

LABELS = [f.label for f in FIELDS]
KEY = "export-key-0123456789"
NAMED = ("sku", "name")


def store(items: list[dict[str, Any]]) -> None:
    """Write items through the item store's bulk merge, as an import batch does."""
    with session_scope() as session:
        merge_items(session, frame(items), now=utcnow())


def csv_rows(response: Any) -> list[list[str]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.content.startswith(b"\xef\xbb\xbf")
    return list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))


def xlsx_rows(response: Any) -> list[list[Any]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/vnd.openxmlformats")
    book = openpyxl.load_workbook(io.BytesIO(response.content))
    return [[c.value for c in row] for row in book.worksheets[0].iter_rows()]


def export(client: TestClient, fmt: str = "csv", **params: str) -> Any:
    return client.get("/api/items/export", params={"format": fmt, **params})


# --- the template ------------------------------------------------------------------------


def test_xlsx_template_marks_sku_required_and_explains_every_field_of_the_table(
    client: TestClient,
) -> None:
    response = client.get("/api/excel/template.xlsx")
    assert response.status_code == 200
    assert 'filename="items-template.xlsx"' in response.headers["content-disposition"]
    book = openpyxl.load_workbook(io.BytesIO(response.content))
    assert book.sheetnames == ["Items", "Fields"]
    items = book["Items"]
    header = [c.value for c in items[1]]
    assert header == [f.label + (REQUIRED_MARK if f.required else "") for f in FIELDS]
    assert [c.font.b for c in items[1]] == [True] * len(FIELDS)
    # The required column says so when it is selected.
    prompts = {str(v.sqref): v.prompt for v in items.data_validations.dataValidation}
    required = [i for i, f in enumerate(FIELDS) if f.required]
    assert set(prompts) == {f"{chr(65 + i)}1" for i in required}
    assert all("Required" in p for p in prompts.values())
    example = [c.value for c in items[2]]
    assert len(example) == len(FIELDS) and all(v is not None for v in example)

    explained = [[c.value for c in row] for row in book["Fields"].iter_rows()]
    by_field = {row[1]: row for row in explained[1 : len(FIELDS) + 1]}
    assert list(by_field) == [f.name for f in FIELDS]
    for field in FIELDS:
        column, name, required_text, kind, limit, aliases, note = by_field[field.name]
        assert (column, name) == (field.label, field.name)
        assert required_text == ("yes" if field.required else "no")
        assert (kind, limit, note) == (type_of(field), limit_of(field), field.note)
        assert aliases.split(", ") == list(field.aliases)
        if field.max_len is not None:
            assert str(field.max_len) in limit


def test_csv_template_is_the_plain_header_in_the_contract_order_and_one_example(
    client: TestClient,
) -> None:
    response = client.get("/api/excel/template.csv")
    assert 'filename="items-template.csv"' in response.headers["content-disposition"]
    rows = csv_rows(response)
    assert rows[0] == LABELS
    assert rows[1] == [f.example for f in FIELDS]
    assert len(rows) == 2


def test_a_template_in_another_format_is_not_found(client: TestClient) -> None:
    response = client.get("/api/excel/template.pdf")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not Found"}


# --- the export ----------------------------------------------------------------------------


def test_export_holds_every_item_once_in_sku_order_across_pages(client: TestClient) -> None:
    # More than two pages of 5,000, read by key.
    store([{"sku": f"P-{i:05d}", "name": f"Item {i}"} for i in range(12_001)])
    for fmt, read in (("csv", csv_rows), ("xlsx", xlsx_rows)):
        rows = read(export(client, fmt))
        assert rows[0] == LABELS
        assert [r[0] for r in rows[1:]] == [f"P-{i:05d}" for i in range(12_001)], fmt


def test_export_writes_each_field_as_the_import_reads_it(client: TestClient, database: str) -> None:
    # SQLite keeps a price as a double: 18 digits only survive on PostgreSQL.
    long_price = "99999999999999.9999" if database == "postgresql" else "1234567890.1234"
    store(
        [
            {
                "sku": "000123",
                "name": "Widget",
                "description": 'Line one\nsays "hi"; loud',
                "category": "Tools",
                "unit": "pcs",
                "price": Decimal("12.5"),
                "quantity": 10,
                "barcode": "0012345678905",
            },
            {"sku": "Z-9", "name": "Bare", "price": Decimal(long_price)},
        ]
    )
    rows = csv_rows(export(client, "csv"))
    assert rows[1] == [
        "000123",
        "Widget",
        'Line one\nsays "hi"; loud',
        "Tools",
        "pcs",
        "12.5",
        "10",
        "0012345678905",
    ]
    assert rows[2] == ["Z-9", "Bare", "", "", "", long_price, "", ""]
    response = export(client, "xlsx")
    # A plain zip: no Zip64 marks, which some spreadsheet programs refuse where not needed.
    parts = zipfile.ZipFile(io.BytesIO(response.content)).infolist()
    assert {(p.extract_version, p.extra) for p in parts} == {(20, b"")}
    sheet = xlsx_rows(response)
    assert sheet[1] == [
        "000123",
        "Widget",
        'Line one\nsays "hi"; loud',
        "Tools",
        "pcs",
        12.5,
        10,
        "0012345678905",
    ]
    # 18 digits do not fit a spreadsheet's number: written as the exact text.
    assert sheet[2][5] == (long_price if database == "postgresql" else float(long_price))


def test_formula_like_text_is_guarded_in_the_csv_and_plain_text_in_the_xlsx(
    client: TestClient,
) -> None:
    names = ["=SUM(A1)", "+49 30", "-5% off", "@home", "'=quoted", "don't"]
    store([{"sku": f"F-{i}", "name": name} for i, name in enumerate(names)])
    store([{"sku": "=HYPERLINK(1)", "name": "Key"}])
    rows = csv_rows(export(client, "csv"))
    by_sku = {r[0]: r[1] for r in rows[1:]}
    assert by_sku == {
        "'=HYPERLINK(1)": "Key",
        "F-0": "'=SUM(A1)",
        "F-1": "'+49 30",
        "F-2": "'-5% off",
        "F-3": "'@home",
        "F-4": "''=quoted",
        "F-5": "don't",
    }
    response = export(client, "xlsx")
    book = openpyxl.load_workbook(io.BytesIO(response.content))
    cells = {row[0].value: row[1] for row in book.worksheets[0].iter_rows(min_row=2)}
    assert cells["F-0"].value == "=SUM(A1)" and cells["F-0"].data_type == "s"
    assert cells["=HYPERLINK(1)"].value == "Key"


def test_sku_prefix_is_a_case_sensitive_prefix_not_a_pattern(client: TestClient) -> None:
    skus = ["AB-1", "AB-2", "ab-3", "A_-4", "AX-5", "B-6", "AB%7"]
    store([{"sku": s, "name": s} for s in skus])
    assert [r[0] for r in csv_rows(export(client, sku_prefix="AB-"))[1:]] == ["AB-1", "AB-2"]
    assert [r[0] for r in csv_rows(export(client, sku_prefix="A_"))[1:]] == ["A_-4"]
    assert [r[0] for r in csv_rows(export(client, sku_prefix="AB%"))[1:]] == ["AB%7"]


def test_changed_since_keeps_the_items_written_at_or_after_that_time(client: TestClient) -> None:
    store([{"sku": "OLD-1", "name": "Old"}, {"sku": "KEEP-1", "name": "Kept"}])
    since = utcnow()
    store([{"sku": "NEW-1", "name": "New"}, {"sku": "OLD-1", "name": "Old, renamed"}])
    rows = csv_rows(export(client, changed_since=since.isoformat()))
    assert [r[:2] for r in rows[1:]] == [["NEW-1", "New"], ["OLD-1", "Old, renamed"]]
    # A time without a zone is UTC.
    naive = since.replace(tzinfo=None).isoformat()
    assert csv_rows(export(client, changed_since=naive)) == rows
    # Combined with a prefix: both hold.
    assert [r[0] for r in csv_rows(export(client, changed_since=naive, sku_prefix="N"))[1:]] == [
        "NEW-1"
    ]


def test_import_filter_exports_what_that_import_created_or_updated(client: TestClient) -> None:
    first = run_import(
        [[{"sku": "I-1", "name": "One"}, {"sku": "I-2", "name": "Two"}]], columns=NAMED
    )
    second = run_import(
        [
            [{"sku": "I-1", "name": "One"}, {"sku": "I-2", "name": "Two, renamed"}],
            [{"sku": "I-3", "name": "Three"}],
        ],
        columns=NAMED,
    )
    store([{"sku": "I-4", "name": "Not imported"}])
    rows = csv_rows(export(client, **{"import": str(second)}))
    # I-1 was unchanged by the second import; I-4 came from elsewhere.
    assert [r[:2] for r in rows[1:]] == [["I-2", "Two, renamed"], ["I-3", "Three"]]
    sheet = xlsx_rows(export(client, "xlsx", **{"import": str(first)}))
    # As the items are now: I-2 was renamed by the second import since.
    assert [r[:2] for r in sheet[1:]] == [["I-1", "One"], ["I-2", "Two, renamed"]]
    assert [
        r[0] for r in csv_rows(export(client, **{"import": str(second)}, sku_prefix="I-3"))[1:]
    ] == ["I-3"]


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_an_empty_result_is_a_file_with_the_header_alone(client: TestClient, fmt: str) -> None:
    store([{"sku": "E-1", "name": "One"}])
    response = export(client, fmt, sku_prefix="NOTHING")
    rows = csv_rows(response) if fmt == "csv" else xlsx_rows(response)
    assert rows == [LABELS]
    assert f'filename="items.{fmt}"' in response.headers["content-disposition"]


@pytest.mark.parametrize(
    ("params", "status", "says"),
    [
        ({"format": "ods"}, 422, "format"),
        ({"changed_since": "yesterday"}, 422, "changed_since"),
        # A bare number would be read as Unix seconds; the documented type is ISO 8601 text.
        ({"changed_since": "180"}, 422, "ISO 8601"),
        ({"changed_since": "1.5e9"}, 422, "changed_since"),
        ({"import": "42"}, 422, "import"),
        ({"sku_prefix": "A\x00"}, 422, "sku_prefix"),
        ({"sku_prefix": "A" * 65}, 422, "sku_prefix"),
        ({"import": str(uuid.UUID(int=7))}, 404, "no import job"),
    ],
)
def test_bad_parameters_are_refused_in_one_line(
    client: TestClient, params: dict[str, str], status: int, says: str
) -> None:
    response = client.get("/api/items/export", params=params)
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert says in detail and "\n" not in detail


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"dry_run": True}, "dry run"),
        ({"source": JobSource.UNDO}, "undo"),
        ({"undo_removed_at": utcnow()}, "IMPORTER_UNDO_DAYS"),
    ],
)
def test_an_import_whose_writes_are_not_known_is_refused_with_409(
    client: TestClient, fields: dict[str, Any], says: str
) -> None:
    job_id = add_job(status=JobStatus.COMPLETED, **fields)
    response = export(client, **{"import": str(job_id)})
    assert response.status_code == 409
    detail = response.json()["detail"]
    assert says in detail and "\n" not in detail


@pytest.fixture
def api_keys() -> str:
    return KEY


def test_template_and_export_need_a_key_when_keys_are_set(keyed: TestClient) -> None:
    store([{"sku": "K-1", "name": "Keyed"}])
    paths = ["/api/excel/template.xlsx", "/api/excel/template.csv", "/api/items/export"]
    for path in paths:
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            response = keyed.get(path, headers=headers)
            assert response.status_code == 401, path
            assert "API key" in response.json()["detail"]
        assert keyed.get(path, headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
    response = keyed.get(
        "/api/items/export", params={"format": "csv"}, headers={"Authorization": f"Bearer {KEY}"}
    )
    assert csv_rows(response)[1][:2] == ["K-1", "Keyed"]
