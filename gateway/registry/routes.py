"""HTTP: read-only view of the agency registry (changes go through the CLI for now)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from starlette.concurrency import run_in_threadpool

from gateway.access.routes import caller_with
from gateway.registry.service import list_agencies
from gateway.runtime import Runtime, get_runtime

router = APIRouter(prefix="/v1/agencies", tags=["registry"])


def agency_views(runtime: Runtime) -> list[dict[str, Any]]:
    with runtime.db.reader() as session:
        return [
            {
                "id": agency.id,
                "name": agency.name,
                "uscc": agency.uscc,
                "roles": agency.roles,
                "publish": rights,
                "keys": [
                    {
                        "kid": k.kid,
                        "suite": k.suite,
                        "status": k.status,
                        "valid_from": k.valid_from.isoformat(),
                        "valid_to": k.valid_to.isoformat() if k.valid_to else None,
                        "jwk": k.jwk,
                    }
                    for k in keys
                ],
            }
            for agency, keys, rights in list_agencies(session)
        ]


@router.get("", dependencies=[Depends(caller_with("admin"))])
async def get_agencies(runtime: Annotated[Runtime, Depends(get_runtime)]) -> dict[str, Any]:
    """Registered agencies with their roles, publish rights and public keys."""
    return {"agencies": await run_in_threadpool(agency_views, runtime)}
