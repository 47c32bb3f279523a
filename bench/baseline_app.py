"""The baseline of bench/publish.py: a bare FastAPI app that reads the same bodies, parses the
JWS payload (base64url + JSON) and answers JSON of a receipt's size, with no verification,
no database and no signing. Served with the same uvicorn settings as the gateway."""

from __future__ import annotations

import base64

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response

RECEIPT_SIZE = 700


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

    return app
