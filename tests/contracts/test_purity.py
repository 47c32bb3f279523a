"""contracts/ stays pure (style.md): it imports only the standard library, jsonschema_rs and
itself, so the gateway, connectors and keys can depend on it and never the other way round."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "contracts"
ALLOWED = set(sys.stdlib_module_names) | {"jsonschema_rs", "contracts", "__future__"}


def imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("path", sorted(PACKAGE.glob("*.py")), ids=lambda p: p.name)
def test_module_imports_only_the_stdlib_and_jsonschema_rs(path: Path) -> None:
    assert imported_roots(path) <= ALLOWED


@pytest.mark.parametrize("path", sorted(PACKAGE.glob("*.py")), ids=lambda p: p.name)
def test_module_opens_with_a_short_docstring(path: Path) -> None:
    # The opening paragraph is the summary; errors.py follows it with its exception tree.
    docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
    assert docstring
    assert len(docstring.split("\n\n")[0].splitlines()) <= 3
