"""HTTP for the connectors: what each one is, and the market regulator's full snapshots (NDJSON
with a gateway-signed manifest), taken on demand here and on a schedule by the lifespan."""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from connectors import CONNECTORS
from connectors.market_regulator import write_snapshot
from gateway.access.routes import caller_with
from gateway.errors import NotFound
from gateway.runtime import Runtime, get_runtime

router = APIRouter(prefix="/v1/connectors", tags=["connectors"])
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
SNAPSHOT_NAME = re.compile(r"^\d{12}\.(ndjson|manifest\.jws)$")
log = logging.getLogger("gateway.connectors")


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
async def list_connectors() -> dict[str, Any]:
    """Each connector: the agency role it serves, the message types it makes documents from,
    and its view contract (JSON Schema 2020-12, unknown fields refused)."""
    return {
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


@router.post(
    "/market_regulator/snapshots",
    status_code=201,
    dependencies=[Depends(caller_with("admin"))],
)
async def create_snapshot(runtime: RuntimeDep) -> dict[str, Any]:
    """Take a full snapshot now (admin); returns its manifest claims."""
    return await run_in_threadpool(take_snapshot, runtime)


@router.get("/market_regulator/snapshots", dependencies=[Depends(caller_with("subscribe"))])
async def list_snapshots(runtime: RuntimeDep) -> dict[str, Any]:
    """The snapshots kept, newest first (scope `subscribe`)."""
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


@router.get("/market_regulator/snapshots/{name}", dependencies=[Depends(caller_with("subscribe"))])
async def get_snapshot_file(name: str, runtime: RuntimeDep) -> FileResponse:
    """A snapshot's NDJSON (`<size>.ndjson`) or its signed manifest (`<size>.manifest.jws`)."""
    path = snapshot_dir(runtime) / name
    if not SNAPSHOT_NAME.match(name) or not path.is_file():
        raise NotFound("not_found", f"no snapshot file {name!r}")
    media = "application/x-ndjson" if name.endswith(".ndjson") else "application/jose"
    return FileResponse(path, media_type=media)
