"""The measure catalog and decision feedback: what the measures routes take and answer. The
catalog's records keep the catalog's own shape (contracts/data/measures.json,
contracts.measures), so they are objects here, described there."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class CatalogIn(BaseModel):
    records: list[Any] = Field(description="every measure record of the new catalog")
    products: list[Any] | None = Field(
        default=None,
        description="the premium products and how their floats combine (left out: the "
        "version in force's)",
    )
    schemes: list[Any] | None = Field(
        default=None,
        description="the grading schemes accepted (left out: the version in force's)",
    )
    findings: list[Any] | None = Field(
        default=None,
        description="the deducted items inspections may name (left out: the version in force's)",
    )


class MeasuresInForce(BaseModel):
    region: str
    on: str = Field(description="the day asked, ISO 8601")
    catalog_version: int | None = Field(description="null: the shipped catalog, unrecorded")
    measures: list[dict[str, Any]] = Field(description="catalog records in force (their source)")
    products: list[dict[str, Any]] = Field(description="premium product rules in force")
    schemes: list[dict[str, Any]]
    findings: list[dict[str, Any]]


class CatalogVersion(BaseModel):
    version: int
    sha256: str
    source: str
    created_at: str
    records: int = Field(description="how many measure records it holds")


class CatalogVersions(BaseModel):
    versions: list[CatalogVersion]


class CatalogPublished(BaseModel):
    version: int
    sha256: str
    records: int


FeedbackState = Literal["applied", "awaiting", "overdue"]


class Decision(BaseModel):
    message_id: str
    type: str
    issuer: str
    subject: str | None
    accepted_at: str


class MeasureReported(BaseModel):
    measure_code: str
    applied_on: str
    message_id: str


class AgencyFeedback(BaseModel):
    agency_id: str
    delivered_at: str | None
    measures: list[MeasureReported]
    state: FeedbackState


class DecisionFeedback(BaseModel):
    decision: Decision
    deadline: str = Field(description="the last working day to report, ISO 8601")
    agencies: list[AgencyFeedback]
    overdue: list[str]


class FeedbackOwedCounts(BaseModel):
    agency_id: str
    awaiting: int
    overdue: int
    applied: int


class FeedbackOwed(BaseModel):
    agency_id: str
    message_id: str
    type: str
    subject: str | None
    issuer: str
    accepted_at: str
    deadline: str
    state: FeedbackState


class FeedbackOverview(BaseModel):
    today: str
    deadline_working_days: int
    agencies: list[FeedbackOwedCounts]
    items: list[FeedbackOwed]
