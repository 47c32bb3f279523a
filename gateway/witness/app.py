"""The witness's HTTP service: `POST /add-checkpoint` (C2SP tlog-witness) and health."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool

from gateway.bodies import BodyLimit
from gateway.witness.schemas import WitnessHealth
from gateway.witness.service import Witness

MAX_BODY_BYTES = 64 * 1024  # a checkpoint and a consistency proof of at most 63 lines


def create_witness_app(witness: Witness) -> FastAPI:
    app = FastAPI(title=f"tlog witness {witness.name}", version="0.1.0")
    # The bound holds before the body is read: `request.body()` took all of any body first
    # and judged its size afterwards (the gateway's own routes: gateway.bodies).
    app.add_middleware(BodyLimit, default=MAX_BODY_BYTES, limits={})

    @app.post("/add-checkpoint", response_class=PlainTextResponse)
    async def add_checkpoint(request: Request) -> Response:
        """Cosign a checkpoint consistent with the last one cosigned for its log."""
        raw = await request.body()  # at most MAX_BODY_BYTES: BodyLimit refused more
        try:
            body = raw.decode("utf-8")
        except UnicodeDecodeError:
            return PlainTextResponse("the body is not UTF-8\n", status_code=400)
        answer = await run_in_threadpool(witness.add_checkpoint, body)
        return Response(answer.body, status_code=answer.status, media_type=answer.content_type)

    @app.get("/healthz")
    async def healthz() -> WitnessHealth:
        return WitnessHealth(status="ok", witness=witness.name)

    @app.get("/vkey", response_class=PlainTextResponse)
    async def vkey() -> str:
        """This witness's cosignature verifier key (type 0x04)."""
        return witness.vkey + "\n"

    return app
