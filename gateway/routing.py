"""`DirectRoute`: a FastAPI route for the hot paths that reads its own request.

FastAPI resolves an endpoint's parameters on every request (path, query, header and cookie
parameters, each validated), which for the standing query and the single publish cost more of
the event loop than their own code. These endpoints take the `Request` and their path
parameters and parse the rest themselves; the route calls them directly. The OpenAPI document
is still built from the signature and `openapi_extra`, as for any route.

Only for routes without dependencies (on the route or its router): those would not run.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute, APIRouter
from starlette.requests import Request
from starlette.responses import Response


class DirectRoute(APIRoute):
    """Calls `endpoint(request=request, **path_params)` and sends the Response it returns."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        if self.dependant.dependencies:
            raise ValueError(f"{path}: a DirectRoute cannot run dependencies")

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        endpoint = self.endpoint

        async def handler(request: Request) -> Response:
            response: Response = await endpoint(request=request, **request.path_params)
            return response

        return handler


def match_first(app: FastAPI, path: str, method: str, endpoint: Callable[..., Any]) -> None:
    """Serve `method path` by `endpoint` ahead of every other route of `app`, undocumented:
    the route a router declares for it (and the document shows) is then never reached. A
    request for a hot path no longer walks the documentation routes and FastAPI's
    included-router layers (a tenth of a standing query's event-loop time, bench/RESULTS.md);
    a request for the same path with another method matches on, as before."""
    app.router.routes.insert(0, _direct_route(path, method, endpoint))


@functools.cache
def _direct_route(path: str, method: str, endpoint: Callable[..., Any]) -> DirectRoute:
    """One route object per path, method and endpoint in the process (as `add_routes`)."""
    return DirectRoute(path, endpoint, methods=[method], include_in_schema=False)


def add_routes(app: FastAPI, router: APIRouter) -> None:
    """Serve `router`'s routes in `app` as the router's module made them: one set of route
    objects in the process, however many apps it makes. `app.include_router` would make each
    app its own copy of every route (its dependencies analysed and its handler built again, on
    the app's first request: 50–70 ms an app for the gateway's routes, and a test process makes
    thousands of apps). For a router included as it is (no prefix, tags, dependencies or
    responses added by the app) in an app whose `dependency_overrides` stay empty: the routes
    added here do not see them."""
    app.router.routes.extend(router.routes)
