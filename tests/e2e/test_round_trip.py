"""Round trip on the running service: import a file, export the items over HTTP, upload
the export, and every row comes back unchanged."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from devtools.stack import RunningStack, wait_for
from tests.contract.workbooks import write_csv

pytestmark = pytest.mark.stack

FINISH_S = 180
PREFIX = "ERT-"


def upload(client: httpx.Client, path: Path) -> dict[str, Any]:
    """Upload `path` without review and wait for its job to end."""
    with path.open("rb") as f:
        response = client.post("/api/excel/import", files={"file": (path.name, f)})
    assert response.status_code == 202, response.text
    return wait_for(client, response.json()["job_id"], {"completed", "failed"}, FINISH_S)


def test_an_export_downloaded_over_http_re_imports_with_every_row_unchanged(
    shared_stack: RunningStack, tmp_path: Path
) -> None:
    rows: list[list[Any]] = [["SKU", "Name", "Description", "Price", "Qty", "EAN"]]
    rows += [
        [
            f"{PREFIX}{i:04d}",
            f"Item {i}",
            f'Line {i}; "quoted"',
            f"{1.25 + i:.2f}",
            i,
            f"00{i:011d}",
        ]
        for i in range(250)
    ]
    rows.append([f"{PREFIX}=X", "=SUM(A1)", "-5% off", "0.1", 0, ""])
    with httpx.Client(base_url=shared_stack.api, timeout=60) as client:
        first = upload(client, write_csv(tmp_path / "round-trip.csv", rows))
        assert (first["status"], first["created"], first["failed"]) == ("completed", 251, 0)

        for fmt, params in (
            ("csv", {"sku_prefix": PREFIX}),
            ("xlsx", {"import": first["job_id"]}),
        ):
            response = client.get("/api/items/export", params={"format": fmt, **params})
            assert response.status_code == 200, response.text
            exported = tmp_path / f"export.{fmt}"
            exported.write_bytes(response.content)
            again = upload(client, exported)
            counts = {k: again[k] for k in ("status", "total_rows", "unchanged", "created")}
            assert counts == {
                "status": "completed",
                "total_rows": 251,
                "unchanged": 251,
                "created": 0,
            }, (fmt, again)
            assert (again["updated"], again["failed"]) == (0, 0), (fmt, again)


def test_a_suppliers_price_list_in_update_only_changes_the_shops_items_and_creates_none(
    shared_stack: RunningStack, tmp_path: Path
) -> None:
    shop = "ESU-"
    stocked: list[list[Any]] = [["SKU", "Name", "Price", "Qty"]]
    stocked += [[f"{shop}{i:03d}", f"Item {i}", "10.00", 5] for i in range(20)]
    # The supplier lists every second of the shop's items with a new price, and 30 the
    # shop does not keep (without a name: they could not even be created).
    supplier: list[list[Any]] = [["SKU", "Price"]]
    supplier += [[f"{shop}{i:03d}", "12.50"] for i in range(0, 20, 2)]
    supplier += [[f"{shop}{i:03d}", "99.00"] for i in range(100, 130)]
    with httpx.Client(base_url=shared_stack.api, timeout=60) as client:
        first = upload(client, write_csv(tmp_path / "shop.csv", stocked))
        assert (first["status"], first["created"]) == ("completed", 20)
        path = write_csv(tmp_path / "supplier.csv", supplier)
        with path.open("rb") as f:
            response = client.post(
                "/api/excel/import", files={"file": (path.name, f)}, data={"mode": "update_only"}
            )
        assert response.status_code == 202, response.text
        job = wait_for(client, response.json()["job_id"], {"completed", "failed"}, FINISH_S)
        counts = ("status", "mode", "total_rows", "created", "updated", "skipped", "failed")
        assert {k: job[k] for k in counts} == {
            "status": "completed",
            "mode": "update_only",
            "total_rows": 40,
            "created": 0,
            "updated": 10,
            "skipped": 30,
            "failed": 0,
        }, job
        # Each row left alone says why, and none of them is an item now.
        errors = client.get(f"/api/excel/import/{job['job_id']}/errors").json()
        messages = [e["message"] for e in errors["items"]]
        assert len(messages) == 30, errors
        assert all("does not exist and the mode is update_only" in m for m in messages), messages
        exported = client.get("/api/items/export", params={"format": "csv", "sku_prefix": shop})
        lines = exported.text.strip().splitlines()
        assert len(lines) == 1 + 20, lines[:3]
        assert sum('"12.5"' in line for line in lines) == 10, lines[:5]
