"""The gateway's error tree and its one RFC 9457 problem+json renderer.

    GatewayError                 code, status_code, detail, extra
    ├── BadRequest        400    malformed_jws, malformed_json, schema_violation, invalid_uscc, …
    ├── Unauthorized      401    signature_invalid, unknown_key, key_revoked, key_not_valid, …
    ├── Forbidden         403    not_permitted, issuer_mismatch
    ├── NotFound          404    not_found, unknown_enterprise
    ├── Conflict          409    duplicate_conflict
    ├── PayloadTooLarge   413    payload_too_large, batch_too_large
    ├── Unprocessable     422    invalid_transition, rule_violation, unknown_reference
    ├── TooManyRequests   429    rate_limited (with Retry-After)
    └── ServiceUnavailable 503   database_unavailable, database_busy, too_many_streams, …
                                 (with Retry-After)

Starlette's and FastAPI's own refusals are rendered the same way (404 not_found, 405
method_not_allowed, 400 invalid_request); text with U+0000 and integers beyond 64 bits are
refused before any query (400 invalid_text, number_out_of_range: see gateway.db). A pool
with no connection free in time (sqlalchemy.exc.TimeoutError, anywhere) is 503 database_busy.

Codes are a stable promise to agencies (like Zulip's): never rename one, add new ones.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from contracts.uscc import problem

if TYPE_CHECKING:  # the HTTP side imports FastAPI when it runs: the CLI, which raises and
    # catches these errors, starts without it (0.4 s of a 1.5 s `gateway --help`)
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse

PROBLEM_TYPE_BASE = "https://gateway.example/problems/"
# Codes of the refusals Starlette and FastAPI make themselves (their HTTPException).
HTTP_ERROR_CODES = {400: "invalid_request", 404: "not_found", 405: "method_not_allowed"}
PROBLEM_MEDIA_TYPE = "application/problem+json"
POOL_RETRY_AFTER_SECONDS = 2  # a pooled connection is held for milliseconds, not seconds
PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "RFC 9457 problem details; `code` is the stable machine-readable reason.",
    "type": "object",
    "required": ["type", "title", "status", "code", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "code": {"type": "string"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
    },
    "additionalProperties": True,
}


class GatewayError(Exception):
    status_code = 400
    title = "Bad request"

    def __init__(self, code: str, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.extra = extra

    def problem(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": PROBLEM_TYPE_BASE + self.code,
            "title": self.title,
            "status": self.status_code,
            "code": self.code,
            "detail": self.detail,
        }
        if instance:
            body["instance"] = instance
        body.update({k: v for k, v in self.extra.items() if v is not None})
        return body


class BadRequest(GatewayError):
    status_code = 400
    title = "Bad request"


def check_uscc(value: str, what: str = "", **extra: Any) -> None:
    """400 `invalid_uscc` naming the part of the code that fails (member `part`: length,
    alphabet, department, region, organisation_code or check; GB 32100-2015, domain.md §7)."""
    found = problem(value)
    if found is not None:
        named = f"{what} {value!r}" if what else repr(value)
        raise BadRequest(
            "invalid_uscc",
            f"{named} is not a valid unified social credit code: {found.detail}",
            part=found.part,
            **extra,
        )


class Unauthorized(GatewayError):
    status_code = 401
    title = "Signature or key not accepted"


class Forbidden(GatewayError):
    status_code = 403
    title = "Not permitted"


class NotFound(GatewayError):
    status_code = 404
    title = "Not found"


class Conflict(GatewayError):
    status_code = 409
    title = "Conflict"


class PayloadTooLarge(GatewayError):
    status_code = 413
    title = "Payload too large"


class UnsupportedMediaType(GatewayError):
    status_code = 415
    title = "Unsupported media type"


class Unprocessable(GatewayError):
    status_code = 422
    title = "Rule violated"


class TooManyRequests(GatewayError):
    status_code = 429
    title = "Too many requests"

    def __init__(self, code: str, detail: str, retry_after: int, **extra: Any) -> None:
        super().__init__(code, detail, retry_after=retry_after, **extra)
        self.retry_after = retry_after


class InternalError(GatewayError):
    """A failure of the gateway's own (an unexpected exception), not of the request."""

    status_code = 500
    title = "Internal server error"


class ServiceUnavailable(GatewayError):
    """Overload or an outage, not the request's fault: `retry_after` (seconds) goes out as the
    Retry-After header (RFC 9110 §10.2.3)."""

    status_code = 503
    title = "Service unavailable"

    def __init__(
        self, code: str, detail: str, retry_after: int | None = None, **extra: Any
    ) -> None:
        super().__init__(code, detail, **extra)
        self.retry_after = retry_after


def problem_response(error: GatewayError, instance: str | None = None) -> JSONResponse:
    from fastapi.responses import JSONResponse

    return JSONResponse(
        error.problem(instance),
        status_code=error.status_code,
        media_type=PROBLEM_MEDIA_TYPE,
    )


# RFC 6749 §5.1: a token answer, and so its errors, are never cached.
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def oauth_error_response(error: GatewayError, instance: str | None = None) -> JSONResponse:
    """The token endpoint's refusal as RFC 6749 §5.2 asks: `application/json` with `error`
    (invalid_client, invalid_scope, unsupported_grant_type, invalid_request) and
    `error_description`, beside the problem members every other refusal has."""
    from fastapi.responses import JSONResponse

    body = error.problem(instance)
    body.setdefault("error", "invalid_request")
    body["error_description"] = error.detail
    headers = dict(NO_STORE)
    retry_after = getattr(error, "retry_after", None)
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return JSONResponse(body, status_code=error.status_code, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """One handler per error family, all rendering RFC 9457 problem details (and the OpenAPI
    document says so)."""
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException

    async def on_gateway_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, GatewayError)
        response = problem_response(exc, request.url.path)
        retry_after = getattr(exc, "retry_after", None)  # TooManyRequests, ServiceUnavailable
        if retry_after is not None:
            response.headers["Retry-After"] = str(retry_after)
        return response

    async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        first = exc.errors()[0] if exc.errors() else {}
        where = "/".join(str(p) for p in first.get("loc", ()))
        error = BadRequest("invalid_request", f"{where}: {first.get('msg', 'invalid request')}")
        return problem_response(error, request.url.path)

    async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
        # Starlette's and FastAPI's own refusals (no such route, method not allowed, a body
        # that cannot be parsed) are problems like ours, not `{"detail": ...}`.
        assert isinstance(exc, HTTPException)
        code = HTTP_ERROR_CODES.get(exc.status_code, "invalid_request")
        error = GatewayError(code, str(exc.detail))
        error.status_code = exc.status_code
        error.title = HTTPStatus(exc.status_code).phrase
        response = problem_response(error, request.url.path)
        for name, value in (exc.headers or {}).items():
            response.headers[name] = value
        return response

    async def on_dbapi_error(request: Request, exc: Exception) -> JSONResponse:
        # A lost connection is the database being unavailable; anything else is a bug (500).
        if isinstance(exc, DBAPIError) and exc.connection_invalidated:
            return await on_database_down(request, exc)
        raise exc

    async def on_database_down(request: Request, exc: Exception) -> JSONResponse:
        error = ServiceUnavailable(
            "database_unavailable", "The database is not answering; retry shortly."
        )
        response = problem_response(error, request.url.path)
        response.headers["Retry-After"] = "1"
        return response

    async def on_pool_timeout(request: Request, exc: Exception) -> JSONResponse:
        # Every connection of a pool stayed in use for its whole timeout: the gateway is
        # overloaded, not broken. Was a plain-text 500 "QueuePool limit … reached".
        error = ServiceUnavailable(
            "database_busy",
            "Every database connection of this gateway process is in use; retry shortly.",
            retry_after=POOL_RETRY_AFTER_SECONDS,
        )
        return await on_gateway_error(request, error)

    app.add_exception_handler(GatewayError, on_gateway_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(HTTPException, on_http_error)
    app.add_exception_handler(OperationalError, on_database_down)
    app.add_exception_handler(InterfaceError, on_database_down)  # a connection closed under us
    app.add_exception_handler(DBAPIError, on_dbapi_error)
    app.add_exception_handler(PoolTimeout, on_pool_timeout)
    document_problems(app)


def document_problems(app: FastAPI) -> None:
    """Every operation's 4xx answers are problem details, in the OpenAPI document too: FastAPI's
    own `422 HTTPValidationError` is never sent (a malformed request is `400 invalid_request`),
    so it is replaced by a `4XX` problem response."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = generate()
        problem = {
            "description": "RFC 9457 problem details with a stable `code`",
            "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for operations in document.get("paths", {}).values():
            for operation in operations.values():
                responses = operation.setdefault("responses", {})
                if "HTTPValidationError" in str(responses.get("422", "")):
                    del responses["422"]
                responses.setdefault("4XX", problem)
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        schemas["Problem"] = PROBLEM_SCHEMA
        if "HTTPValidationError" not in str(document["paths"]):
            schemas.pop("HTTPValidationError", None)
            schemas.pop("ValidationError", None)
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]
