"""Classified supervision and random draws (双随机、一公开): what their routes take and
answer. A draw's request and result keep the shapes docs/draws.md gives them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from gateway.transparency.schemas import ConsistencyProof


class DrawIn(BaseModel):
    """A draw request (docs/draws.md §2): the gateway adds requester, day, candidates'
    digest and count and previous assignments. Strata may give `rate` instead of `sample`;
    without strata, the achieved ledger is drawn by classified-supervision frequency."""

    draw_id: str = Field(min_length=1, max_length=64, pattern=r"^\S(?:.*\S)?$")
    region_prefix: str = Field(pattern=r"^[0-9]{0,6}$")
    period: dict[str, str]
    ledger: str = Field(pattern="^(basic|required|achieved)$")
    filters: dict[str, list[str]] | None = None
    strata: list[dict[str, Any]] | None = Field(default=None, max_length=51)
    inspectors: list[str] = Field(min_length=1, max_length=10_000)
    inspectors_per_enterprise: int = Field(ge=1, le=10)
    commitment: str = Field(pattern="^[0-9a-f]{64}$")


class RevealIn(BaseModel):
    secret: str = Field(min_length=32, max_length=128, pattern="^[0-9a-fA-F]+$")


class PlanTotals(BaseModel):
    enterprises: int
    required: int
    recorded: int
    behind: int
    key_supervision: int


class PlanItem(BaseModel):
    uscc: str
    name: str
    region_code: str
    grade_status: str
    grade_level: str | None
    required_per_year: int
    due_by_now: int
    recorded: int
    behind: bool
    supervision: dict[str, Any] = Field(description="the classified-supervision measure applied")


class SupervisionPlan(BaseModel):
    region: str
    year: int
    on: str
    totals: PlanTotals
    items: list[PlanItem]
    next: str | None = Field(description="cursor for `after`; null on the last page")


class DrawOut(BaseModel):
    draw_id: str
    requester: str
    status: str = Field(description="requested | completed | voided")
    request_index: int
    request: dict[str, Any]
    seed_checkpoint_size: int | None
    seed_checkpoint: str | None = Field(description="its signed note, cosignatures included")
    result_index: int | None
    result: dict[str, Any] | None
    verify: str = Field(description="the command that checks the draw offline")


class Drawn(BaseModel):
    uscc: str
    name: str | None


class PublicEntry(BaseModel):
    """A gateway log entry of the draw, whole (gateway entries are public), with its proof."""

    index: int
    type: str
    leaf_hash: str = Field(description="hex")
    jws: str
    tlog_proof: str = Field(description="c2sp.org/tlog-proof text")


class PublicDraw(BaseModel):
    draw_id: str
    status: str = Field(description="completed | voided")
    region_prefix: str
    period: dict[str, str]
    drawn: list[Drawn] = Field(description="empty for a voided draw")
    request: PublicEntry = Field(description="proved against the seed checkpoint")
    result: PublicEntry = Field(description="proved against `checkpoint`")
    seed_checkpoint: str | None = Field(description="signed note; null: a voided draw")
    checkpoint: str = Field(description="signed note covering the result")
    consistency: ConsistencyProof | None = Field(
        description="from the seed checkpoint to `checkpoint`; null without a seed"
    )
