"""A minimal webhook receiver for bench/deliver.py: 204 for every POST, arrival times kept."""

from __future__ import annotations

import json
import time

from fastapi import FastAPI, Request, Response

ARRIVALS: dict[str, float] = {}


def create_app() -> FastAPI:
    app = FastAPI()

    @app.post("/hook")
    async def hook(request: Request) -> Response:
        body = await request.body()
        ARRIVALS.setdefault(json.loads(body)["id"], time.time())
        return Response(status_code=204)

    @app.get("/arrivals")
    async def arrivals() -> dict[str, float]:
        return ARRIVALS

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
