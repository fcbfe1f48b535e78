"""Property-based: random and mutated files always end with data or a one-line reason.

Random CSV text goes through the in-process reader (fast, many cases); mutated workbooks
(bytes flipped, cut, repeated, spliced) go through the parse child, as an upload's do,
so a crash of the native reader shows as what the user would get. Each case must end as
a summary or a `SheetError` whose reason is one line: never a traceback, never a child
that died without an answer. The budget is fixed and the runs derandomised, so CI runs
the same cases every time.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from itemsheet.sandbox.child import ChildLimits, prepare_in_child
from itemsheet.sheet.errors import SheetError
from itemsheet.sheet.formats import PackageLimits
from itemsheet.sheet.prepare import prepare
from tests.contract.workbooks import write_ods, write_xls, write_xlsx

PACKAGE = PackageLimits(
    max_uncompressed_bytes=64 * 2**20, max_compression_ratio=200, max_entries=200, max_cells=10**6
)
ROWS = [
    ["Price list"],
    ["SKU", "Name", "Price", "Quantity", "Barcode"],
    ["A-1", "Apple", 1.5, 10, "4006381333931"],
    ["B-2", "Pear", "n/a", -3, None],
    [12345, "Plum", 2, 1.5, "x"],
]


def assert_one_line_reason(reason: str) -> None:
    assert reason and "\n" not in reason and "Traceback" not in reason
    assert len(reason) <= 400


csv_cells = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
csv_rows = st.lists(st.lists(csv_cells, min_size=0, max_size=6), min_size=0, max_size=12)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    rows=csv_rows,
    delimiter=st.sampled_from([",", ";", "\t", "|"]),
    header=st.booleans(),
    ending=st.sampled_from(["\n", "\r\n", "\r"]),
)
def test_random_csv_ends_with_data_or_a_one_line_reason(
    rows: list[list[str]], delimiter: str, header: bool, ending: str
) -> None:
    lines = ([["SKU", "Name", "Price"]] if header else []) + rows
    text = ending.join(delimiter.join(cells) for cells in lines)
    try:
        _, summary = prepare(
            text.encode("utf-8"), filename="random.csv", sheet=None, limits=PACKAGE
        )
    except SheetError as exc:
        assert_one_line_reason(exc.reason)
    else:
        assert summary.total_rows >= 0 and summary.invalid_rows <= summary.total_rows


def _seeds(tmp: Path) -> dict[str, bytes]:
    return {
        name: writer(tmp / name, ROWS).read_bytes()  # type: ignore[operator]
        for name, writer in (
            ("seed.xlsx", write_xlsx),
            ("seed.xls", write_xls),
            ("seed.ods", write_ods),
        )
    }


@st.composite
def mutated(draw: st.DrawFn, seeds: dict[str, bytes]) -> tuple[str, bytes]:
    """A seed workbook with a few random edits, under its own or another extension."""
    name = draw(st.sampled_from(sorted(seeds)))
    data = bytearray(seeds[name])
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "cut", "repeat", "splice", "zero"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[at] ^= draw(st.integers(1, 255))
        elif kind == "cut":
            del data[at:]
        elif kind == "repeat":
            size = draw(st.integers(1, 512))
            data[at:at] = data[at : at + size] * draw(st.integers(2, 8))
        elif kind == "splice":
            data[at:at] = draw(st.binary(min_size=1, max_size=64))
        else:
            data[at : at + 64] = bytes(min(64, len(data) - at))
    suffix = draw(st.sampled_from([Path(name).suffix, ".xlsx", ".csv", ""]))
    return f"mutated{suffix}", bytes(data)


@pytest.mark.subprocess
def test_mutated_workbooks_end_with_data_or_a_one_line_reason_and_a_live_parent(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    tmp = tmp_path_factory.mktemp("seeds")
    seeds = _seeds(tmp)
    limits = ChildLimits(timeout_s=60, memory_bytes=1024 * 2**20)

    @settings(
        max_examples=40,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(case=mutated(seeds))
    def one(case: tuple[str, bytes]) -> None:
        name, data = case
        source = tmp / "case.bin"
        source.write_bytes(data)
        try:
            summary = prepare_in_child(
                source,
                tmp / "case.arrow",
                filename=name,
                sheet=None,
                package=PACKAGE,
                limits=limits,
            )
        except SheetError as exc:
            assert_one_line_reason(exc.reason)
        else:
            assert summary.total_rows >= 0

    one()


def test_the_seeds_themselves_read(tmp_path: Path) -> None:
    for name, data in _seeds(tmp_path).items():
        _, summary = prepare(io.BytesIO(data).read(), filename=name, sheet=None, limits=PACKAGE)
        assert summary.total_rows == 3, name
