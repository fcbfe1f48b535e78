"""The page's sets of statuses are the server's: `static/js/statuses.js` is written from
`JobStatus` and must be current."""

from __future__ import annotations

import json
import re

from fastapi.testclient import TestClient

from api.statuses import MODULE, SETS, statuses_module
from db.enums import JobStatus


def test_the_pages_statuses_module_is_current() -> None:
    assert MODULE.read_text() == statuses_module(), (
        "api/static/js/statuses.js is stale: run `uv run python -m api.statuses`"
    )


def test_each_set_in_the_module_is_the_enums() -> None:
    found = dict(re.findall(r"export const (\w+) = new Set\((\[.*?\])\);", MODULE.read_text()))
    assert set(found) == set(SETS)
    assert {name: set(json.loads(values)) for name, values in found.items()} == {
        name: {s.value for s in members()} for name, members in SETS.items()
    }


def test_no_other_script_of_the_page_writes_out_a_set_of_statuses() -> None:
    scripts = [p for p in MODULE.parent.glob("*.js") if p != MODULE]
    assert scripts
    # Two statuses quoted side by side in a list is a set written out again.
    names = "|".join(s.value for s in JobStatus)
    again = re.compile(rf'"({names})",\s*"({names})"')
    assert [p.name for p in scripts if again.search(p.read_text())] == []


def test_the_page_is_served_the_module(client: TestClient) -> None:
    answer = client.get("/static/js/statuses.js")
    assert answer.status_code == 200
    assert answer.text == statuses_module()
