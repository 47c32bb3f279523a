"""gateway.routing: a DirectRoute gets the request and its path parameters, the document still
describes the route, and a route with dependencies is refused; add_routes serves one set of
route objects in every app."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import Response
from fastapi.testclient import TestClient

from gateway.routing import DirectRoute, add_routes, match_first


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


def test_add_routes_serves_one_set_of_route_objects_in_every_app() -> None:
    """`add_routes` puts the router's own routes (an included router's too) in each app, so a
    process making many apps analyses each route once; the apps answer and document them as
    `include_router` would."""
    inner = APIRouter(prefix="/inner", tags=["inner"])
    inner.add_api_route("/{code}", echo, methods=["GET"])
    router = APIRouter(prefix="/things", tags=["things"])
    router.add_api_route("/{code}", echo, methods=["GET"])
    router.include_router(inner)
    included = FastAPI()
    included.include_router(router)
    apps = [FastAPI(), FastAPI()]
    for app in apps:
        add_routes(app, router)
        with TestClient(app) as client:
            assert client.get("/things/A1?q=x").text == "A1:x"
            assert client.get("/things/inner/B2?q=y").text == "B2:y"
        assert app.openapi() == included.openapi()
    first, second = ([id(route) for route in app.router.routes] for app in apps)
    assert set(id(route) for route in router.routes) <= set(first) & set(second)


def test_every_gateway_app_of_a_process_serves_the_feature_routers_own_routes(
    tmp_path: Path,
) -> None:
    from gateway.app import create_app
    from gateway.publishing.routes import router as publishing
    from gateway.queries.routes import router as queries
    from gateway.settings import Settings

    apps = [
        create_app(Settings(data_dir=tmp_path / str(n), database_url="sqlite://")) for n in range(2)
    ]
    for app in apps:
        served = {id(route) for route in app.router.routes}
        assert {id(route) for route in [*queries.routes, *publishing.routes]} <= served
