"""Random draws nobody can steer (双随机一公开, issue 21 §4): a supervisor's request resolved
against the ledger and committed to the log, the seed taken from the first signed checkpoint
after it and the supervisor's revealed secret, the result logged. The algorithm and the
threat model are docs/draws.md; the pure steps are keys.draws / keys.draw_records, which a
third party runs over the log alone (`gateway draw verify`)."""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from contracts.catalog import shipped_document
from contracts.dates import local_date
from contracts.ledgers import grade_held_on
from contracts.measures import applicable
from contracts.supervision import ROLE, supervision_of
from gateway.errors import Conflict, Forbidden, NotFound, Unprocessable
from gateway.measures.catalog import active_catalog
from gateway.measures.service import standing_facts
from gateway.models import Agency, Checkpoint, Cosignature, Draw, Enterprise, LogEntry
from gateway.registry.service import append_gateway_entry
from gateway.signing import GatewaySigner
from gateway.transparency.checkpoints import with_cosignatures
from gateway.transparency.tlog import Appender
from keys.draw_records import (
    COMPLETED_TYPE,
    REQUESTED_TYPE,
    VOIDED_TYPE,
    DrawFormatError,
    DrawRequest,
    draw_candidates,
    draw_result,
    resolve_request,
)
from keys.draws import DrawError, derive_seed
from keys.ledger_fold import LedgerFacts

# A request's members a supervisor sends; the gateway fills in the rest (docs/draws.md §2).
REQUEST_FIELDS = frozenset(
    {
        "draw_id",
        "region_prefix",
        "period",
        "ledger",
        "filters",
        "strata",
        "inspectors",
        "inspectors_per_enterprise",
        "commitment",
    }
)
MAX_STRATA = 50
MAX_INSPECTORS = 10_000


def ledger_facts(session: Session, on: dt.date) -> dict[str, LedgerFacts]:
    """The ledger on `on` as keys.ledger_fold.LedgerFacts, read from the enterprises table:
    what the log alone gives (gateway draw verify checks they agree)."""
    found: dict[str, LedgerFacts] = {}
    rows = session.execute(
        select(
            Enterprise.uscc,
            Enterprise.region_code,
            Enterprise.industry_section,
            Enterprise.scheme,
            Enterprise.required,
            Enterprise.closed_on,
            Enterprise.grade_status,
            Enterprise.grade_level,
            Enterprise.grade_scheme,
            Enterprise.grade_valid_to,
            Enterprise.grade_held_since,
        ).execution_options(yield_per=2000)
    )
    for (
        code,
        region,
        section,
        scheme,
        required,
        closed_on,
        status,
        level,
        gscheme,
        to,
        since,
    ) in rows:
        held = grade_held_on(status, to, closed_on, on, since)
        found[code] = LedgerFacts(
            code,
            region,
            section,
            (gscheme or scheme) if held else scheme,
            bool(required),
            closed_on is not None and closed_on <= on,
            level if held else None,
            held,
        )
    return found


def _supervisor(session: Session, agency_id: str) -> None:
    roles = session.scalar(select(Agency.roles).where(Agency.id == agency_id)) or []
    if ROLE not in roles:
        raise Forbidden("role_required", f"draws are a {ROLE}'s; {agency_id} is not one")


def request_draw(
    session: Session,
    signer: GatewaySigner,
    requester: str,
    body: Mapping[str, Any],
    now: dt.datetime,
) -> tuple[Draw, bool]:
    """Resolve and log a draw request; (its row, True if new). The same draw_id with the
    same request answers the stored one; with another request, 409 draw_conflict."""
    _supervisor(session, requester)
    unknown = sorted(set(body) - REQUEST_FIELDS)
    if unknown:
        raise Unprocessable("invalid_draw", f"unknown member {unknown[0]!r} in a draw request")
    draw_id = str(body.get("draw_id", ""))
    existing = session.get(Draw, draw_id)
    appender = Appender(session)  # the log head locked: the ledger read is the log's now
    today = local_date(now)
    sent = {**body, "requester": requester, "on": today.isoformat()}
    if existing is not None:
        if _as_sent(existing.request) == _as_sent(sent):
            return existing, False
        raise Conflict("draw_conflict", f"draw {draw_id} was requested with other parameters")
    period = body.get("period")
    if not isinstance(period, Mapping) or str(period.get("from", "")) < today.isoformat():
        raise Unprocessable(
            "rule_violation",
            f"a draw is for a period from today ({today}) on, not one already begun or past",
            pointer="/period",
        )
    facts = ledger_facts(session, today)
    data = dict(sent)
    data.setdefault("filters", {})
    if "strata" not in body:
        data["strata"] = default_strata(session, body, facts, today)
    elif not isinstance(body["strata"], list) or not body["strata"]:
        raise Unprocessable("invalid_draw", "strata: at least one stratum", pointer="/strata")
    else:
        data["strata"] = [_sized(s, facts, data) for s in body["strata"][: MAX_STRATA + 1]]
        if len(data["strata"]) > MAX_STRATA:
            raise Unprocessable("invalid_draw", f"at most {MAX_STRATA} strata", pointer="/strata")
    if len(body.get("inspectors") or []) > MAX_INSPECTORS:
        raise Unprocessable("invalid_draw", f"at most {MAX_INSPECTORS} inspectors")
    completed = [
        d.result
        for d in session.scalars(
            select(Draw).where(Draw.status == "completed").order_by(Draw.request_index)
        )
        if d.result is not None
    ]
    try:
        request = resolve_request(data, facts, completed)
    except DrawFormatError as exc:
        raise Unprocessable("invalid_draw", str(exc)) from exc
    except DrawError as exc:
        raise Unprocessable(getattr(exc, "code", "draw_not_possible"), str(exc)) from exc
    if request.beacon is not None:
        raise Unprocessable("invalid_draw", "this gateway takes no public beacon")
    codes = _candidates(request, facts)
    index = append_gateway_entry(
        session, signer, entry_type=REQUESTED_TYPE, data=request.to_json(), now=now
    )
    assert index == appender.size  # the request is the entry at the size the ledger was read
    row = Draw(
        draw_id=request.draw_id,
        requester=requester,
        request_index=index,
        request=request.to_json(),
        candidates=[_facts_row(facts[code]) for code in codes],
        status="requested",
        requested_at=now,
    )
    session.add(row)
    return row, True


# What makes two requests of one draw_id the same request (strata and filters are compared
# as resolved, so leaving them out of the comparison keeps a resend with defaults equal).
_SAME = (
    "draw_id",
    "requester",
    "region_prefix",
    "period",
    "ledger",
    "inspectors",
    "inspectors_per_enterprise",
    "commitment",
)


def _as_sent(request: Mapping[str, Any]) -> dict[str, Any]:
    return {k: request.get(k) for k in _SAME}


def _candidates(request: DrawRequest, facts: Mapping[str, LedgerFacts]) -> list[str]:
    return draw_candidates(request, facts)


def _facts_row(facts: LedgerFacts) -> list[Any]:
    return [
        facts.uscc,
        facts.region_code,
        facts.industry_section,
        facts.scheme,
        facts.required,
        facts.closed,
        facts.grade_level,
        facts.achieved,
    ]


def _sized(stratum: Any, facts: Mapping[str, LedgerFacts], data: Mapping[str, Any]) -> Any:
    """A stratum given a `rate` instead of a `sample` gets its sample: ceil(rate × its
    population), resolved before the request is logged (the log holds samples only)."""
    if not isinstance(stratum, Mapping) or "rate" not in stratum:
        return stratum
    rate = stratum["rate"]
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 < rate <= 1:
        raise Unprocessable("invalid_draw", "a stratum's rate is a fraction in (0, 1]")
    probe = {**data, "strata": [{"name": "probe", "where": stratum.get("where", {}), "sample": 0}]}
    try:
        request = DrawRequest.from_json(
            {
                **probe,
                "candidates_digest": "0" * 64,
                "candidates_count": 0,
                "previous_assignments": {},
            }
        )
    except DrawFormatError as exc:
        raise Unprocessable("invalid_draw", str(exc)) from exc
    where = request.strata[0].where
    population = sum(1 for code in _candidates(request, facts) if where.matches(facts[code]))
    sized = {k: v for k, v in stratum.items() if k != "rate"}
    return sized | {"sample": math.ceil(rate * population)}


def default_strata(
    session: Session, body: Mapping[str, Any], facts: Mapping[str, LedgerFacts], on: dt.date
) -> list[dict[str, Any]]:
    """Strata by classified-supervision frequency (四（一）): achieved enterprises grouped by
    scheme and level as the supervisor's frequency measures group them, each stratum's
    sample its expected inspections in the period (frequency × period / year, rounded up)."""
    if body.get("ledger") != "achieved":
        raise Unprocessable(
            "invalid_draw",
            "strata by frequency are for the achieved ledger; give strata for another",
            pointer="/strata",
        )
    period = body["period"]
    days = (dt.date.fromisoformat(period["to"]) - dt.date.fromisoformat(period["from"])).days + 1
    region = str(body.get("region_prefix", ""))
    catalog = active_catalog(session) or shipped_document()
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    for code, fact in facts.items():
        if fact.achieved and not fact.closed and fact.region_code.startswith(region):
            groups[(fact.scheme, fact.grade_level or "")].append(code)
    strata = []
    for (scheme, level), codes in sorted(groups.items()):
        standing = standing_facts(session, codes[:1], on)[codes[0]][1]
        measures = applicable(standing, facts[codes[0]].region_code, on, catalog, ROLE)
        per_year = supervision_of(measures.get(ROLE, [])).inspections_min
        sample = min(len(codes), math.ceil(len(codes) * per_year * days / 365))
        if sample:
            strata.append(
                {
                    "name": f"{scheme}-level-{level}",
                    "where": {"schemes": [scheme], "levels": [level]},
                    "sample": sample,
                }
            )
    if not strata:
        raise Unprocessable(
            "invalid_draw", "no achieved enterprise to draw from", pointer="/strata"
        )
    return strata


# --- the reveal ------------------------------------------------------------------------------


def get_draw(session: Session, draw_id: str) -> Draw:
    draw = session.get(Draw, draw_id)
    if draw is None:
        raise NotFound("unknown_draw", f"no draw {draw_id!r}")
    return draw


def seed_checkpoint(session: Session, draw: Draw, quorum: int) -> Checkpoint | None:
    """The first signed checkpoint after the request (first cosigned by `quorum` witnesses
    when a quorum is configured): its root is the draw's randomness."""
    if quorum > 0:
        size = session.scalar(
            select(Cosignature.size)
            .where(Cosignature.size > draw.request_index)
            .group_by(Cosignature.size)
            .having(func.count() >= quorum)
            .order_by(Cosignature.size)
            .limit(1)
        )
        return None if size is None else session.get(Checkpoint, size)
    return session.scalars(
        select(Checkpoint)
        .where(Checkpoint.size > draw.request_index)
        .order_by(Checkpoint.size)
        .limit(1)
    ).first()


def reveal(
    session: Session,
    signer: GatewaySigner,
    draw_id: str,
    secret_hex: str,
    caller: str,
    now: dt.datetime,
    *,
    quorum: int,
    window: dt.timedelta,
) -> Draw:
    """Draw with the revealed secret and log the result. A reveal after the window closes
    voids the draw instead (logged): the caller commits, then answers 409 draw_voided."""
    draw = get_draw(session, draw_id)
    if caller != draw.requester:
        raise Forbidden("not_requester", f"only {draw.requester} reveals draw {draw_id}")
    if draw.status != "requested":
        raise Conflict(f"draw_{draw.status}", f"draw {draw_id} is already {draw.status}")
    checkpoint = seed_checkpoint(session, draw, quorum)
    if checkpoint is None:
        raise Conflict(
            "seed_checkpoint_missing",
            f"no signed checkpoint covers the request (log index {draw.request_index}) yet"
            + (f" with {quorum} cosignatures" if quorum else "")
            + ": GET /v1/log/checkpoint, then reveal",
        )
    if now > checkpoint.created_at + window:
        void(session, signer, draw, now, "not_revealed")
        return draw
    try:
        secret = bytes.fromhex(secret_hex)
    except ValueError as exc:
        raise Unprocessable("secret_mismatch", "the secret is hex") from exc
    request = DrawRequest.from_json(draw.request)
    if not 16 <= len(secret) <= 64 or not request.opens(secret):
        raise Unprocessable("secret_mismatch", "the secret does not open the request's commitment")
    leaf = session.scalar(select(LogEntry.leaf_hash).where(LogEntry.idx == draw.request_index))
    assert leaf is not None
    seed = derive_seed(checkpoint_root=checkpoint.root, request_leaf_hash=leaf, secret=secret)
    facts = {row[0]: LedgerFacts(*row) for row in draw.candidates}
    result = draw_result(
        request,
        facts,
        request_index=draw.request_index,
        seed_checkpoint_size=checkpoint.size,
        seed=seed,
        secret=secret,
        codes=[row[0] for row in draw.candidates],
    )
    draw.result_index = append_gateway_entry(
        session, signer, entry_type=COMPLETED_TYPE, data=result, now=now
    )
    draw.status, draw.result = "completed", result
    draw.seed_checkpoint_size, draw.resolved_at = checkpoint.size, now
    return draw


def void_overdue(
    session: Session, signer: GatewaySigner, now: dt.datetime, quorum: int, window: dt.timedelta
) -> list[str]:
    """Void (and log) every requested draw whose reveal window closed without a reveal: a
    request whose reveal never comes is void, recorded as such (docs/draws.md §1)."""
    voided = []
    for draw in session.scalars(select(Draw).where(Draw.status == "requested")):
        checkpoint = seed_checkpoint(session, draw, quorum)
        if checkpoint is not None and now > checkpoint.created_at + window:
            void(session, signer, draw, now, "not_revealed")
            voided.append(draw.draw_id)
    return voided


def void(
    session: Session, signer: GatewaySigner, draw: Draw, now: dt.datetime, reason: str
) -> None:
    data = {"draw_id": draw.draw_id, "request_index": draw.request_index, "reason": reason}
    draw.result_index = append_gateway_entry(
        session, signer, entry_type=VOIDED_TYPE, data=data, now=now
    )
    draw.status, draw.resolved_at = "voided", now


def describe(draw: Draw, session: Session | None = None) -> dict[str, Any]:
    """The draw as the API shows it; with a session, the seed checkpoint's signed note too
    (cosignatures included), which a verifier needs with the log entries below its size."""
    note = None
    if session is not None and draw.seed_checkpoint_size is not None:
        checkpoint = session.get(Checkpoint, draw.seed_checkpoint_size)
        note = with_cosignatures(session, checkpoint) if checkpoint is not None else None
    return {
        "draw_id": draw.draw_id,
        "requester": draw.requester,
        "status": draw.status,
        "request_index": draw.request_index,
        "request": draw.request,
        "seed_checkpoint_size": draw.seed_checkpoint_size,
        "seed_checkpoint": note,
        "result_index": draw.result_index,
        "result": draw.result,
        "verify": f"gateway draw verify {draw.draw_id}",
    }
