"""keys/ stays pure (style.md): it imports only the standard library, cryptography, PyNaCl and
itself, never gateway, connectors or contracts, so anyone can verify the log with it alone."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "keys"
ALLOWED = set(sys.stdlib_module_names) | {"cryptography", "nacl", "keys", "__future__"}


def imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            roots.add("relative import")  # the package imports itself by absolute name
    return roots


@pytest.mark.parametrize("path", sorted(PACKAGE.glob("*.py")), ids=lambda p: p.name)
def test_module_imports_only_the_stdlib_cryptography_and_nacl(path: Path) -> None:
    assert imported_roots(path) <= ALLOWED


@pytest.mark.parametrize("path", sorted(PACKAGE.glob("*.py")), ids=lambda p: p.name)
def test_module_opens_with_a_short_docstring(path: Path) -> None:
    # The opening paragraph is the summary; jws.py follows it with its exception tree.
    docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
    assert docstring
    assert len(docstring.split("\n\n")[0].splitlines()) <= 3
