"""HTTP for the connectors: what each one is, and the market regulator's full snapshots (NDJSON
with a gateway-signed manifest), taken on demand here and on a schedule by the lifespan."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Response
from fastapi.responses import FileResponse
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from connectors import CONNECTORS
from gateway.access.routes import caller_with
from gateway.access.tokens import Caller
from gateway.connectors.schemas import Connectors, SnapshotManifest, Snapshots
from gateway.connectors.snapshots import write_snapshot
from gateway.errors import Forbidden, GatewayError, NotFound
from gateway.queries.service import record_access_alone, roles_of
from gateway.registry.rights import subscribe_views
from gateway.runtime import Runtime, get_runtime
from gateway.streaming import BoundedStream

router = APIRouter(prefix="/v1/connectors", tags=["connectors"])
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
SNAPSHOT_NAME = re.compile(r"^\d{12}\.(ndjson|manifest\.jws)$")
log = logging.getLogger("gateway.connectors")
_T = TypeVar("_T")


def snapshot_dir(runtime: Runtime) -> Path:
    return runtime.settings.data_dir / "snapshots" / "market_regulator"


def take_snapshot(runtime: Runtime) -> dict[str, Any]:
    """Write a snapshot of every enterprise at the current log size; returns its manifest.

    One read transaction: on SQLite a WAL snapshot, on PostgreSQL REPEATABLE READ, so the
    records are exactly the state the manifest's log size names."""
    with runtime.db.reader() as session:
        if session.get_bind().dialect.name == "postgresql":
            session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        _, _, claims = write_snapshot(
            session, runtime.signer, snapshot_dir(runtime), runtime.clock.now()
        )
    return claims


async def snapshot_forever(runtime: Runtime, interval: float) -> None:
    """The schedule: a snapshot every `interval` seconds (a failure is logged and retried at
    the next turn)."""
    while True:
        await asyncio.sleep(interval)
        try:
            claims = await run_in_threadpool(take_snapshot, runtime)
            log.info("snapshot written", extra={"log_size": claims["log_size"]})
        except Exception:  # keep the schedule alive; the next turn tries again
            log.exception("scheduled snapshot failed")


@router.get("")
async def list_connectors() -> Connectors:
    """Each connector: the agency role it serves, the message types it makes documents from,
    and its view contract (JSON Schema 2020-12, unknown fields refused)."""
    connectors = {
        "connectors": [
            {
                "name": c.name,
                "title": c.title,
                "role": c.role,
                "types": sorted(c.types),
                "view_contract": c.schema,
            }
            for c in CONNECTORS.values()
        ]
    }
    return Connectors.model_validate(connectors)


@router.post(
    "/market_regulator/snapshots",
    status_code=201,
    dependencies=[Depends(caller_with("admin"))],
)
async def create_snapshot(runtime: RuntimeDep) -> SnapshotManifest:
    """Take a full snapshot now (admin); returns its manifest claims."""
    return SnapshotManifest.model_validate(await run_in_threadpool(take_snapshot, runtime))


Subscriber = Annotated[Caller, Depends(caller_with("subscribe"))]


def require_snapshot_reader(session: Session, caller: Caller) -> None:
    """Snapshots are the market regulator connector's output, so they obey what a subscription
    through the connector needs: the connector's role and the whole subscribe right of every
    type its records are made from (issue 20 finding 7: with those rights withdrawn, no
    snapshot). Operators (scope `admin`) read them all."""
    if "admin" in caller.scopes:
        return
    connector = CONNECTORS["market_regulator"]
    if connector.role not in roles_of(session, caller.agency_id):
        raise Forbidden(
            "view_not_permitted",
            f"market regulator snapshots are for agencies with role {connector.role}; "
            f"{caller.agency_id} has not",
        )
    views = subscribe_views(session, [caller.agency_id])
    missing = sorted(
        t
        for t in connector.types
        if (caller.agency_id, t) not in views or views[(caller.agency_id, t)].fields is not None
    )
    if missing:
        raise Forbidden(
            "not_permitted",
            f"a snapshot holds what {', '.join(missing)} say; {caller.agency_id} may not "
            "subscribe to all of them whole (the connector's rights)",
        )


def _read_snapshots(
    runtime: Runtime, caller: Caller, name: str | None, read: Callable[[], _T]
) -> _T:
    """`read()` once the caller may read snapshots; a file download (`name`) is an access
    record whatever its result, a refused listing too."""
    result = "ok"
    try:
        with runtime.db.reader() as session:
            require_snapshot_reader(session, caller)
        return read()
    except GatewayError as exc:
        result = exc.code
        raise
    finally:
        if name is not None or result != "ok":
            record_access_alone(
                runtime,
                agency_id=caller.agency_id,
                action="snapshot",
                purpose=f"snapshot {name}" if name is not None else "snapshot list",
                result=result,
            )


@router.get("/market_regulator/snapshots")
async def list_snapshots(runtime: RuntimeDep, caller: Subscriber) -> Snapshots:
    """The snapshots kept, newest first (scope `subscribe` and the `market_regulator` role,
    or an operator)."""

    def listing() -> dict[str, Any]:
        folder = snapshot_dir(runtime)
        sizes = sorted(
            (int(p.name[:12]) for p in folder.glob("*.manifest.jws")) if folder.exists() else [],
            reverse=True,
        )
        return {
            "snapshots": [
                {
                    "log_size": size,
                    "data": f"{size:012d}.ndjson",
                    "manifest": f"{size:012d}.manifest.jws",
                }
                for size in sizes
            ]
        }

    return Snapshots.model_validate(
        await run_in_threadpool(_read_snapshots, runtime, caller, None, listing)
    )


@router.get(
    "/market_regulator/snapshots/{name}",
    response_class=FileResponse,
    responses={
        200: {
            "description": "the snapshot's NDJSON, or its signed manifest (a compact JWS)",
            "content": {
                "application/x-ndjson": {"schema": {"type": "string"}},
                "application/jose": {"schema": {"type": "string"}},
            },
        }
    },
)
async def get_snapshot_file(name: str, runtime: RuntimeDep, caller: Subscriber) -> Response:
    """A snapshot's NDJSON (`<size>.ndjson`) or its signed manifest (`<size>.manifest.jws`),
    for whom may list them; each download is recorded. A download is a stream like a ledger
    export (gateway.streaming): one of `GATEWAY_STREAMS__MAX_OPEN` at once (503
    too_many_streams beyond), ended at the deadline or when its client stops reading. It
    holds no database connection: the file is read from disk."""

    def file() -> FileResponse:
        path = snapshot_dir(runtime) / name
        if not SNAPSHOT_NAME.match(name) or not path.is_file():
            raise NotFound("not_found", f"no snapshot file {name!r}")
        media = "application/x-ndjson" if name.endswith(".ndjson") else "application/jose"
        return FileResponse(path, media_type=media)

    slot = runtime.streams.take()
    try:
        response = await run_in_threadpool(_read_snapshots, runtime, caller, name, file)
    except BaseException:
        slot.release()
        raise
    return BoundedStream(response, slot=slot, limits=runtime.settings.streams)
