"""Recorded queries about enterprises: standing (one, or a batch), grade history, access
records and the measures that apply. An answer is cut to the caller's field view, so every
field but the code may be absent; the attestation is a gateway-signed JWS over the answer
and the log size (protocol.md)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

ATTESTATION = "gateway-signed compact JWS over the answer and the log size"


def _purpose_required(schema: dict[str, Any]) -> None:
    schema["required"] = [*schema.get("required", []), "purpose"]


class BatchQuery(BaseModel):
    # `purpose` is required in the document and checked by the gateway (400 missing_purpose,
    # recorded), not by validation, which would refuse the batch without a record.
    model_config = ConfigDict(json_schema_extra=_purpose_required)

    codes: list[str]
    purpose: str | None = Field(
        default=None, description="why you ask (recorded); required (400 missing_purpose)"
    )
    fields: list[str] | None = Field(
        default=None, description="ask for fewer fields than your view (default: all of it)"
    )


class Grade(BaseModel):
    status: str | None = Field(default=None, description="none | active | expired | revoked")
    level: str | None = None
    scheme: str | None = None
    valid_from: str | None = None
    valid_to: str | None = None
    certificate_no: str | None = None
    reapply_after: str | None = None


class ListEntry(BaseModel):
    list_type: str = Field(description="black | red")
    deciding_agency: str
    term_start: str
    term_end: str


class Closure(BaseModel):
    closed_on: str
    closure: str | None


class Standing(BaseModel):
    """An enterprise's standing as the caller's `standing` view shows it (a field outside
    the view is absent)."""

    uscc: str
    name: str | None = None
    region_code: str | None = None
    ledger_status: str | None = None
    grade: Grade | None = None
    lists: list[ListEntry] | None = None
    accidents_prior_year: list[str] | None = None
    closure: Closure | None = None
    measures: dict[str, list[dict[str, Any]]] | None = Field(
        default=None, description="by agency role: the catalog's measures that apply"
    )


class StandingAnswer(BaseModel):
    standing: Standing
    attestation: str = Field(description=ATTESTATION)


class BatchItem(BaseModel):
    uscc: str
    status: int = Field(description="200, or the problem's status")
    standing: Standing | None = None
    problem: dict[str, Any] | None = Field(
        default=None, description="RFC 9457 problem details (the `Problem` schema)"
    )


class BatchAnswer(BaseModel):
    results: list[BatchItem]
    attestation: str = Field(description=ATTESTATION)


class GradeEvent(BaseModel):
    index: int
    message_id: str
    type: str
    issuer: str
    issued_at: str
    data: dict[str, Any] = Field(description="the message's data cut to your view")


class GradeHistory(BaseModel):
    uscc: str
    events: list[GradeEvent]


class GradeHistoryAnswer(BaseModel):
    grade_history: GradeHistory
    attestation: str = Field(description=ATTESTATION)


class AccessRecord(BaseModel):
    """An access record; a refusal repeated within its window is one record, `count` times
    from `at` to `last_at`. Cut to the reader's `access_records` view (absent: outside it)."""

    id: int
    at: str | None = None
    agency_id: str | None = None
    action: str | None = None
    purpose: str | None = None
    result: str | None = None
    count: int
    last_at: str


class EnterpriseAccessRecords(BaseModel):
    uscc: str
    items: list[AccessRecord]
    next: int | None = Field(description="cursor for `before`; null on the last page")


class ListedAccessRecord(BaseModel):
    id: int
    at: str
    agency_id: str | None
    action: str
    purpose: str | None
    result: str
    count: int
    last_at: str
    address: str | None
    uscc: str | None


class AccessRecords(BaseModel):
    items: list[ListedAccessRecord]
    next: int | None = Field(description="cursor for `before`; null on the last page")


class StandingFacts(BaseModel):
    grade_status: str | None = None
    grade_level: str | None = None
    scheme: str | None = None
    accidents_prior_year: list[str] | None = None
    lists: list[str] | None = None


class EnterpriseMeasures(BaseModel):
    uscc: str
    on: str
    standing: StandingFacts = Field(description="the facts inside your view")
    measures: dict[str, list[dict[str, Any]]] | None = Field(
        default=None, description="by role (yours; every role for operators), if in your view"
    )
