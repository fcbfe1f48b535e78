"""Options the `importer` command refuses before anything runs, in one sentence."""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner

from cli.main import app
from tests.contract.workbooks import write_xlsx


def test_a_map_option_naming_a_header_over_255_characters_is_a_usage_error(
    importer_env: Path, tmp_path: Path
) -> None:
    book = write_xlsx(tmp_path / "x.xlsx", [["SKU", "Name"], ["A-1", "Apple"]])

    result = CliRunner().invoke(app, ["import", str(book), "--map", "x" * 300 + "=sku"])

    assert result.exit_code == 2
    said = re.sub(r"[│╭╮╰╯─\s]+", " ", result.output)
    assert "the mapping names a header of 300 characters" in said
