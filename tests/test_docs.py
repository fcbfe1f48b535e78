"""The README stays a first screen, and every relative link in the docs leads somewhere."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def prose(text: str) -> str:
    """`text` without fenced code blocks and inline code, where a link is only an example."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    return re.sub(r"`[^`\n]*`", "", text)


def anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces as dashes."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", path.read_text(encoding="utf-8"), flags=re.S | re.M)
    return {anchor(m.group(1)) for m in re.finditer(r"^#+ (.+)$", text, flags=re.M)}


def broken_links(path: Path) -> list[str]:
    """The relative links of `path` whose file, or heading, does not exist."""
    broken = []
    for target in LINK.findall(prose(path.read_text(encoding="utf-8"))):
        if re.match(r"[a-z]+:", target):  # https:, mailto: ...
            continue
        file, _, fragment = target.partition("#")
        linked = (path.parent / file).resolve() if file else path
        if not linked.exists():
            broken.append(f"{target} (no file {file})")
        elif fragment and fragment not in anchors(linked):
            broken.append(f"{target} (no heading #{fragment} in {linked.name})")
    return broken


def test_the_readme_is_under_150_lines() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").count("\n")
    assert lines < 150, f"README.md has {lines} lines; move detail to docs/ and link it"


def test_every_relative_link_in_the_docs_leads_to_a_file_and_heading() -> None:
    broken = {p.relative_to(ROOT).as_posix(): broken_links(p) for p in DOCS}

    assert {p: b for p, b in broken.items() if b} == {}


def test_every_docs_page_is_linked_from_the_readme() -> None:
    readme = prose((ROOT / "README.md").read_text(encoding="utf-8"))
    linked = {(ROOT / t.partition("#")[0]).resolve() for t in LINK.findall(readme)}

    assert [p.name for p in DOCS[1:] if p.resolve() not in linked] == []


def test_a_missing_heading_is_found(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n\n## Two words\n\nSee [two](#two-words), [none](#nowhere),"
        " [gone](gone.md) and `[code](skipped.md)`.\n"
    )

    assert broken_links(page) == [
        "#nowhere (no heading #nowhere in page.md)",
        "gone.md (no file gone.md)",
    ]
