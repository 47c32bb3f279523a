"""The OpenAPI document is one that generators can use (issue 22 §5): it validates as
OpenAPI 3.1, every JSON answer names its schema (no bare objects), the problem answers are
documented, `purpose` is required where the gateway refuses a query without one, and every
call the client library makes exists in it with that method.

The client's calls are read from its source (an AST walk over client/credit_gateway_client),
so a call added there without a route here fails this test.
"""

from __future__ import annotations

import ast
import re
import tempfile
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from openapi_spec_validator import validate
from pydantic import BaseModel

from gateway.app import create_app
from gateway.settings import Settings

CLIENT = Path(__file__).resolve().parents[2] / "client" / "credit_gateway_client"
METHODS = ("get", "put", "post", "delete", "patch")
# The answers that are not JSON: CSV, C2SP signed notes, Prometheus text, snapshot files.
NOT_JSON = {
    ("get", "/v1/ledgers/{ledger}/export.csv"),
    ("get", "/v1/log/checkpoint"),
    ("get", "/v1/log/vkey"),
    ("get", "/metrics"),
    ("get", "/v1/connectors/market_regulator/snapshots/{name}"),
}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    """/openapi.json as the gateway serves it (no lifespan: the document needs no database)."""
    with tempfile.TemporaryDirectory() as data_dir:
        app = create_app(Settings(data_dir=Path(data_dir), database_url="sqlite://"))
        response = TestClient(app).get("/openapi.json")
    assert response.status_code == 200
    served: dict[str, Any] = response.json()
    return served


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield method, path, operation


def test_the_document_is_valid_openapi(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.1")
    validate(document)  # raises OpenAPIValidationError naming the first fault


def test_every_json_answer_names_its_schema(document: dict[str, Any]) -> None:
    bare = []
    for method, path, operation in operations(document):
        if (method, path) in NOT_JSON:
            continue
        successes = {k: v for k, v in operation["responses"].items() if k.startswith("2")}
        assert successes, f"{method.upper()} {path} documents no success"
        for status, response in successes.items():
            schema = response.get("content", {}).get("application/json", {}).get("schema", {})
            if "$ref" not in schema:
                bare.append(f"{method.upper()} {path} {status}: {schema}")
    assert bare == []


def test_every_operation_documents_its_problems(document: dict[str, Any]) -> None:
    for method, path, operation in operations(document):
        problems = operation["responses"].get("4XX", {}).get("content", {})
        assert "application/problem+json" in problems, f"{method.upper()} {path}"
    assert "HTTPValidationError" not in document["components"]["schemas"]


def _optional_members(model: Any, seen: set[type]) -> list[str]:
    """The members of `model` (and the models inside it) that an answer may leave out."""
    found = []
    for arg in typing.get_args(model):
        found += _optional_members(arg, seen)
    if isinstance(model, type) and issubclass(model, BaseModel) and model not in seen:
        seen.add(model)
        for name, member in model.model_fields.items():
            if not member.is_required():
                found.append(f"{model.__name__}.{name}")
            found += _optional_members(member.annotation, seen)
    return found


def test_an_answer_leaves_out_what_it_does_not_have(tmp_path: Path) -> None:
    """A model with members that an answer may lack is served with `exclude_unset`: the
    member stays absent, as before the models, instead of appearing as null. (The standing
    query and the batch publish send their own bytes: their models only document them.)"""
    app = create_app(Settings(data_dir=tmp_path, database_url="sqlite://"))
    own_bytes = {("GET", "/v1/enterprises/{code}"), ("POST", "/v1/messages/batch")}
    wrong = [
        f"{method} {route.path}: {members[:3]}"
        for route in _routes(app.routes)
        for method in sorted(getattr(getattr(route, "original_route", route), "methods", ()))
        if (members := _optional_members(getattr(route, "response_model", None), set()))
        and not getattr(route, "response_model_exclude_unset", False)
        and (method, route.path) not in own_bytes
    ]
    assert wrong == []


def _routes(routes: list[Any]) -> Iterator[Any]:
    """Every route of the app, through FastAPI's included routers."""
    for route in routes:
        if hasattr(route, "effective_candidates"):
            for candidate in route.effective_candidates():
                if hasattr(candidate, "effective_candidates"):
                    yield from _routes([candidate])
                else:
                    yield candidate
        else:
            yield route


def test_every_operation_has_a_unique_id(document: dict[str, Any]) -> None:
    ids = [operation["operationId"] for _, _, operation in operations(document)]
    assert len(ids) == len(set(ids))


def test_purpose_is_required_where_a_query_needs_one(document: dict[str, Any]) -> None:
    for path in (
        "/v1/enterprises/{code}",
        "/v1/enterprises/{code}/grade-history",
        "/v1/enterprises/{code}/access-records",
        "/v1/enterprises/{code}/measures",
    ):
        parameters = document["paths"][path]["get"]["parameters"]
        purpose = [p for p in parameters if p["name"] == "purpose"]
        assert [p["required"] for p in purpose] == [True], path
    assert "purpose" in document["components"]["schemas"]["BatchQuery"]["required"]


def test_the_bearer_scheme_guards_every_private_operation(document: dict[str, Any]) -> None:
    scheme = document["components"]["securitySchemes"]["bearer"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    assert document["paths"]["/v1/subscriptions"]["get"]["security"] == [{"bearer": []}]
    assert "security" not in document["paths"]["/v1/oauth/token"]["post"]


def _template(node: ast.expr, names: dict[str, ast.expr]) -> str | None:
    """A path expression of the client's source as a template: `{}` for what it fills in."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        parts = []
        for value in node.values:
            if isinstance(value, ast.Constant):
                parts.append(str(value.value))
            elif isinstance(value, ast.FormattedValue):
                inner = value.value  # a local path variable, or what fills a parameter
                known = isinstance(inner, ast.Name) and inner.id in names
                named = _template(names[inner.id], names) if known else None  # type: ignore[union-attr]
                parts.append("{}" if named is None else named)
        return "".join(parts)
    if isinstance(node, ast.Name) and node.id in names:
        return _template(names[node.id], names)
    return None


def client_calls() -> set[tuple[str, str]]:
    """(method, path template) of every HTTP call in the client library's source."""
    found: set[tuple[str, str]] = set()
    for module in sorted(CLIENT.glob("*.py")):
        tree = ast.parse(module.read_text(), str(module))
        # module- and class-level functions only: a nested one is walked with its outer
        # function, whose local names (a path built once, used by closures) it reads
        tops = [
            n for c in ast.walk(tree) if isinstance(c, ast.Module | ast.ClassDef) for n in c.body
        ]
        for function in tops:
            if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            names = {
                target.id: node.value
                for node in ast.walk(function)
                if isinstance(node, ast.Assign)
                for target in node.targets
                if isinstance(target, ast.Name)
            }
            for call in ast.walk(function):
                if not isinstance(call, ast.Call) or not isinstance(call.func, ast.Attribute):
                    continue
                if call.func.attr == "_get_json" and call.args:
                    path = _template(call.args[0], names)
                    assert path is not None, f"{module.name}:{call.lineno}: a path I cannot read"
                    found.add(("get", path))
                elif call.func.attr == "request" and len(call.args) >= 2:
                    method, target = call.args[0], call.args[1]
                    if not isinstance(method, ast.Constant):
                        continue  # the transport's own pass-through
                    if isinstance(target, ast.Call) and getattr(target.func, "attr", "") == "_url":
                        if isinstance(target.args[0], ast.Name) and target.args[0].id not in names:
                            continue  # `_get_json`'s own pass-through of its caller's path
                        path = _template(target.args[0], names)
                    elif getattr(target, "attr", "") == "_token_url":
                        path = "/v1/oauth/token"  # Client's default token_url
                    else:
                        continue
                    assert path is not None, f"{module.name}:{call.lineno}: a path I cannot read"
                    found.add((str(method.value).lower(), path))
    return found


def test_the_client_calls_are_found() -> None:
    calls = client_calls()
    assert ("post", "/v1/messages") in calls
    assert ("get", "/v1/subscriptions/{}/feed") in calls
    assert ("post", "/v1/oauth/token") in calls
    assert len(calls) >= 10


def test_every_client_call_is_in_the_document(document: dict[str, Any]) -> None:
    routes = [
        (method, re.compile("^" + re.sub(r"\{[^}]+\}", "{}", path).replace("{}", "[^/]+") + "$"))
        for method, path, _ in operations(document)
    ]
    missing = [
        f"{method.upper()} {path}"
        for method, path in sorted(client_calls())
        if not any(m == method and pattern.match(path.replace("{}", "x")) for m, pattern in routes)
    ]
    assert missing == []
