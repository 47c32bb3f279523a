"""Webhook receivers on loopback: bench/deliver.py's (204 for every POST, arrival times kept)
and bench/e2e.py's, which verifies each signature before it counts an arrival."""

from __future__ import annotations

import json
import os
import time
from typing import Any

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


SECRETS_ENV = "BENCH_WEBHOOK_SECRETS"  # JSON: subscription id -> its whsec_ secret


def create_verifying_app() -> FastAPI:
    """The receiver of bench/e2e.py: every POST's Standard Webhooks `v1` signature verified
    (the standardwebhooks library, with the subscription's secret from $BENCH_WEBHOOK_SECRETS),
    then 204 and one arrival kept in the order received: the time it was verified, the
    subscription, the enterprise and the log index. A signature that fails is answered 401 and
    counted, never kept; a webhook-id seen before (a retry) is counted, not kept again."""
    from standardwebhooks import Webhook, WebhookVerificationError

    hooks = {sub: Webhook(secret) for sub, secret in json.loads(os.environ[SECRETS_ENV]).items()}
    arrivals: list[tuple[float, str, str, str, int]] = []
    seen: set[str] = set()
    counts = {"rejected": 0, "repeated": 0}
    app = FastAPI()

    @app.post("/hook/{n}")
    async def hook(n: int, request: Request) -> Response:
        body = await request.body()
        webhook_id = request.headers.get("webhook-id", "")
        subscription = webhook_id.rpartition(".")[2]  # msg_<message id>.<subscription id>
        try:
            event = hooks[subscription].verify(body, dict(request.headers))
        except (KeyError, WebhookVerificationError):
            counts["rejected"] += 1
            return Response(status_code=401)
        if webhook_id in seen:
            counts["repeated"] += 1
        else:
            seen.add(webhook_id)
            arrivals.append(
                (time.time(), subscription, event["id"], event["subject"], int(event["sequence"]))
            )
        return Response(status_code=204)

    @app.get("/count")
    async def count() -> dict[str, int]:
        return {"received": len(arrivals)} | counts

    @app.get("/arrivals")
    async def received() -> dict[str, Any]:
        return {"arrivals": arrivals} | counts

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
