"""Accept a batch of published JWS in one transaction and answer per item.

Order per item: stateless verification (signature, contract, rights), idempotency against the
log, domain rules against enterprise state, then append + apply + receipt. A single publish is a
batch of one. Nothing is written for an item that fails, and nothing at all until commit.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from contracts.registry import ContractError, parse_json
from gateway.bulk import BulkInsert, Writes
from gateway.delivery.outbox import Accepted, enqueue
from gateway.errors import Conflict, GatewayError
from gateway.groups import GroupWorker
from gateway.ledger.apply import apply_message
from gateway.ledger.state import (
    Applied,
    BatchMessage,
    EnterpriseState,
    prefetch_enterprises,
    write_enterprises,
)
from gateway.models import Agency, AgencyKey, LedgerChange, LogEntry, PublishRight, table_of
from gateway.publishing.verify import KeyCache, KeyRecord, Verified, peek_kid, verify_message
from gateway.signing import RECEIPT_TYP, GatewaySigner
from gateway.transparency.tlog import Appender
from keys.jws import JWSError, ParsedJWS, parse_compact


@dataclass(frozen=True)
class Outcome:
    """201 first acceptance, 200 identical resend, else the error that refused the item."""

    status: int
    message_id: str | None = None
    index: int | None = None
    leaf_hash: str | None = None
    receipt: str | None = None
    error: GatewayError | None = None
    message_type: str | None = None  # when the envelope could be read (metrics)


# Single publishes from the API, group-committed: the event loop hands each (JWS, the caller's
# agency) to one thread that publishes every waiting message in one transaction and answers
# each after the commit. A transaction that fails stores none of its messages; unless the
# database is down, they are then published apart (Runtime.publish), so only a message that
# fails alone is answered 500.
Publisher = GroupWorker[tuple[bytes, str | None], Outcome]
PublishMany = Callable[[Sequence[bytes], Sequence[int], Sequence[str | None]], list[Outcome]]


def group_publisher(publish: PublishMany, max_group: int = 256) -> Publisher:
    """The thread publishing single messages in groups through `publish` (Runtime.publish)."""

    def serve(items: Sequence[tuple[bytes, str | None]]) -> list[Outcome]:
        return publish([raw for raw, _ in items], (), [caller for _, caller in items])

    return GroupWorker("publishing", serve, max_group)


@dataclass(frozen=True)
class StoredEntry:
    """The columns of a log entry that idempotency and receipts need."""

    message_id: str
    idx: int
    jws: bytes
    leaf_hash: bytes
    receipt: str
    subject: str | None


@dataclass
class PublishContext:
    signer: GatewaySigner
    key_cache: KeyCache
    max_skew: dt.timedelta
    log_origin: str


@dataclass
class _Batch:
    """What one transaction accumulates before its bulk inserts."""

    existing: dict[str, StoredEntry]
    known: dict[str, EnterpriseState]
    appender: Appender
    entries: list[dict[str, object]] = field(default_factory=list)
    ledger_changes: list[dict[str, object]] = field(default_factory=list)
    messages: dict[str, BatchMessage] = field(default_factory=dict)
    accepted: list[Accepted] = field(default_factory=list)


def publish_batch(
    session: Session,
    raws: Sequence[bytes],
    ctx: PublishContext,
    now: dt.datetime,
    callers: Sequence[str | None] | None = None,
) -> list[Outcome]:
    """`callers[i]` is the token agency item i came with; its key must be that agency's."""
    peeked: list[tuple[ParsedJWS, str] | GatewayError] = []
    for raw in raws:
        try:
            peeked.append(peek_kid(raw))
        except GatewayError as exc:
            peeked.append(exc)
    keys, rights = _load_registry(session, {p[1] for p in peeked if isinstance(p, tuple)})
    outcomes: list[Outcome | None] = [None] * len(raws)
    verified: list[tuple[int, Verified]] = []
    for position, raw in enumerate(raws):
        try:
            peek = peeked[position]
            if isinstance(peek, GatewayError):
                raise peek
            item = verify_message(
                raw,
                peeked=peek,
                keys=keys,
                rights=rights,
                cache=ctx.key_cache,
                now=now,
                max_skew=ctx.max_skew,
                caller=callers[position] if callers is not None else None,
            )
        except GatewayError as exc:
            outcomes[position] = _resend_or(session, raw, exc)
            continue
        verified.append((position, item))

    if verified:
        # The log head is locked first: on PostgreSQL (READ COMMITTED) the duplicate check
        # and the enterprises' state must be read after every earlier publish has committed,
        # or a concurrent revocation is overwritten by a stale state and a concurrent resend
        # of the same message fails on the unique message id instead of getting its receipt.
        appender = Appender(session)
        batch = _Batch(
            existing=_existing_entries(session, [v.message_id for _, v in verified]),
            known=prefetch_enterprises(session, {str(v.envelope["subject"]) for _, v in verified}),
            appender=appender,
        )
        for position, item in verified:
            outcomes[position] = _accept_one(session, item, batch, ctx, now)
        _write(session, batch, now)
    return [o for o in outcomes if o is not None]


def _write(session: Session, batch: _Batch, now: dt.datetime) -> None:
    """Enterprise rows first, then the ORM's rows and the bulk rows that refer to them, then
    the outbox: delivery rows commit with the messages they deliver, or not at all."""
    write_enterprises(session, batch.known)
    session.flush()
    # Core: the ORM's bulk path cost more per statement. On PostgreSQL the rest goes as one
    # statement (gateway.bulk.Writes): none of it reads what another part writes.
    writes = Writes(session.connection())
    writes.add(_INSERT_ENTRIES, batch.entries)
    writes.add(_INSERT_CHANGES, batch.ledger_changes)
    batch.appender.finish(writes)
    enqueue(session, batch.accepted, now, writes)
    writes.send()


def _accept_one(
    session: Session, item: Verified, batch: _Batch, ctx: PublishContext, now: dt.datetime
) -> Outcome:
    message_type = str(item.envelope["type"])
    prior = batch.existing.get(item.message_id)
    if prior is not None:
        if prior.jws == item.raw:
            return _outcome(200, prior, message_type)
        return Outcome(
            409,
            item.message_id,
            error=Conflict(
                "duplicate_conflict",
                f"message {item.message_id} was already accepted with different bytes",
                index=prior.idx,
            ),
            message_type=message_type,
        )
    # Handlers check every rule before they change anything, so a refusal needs no savepoint.
    subject = str(item.envelope["subject"])
    before = batch.known[subject].grade_level if subject in batch.known else None
    changes: list[dict[str, object]] = []
    try:
        apply_message(
            session,
            Applied(
                envelope=item.envelope,
                index=batch.appender.size,
                now=now,
                enterprises=batch.known,
                ledger_changes=changes,
                batch_messages=batch.messages,
            ),
        )
    except GatewayError as exc:
        return Outcome(exc.status_code, item.message_id, error=exc, message_type=message_type)
    batch.ledger_changes.extend(changes)
    index, leaf = batch.appender.append(item.raw)
    batch.accepted.append(
        Accepted.of(
            index,
            item.message_id,
            message_type,
            subject,
            before,
            batch.known.get(subject),
        )
    )
    receipt = sign_receipt(ctx, item, index, leaf, now)
    batch.entries.append(
        {
            "idx": index,
            "kind": "message",
            "message_id": item.message_id,
            "type": message_type,
            "issuer": str(item.envelope["issuer"]),
            "subject": subject,
            "issued_at": item.issued_at,
            "accepted_at": now,
            "jws": item.raw,
            "leaf_hash": leaf,
            "receipt": receipt,
        }
    )
    stored = StoredEntry(item.message_id, index, item.raw, leaf, receipt, subject)
    batch.existing[item.message_id] = stored
    batch.messages[item.message_id] = BatchMessage(
        subject, message_type, item.issued_at, item.envelope["data"]
    )
    return _outcome(201, stored, message_type)


def sign_receipt(
    ctx: PublishContext, item: Verified, index: int, leaf: bytes, now: dt.datetime
) -> str:
    """The gateway's receipt of an accepted message (protocol.md §2): a compact JWS by the
    receipt key over its id, log index, leaf hash (hex), acceptance time, issuer, type,
    subject and the log's origin."""
    return ctx.signer.sign(
        {
            "message_id": item.message_id,
            "index": index,
            "leaf_hash": leaf.hex(),
            "accepted_at": now.isoformat(),
            "issuer": item.envelope["issuer"],
            "type": item.envelope["type"],
            "subject": str(item.envelope["subject"]),
            "log": ctx.log_origin,
        },
        RECEIPT_TYP,
    )


def _outcome(status: int, entry: StoredEntry | LogEntry, message_type: str | None) -> Outcome:
    return Outcome(
        status,
        entry.message_id,
        index=entry.idx,
        leaf_hash=entry.leaf_hash.hex(),
        receipt=entry.receipt,
        message_type=message_type,
    )


def _resend_or(session: Session, raw: bytes, error: GatewayError) -> Outcome:
    """An identical resend is answered with its receipt even if the key has since changed:
    found by the message id its payload names (an indexed lookup), then compared byte for
    byte."""
    if error.code in ("key_revoked", "key_not_valid", "not_permitted", "agency_disabled"):
        message_id = _claimed_message_id(raw)
        found = (
            session.scalars(select(LogEntry).where(LogEntry.message_id == message_id)).first()
            if message_id is not None
            else None
        )
        if found is not None and found.kind == "message" and found.jws == raw:
            return _outcome(200, found, None)
    return Outcome(error.status_code, error=error)


_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def _claimed_message_id(raw: bytes) -> str | None:
    """The `id` an unverified JWS payload names, as stored (lower case); None if unreadable."""
    try:
        envelope = parse_json(parse_compact(raw).payload)
    except (JWSError, ContractError):
        return None
    claimed = envelope.get("id") if isinstance(envelope, dict) else None
    # Only what could be a stored id (a UUID) is looked up: anything else was never stored,
    # and text the database refuses (U+0000) must not turn this item's refusal into an error
    # of the whole transaction.
    if isinstance(claimed, str) and _UUID.fullmatch(claimed):
        return claimed.lower()
    return None


# Built once: a group of single publishes runs these whatever its size, and building a
# statement (and its cache key) per group cost more than running it (bench/profile_publish.py).
_REGISTRY = (
    select(
        AgencyKey.kid,
        AgencyKey.agency_id,
        AgencyKey.suite,
        AgencyKey.jwk,
        AgencyKey.status,
        AgencyKey.valid_from,
        AgencyKey.valid_to,
        Agency.status,
        PublishRight.message_type,
    )
    .join(Agency, Agency.id == AgencyKey.agency_id)
    .outerjoin(PublishRight, PublishRight.agency_id == AgencyKey.agency_id)
    .where(AgencyKey.kid.in_(bindparam("kids", expanding=True)))
)
_EXISTING = select(
    LogEntry.message_id,
    LogEntry.idx,
    LogEntry.jws,
    LogEntry.leaf_hash,
    LogEntry.receipt,
    LogEntry.subject,
).where(LogEntry.message_id.in_(bindparam("ids", expanding=True)))
_INSERT_ENTRIES = BulkInsert(table_of(LogEntry))
_INSERT_CHANGES = BulkInsert(table_of(LedgerChange))


def _load_registry(
    session: Session, kids: set[str]
) -> tuple[dict[str, KeyRecord], dict[str, frozenset[str]]]:
    """The keys named and their owners' publish rights, in one statement."""
    keys: dict[str, KeyRecord] = {}
    rights: dict[str, set[str]] = {}
    if kids:
        for row in session.connection().execute(_REGISTRY, {"kids": sorted(kids)}):
            kid, agency_id, *_, message_type = row  # by position: see measures.EnterpriseFacts
            if kid not in keys:
                keys[kid] = KeyRecord(*row[:8])
            granted = rights.setdefault(agency_id, set())
            if message_type is not None:
                granted.add(message_type)
    return keys, {a: frozenset(t) for a, t in rights.items()}


def _existing_entries(session: Session, ids: list[str]) -> dict[str, StoredEntry]:
    found: dict[str, StoredEntry] = {}
    connection = session.connection()
    for chunk_start in range(0, len(ids), 500):
        chunk = ids[chunk_start : chunk_start + 500]
        for row in connection.execute(_EXISTING, {"ids": chunk}):
            found[row.message_id] = StoredEntry(*row)
    return found
