"""The connectors' answers: each connector with its view contract, and the market regulator
connector's signed snapshots (their manifest's claims)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ConnectorOut(BaseModel):
    name: str
    title: str
    role: str = Field(description="the agency role it serves")
    types: list[str] = Field(description="the message types it makes documents from")
    view_contract: dict[str, Any] = Field(description="JSON Schema 2020-12 of its documents")


class Connectors(BaseModel):
    connectors: list[ConnectorOut]


class SnapshotManifest(BaseModel):
    """The claims of a snapshot's signed manifest (`<size>.manifest.jws`)."""

    snapshot: str
    contract: str
    log_size: int
    root_hash: str | None = Field(description="hex; null for an empty log")
    generated_at: str
    records: int
    file: str
    sha256: str = Field(description="hex SHA-256 of the NDJSON file")


class SnapshotFiles(BaseModel):
    log_size: int
    data: str = Field(description="the NDJSON file's name")
    manifest: str = Field(description="the signed manifest's name")


class Snapshots(BaseModel):
    snapshots: list[SnapshotFiles]
