"""Imports flow one way (style.md): gateway → connectors → contracts, keys; contracts and keys
import nothing of the project but themselves, and connectors nothing of the gateway. A short
AST walk over every module, so the direction cannot drift."""

from __future__ import annotations

import ast
import graphlib
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROJECT = ("gateway", "connectors", "contracts", "keys")
# Which project packages each package may import (itself included).
ALLOWED = {
    "gateway": {"gateway", "connectors", "contracts", "keys"},
    "connectors": {"connectors", "contracts", "keys"},
    "contracts": {"contracts"},
    "keys": {"keys"},
}


def imported(path: Path) -> set[str]:
    """The project packages a module imports, at any depth of the module (lazy imports too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found & set(PROJECT)


MODULES = [p for package in PROJECT for p in sorted((ROOT / package).rglob("*.py"))]


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_a_module_imports_only_what_its_package_may(path: Path) -> None:
    package = path.relative_to(ROOT).parts[0]
    assert imported(path) <= ALLOWED[package], (
        f"{path.relative_to(ROOT)} imports {sorted(imported(path) - ALLOWED[package])}"
    )


def test_the_walk_sees_every_package() -> None:
    packages = {p.relative_to(ROOT).parts[0] for p in MODULES}
    assert packages == set(PROJECT)
    assert len(MODULES) > 100


def third_party(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found - set(PROJECT) - set(sys.stdlib_module_names) - {"__future__"}


@pytest.mark.parametrize("path", sorted((ROOT / "connectors").glob("*.py")), ids=lambda p: p.name)
def test_connectors_are_pure_renderers(path: Path) -> None:
    """No web framework, no database: facts in, document out (the gateway gathers facts)."""
    assert third_party(path) <= {"jsonschema_rs"}


def feature_edges() -> dict[str, set[str]]:
    """gateway's feature packages and the ones each imports (app.py and the CLI, which put
    the features together, and the root's cross-cutting modules are not features)."""
    root = ROOT / "gateway"
    features = {p.name for p in root.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    features -= {"cli", "demo", "migrations"}
    edges: dict[str, set[str]] = {name: set() for name in features}
    for name in features:
        for path in (root / name).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                modules = []
                if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    modules = [node.module]
                elif isinstance(node, ast.Import):
                    modules = [alias.name for alias in node.names]
                for module in modules:
                    parts = module.split(".")
                    inside = parts[0] == "gateway" and len(parts) > 1
                    if inside and parts[1] in features and parts[1] != name:
                        edges[name].add(parts[1])
    return edges


def test_no_two_feature_packages_import_each_other() -> None:
    """Scopes are granted by the registry (gateway.registry.scopes), which reads what access
    defines; access imports neither the registry nor the queries."""
    edges = feature_edges()
    cycles = {frozenset({a, b}) for a in edges for b in edges[a] if a in edges[b]}
    assert not cycles, sorted(map(sorted, cycles))
    assert {"ledger", "measures", "queries", "supervision", "publishing"} <= set(edges)


def test_the_feature_packages_form_no_cycle_of_any_length() -> None:
    """Not only pairs: a → b → c → a would tie three packages together just as well."""
    edges = feature_edges()
    try:
        order = list(graphlib.TopologicalSorter(edges).static_order())
    except graphlib.CycleError as exc:
        raise AssertionError(f"a cycle between feature packages: {exc.args[1]}") from None
    assert set(edges) <= set(order)


# The root's modules below the features: what every feature may use, importing none of them.
# app.py puts the features together; runtime.py holds each process's resources, some of them
# a feature's own kind (access's rate limiter and refusal budgets, publishing's key cache).
ROOT_ABOVE = {"app.py": "puts every feature together", "runtime.py": "per-process resources"}


@pytest.mark.parametrize("path", sorted((ROOT / "gateway").glob("*.py")), ids=lambda p: p.name)
def test_the_roots_cross_cutting_modules_import_no_feature(path: Path) -> None:
    features = set(feature_edges())
    inside = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            parts = node.module.split(".")
            if parts[0] == "gateway" and len(parts) > 1:
                inside.add(parts[1])
    if path.name in ROOT_ABOVE:
        return
    assert not inside & features, f"gateway/{path.name} imports {sorted(inside & features)}"
