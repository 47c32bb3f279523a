"""The API's documentation pages, offline: `/docs` (Swagger UI) and `/redoc` served with the
assets the `fastapi-offline` wheel ships (no CDN), and the bearer scheme declared in the
OpenAPI document so that Swagger UI's "Authorize" sends a token with every call that needs
one (protocol.md §6.2 lists the public ones)."""

from __future__ import annotations

import importlib.resources
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from gateway.routing import add_routes

ASSETS = "/docs-assets"
# The pages fetch nothing but from the gateway: ReDoc's "powered by" logo (cdn.redoc.ly) and
# Swagger UI's validator badge are not loaded. Their own inline start-up script stays allowed.
OFFLINE = {"Content-Security-Policy": "img-src 'self' data:; connect-src 'self'; font-src 'self'"}
BEARER = "bearer"
# Operations anyone may call without a token (protocol.md §6.2), by (method, path).
PUBLIC = frozenset(
    {
        ("post", "/v1/oauth/token"),
        ("get", "/.well-known/jwks.json"),
        ("get", "/v1/log/checkpoint"),
        ("get", "/v1/log/vkey"),
        ("get", "/v1/log/proofs/inclusion"),
        ("get", "/v1/log/proofs/consistency"),
        ("get", "/v1/log/witnesses"),
        ("get", "/v1/measures"),
        ("get", "/v1/measures/catalog"),
        ("get", "/v1/contracts"),
        ("get", "/v1/contracts/{name}/{major}"),
        ("get", "/v1/connectors"),
        ("get", "/asyncapi.json"),
        ("get", "/v1/inspections/draws/{draw_id}/public"),
        ("get", "/healthz"),
        ("get", "/readyz"),
        ("get", "/metrics"),
    }
)


def declare_bearer(document: dict[str, Any]) -> dict[str, Any]:
    """`document` with the HTTP bearer scheme (RFC 6750; the token is a JWT, RFC 9068) in its
    components, required by every operation except the public ones."""
    components = document.setdefault("components", {})
    components.setdefault("securitySchemes", {})[BEARER] = {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "an access token from POST /v1/oauth/token (client credentials with "
        "private_key_jwt); its scopes decide which calls it may make",
    }
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            if isinstance(operation, dict) and (method, path) not in PUBLIC:
                operation["security"] = [{BEARER: []}]
    return document


# made once in the process, served in every app (gateway.routing.add_routes)
docs_router = APIRouter()


@docs_router.get("/docs", include_in_schema=False)
async def swagger_ui(request: Request) -> HTMLResponse:
    return _offline(
        get_swagger_ui_html(
            openapi_url="/openapi.json",
            title=f"{request.app.title} — Swagger UI",
            oauth2_redirect_url="/docs/oauth2-redirect",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon.png",
            swagger_ui_parameters={"persistAuthorization": True, "validatorUrl": None},
        )
    )


@docs_router.get("/docs/oauth2-redirect", include_in_schema=False)
async def swagger_ui_redirect() -> HTMLResponse:
    return get_swagger_ui_oauth2_redirect_html()


@docs_router.get("/redoc", include_in_schema=False)
async def redoc(request: Request) -> HTMLResponse:
    return _offline(
        get_redoc_html(
            openapi_url="/openapi.json",
            title=f"{request.app.title} — ReDoc",
            redoc_js_url=f"{ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{ASSETS}/favicon.png",
            with_google_fonts=False,
        )
    )


def install_api_docs(app: FastAPI) -> None:
    """/docs, /docs/oauth2-redirect and /redoc from local assets; `app` must have been made
    with `docs_url=None, redoc_url=None`."""
    assets = importlib.resources.files("fastapi_offline") / "static"
    app.mount(ASSETS, StaticFiles(directory=str(assets)), name="docs-assets")
    make_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = declare_bearer(make_openapi())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override

    add_routes(app, docs_router)


def _offline(page: HTMLResponse) -> HTMLResponse:
    page.headers.update(OFFLINE)
    return page
