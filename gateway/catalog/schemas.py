"""The contract catalog's answers: contracts with their majors, one contract version with its
producer and consumer schemas, and the AsyncAPI document."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from contracts.versions import Kind


class ContractMajor(BaseModel):
    major: int
    live: bool = Field(description="false: retired")
    revision: str | None = Field(
        description="`<major>.<n>`: the released revision the live schema is; null: unreleased"
    )
    released_revisions: int
    producer_id: str | None = Field(description="the producer schema's `$id`")
    consumer_id: str | None = Field(description="the consumer schema's `$id`")


class ListedMajor(ContractMajor):
    href: str


class ContractSummary(BaseModel):
    name: str
    kind: Kind = Field(description="a message type or an agency view")
    versions: list[ListedMajor]


class Contracts(BaseModel):
    contracts: list[ContractSummary]


class ContractOut(BaseModel):
    name: str
    kind: Kind
    major: int
    live: bool
    revision: str | None
    released_revisions: int
    producer_id: str | None
    consumer_id: str | None
    producer: dict[str, Any] = Field(description="strict JSON Schema 2020-12 publishing uses")
    consumer: dict[str, Any] = Field(description="tolerant: unknown fields ignored")


class AsyncApiDocument(BaseModel):
    """An AsyncAPI 3.0.0 document (https://www.asyncapi.com/docs/reference/specification/v3.0.0)."""

    model_config = ConfigDict(extra="allow")

    asyncapi: str
