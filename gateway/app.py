"""`create_app(settings)`: the FastAPI application; every resource lives in its lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import inspect
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool

from gateway.access.refusals import flush_forever
from gateway.access.routes import router as access_router
from gateway.apidocs import install_api_docs
from gateway.bodies import BodyLimit, body_limits
from gateway.catalog.routes import router as contracts_router
from gateway.clock import Clock
from gateway.connectors.routes import router as connectors_router
from gateway.connectors.routes import snapshot_forever
from gateway.console import install_console
from gateway.db import DatabaseFileLost
from gateway.delivery.health_routes import router as delivery_health_router
from gateway.delivery.routes import messages_router as receipts_router
from gateway.delivery.routes import router as delivery_router
from gateway.delivery.worker import RoundFailures, run_until
from gateway.errors import install_error_handlers
from gateway.ledger.routes import router as ledger_router
from gateway.logs import RequestContextMiddleware, configure_logging
from gateway.measures.catalog import record_shipped
from gateway.measures.routes import router as measures_router
from gateway.observability.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from gateway.observability.metrics import Metrics, outbox_lag_seconds
from gateway.publishing.orchestration import publish
from gateway.publishing.routes import publish_message
from gateway.publishing.routes import router as publishing_router
from gateway.publishing.service import group_publisher
from gateway.queries.batcher import StandingQueries
from gateway.queries.measures_routes import router as enterprise_measures_router
from gateway.queries.records_routes import router as access_records_router
from gateway.queries.routes import get_standing
from gateway.queries.routes import router as queries_router
from gateway.registry.routes import router as registry_router
from gateway.routing import add_routes, match_first
from gateway.runtime import Runtime, get_runtime
from gateway.settings import Settings
from gateway.supervision.routes import router as supervision_router
from gateway.supervision.routes import void_overdue_forever
from gateway.transparency.routes import router as log_router
from gateway.transparency.tlog import warm
from gateway.transparency.witnessing import collect_forever


class Jwks(BaseModel):
    """RFC 7517 JWK Set: the gateway's public keys."""

    keys: list[dict[str, Any]]


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ok", "unavailable"]
    failing: list[str] = Field(description="the checks that fail")
    checks: dict[str, dict[str, Any]] = Field(
        description="database, signing_key, outbox, group_threads and delivery_worker (where "
        "the process delivers): each a `status` of ok, failing or unknown, with its figures"
    )


def record_shipped_catalog(runtime: Runtime) -> None:
    """Record the shipped measure catalog as a version (first start, or changed by an
    upgrade); another process starting at the same time may win the race, which is fine."""
    try:
        with runtime.db.transaction() as session:
            record_shipped(session, runtime.signer, runtime.clock.now())
    except IntegrityError:
        pass


def create_app(
    settings: Settings | None = None,
    *,
    clock: Clock | None = None,
    configure_logs: bool | None = None,
) -> FastAPI:
    """The gateway's ASGI app. Called without settings it is the process's entry point (uvicorn's
    factory, as `gateway serve` runs it): it configures the process's logging from
    `settings.observability` and, once started, freezes what startup made out of the garbage
    collector's reach. A caller passing its settings keeps its own logging unless it asks
    (`configure_logs=True`)."""
    entry_point = settings is None
    if configure_logs is None:
        configure_logs = entry_point
    settings = settings or Settings()
    if configure_logs:
        logs = settings.observability
        configure_logging(
            logs.log_format, level=logs.log_level, batch_seconds=logs.log_batch_seconds
        )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = Runtime.open(settings, clock)
        app.state.runtime = runtime
        await run_in_threadpool(record_shipped_catalog, runtime)
        worker_rounds = RoundFailures() if settings.delivery.in_process_worker else None
        app.state.metrics = Metrics(runtime, worker_rounds)
        app.state.standing_queries = StandingQueries(runtime)
        app.state.publisher = group_publisher(functools.partial(publish, runtime))
        if entry_point:
            # What startup made (modules, models, schemas, routes) lives as long as the
            # process: keep it out of the collector's full passes, which walked all of it and
            # were the 100 ms tail of standing queries (p99 at 64 clients 114 -> 44-48 ms,
            # bench/RESULTS.md). Only as the process's app: frozen objects are never
            # collected, and a test process makes hundreds of apps.
            gc.collect()
            gc.freeze()
        witnessing = (
            asyncio.create_task(collect_forever(runtime)) if settings.witnesses.endpoints else None
        )
        voiding = asyncio.create_task(void_overdue_forever(runtime))
        refusal_counts = asyncio.create_task(flush_forever(runtime.refusals, runtime.db))
        interval = settings.connectors.snapshot_interval_seconds
        snapshots = (
            asyncio.create_task(snapshot_forever(runtime, interval)) if interval > 0 else None
        )
        stop_worker = threading.Event()
        # the proofs' node cache filled from the log as it is now, beside the first requests
        warming = threading.Thread(
            target=warm, args=(runtime.db, stop_worker), name="log-node-cache", daemon=True
        )
        warming.start()
        worker = threading.Thread(
            target=run_until,
            args=(runtime, stop_worker, worker_rounds),
            name="delivery-worker",
            daemon=True,
        )
        app.state.delivery_worker = None
        if worker_rounds is not None:
            worker.start()
            app.state.delivery_worker = (worker, worker_rounds)
        try:
            yield
        finally:
            for task in (witnessing, snapshots, voiding, refusal_counts):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            stop_worker.set()
            await asyncio.to_thread(warming.join, 5)  # a step at most: about 10-20 ms
            await asyncio.to_thread(app.state.standing_queries.close)
            await asyncio.to_thread(app.state.publisher.close)
            if worker.is_alive():
                await asyncio.to_thread(worker.join, 30)
            runtime.close()
            if configure_logs:  # lines still waiting for their batch (log_batch_seconds)
                for handler in logging.getLogger().handlers:
                    handler.flush()

    app = FastAPI(
        title="Work-safety credit and incentive data-exchange gateway",
        version="0.1.0",
        description=(
            "Agencies publish signed grade decisions; the gateway verifies, logs, applies them "
            "to the enterprise ledgers and returns signed receipts. Errors are RFC 9457 "
            "problem details with a stable `code`."
        ),
        lifespan=lifespan,
        docs_url=None,  # served from local assets by install_api_docs
        redoc_url=None,
        **_telemetry(settings),
    )
    install_error_handlers(app)
    install_api_docs(app)
    install_console(app)
    default_limit, limits = body_limits(settings)
    app.add_middleware(BodyLimit, default=default_limit, limits=limits)  # inside: logged too
    app.add_middleware(RequestContextMiddleware)
    # the hot paths first: a request is matched against the routes in this order; the
    # routers' own route objects, analysed once in the process (gateway.routing.add_routes)
    for router in (
        queries_router,
        publishing_router,
        connectors_router,
        ledger_router,
        registry_router,
        log_router,
        delivery_router,
        delivery_health_router,
        receipts_router,
        measures_router,
        enterprise_measures_router,
        access_records_router,
        access_router,
        contracts_router,
        supervision_router,
    ):
        add_routes(app, router)
    # and the two hottest ahead of even the documentation routes (gateway.routing.match_first)
    match_first(app, "/v1/enterprises/{code}", "GET", get_standing)
    match_first(app, "/v1/messages", "POST", publish_message)

    add_routes(app, app_router)
    return app


# The app's own routes (keys, metrics, health), made once in the process like the feature
# routers' (gateway.routing.add_routes) and served after them.
app_router = APIRouter()


@app_router.get("/.well-known/jwks.json", tags=["keys"])
async def jwks(runtime: Annotated[Runtime, Depends(get_runtime)]) -> Jwks:
    """The gateway's public keys (RFC 7517); receipts and log entries verify against them."""
    return Jwks.model_validate(runtime.signer.jwks())


@app_router.get(
    "/metrics",
    tags=["health"],
    response_class=Response,
    responses={
        200: {
            "description": "Prometheus text exposition format",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    },
)
async def metrics(request: Request) -> Response:
    """Prometheus metrics: publish counters and latency, log, delivery and witness gauges."""
    body = await run_in_threadpool(request.app.state.metrics.render)
    return Response(body, media_type=METRICS_CONTENT_TYPE)


@app_router.get("/healthz", tags=["health"])
async def healthz() -> Health:
    """Liveness: the process answers."""
    return Health(status="ok")


@app_router.get(
    "/readyz",
    tags=["health"],
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "not ready: `failing` names why"}},
)
async def readyz(
    request: Request, runtime: Annotated[Runtime, Depends(get_runtime)]
) -> JSONResponse:
    """Readiness: the database answers (on SQLite: at the file the process opened), the
    signing key is loaded, the outbox is not late (no delivery a worker should be posting
    has been due longer than `GATEWAY_OBSERVABILITY__MAX_OUTBOX_LAG_SECONDS`), the threads
    serving single publishes and standing queries run, and so does the in-process
    delivery worker where there is one. 503 names the failing checks."""
    checks = await run_in_threadpool(_readiness_checks, runtime)
    threads = [request.app.state.publisher, request.app.state.standing_queries.worker]
    down = [worker.name for worker in threads if not worker.is_alive()]
    checks["group_threads"] = {"status": "failing", "stopped": down} if down else {"status": "ok"}
    if request.app.state.delivery_worker is not None:
        checks["delivery_worker"] = _worker_check(*request.app.state.delivery_worker)
    failing = [name for name, check in checks.items() if check["status"] == "failing"]
    return JSONResponse(
        {"status": "unavailable" if failing else "ok", "failing": failing, "checks": checks},
        status_code=503 if failing else 200,
    )


def _readiness_checks(runtime: Runtime) -> dict[str, dict[str, Any]]:
    limit = runtime.settings.observability.max_outbox_lag_seconds
    signing_key = {"status": "ok", "kid": runtime.signer.receipt_key.kid}
    try:
        runtime.db.check_file()
        with runtime.db.reader() as session:
            session.execute(text("SELECT 1"))
            lag = outbox_lag_seconds(session, runtime.clock.now())
    except Exception as exc:  # any failure means not ready, reported by name
        database: dict[str, Any] = {"status": "failing", "error": type(exc).__name__}
        if isinstance(exc, DatabaseFileLost):
            # /readyz answers anyone: the file's path and the process go to the log only
            database["detail"] = (
                "the database file was removed or replaced while the gateway ran; writes are "
                "refused until that very file is back (the server's log names it)"
            )
            logging.getLogger(__name__).warning("readiness: %s", exc.reason)
        return {
            "database": database,
            "signing_key": signing_key,
            "outbox": {"status": "unknown", "max_lag_seconds": limit},
        }
    return {
        "database": {"status": "ok"},
        "signing_key": signing_key,
        "outbox": {
            "status": "ok" if lag <= limit else "failing",
            "lag_seconds": round(lag, 3),
            "max_lag_seconds": limit,
        },
    }


def _worker_check(worker: threading.Thread, rounds: RoundFailures) -> dict[str, Any]:
    """The in-process delivery worker runs; a streak of failed rounds (the database down,
    say) is reported but is not a failure of its own: the database check and the outbox lag
    say whether the gateway is ready."""
    if not worker.is_alive():
        return {"status": "failing", "stopped": [worker.name]}
    return {"status": "ok", **({"failing_rounds": rounds.streak} if rounds.streak else {})}


def _telemetry(settings: Settings) -> dict[str, Any]:
    """FastAPI's `telemetry` argument (FastAPI 0.16x; older ones have none to turn off)."""
    if settings.observability.opentelemetry or "telemetry" not in _FASTAPI_PARAMETERS:
        return {}
    return {"telemetry": {"tracing": False, "metrics": False, "logs": False}}


_FASTAPI_PARAMETERS = frozenset(inspect.signature(FastAPI.__init__).parameters)
