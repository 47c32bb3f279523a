"""Dump the gateway's public surface: every route (method and path), every OpenAPI operation
id with its response codes, and the text of `gateway --help` and of every subcommand's
`--help`. Run it before and after a change and diff the outputs (issue 19 "Demonstrate":
nothing moves unless a response model was added).

    python bench/surface.py OUT_DIR
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer
from typer.testing import CliRunner

from gateway.app import create_app
from gateway.cli import app as cli_app
from gateway.settings import Settings


def routes(out: Path) -> None:
    app = create_app(Settings(data_dir=out / "data"))
    lines = sorted(
        f"{method} {path}{'' if shown else ' (undocumented)'}"
        for path, methods, shown in _flatten(app.routes)
        for method in sorted(methods or ["MOUNT"])
    )
    (out / "routes.txt").write_text("\n".join(lines) + "\n")
    document = app.openapi()
    ops = sorted(
        f"{op['operationId']} {method.upper()} {path} -> {' '.join(sorted(op['responses']))}"
        for path, item in document["paths"].items()
        for method, op in item.items()
    )
    (out / "operations.txt").write_text("\n".join(ops) + "\n")
    (out / "openapi.json").write_text(json.dumps(document, indent=1, sort_keys=True))


def _flatten(routes: list[Any]) -> Iterator[tuple[str, set[str], bool]]:
    """(path, methods, in the document) of every route, through FastAPI's included routers
    (FastAPI 0.16x keeps an included router as one entry of `app.routes`)."""
    for route in routes:
        if hasattr(route, "effective_candidates"):
            for candidate in route.effective_candidates():
                if hasattr(candidate, "effective_candidates"):
                    yield from _flatten([candidate])
                else:
                    original = candidate.original_route
                    yield (
                        candidate.path,
                        getattr(original, "methods", None) or set(),
                        candidate.include_in_schema,
                    )
        else:
            yield (
                route.path,
                getattr(route, "methods", None) or set(),
                getattr(route, "include_in_schema", True),
            )


def helps(out: Path) -> None:
    runner = CliRunner()
    root = typer.main.get_command(cli_app)
    texts: list[str] = []

    def walk(command: Any, words: list[str]) -> None:
        result = runner.invoke(cli_app, [*words, "--help"], env={"COLUMNS": "100"})
        texts.append(f"$ gateway {' '.join([*words, '--help'])}\n{result.output}")
        # typer >= 0.2x ships its own click: a group is whatever has subcommands
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            walk(sub, [*words, name])

    walk(root, [])
    (out / "help.txt").write_text("\n".join(texts))


if __name__ == "__main__":
    target = Path(sys.argv[1])
    target.mkdir(parents=True, exist_ok=True)
    routes(target)
    helps(target)
