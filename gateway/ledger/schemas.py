"""The enterprise ledgers' answers: a page of a ledger, its summary, one enterprise's ledger
history. Dates are ISO 8601 (`YYYY-MM-DD`), times ISO 8601 with their offset (UTC)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class LedgerItem(BaseModel):
    """One enterprise as of the day asked; the CSV export has the same columns."""

    uscc: str
    name: str
    legal_representative: str | None
    region_code: str
    industry_section: str
    scheme: str
    required: bool
    registered_on: str
    ledger_status: str = Field(description="新增 | 达标 | 未达标, on the day")
    grade_status: str = Field(description="none | active | expired | revoked, on the day")
    grade_level: str | None
    grade_valid_from: str | None
    grade_valid_to: str | None
    certificate_no: str | None
    reapply_after: str | None
    self_assessment_year: int | None
    self_assessment_report_published: bool
    closed_on: str | None
    closure: str | None
    updated_at: str


class LedgerPage(BaseModel):
    ledger: str
    on: str
    total: int
    items: list[LedgerItem]
    next: str | None = Field(description="cursor for `after`; null on the last page")


class SummaryGroup(BaseModel):
    key: str
    total: int
    by_status: dict[str, int]


class LedgerSummary(BaseModel):
    ledger: str
    on: str
    by: str
    total: int
    groups: list[SummaryGroup]


class LedgerChange(BaseModel):
    ledger: str
    change: str = Field(description="entered | left | updated")
    from_status: str | None
    to_status: str | None
    from_level: str | None
    to_level: str | None
    actor: str
    at: str
    message_id: str
    log_index: int
    reason: str


class LedgerHistory(BaseModel):
    uscc: str
    changes: list[LedgerChange]
