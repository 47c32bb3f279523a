"""HTTP: the contract registry (`GET /v1/contracts`, `GET /v1/contracts/{name}/{major}`) and
the AsyncAPI document of every channel (`GET /asyncapi.json`).

Public without a token, like the JWKS and the measure catalog: the schemas are the formats
agencies build against (protocol.md), they hold no data about anyone, and an integrator needs
them before it has credentials.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request

from contracts.asyncapi import asyncapi_document
from contracts.errors import ContractError
from contracts.versions import load_registry
from gateway.access.routes import token_audience
from gateway.catalog.schemas import AsyncApiDocument, ContractOut, Contracts
from gateway.delivery.feed import MAX_LIMIT as FEED_MAX_LIMIT
from gateway.errors import NotFound
from gateway.runtime import Runtime, get_runtime

router = APIRouter(tags=["contracts"])
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


@router.get("/v1/contracts")
async def list_contracts() -> Contracts:
    """Every contract (message types, agency views) with its majors: live or retired, the
    released revision the live schema is, and the schemas' `$id`s."""
    contracts = []
    for contract in load_registry().contracts():
        summary = contract.summary()
        for version in summary["versions"]:
            version["href"] = f"/v1/contracts/{contract.name}/{version['major']}"
        contracts.append(summary)
    return Contracts.model_validate({"contracts": contracts})


@router.get("/v1/contracts/{name}/{major}")
async def get_contract(
    name: str, major: Annotated[int, Path(ge=1, description="contract major version")]
) -> ContractOut:
    """One contract version: the strict producer schema (what publishing validates) and the
    tolerant consumer schema derived from it (unknown fields ignored)."""
    try:
        version = load_registry().get(name, major)
    except ContractError as exc:
        raise NotFound("unknown_contract", exc.message) from exc
    answer = {
        "name": version.name,
        "kind": version.kind,
        **version.summary(),
        "producer": version.producer,
        "consumer": version.consumer,
    }
    return ContractOut.model_validate(answer)


@router.get("/asyncapi.json")
async def asyncapi(request: Request, runtime: RuntimeDep) -> AsyncApiDocument:
    """AsyncAPI 3.0.0: publishing, push delivery per message type and the pull feed."""
    # The gateway's own address, as the token endpoint names it: never the request's Host.
    audience = token_audience(request, runtime)
    base = audience.removesuffix("/v1/oauth/token") if audience else "/"
    document = asyncapi_document(
        load_registry(),
        base_url=base.rstrip("/"),
        api_version=request.app.version,
        max_feed_limit=FEED_MAX_LIMIT,
        max_batch_items=runtime.settings.publish.max_batch_items,
    )
    return AsyncApiDocument.model_validate(document)
