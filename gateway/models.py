"""SQLAlchemy 2 typed mappings: every table of the gateway, in one module with one index.

ORM classes are storage only; API shapes live in each feature's `schemas.py`.

Kept whole rather than split per feature (issue 19 §3): one `Base` and one `MetaData` that
Alembic autogenerates against, and foreign keys that cross features (`enterprises` is read
by ledger, measures, supervision and delivery; `agencies` by nearly everything), which a
split would turn into imports between feature packages. At 30 small classes the index below
finds a table as fast as a package would.

| feature (package)            | classes (table)                                                   |
|------------------------------|-------------------------------------------------------------------|
| registry (`registry/`)       | Agency (agencies), AgencyKey (agency_keys),                       |
|                              | PublishRight (publish_rights), AccessRight (access_rights)        |
| access (`access/`)           | AgencyScope (agency_scopes), RateLimit (rate_limits),             |
|                              | UsedAssertion (used_assertions)                                   |
| queries (`queries/`)         | AccessRecord (access_records; refusals: `access/refusals.py`)     |
| log (`transparency/`)        | LogHead (log_head), LogEntry (log_entries), TreeNode (tree_nodes),|
|                              | Checkpoint (checkpoints), Cosignature (cosignatures),             |
|                              | WitnessStatus (witness_status)                                    |
| ledger (`ledger/`)           | Enterprise (enterprises), LedgerChange (ledger_changes),          |
|                              | Accident (accidents), Rectification (rectifications),             |
|                              | Listing (listings), Inspection (inspections)                      |
| supervision (`supervision/`) | Draw (draws); the plan reads inspections                          |
| measures (`measures/`)       | MeasureCatalog (measure_catalogs), MeasureApplied                 |
|                              | (measures_applied)                                                |
| delivery (`delivery/`)       | Subscription (subscriptions), Delivery (deliveries),              |
|                              | DeliveryHead (delivery_heads), DeliveryHour (delivery_hours),     |
|                              | DeliveryAttempt (delivery_attempts), ConsumerReceipt              |
|                              | (consumer_receipts)                                               |
| console (`console/`)         | ConsoleSession (console_sessions)                                 |

Shared column type: `UTCDateTime` (timezone-aware, stored UTC). `table_of` types a model's
`__table__` for Core statements.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    SmallInteger,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware timestamps on both backends (SQLite stores them naive, in UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime refused: the gateway stores aware UTC timestamps")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        assert isinstance(value, dt.datetime)
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


# --- agency registry -------------------------------------------------------------------------


class Agency(Base):
    __tablename__ = "agencies"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    uscc: Mapped[str] = mapped_column(String(18))
    roles: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    # active | disabled: a disabled agency gets no token, its tokens are refused, its
    # messages too (gateway agency disable; each change a log entry)
    status: Mapped[str] = mapped_column(String(16), default="active", server_default="active")
    status_changed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    status_reason: Mapped[str | None] = mapped_column(String(500))


class AgencyKey(Base):
    __tablename__ = "agency_keys"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    agency_id: Mapped[str] = mapped_column(ForeignKey("agencies.id"), index=True)
    suite: Mapped[str] = mapped_column(String(16))
    jwk: Mapped[dict[str, str]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16))  # active | retired | revoked
    valid_from: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    valid_to: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    revocation_reason: Mapped[str | None] = mapped_column(String(500))


class PublishRight(Base):
    """Deny by default: an agency publishes a type only if a row says so."""

    __tablename__ = "publish_rights"

    agency_id: Mapped[str] = mapped_column(ForeignKey("agencies.id"), primary_key=True)
    message_type: Mapped[str] = mapped_column(String(64), primary_key=True)


# --- the log ---------------------------------------------------------------------------------


class LogHead(Base):
    """One row; its lock serialises appends so indexes have no gaps or duplicates."""

    __tablename__ = "log_head"

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)


class LogEntry(Base):
    __tablename__ = "log_entries"
    __table_args__ = (
        Index("ix_log_entries_accepted_at", "accepted_at"),
        Index("ix_log_entries_type", "type"),  # the decisions that owe feedback
    )

    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(16))  # message | gateway
    message_id: Mapped[str] = mapped_column(String(36), unique=True)
    type: Mapped[str] = mapped_column(String(64))
    issuer: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str | None] = mapped_column(String(18), index=True)
    issued_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    accepted_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    jws: Mapped[bytes] = mapped_column(LargeBinary)  # the exact bytes received: the leaf
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    receipt: Mapped[str] = mapped_column(Text)


class Checkpoint(Base):
    """Signed checkpoints, one per tree size ever signed: never two roots for one size."""

    __tablename__ = "checkpoints"

    size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    root: Mapped[bytes] = mapped_column(LargeBinary(32))
    note: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class WitnessStatus(Base):
    """What the gateway knows of each configured witness (for the next old size, and health)."""

    __tablename__ = "witness_status"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    cosigned_size: Mapped[int] = mapped_column(BigInteger, default=0)
    cosigned_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    attempted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(String(500))


class Cosignature(Base):
    """A witness's verified cosignature line over the checkpoint of one size."""

    __tablename__ = "cosignatures"

    size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    witness: Mapped[str] = mapped_column(String(200), primary_key=True)
    line: Mapped[str] = mapped_column(Text)
    signed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class TreeNode(Base):
    """Hash of the perfect subtree of 2**level leaves starting at leaf idx * 2**level."""

    __tablename__ = "tree_nodes"

    level: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))


# --- enterprises and ledgers -----------------------------------------------------------------


class Enterprise(Base):
    __tablename__ = "enterprises"
    __table_args__ = (
        Index("ix_enterprises_region_code", "region_code"),
        Index("ix_enterprises_grade", "grade_status", "grade_level"),
    )

    uscc: Mapped[str] = mapped_column(String(18), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    region_code: Mapped[str] = mapped_column(String(6))
    industry_section: Mapped[str] = mapped_column(String(1))
    scheme: Mapped[str] = mapped_column(String(32))
    required: Mapped[bool] = mapped_column(Boolean)
    ledger_status: Mapped[str] = mapped_column(String(8))  # 新增 | 达标 | 未达标
    registered_on: Mapped[dt.date] = mapped_column(Date)
    grade_status: Mapped[str] = mapped_column(String(8))  # none | active | revoked | expired
    grade_level: Mapped[str | None] = mapped_column(String(16))
    grade_scheme: Mapped[str | None] = mapped_column(String(32))
    grade_authority: Mapped[str | None] = mapped_column(String(16))
    grade_valid_from: Mapped[dt.date | None] = mapped_column(Date)
    grade_valid_to: Mapped[dt.date | None] = mapped_column(Date)
    # the start of the grade held without a break (its award; renewals keep it)
    grade_held_since: Mapped[dt.date | None] = mapped_column(Date)
    reapply_after: Mapped[dt.date | None] = mapped_column(Date)
    certificate_no: Mapped[str | None] = mapped_column(String(100))
    announcement_no: Mapped[str | None] = mapped_column(String(100))
    self_assessment_year: Mapped[int | None] = mapped_column(Integer)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    last_index: Mapped[int] = mapped_column(BigInteger)
    legal_representative: Mapped[str | None] = mapped_column(String(100))  # 法定代表人
    address: Mapped[str | None] = mapped_column(String(300))
    # 新增 lasts until this day (exclusive) for an enterprise that holds no grade: registration
    # or inclusion in the required ledger + the policy's new_status_months (domain.md §4)
    new_until: Mapped[dt.date | None] = mapped_column(Date)
    closed_on: Mapped[dt.date | None] = mapped_column(Date)  # 注销 / 吊销
    closure: Mapped[str | None] = mapped_column(String(32))  # deregistered | licence_revoked
    grade_awarded_by: Mapped[str | None] = mapped_column(String(64))  # the awarding agency
    # the grade's last decision as documents show it: type, number, date, reason, message id
    grade_decision: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class LedgerChange(Base):
    """Full history of ledger movements: who, when, which message, and why."""

    __tablename__ = "ledger_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    uscc: Mapped[str] = mapped_column(ForeignKey("enterprises.uscc"), index=True)
    ledger: Mapped[str] = mapped_column(String(16))  # basic | required | achieved
    change: Mapped[str] = mapped_column(String(16))  # entered | left | updated
    from_status: Mapped[str | None] = mapped_column(String(8))
    to_status: Mapped[str | None] = mapped_column(String(8))
    from_level: Mapped[str | None] = mapped_column(String(16))
    to_level: Mapped[str | None] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(64))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    message_id: Mapped[str] = mapped_column(String(36))
    log_index: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(500))


class Accident(Base):
    __tablename__ = "accidents"

    uscc: Mapped[str] = mapped_column(ForeignKey("enterprises.uscc"), primary_key=True)
    accident_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    occurred_on: Mapped[dt.date] = mapped_column(Date)
    accident_class: Mapped[str] = mapped_column(String(20))
    deaths: Mapped[int] = mapped_column(Integer)
    serious_injuries: Mapped[int] = mapped_column(Integer)
    direct_loss_cny: Mapped[Decimal] = mapped_column(Numeric(18, 2))
    message_id: Mapped[str] = mapped_column(String(36))


class Rectification(Base):
    __tablename__ = "rectifications"

    uscc: Mapped[str] = mapped_column(ForeignKey("enterprises.uscc"), primary_key=True)
    rectification_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    # hazard | safety_conditions_degraded | system_not_running (the seed's 四（二）)
    kind: Mapped[str] = mapped_column(String(32))
    hazard_level: Mapped[str | None] = mapped_column(String(16))  # for kind hazard
    ordered_on: Mapped[dt.date] = mapped_column(Date)
    deadline: Mapped[dt.date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16))  # ordered | overdue | passed | failed
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    message_id: Mapped[str] = mapped_column(String(36))
    verified_on: Mapped[dt.date | None] = mapped_column(Date)  # the last re-check
    verification_message_id: Mapped[str | None] = mapped_column(String(36))


class Listing(Base):
    __tablename__ = "listings"

    uscc: Mapped[str] = mapped_column(ForeignKey("enterprises.uscc"), primary_key=True)
    listing_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    list_type: Mapped[str] = mapped_column(String(8))
    deciding_agency: Mapped[str] = mapped_column(String(64))
    term_start: Mapped[dt.date] = mapped_column(Date)
    term_end: Mapped[dt.date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(8))  # active | removed
    removed_on: Mapped[dt.date | None] = mapped_column(Date)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    message_id: Mapped[str] = mapped_column(String(36))
    # term_ended | early_removal | repealed, and the listing.removed data (credit repair facts)
    removal_reason: Mapped[str | None] = mapped_column(String(16))
    removal: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class Inspection(Base):
    """An inspection of an enterprise (四（二）): kind, day, draw, inspectors, findings."""

    __tablename__ = "inspections"
    __table_args__ = (Index("ix_inspections_inspected_on", "inspected_on"),)

    uscc: Mapped[str] = mapped_column(ForeignKey("enterprises.uscc"), primary_key=True)
    inspection_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    inspected_on: Mapped[dt.date] = mapped_column(Date)
    draw_id: Mapped[str | None] = mapped_column(String(64))
    inspectors: Mapped[list[str]] = mapped_column(JSON)
    findings: Mapped[dict[str, Any]] = mapped_column(JSON)
    message_id: Mapped[str] = mapped_column(String(36))


class Draw(Base):
    """A random draw (双随机): the resolved request as logged, the candidates it was drawn
    from (not logged: the request commits to their digest), then its result or its voiding."""

    __tablename__ = "draws"

    draw_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    requester: Mapped[str] = mapped_column(String(64))
    request_index: Mapped[int] = mapped_column(BigInteger)
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    candidates: Mapped[list[str]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16))  # requested | completed | voided
    requested_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    seed_checkpoint_size: Mapped[int | None] = mapped_column(BigInteger)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    result_index: Mapped[int | None] = mapped_column(BigInteger)
    resolved_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class MeasureApplied(Base):
    """Feedback (发起—响应—反馈): which agency applied which measure to which decision."""

    __tablename__ = "measures_applied"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    decision_message_id: Mapped[str] = mapped_column(String(36), index=True)
    agency_id: Mapped[str] = mapped_column(String(64))
    uscc: Mapped[str] = mapped_column(String(18))
    measure_code: Mapped[str] = mapped_column(String(64))
    applied_on: Mapped[dt.date] = mapped_column(Date)
    message_id: Mapped[str] = mapped_column(String(36), unique=True)


# --- delivery ---------------------------------------------------------------------------------


class Subscription(Base):
    """What an agency receives: message types, filters, view, signing, endpoint and status."""

    __tablename__ = "subscriptions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    agency_id: Mapped[str] = mapped_column(ForeignKey("agencies.id"), index=True)
    url: Mapped[str | None] = mapped_column(String(500))  # None: pull feed only
    types: Mapped[list[str]] = mapped_column(JSON)
    region_prefix: Mapped[str | None] = mapped_column(String(6))
    industry_section: Mapped[str | None] = mapped_column(String(1))
    grade_level: Mapped[str | None] = mapped_column(String(16))
    view: Mapped[str] = mapped_column(String(32))  # full | notice
    signing: Mapped[list[str]] = mapped_column(JSON)  # ["v1a"], ["v1"], or both
    hmac_secret: Mapped[str | None] = mapped_column(String(100))  # whsec_…, for v1
    status: Mapped[str] = mapped_column(String(16))  # active | paused | disabled
    status_reason: Mapped[str | None] = mapped_column(String(300))
    retry_schedule: Mapped[list[float]] = mapped_column(JSON)  # seconds after each failure
    acked_index: Mapped[int] = mapped_column(BigInteger, default=-1)  # pull feed cursor
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    # Secret rotation: the previous secret still signs (a second v1 signature) until then.
    previous_hmac_secret: Mapped[str | None] = mapped_column(String(100))
    previous_valid_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # Circuit breaker, shared by all workers: consecutive failures and when it closes again.
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    breaker_open_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # Rate limit (deliveries per second, None = unlimited) as a token bucket all workers share.
    rate_limit: Mapped[float | None] = mapped_column(Float)
    rate_tokens: Mapped[float | None] = mapped_column(Float)
    rate_tokens_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # How many deliveries were ever queued: each gets the next number (its `subseq`).
    queued: Mapped[int] = mapped_column(BigInteger, default=0)


class Delivery(Base):
    """One message for one subscription: the transactional outbox row and its progress."""

    __tablename__ = "deliveries"
    __table_args__ = (
        Index("ix_deliveries_due", "status", "next_attempt_at"),
        # What the claim's "no earlier pending delivery for this enterprise" probe reads: a
        # partial index, so the probe is one index lookup whatever the planner's statistics.
        Index(
            "ix_deliveries_pending_order",
            "subscription_id",
            "uscc",
            "log_index",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
        # Where a queue's head moves to: its first dead or parked delivery (few rows)
        Index(
            "ix_deliveries_stuck_order",
            "subscription_id",
            "uscc",
            "log_index",
            postgresql_where=text("status IN ('dead', 'parked')"),
            sqlite_where=text("status IN ('dead', 'parked')"),
        ),
        UniqueConstraint("subscription_id", "log_index", name="uq_deliveries_subscription_entry"),
        Index("ix_deliveries_message_id", "message_id"),  # one message's deliveries
        Index("ix_deliveries_subscription_status", "subscription_id", "status"),  # the counts
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    subscription_id: Mapped[str] = mapped_column(ForeignKey("subscriptions.id"))
    log_index: Mapped[int] = mapped_column(BigInteger)
    message_id: Mapped[str] = mapped_column(String(36))
    uscc: Mapped[str] = mapped_column(String(18))
    subseq: Mapped[int] = mapped_column(BigInteger, default=0)  # 1, 2, 3 … per subscription
    # pending | delivered | dead | parked | skipped | withheld (its right was withdrawn)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    claimed_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(String(500))


class DeliveryHead(Base):
    """The head of one (subscription, enterprise) queue: its earliest delivery that is pending,
    dead or parked, kept as deliveries are queued and their results recorded
    (gateway.delivery.heads), so that a claim reads the due heads instead of grouping every
    pending delivery. A queue with nothing pending, dead or parked has no row."""

    __tablename__ = "delivery_heads"
    # the claim's walk: due heads, longest due first (a stuck head has no due time)
    __table_args__ = (Index("ix_delivery_heads_due", "due_at", "log_index"),)

    subscription_id: Mapped[str] = mapped_column(ForeignKey("subscriptions.id"), primary_key=True)
    uscc: Mapped[str] = mapped_column(String(18), primary_key=True)
    log_index: Mapped[int] = mapped_column(BigInteger)  # with subscription_id: the delivery
    # when a worker may claim it next: its next attempt, or the end of the lease a worker
    # holds; None while it is dead or parked (the queue waits for an operator)
    due_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class DeliveryHour(Base):
    """A subscription's push attempts counted per hour as the workers record them, so that the
    last 24 hours' health reads 25 rows a subscription instead of every attempt."""

    __tablename__ = "delivery_hours"

    subscription_id: Mapped[str] = mapped_column(ForeignKey("subscriptions.id"), primary_key=True)
    hour: Mapped[dt.datetime] = mapped_column(UTCDateTime, primary_key=True)  # UTC, on the hour
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    succeeded: Mapped[int] = mapped_column(Integer, default=0)
    latency_ms_sum: Mapped[float] = mapped_column(Float, default=0.0)
    last_failed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(String(500))


class DeliveryAttempt(Base):
    """Every attempt, as it happened: status, latency, error class, response excerpt."""

    __tablename__ = "delivery_attempts"
    __table_args__ = (Index("ix_delivery_attempts_at", "at"),)  # the last 24 hours' health

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("deliveries.id"), index=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    status_code: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[float] = mapped_column(Numeric(10, 1))
    error_class: Mapped[str | None] = mapped_column(String(32))
    response_excerpt: Mapped[str | None] = mapped_column(String(500))
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class ConsumerReceipt(Base):
    """A receiver's signed acknowledgement (compact JWS over message id and leaf hash)."""

    __tablename__ = "consumer_receipts"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("deliveries.id"))
    message_id: Mapped[str] = mapped_column(String(36), index=True)
    agency_id: Mapped[str] = mapped_column(String(64))
    kid: Mapped[str] = mapped_column(String(64))
    jws: Mapped[str] = mapped_column(Text)
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


# --- access -----------------------------------------------------------------------------------


class AgencyScope(Base):
    """An OAuth scope an agency's tokens may carry (deny by default)."""

    __tablename__ = "agency_scopes"

    agency_id: Mapped[str] = mapped_column(ForeignKey("agencies.id"), primary_key=True)
    scope: Mapped[str] = mapped_column(String(32), primary_key=True)


class MeasureCatalog(Base):
    """One version of the measure catalog (the newest is in force); each is also a
    `gateway.catalog.published` entry in the log, at `log_index`: a message's documents read
    the version in force at the message's own index."""

    __tablename__ = "measure_catalogs"

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    sha256: Mapped[str] = mapped_column(String(64))
    records: Mapped[list[Any]] = mapped_column(JSON)
    source: Mapped[str] = mapped_column(String(16))  # shipped | operator
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    # Its entry's index; nullable as the row is flushed before the entry is appended.
    log_index: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class AccessRight(Base):
    """What an agency may subscribe to (action `subscribe`, contract = a message type) or query
    (action `query`, contract `standing` or `grade_history`), and the fields it sees there:
    `fields` NULL is the whole contract, else the list of field names of its view (deny by
    default: no row, no access)."""

    __tablename__ = "access_rights"

    agency_id: Mapped[str] = mapped_column(ForeignKey("agencies.id"), primary_key=True)
    action: Mapped[str] = mapped_column(String(16), primary_key=True)
    contract: Mapped[str] = mapped_column(String(64), primary_key=True)
    fields: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)


class RateLimit(Base):
    """An agency's own request rate (tokens per second, burst); others get the default."""

    __tablename__ = "rate_limits"

    agency_id: Mapped[str] = mapped_column(ForeignKey("agencies.id"), primary_key=True)
    per_second: Mapped[float] = mapped_column(Float)
    burst: Mapped[int] = mapped_column(Integer)


class UsedAssertion(Base):
    """Client-assertion `jti`s already seen, kept until the assertion expires (RFC 7523 §3)."""

    __tablename__ = "used_assertions"

    jti: Mapped[str] = mapped_column(String(200), primary_key=True)
    agency_id: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)


class AccessRecord(Base):
    """Append-only: who asked about which enterprise, when, why, and what they got. A refusal
    repeated within its window is one row: `count` times, first `at`, last `last_at`, from
    `address` (gateway.access.refusals); only its count and last time grow."""

    __tablename__ = "access_records"
    __table_args__ = (Index("ix_access_records_uscc_at", "uscc", "at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    agency_id: Mapped[str | None] = mapped_column(String(64))  # None: no valid token
    uscc: Mapped[str | None] = mapped_column(String(18))
    action: Mapped[str] = mapped_column(String(32))  # query | batch_query | feed
    purpose: Mapped[str | None] = mapped_column(String(200))
    result: Mapped[str] = mapped_column(String(48))  # ok | the problem code
    address: Mapped[str | None] = mapped_column(String(64))  # the client's, for refusals
    count: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    last_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)  # None: only `at`


class ConsoleSession(Base):
    """A browser session of the console (gateway.console.sessions), opened by a one-time
    login link: the cookie's SHA-256 (never the cookie), its agency, when it ends, and the
    link that opened it (unique: a link opens one session, even once that one has ended)."""

    __tablename__ = "console_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    agency_id: Mapped[str] = mapped_column(ForeignKey("agencies.id"))
    link_id: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


def table_of(model: type[Base]) -> Table:
    """A model's Table, typed as one (SQLAlchemy 2.1 types `__table__` as any FromClause)."""
    table = model.__table__
    if not isinstance(table, Table):
        raise TypeError(f"{model.__name__} is not mapped to a Table")
    return table
