"""The README and the docs link only inside the repository, to files that exist: a clone has
no `../shared/`, and a newcomer follows every link."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "client/README.md"]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def links(document: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", document.read_text(), flags=re.DOTALL)  # code is no link
    return LINK.findall(text)


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_points_to_a_file_inside_the_repository(document: Path) -> None:
    found = links(document)
    assert found or document.name != "README.md" or document.parent != ROOT
    for link in found:
        assert not re.match(r"[a-z][a-z0-9+.-]*:", link), f"{link}: leaves the repository"
        target = (document.parent / link.split("#")[0]).resolve() if link[0] != "#" else document
        assert target.is_relative_to(ROOT), f"{link}: outside the repository"
        assert target.exists(), f"{link}: no such file"
