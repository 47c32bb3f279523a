"""The baseline of bench/publish.py: a bare FastAPI app that reads the same bodies, parses the
JWS payload (base64url + JSON) and answers JSON of a receipt's size, with no verification,
no database and no signing. Served with the same uvicorn settings as the gateway.

For bench/query.py it also answers `GET /v1/enterprises/{code}` with JSON of
`BENCH_QUERY_BYTES` bytes (the size of a measured gateway answer), built from a precomputed
padding around the code: no token check, no database, no signing."""

from __future__ import annotations

import base64
import os

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response

RECEIPT_SIZE = 700
QUERY_BYTES_ENV = "BENCH_QUERY_BYTES"


def _payload(token: bytes) -> dict[str, object]:
    segment = token.split(b".")[1]
    parsed: dict[str, object] = orjson.loads(
        base64.urlsafe_b64decode(segment + b"=" * (-len(segment) % 4))
    )
    return parsed


def create_app() -> FastAPI:
    app = FastAPI()

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/messages", status_code=201)
    async def publish(request: Request) -> Response:
        envelope = _payload(await request.body())
        body = {"message_id": envelope["id"], "index": 0, "receipt": "x" * RECEIPT_SIZE}
        return Response(orjson.dumps(body), status_code=201, media_type="application/json")

    @app.post("/v1/messages/batch")
    async def batch(request: Request) -> Response:
        messages = orjson.loads(await request.body())["messages"]
        results = [
            {"status": 201, "message_id": _payload(m.encode())["id"], "receipt": "x" * RECEIPT_SIZE}
            for m in messages
        ]
        return Response(orjson.dumps({"results": results}), media_type="application/json")

    # {"standing":{"uscc":"<18>","pad":"x…"},"attestation":"y…"}: the fixed part is 68 bytes
    size = int(os.environ.get(QUERY_BYTES_ENV, "2000"))
    attestation = "y" * max(0, size // 3)
    pad = "x" * max(0, size - 68 - len(attestation))

    @app.get("/v1/enterprises/{code}")
    async def standing(code: str, purpose: str | None = None) -> Response:
        body = {"standing": {"uscc": code, "pad": pad}, "attestation": attestation}
        return Response(orjson.dumps(body), media_type="application/json")

    return app
