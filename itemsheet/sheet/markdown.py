"""Text from a file or a person, shown as itself where Prefect renders Markdown.

The Prefect UI renders markdown artifacts, each text cell of a table artifact, artifact
descriptions and a resume form's description as Markdown, HTML included. There a file
named `[x](javascript:alert(1)).xlsx` became a link, a header `<img src=x>` an image and a
`|` in a cell a column break. Every such value goes through `md_text` where the Markdown
is built; the Markdown the service writes itself (bold, lists, its own links) does not.
"""

from __future__ import annotations

import string

# CommonMark (and GitHub's tables) show any ASCII punctuation mark after a backslash as
# itself: escaping them all leaves nothing for a link, emphasis, HTML, entity or table.
_ESCAPED = str.maketrans({mark: "\\" + mark for mark in string.punctuation})


def md_text(text: object) -> str:
    """`text` for Markdown, shown as it is: on one line, its punctuation escaped."""
    return " ".join(str(text).split()).translate(_ESCAPED)
