"""A person's reading choices: kept with a saved mapping, and used for the next file of
the same layout where its own import made none."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from db.models import ImportJob, JobSource, JobStatus
from db.session import session_scope
from itemsheet.jobs.mappings import mapping_choice, save_mapping
from itemsheet.sheet.errors import MappingNeeded
from itemsheet.sheet.formats import PackageLimits
from itemsheet.sheet.header import MappingChoice, SavedMapping, header_key
from itemsheet.sheet.prepare import prepare
from itemsheet.sheet.reader import TextOptions

PACKAGE = PackageLimits(2**30, 1000, 1000, 10**6)
HEADERS = ["SKU", "Bezeichnung", "Preis"]
MAPPING: dict[str, str | None] = {"sku": "sku", "bezeichnung": "name", "preis": "price"}


def test_a_completed_import_saves_its_reading_choices_with_its_mapping(importer_env: Path) -> None:
    with session_scope() as session:
        job = ImportJob(
            status=JobStatus.COMPLETED,
            source=JobSource.UPLOAD,
            filename="artikel.csv",
            file_sha256="0" * 64,
            file_size=1,
            file_uri="x",
            batch_size=10,
            mapping={"bezeichnung": "name", "preis": "price"},
            header_map={"key": "k1", "source": "explicit", "mapping": MAPPING, "headers": HEADERS},
            encoding="cp1252",
            decimal=",",
        )
        session.add(job)
        session.flush()
        saved = save_mapping(session, job)
        assert saved is not None
        assert saved.reading == {"encoding": "cp1252", "decimal": ","}
        choice = mapping_choice(session, job)
    assert choice.saved["k1"].decimal == ","
    assert choice.saved["k1"].encoding == "cp1252"
    assert choice.saved["k1"].delimiter is None


def test_reading_choices_alone_are_saved_too(importer_env: Path) -> None:
    with session_scope() as session:
        job = ImportJob(
            status=JobStatus.COMPLETED,
            source=JobSource.UPLOAD,
            filename="prices.csv",
            file_sha256="1" * 64,
            file_size=1,
            file_uri="x",
            batch_size=10,
            header_map={"key": "k2", "source": "aliases", "mapping": MAPPING, "headers": HEADERS},
            decimal=",",
        )
        session.add(job)
        session.flush()
        saved = save_mapping(session, job)
        assert saved is not None and saved.reading == {"decimal": ","}


def saved_choice(**reading: str) -> MappingChoice:
    key = header_key(HEADERS)
    saved = SavedMapping(columns=MAPPING, saved_by="test", saved_at="2026-12-03", **reading)
    return MappingChoice(saved={key: saved})


def test_a_file_of_a_saved_layout_is_read_with_its_saved_choices() -> None:
    # Only ambiguous values: alone, the file would be read with '.'.
    data = "SKU;Bezeichnung;Preis\r\nA-1;Größe;1.000\r\nA-2;Mutter;2.500\r\n".encode("cp1252")
    validated, summary = prepare(
        data, filename="a.csv", sheet=None, limits=PACKAGE, choice=saved_choice(decimal=",")
    )
    assert validated.frame.get_column("price").to_list() == [Decimal(1000), Decimal(2500)]
    assert summary.reading["decimal"]["how"] == "saved with the mapping"


def test_a_text_file_read_otherwise_is_read_again_with_the_saved_encoding() -> None:
    # Detection reads these bytes as Windows-1252; the person said the layout's files are
    # Windows-1250, and that is how they are read.
    name = "Crème brûlée à la carte"
    data = f"SKU;Bezeichnung;Preis\r\nA-1;{name};1,5\r\n".encode("cp1252")
    validated, summary = prepare(
        data,
        filename="a.csv",
        sheet=None,
        limits=PACKAGE,
        choice=saved_choice(encoding="cp1250"),
    )
    assert validated.frame.get_column("name").to_list() == [name.encode("cp1252").decode("cp1250")]
    assert summary.reading["encoding"]["how"] == "saved with the mapping"


def test_a_choice_of_this_import_wins_over_the_saved_one() -> None:
    data = b"SKU;Bezeichnung;Preis\r\nA-1;x;1.000\r\n"
    validated, summary = prepare(
        data,
        filename="a.csv",
        sheet=None,
        limits=PACKAGE,
        choice=saved_choice(decimal=","),
        options=TextOptions(decimal="."),
    )
    assert validated.frame.get_column("price").to_list() == [Decimal(1)]
    assert summary.reading["decimal"]["how"] == "given"


def test_a_sheet_without_an_sku_column_still_says_how_it_was_read() -> None:
    # Read at ',' the header has no SKU cell: the review shows the reading with the columns,
    # since a wrong delimiter or encoding is the likely cause.
    data = "Artikelnummer;Größe\r\nA-1;M6\r\n".encode("cp1252")
    with pytest.raises(MappingNeeded) as raised:
        prepare(data, filename="a.csv", sheet=None, limits=PACKAGE)
    reading = raised.value.reading
    assert reading is not None
    assert reading["encoding"]["label"] == "Windows-1252"
    assert reading["delimiter"]["value"] == ";"
