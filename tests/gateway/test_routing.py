"""gateway.routing.DirectRoute: the endpoint gets the request and its path parameters, the
document still describes the route, and a route with dependencies is refused."""

from __future__ import annotations

import pytest
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import Response
from fastapi.testclient import TestClient

from gateway.routing import DirectRoute, match_first


async def echo(code: str, request: Request) -> Response:
    """Echo the code and a query parameter."""
    return Response(f"{code}:{request.query_params.get('q')}", media_type="text/plain")


def test_the_endpoint_gets_its_path_parameters_and_the_request() -> None:
    router = APIRouter(prefix="/things")
    router.add_api_route("/{code}", echo, methods=["GET"], route_class_override=DirectRoute)
    app = FastAPI()
    app.include_router(router)
    with TestClient(app) as client:
        response = client.get("/things/A1?q=x")
    assert (response.status_code, response.text) == (200, "A1:x")
    operation = app.openapi()["paths"]["/things/{code}"]["get"]
    assert [p["name"] for p in operation["parameters"]] == ["code"]
    assert operation["description"] == "Echo the code and a query parameter."


def test_a_route_with_dependencies_is_refused() -> None:
    def needed() -> None:
        return None

    router = APIRouter()
    with pytest.raises(ValueError, match="cannot run dependencies"):
        router.add_api_route(
            "/x",
            echo,
            methods=["GET"],
            dependencies=[Depends(needed)],
            route_class_override=DirectRoute,
        )


async def create(request: Request) -> Response:
    return Response("created", status_code=201, media_type="text/plain")


def test_match_first_serves_the_path_first_and_leaves_the_document_and_other_methods() -> None:
    router = APIRouter(prefix="/things", tags=["things"])
    router.add_api_route("/{code}", echo, methods=["GET"], route_class_override=DirectRoute)
    router.add_api_route("/query", create, methods=["POST"])
    app = FastAPI()
    app.include_router(router)
    document = app.openapi()
    app.openapi_schema = None
    match_first(app, "/things/{code}", "GET", echo)
    assert isinstance(app.router.routes[0], DirectRoute)
    assert app.openapi() == document  # the front route is not documented twice
    with TestClient(app) as client:
        assert client.get("/things/B2?q=y").text == "B2:y"
        # another method on a path the front route's pattern covers still reaches its route
        created = client.post("/things/query")
        assert (created.status_code, created.text) == (201, "created")
        assert client.get("/docs").status_code == 200
