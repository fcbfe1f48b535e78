"""Options several commands share, apart from the modules that act on them: `cli.main`
builds every command from these without importing the import logic."""

from __future__ import annotations

from typing import Annotated

import typer

MapOption = Annotated[
    list[str] | None,
    typer.Option(
        "--map",
        help='A column mapping, "Header=field" (repeatable); "Header=" ignores the column.',
    ),
]


EncodingOption = Annotated[
    str | None,
    typer.Option(
        "--encoding",
        help="A text file's encoding (windows-1252, utf-16, shift_jis, ...); default: detected.",
    ),
]
DelimiterOption = Annotated[
    str | None,
    typer.Option("--delimiter", help="A text file's delimiter: , ; tab or |; default: detected."),
]
DecimalOption = Annotated[
    str | None,
    typer.Option(
        "--decimal",
        help="The decimal mark of numbers written as text, . or ,; default: the file's values"
        " decide.",
    ),
]
