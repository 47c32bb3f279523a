"""Issue 20, finding 4: no body limit on `POST /v1/oauth/token`. Six concurrent 150 MB form
bodies took memory from 0.33 to 1.9 GB; 3 million form fields added 400 MB. Every request body
is bounded before any route reads it (413 `payload_too_large`, with the token endpoint's
`error` member there), and the token form's field count before it is parsed. The class: a walk
over every operation of the OpenAPI document that takes a body."""

from __future__ import annotations

import contextlib
import select
import socket
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from loopback import serving

from gateway.app import create_app
from gateway.bodies import TOKEN_PATH, body_limits
from gateway.settings import Settings

FORM = "application/x-www-form-urlencoded"


def _operations_with_a_body() -> list[tuple[str, str, str]]:
    """(method, path, media type) of every operation whose OpenAPI entry takes a body."""
    with tempfile.TemporaryDirectory() as data_dir:
        document = create_app(Settings(data_dir=data_dir)).openapi()
    found = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            content = operation.get("requestBody", {}).get("content", {})
            if content:
                found.append((method.upper(), path, next(iter(content))))
    return sorted(found)


OPERATIONS = _operations_with_a_body()


def test_the_walk_finds_every_kind_of_body() -> None:
    kinds = {(method, path) for method, path, _ in OPERATIONS}
    assert {
        ("POST", TOKEN_PATH),
        ("POST", "/v1/messages"),
        ("POST", "/v1/messages/batch"),
        ("POST", "/v1/subscriptions"),
        ("PUT", "/v1/measures/catalog"),
        ("PUT", "/v1/agencies/{agency_id}/rights/{action}/{contract}"),
    } <= kinds
    assert len(OPERATIONS) >= 12


def _filled(path: str) -> str:
    replacements = {
        "{agency_id}": "fj-cib",
        "{action}": "subscribe",
        "{contract}": "grade.awarded",
        "{scope}": "query",
        "{subscription_id}": "00000000-0000-0000-0000-000000000000",
        "{message_id}": "00000000-0000-0000-0000-000000000000",
        "{name}": "market_regulator",
        "{draw_id}": "00000000-0000-0000-0000-000000000000",
    }
    for name, value in replacements.items():
        path = path.replace(name, value)
    assert "{" not in path, path
    return path


def _limit(settings: Settings, path: str) -> int:
    default, limits = body_limits(settings)
    return limits.get(path, default)


def _assert_refused(response: Any, path: str, limit: int) -> None:
    assert response.status_code == 413, response.text
    problem = response.json()
    assert (problem["code"], problem["status"]) == ("payload_too_large", 413)
    assert problem["detail"] == f"the body exceeds {limit} bytes"
    if path == TOKEN_PATH:  # RFC 6749 §5.2, as the endpoint's other errors
        assert response.headers["content-type"] == "application/json"
        assert problem["error"] == "invalid_request"
        assert problem["error_description"] == problem["detail"]
    else:
        assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(("method", "path", "media_type"), OPERATIONS)
def test_every_body_over_its_bound_is_413_before_it_is_read(
    client: TestClient, settings: Settings, method: str, path: str, media_type: str
) -> None:
    limit = _limit(settings, _filled(path))
    headers = {"content-type": media_type}
    declared = client.request(method, _filled(path), content=b"x" * (limit + 1), headers=headers)
    _assert_refused(declared, _filled(path), limit)

    def chunks() -> Iterator[bytes]:  # no Content-Length: Transfer-Encoding: chunked
        for _ in range(limit // 4096 + 2):
            yield b"x" * 4096

    streamed = client.request(method, _filled(path), content=chunks(), headers=headers)
    _assert_refused(streamed, _filled(path), limit)


@pytest.mark.parametrize(("method", "path", "media_type"), OPERATIONS)
def test_a_body_at_its_bound_is_not_refused_for_its_size(
    client: TestClient, settings: Settings, method: str, path: str, media_type: str
) -> None:
    limit = _limit(settings, _filled(path))
    response = client.request(
        method, _filled(path), content=b" " * limit, headers={"content-type": media_type}
    )
    assert response.status_code != 413, response.text
    assert response.status_code < 500, response.text


def test_a_get_with_an_oversized_body_is_refused_too(
    client: TestClient, settings: Settings
) -> None:
    response = client.request(
        "GET", "/v1/agencies", content=b"x" * (settings.limits.max_body_bytes + 1)
    )
    _assert_refused(response, "/v1/agencies", settings.limits.max_body_bytes)


def test_an_http2_body_without_a_length_is_counted_too() -> None:
    """HTTP/2 needs neither Content-Length nor chunked coding for a body (RFC 9113 §8.1.1):
    such a body is counted against the bound, as a chunked one is, whatever server runs the
    app (`gateway serve` speaks HTTP/1.1 only)."""
    import asyncio

    from gateway.bodies import BodyLimit

    seen: list[bytes] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append((await receive())["body"])
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    def post(body: bytes) -> int:
        pieces = [body[:6], body[6:]]
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            piece = pieces.pop(0)
            return {"type": "http.request", "body": piece, "more_body": bool(pieces)}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {"type": "http", "http_version": "2", "method": "POST", "path": "/v1/agencies"}
        asyncio.run(BodyLimit(app, 10, {})(scope | {"headers": []}, receive, send))
        return int(sent[0]["status"])

    assert post(b"x" * 11) == 413
    assert seen == []
    assert post(b"y" * 10) == 204
    assert seen == [b"y" * 10]


def test_a_malformed_content_length_is_400(client: TestClient) -> None:
    response = client.post("/v1/subscriptions", content=b"{}", headers={"content-length": "1e3"})
    assert (response.status_code, response.json()["code"]) == (400, "invalid_request")


# --- the token endpoint: field count, and the finding's load over a real socket ---------------


def test_a_token_form_with_too_many_fields_is_413_before_it_is_parsed(
    client: TestClient,
) -> None:
    body = "grant_type=client_credentials&" + "a=1&" * 3000
    assert len(body) < 16 * 1024  # within the size bound: refused for its field count
    response = client.post(TOKEN_PATH, content=body, headers={"content-type": FORM})
    assert response.status_code == 413, response.text
    problem = response.json()
    assert (problem["code"], problem["error"]) == ("too_many_fields", "invalid_request")
    assert "at most 16 form fields" in problem["detail"]


def test_three_million_form_fields_are_refused_by_size(client: TestClient) -> None:
    response = client.post(TOKEN_PATH, content="a&" * 3_000_000, headers={"content-type": FORM})
    assert (response.status_code, response.json()["code"]) == (413, "payload_too_large")
    assert response.headers["content-type"] == "application/json"  # RFC 6749 §5.2 there too
    assert response.json()["error"] == "invalid_request"


def test_a_token_request_within_the_bounds_is_still_answered(client: TestClient) -> None:
    response = client.post(TOKEN_PATH, data={"grant_type": "password"})
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "unsupported_grant_type"


def _send_form(address: tuple[str, int], length: int | None, sent: list[int]) -> bytes:
    """POST a form body of `length` bytes (chunked and endless when None) to the token
    endpoint, sending as long as the server takes it; returns the answer's status line."""
    with socket.create_connection(address, timeout=10) as conn:
        framing = f"content-length: {length}" if length else "transfer-encoding: chunked"
        conn.sendall(
            f"POST {TOKEN_PATH} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: {FORM}\r\n"
            f"{framing}\r\n\r\n".encode()
        )
        piece = b"a=" + b"x" * 65534
        if length is None:
            piece = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
        total = 0
        with contextlib.suppress(OSError):  # the server closes once it has answered
            while total < (length or 150 * 2**20):
                if select.select([conn], [], [], 0)[0]:  # answered: stop sending
                    break
                conn.sendall(piece)
                total += len(piece)
        sent.append(total)
        answer = b""
        with contextlib.suppress(OSError):  # queued data is read before a reset is reported
            while b"\r\n" not in answer:
                more = conn.recv(4096)
                if not more:
                    break
                answer += more
    return answer.split(b"\r\n", 1)[0]


@pytest.mark.parametrize("length", [150 * 2**20, None], ids=["content-length", "chunked"])
def test_six_concurrent_150_mb_token_bodies_are_refused_with_little_read(
    settings: Settings, length: int | None
) -> None:
    sent: list[int] = []
    answers: list[bytes] = []
    with serving(create_app(settings)) as base:
        host, port = base.removeprefix("http://").split(":")
        tracemalloc.start()
        try:
            threads = [
                threading.Thread(
                    target=lambda: answers.append(_send_form((host, int(port)), length, sent))
                )
                for _ in range(6)
            ]
            began = time.monotonic()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(30)
            spent = time.monotonic() - began
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert answers == [b"HTTP/1.1 413 Request Entity Too Large"] * 6
    assert spent < 10
    assert max(sent) < 16 * 2**20, f"the server took {max(sent)} bytes of a body"
    assert peak < 32 * 2**20, f"Python allocations peaked at {peak / 2**20:.1f} MB"
