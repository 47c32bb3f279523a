"""gateway.routing.DirectRoute: the endpoint gets the request and its path parameters, the
document still describes the route, and a route with dependencies is refused."""

from __future__ import annotations

import pytest
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import Response
from fastapi.testclient import TestClient

from gateway.routing import DirectRoute


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
