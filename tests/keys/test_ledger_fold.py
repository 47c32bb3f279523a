"""keys.ledger_fold over real signed entries: each grade and enterprise event, read on a day, the
candidate lists and their digest, and strata split by their filters."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from draw_factories import award, gateway_entry, message, registration, uscc
from hypothesis import given
from hypothesis import strategies as st

from contracts.uscc import problem
from keys.base64url import b64url_decode, b64url_encode
from keys.ledger_fold import (
    LedgerFacts,
    LedgerReplayError,
    StratumSpec,
    Where,
    candidates,
    candidates_digest,
    entry_payload,
    fold_ledger,
    split_strata,
)

A, B, C = uscc(1), uscc(2), uscc(3)
ON = dt.date(2027, 1, 1)


def facts_of(leaves: list[bytes], code: str, on: dt.date = ON) -> LedgerFacts:
    return fold_ledger(leaves, on)[code]


def test_registered_is_in_the_basic_ledger_only() -> None:
    facts = facts_of([registration(A, region="350203", section="D", scheme="fireworks")], A)
    assert facts == LedgerFacts(
        uscc=A,
        region_code="350203",
        industry_section="D",
        scheme="fireworks",
        required=True,
        closed=False,
        grade_level=None,
        achieved=False,
    )


def test_registered_awarded_revoked() -> None:
    leaves = [registration(A), award(A, level="1", scheme="hazardous_chemicals")]
    awarded = facts_of(leaves, A)
    assert (awarded.achieved, awarded.grade_level, awarded.scheme) == (
        True,
        "1",
        "hazardous_chemicals",
    )
    revoked = [*leaves, message(type="grade.revoked", subject=A, data=_decision())]
    facts = facts_of(revoked, A)
    assert (facts.achieved, facts.grade_level, facts.scheme) == (False, None, "industry_trade")


def test_award_lapses_by_date_without_an_expiry_entry() -> None:
    leaves = [registration(A), award(A, valid_to="2026-12-31")]
    assert facts_of(leaves, A, dt.date(2026, 12, 31)).achieved
    lapsed = facts_of(leaves, A, ON)
    assert (lapsed.achieved, lapsed.grade_level) == (False, None)


def test_award_not_yet_valid_does_not_count() -> None:
    leaves = [registration(A), award(A, valid_from="2027-02-01", valid_to="2030-01-31")]
    assert not facts_of(leaves, A).achieved
    assert facts_of(leaves, A, dt.date(2027, 2, 1)).achieved


def test_renewed_extends_and_downgraded_lowers() -> None:
    leaves = [registration(A), award(A, level="2", valid_to="2026-12-31")]
    renewal = {"level": "2", "valid_from": "2027-01-01", "valid_to": "2029-12-31"}
    leaves.append(message(type="grade.renewed", subject=A, data=renewal))
    assert facts_of(leaves, A).grade_level == "2"
    leaves.append(message(type="grade.downgraded", subject=A, data={"to_level": "3"}))
    assert facts_of(leaves, A).grade_level == "3"


def test_expired_ends_the_grade() -> None:
    leaves = [registration(A), award(A)]
    leaves.append(message(type="grade.expired", subject=A, data={"expired_on": "2026-06-01"}))
    assert not facts_of(leaves, A).achieved


def test_updated_region_moves_the_enterprise() -> None:
    leaves = [registration(A, region="350102"), registration(B, region="350102")]
    change = {"changed_on": "2026-11-01", "changes": {"region_code": "350203", "required": False}}
    leaves.append(message(type="enterprise.updated", subject=A, data=change))
    facts = fold_ledger(leaves, ON)
    assert (facts[A].region_code, facts[A].required) == ("350203", False)
    assert candidates(facts, region_prefix="3501", ledger="basic") == [B]
    assert candidates(facts, region_prefix="3502", ledger="basic") == [A]
    assert candidates(facts, region_prefix="", ledger="required") == [B]


def test_closed_from_its_date_on_and_never_a_candidate() -> None:
    leaves = [registration(A), award(A), registration(B)]
    closure = {"closed_on": "2026-12-15", "closure": "licence_revoked"}
    leaves.append(message(type="enterprise.closed", subject=A, data=closure))
    assert not facts_of(leaves, A, dt.date(2026, 12, 14)).closed
    facts = fold_ledger(leaves, ON)
    assert facts[A].closed
    assert candidates(facts, region_prefix="35", ledger="basic") == [B]
    assert candidates(facts, region_prefix="35", ledger="achieved") == []


def test_other_entries_are_skipped() -> None:
    leaves = [
        gateway_entry(type="gateway.agency.registered", data={"agency": "x"}),
        registration(A),
        message(type="self_assessment.published", subject=A, data={"year": 2026}),
        award(B),  # B was never registered: the gateway would have refused it
    ]
    assert set(fold_ledger(leaves, ON)) == {A}


def test_malformed_entries_name_their_index() -> None:
    with pytest.raises(LedgerReplayError, match="log entry 1: not a compact JWS"):
        fold_ledger([registration(A), b"not a token"], ON)
    broken = message(type="grade.awarded", subject=A, data={"level": "1"})
    with pytest.raises(LedgerReplayError, match=r"log entry 1 \(grade.awarded\)"):
        fold_ledger([registration(A), broken], ON)


def test_candidates_filter_and_sort_canonically() -> None:
    leaves = [
        registration(C, region="350102", section="C"),
        award(C, level="1"),
        registration(A, region="350105", section="B", scheme="non_coal_mining"),
        award(A, level="2", scheme="non_coal_mining"),
        registration(B, region="350102", section="C"),
    ]
    facts = fold_ledger(leaves, ON)
    assert candidates(facts, region_prefix="3501", ledger="basic") == sorted([A, B, C])
    assert candidates(facts, region_prefix="3501", ledger="achieved") == sorted([A, C])
    assert candidates(facts, region_prefix="3501", ledger="achieved", levels={"1"}) == [C]
    assert candidates(facts, region_prefix="3501", ledger="basic", industries={"B"}) == [A]
    assert candidates(
        facts, region_prefix="350102", ledger="basic", schemes={"industry_trade"}
    ) == sorted([B, C])
    with pytest.raises(ValueError, match="unknown ledger"):
        candidates(facts, region_prefix="", ledger="other")  # type: ignore[arg-type]


def test_candidates_digest() -> None:
    assert candidates_digest(["A", "B"]) == hashlib.sha256(b"A\nB\n").hexdigest()
    assert candidates_digest([]) == hashlib.sha256(b"").hexdigest()
    codes = ["91350102MA00000152", "91350102MA0000023W"]  # uscc(1), uscc(2)
    assert codes == [A, B]
    assert [problem(code) for code in codes] == [None, None]  # both check characters right
    assert (
        candidates_digest(codes)
        == "b7d9a4a724de0eae8f73761e4f84b47042c567ee1da1ac72dd780e5b8cd778c2"
    )


def test_split_strata_by_level() -> None:
    leaves = [registration(A), award(A, level="1"), registration(B), award(B, level="2")]
    leaves += [registration(C)]
    facts = fold_ledger(leaves, ON)
    specs = [
        StratumSpec("top", Where(levels=frozenset({"1"})), 1),
        StratumSpec("second", Where(levels=frozenset({"2"})), 1),
    ]
    strata = split_strata(facts, sorted(facts), specs)
    assert [(s.name, s.candidates) for s in strata] == [("top", (A,)), ("second", (B,))]
    overlapping = [*specs, StratumSpec("all", Where(), 1)]
    with pytest.raises(ValueError, match=f"enterprise {A} is in strata top and all"):
        split_strata(facts, sorted(facts), overlapping)


def _decision() -> dict[str, str]:
    return {
        "reason_code": "failed_recheck",
        "reason": "整改仍达不到要求",
        "decision_no": "闽应急撤〔2026〕1号",
        "decided_on": "2026-10-01",
        "reapply_after": "2027-10-01",
    }


def _with_payload(segment: bytes) -> bytes:
    return b"eyJhbGciOiJFZERTQSJ9." + segment + b".c2ln"


@pytest.mark.parametrize(
    "segment",
    [
        b64url_encode(b'{"type":"x"}').encode() + b"=",  # padded
        b64url_encode(b'{"type":"x"}').encode().replace(b"I", b"+"),  # the other alphabet
        b"eyJ0eXBlIjoieHkifR",  # non-zero trailing bits: a lax decoder reads ...ifQ's bytes
        b"eyJ0eXBlIjoieCJ9A",  # impossible length
    ],
)
def test_payload_must_be_canonical_base64url(segment: bytes) -> None:
    with pytest.raises(LedgerReplayError, match="log entry 0"):
        entry_payload(_with_payload(segment), 0)


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        (b'{"type":"x"}', {"type": "x"}),
        (b'{"type":"xy"}', {"type": "xy"}),  # eyJ0eXBlIjoieHkifQ, canonical
        (b' \n{"type": "x"}\t', {"type": "x"}),  # JSON whitespace, through json.loads
    ],
)
def test_payload_parses_as_json_loads_does(text: bytes, parsed: dict[str, str]) -> None:
    assert entry_payload(_with_payload(b64url_encode(text).encode()), 0) == parsed


@pytest.mark.parametrize("text", [b'{"type":"x"} {}', b'["type"]', b'{"type":1}', b"\xff"])
def test_payload_that_is_not_one_typed_object(text: bytes) -> None:
    with pytest.raises(LedgerReplayError, match="log entry 0"):
        entry_payload(_with_payload(b64url_encode(text).encode()), 0)


@given(
    st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_+/=. \n\t")
)
def test_fast_base64url_agrees_with_the_strict_decoder(text: str) -> None:
    from keys.ledger_fold import _base64url

    try:
        expected: bytes | None = b64url_decode(text)
    except ValueError:
        expected = None
    try:
        got: bytes | None = _base64url(text.encode())
    except ValueError:
        got = None
    assert got == expected
