"""Requests generated from the app's own OpenAPI schema: no 5xx, every answer as documented.

Schemathesis calls the real app in-process (ASGI) on a fresh database, with only the Prefect
trigger faked. Both valid requests (they must be accepted or refused as documented) and
invalid ones (they must be refused with a 4xx) are generated; examples are bounded per
operation so a run stays well under a minute.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import APIOperation, Case, GenerationMode
from schemathesis.checks import CheckFunction
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

EXAMPLES_PER_OPERATION = 20
# Checks that cannot judge an operation, per generation mode. Where a schema cannot say what
# a valid value is, a schema-valid request is rightly refused with a documented 4xx, which
# `positive_data_acceptance` (valid data gets a 2xx) would flag: an upload whose file is
# random bytes (415: not a spreadsheet), and a history cursor this service did not hand out
# (422: the cursor is opaque). And in a multipart form every field is text, so "the file
# became a number" or "the sheet became a boolean" is the same request as a valid one, which
# `negative_data_rejection` would flag. Every other check still runs on every operation.
UPLOAD, HISTORY = ("POST", "/api/excel/import"), ("GET", "/api/excel/imports")
NOT_APPLICABLE: dict[tuple[GenerationMode, str, str], list[CheckFunction]] = {
    (GenerationMode.POSITIVE, *UPLOAD): [positive_data_acceptance],
    (GenerationMode.POSITIVE, *HISTORY): [positive_data_acceptance],
    (GenerationMode.NEGATIVE, *UPLOAD): [negative_data_rejection],
}


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest) -> str:
    """Both backends: PostgreSQL refuses some text SQLite takes (NUL, say)."""
    return str(request.param)


def fuzz(operation: APIOperation, mode: GenerationMode) -> None:
    """Send `EXAMPLES_PER_OPERATION` generated requests; every check must pass on each answer."""
    excluded = NOT_APPLICABLE.get((mode, operation.method.upper(), operation.path), [])

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def call(case: Case) -> None:
        case.call_and_validate(excluded_checks=excluded)

    try:
        call()
    except Unsatisfiable:
        # Nothing to make invalid (health takes no input): only positive cases apply there.
        assert mode is GenerationMode.NEGATIVE and not operation.path_parameters


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_generated_requests_get_documented_answers_and_never_a_server_error(
    app: FastAPI, mode: GenerationMode
) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 8
    for operation in operations:
        fuzz(operation, mode)


@pytest.mark.parametrize("sheet", ["a\x00b", "tab\there", "\x7f"])
def test_a_sheet_name_with_control_characters_is_refused_not_a_server_error(
    client: TestClient, workbook: Path, sheet: str
) -> None:
    # Found on PostgreSQL, whose text cannot hold NUL: the job insert failed with a 500.
    with workbook.open("rb") as f:
        response = client.post("/api/excel/import", files={"file": f}, data={"sheet": sheet})
    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith("sheet is not valid")
