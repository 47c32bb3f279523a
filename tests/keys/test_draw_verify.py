"""keys.draw_records and keys.draw_verify: the request format, and a whole draw verified from the
log alone, with each kind of tampering reported by its first difference."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from draw_factories import (
    GATEWAY_KEY,
    ON,
    SECRET,
    award,
    build_draw_log,
    checkpoint_note,
    ed25519,
    gateway_entry,
    ledger_leaves,
    registration,
    request_json,
    uscc,
)

from keys.draw_records import COMPLETED_TYPE, DrawFormatError, DrawRequest, resolve_request
from keys.draw_verify import verify_draw
from keys.draws import DrawError, InsufficientInspectorsError
from keys.eddsa import Ed25519SigningKey
from keys.ledger_fold import candidates_digest, fold_ledger
from keys.note import parse_note, sign_note

LEDGER = ledger_leaves(count=30)


def test_request_round_trips_through_json() -> None:
    data = request_json(
        filters={"schemes": ["industry_trade"]},
        beacon={"source": "drand quicknet", "round": 123},
        previous_assignments={uscc(1): ["insp-02", "insp-01"]},
    )
    request = DrawRequest.from_json(data)
    assert request.on == ON
    assert request.strata[0].where.region_prefix == "3501"  # inherited from the request
    assert request.previous_assignments == {uscc(1): frozenset({"insp-01", "insp-02"})}
    again = DrawRequest.from_json(request.to_json())
    assert again == request


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"ledger": "other"}, "ledger: expected basic or required or achieved"),
        ({"strata": []}, "strata: expected a non-empty list"),
        (
            {"strata": [{"name": "a", "sample": 1}, {"name": "a", "sample": 1}]},
            "strata: expected unique names",
        ),
        ({"strata": [{"name": "a", "sample": -1}]}, r"strata\[0\].sample"),
        ({"commitment": "AB" * 32}, "commitment: expected 64 lowercase hex"),
        ({"period": {"from": "2027-02-01", "to": "2027-01-01"}}, "period: expected from on"),
        ({"filters": {"region_prefix": "35"}}, "filters: expected only the members"),
        ({"filters": {"levels": []}}, "filters.levels: expected at least one"),
        ({"inspectors": ["a", "a"]}, "inspectors: expected no repeated"),
        ({"surprise": 1}, "request: expected no members beyond"),
    ],
)
def test_request_format_errors_name_the_field(override: dict[str, Any], message: str) -> None:
    with pytest.raises(DrawFormatError, match=message):
        DrawRequest.from_json(request_json(**override))


def test_request_opens_only_with_its_secret() -> None:
    request = DrawRequest.from_json(request_json())
    assert request.opens(SECRET)
    assert not request.opens(bytes(32))
    assert not request.opens(b"short")


def test_a_draw_verifies() -> None:
    log = build_draw_log(ledger=LEDGER)
    assert verify_draw(**log.verify_args()) == []
    assert [s["population"] for s in log.result["strata"]] == [10, 10, 10]
    assert sum(len(v) for v in log.result["assignments"].values()) == 2 * 8


def test_gateway_signature_checked_when_its_key_is_given() -> None:
    log = build_draw_log(ledger=LEDGER)
    assert verify_draw(**log.verify_args(), gateway_jwk=GATEWAY_KEY.public_key.jwk()) == []
    wrong = Ed25519SigningKey(ed25519(seed="another gateway")).public_key.jwk()
    differences = verify_draw(**log.verify_args(), gateway_jwk=wrong)
    assert differences[0].startswith(f"request (log entry {log.request_index}): the JWS signature")


def test_tampered_leaf_is_a_root_mismatch() -> None:
    log = build_draw_log(ledger=LEDGER)
    leaves = list(log.leaves)
    leaves[3] = award(uscc(1), level="1")
    differences = verify_draw(**{**log.verify_args(), "leaves": leaves})
    assert differences[0].startswith("checkpoint: root ")
    assert "but the given leaves hash to" in differences[0]


def test_checkpoint_signed_by_another_key() -> None:
    log = build_draw_log(ledger=LEDGER)
    body = parse_note(log.checkpoint).body
    forged = sign_note(body, "gateway.example/log", ed25519(seed="not the log key"))
    differences = verify_draw(**{**log.verify_args(), "seed_checkpoint": forged})
    assert differences == ["checkpoint: no valid signature by the log key gateway.example/log"]


def test_checkpoint_not_past_the_request() -> None:
    log = build_draw_log(ledger=LEDGER)
    early = log.leaves[: log.request_index]
    args = {**log.verify_args(), "leaves": early, "seed_checkpoint": checkpoint_note(early)}
    assert verify_draw(**args)[0] == (
        f"checkpoint: size {log.request_index} does not cover the request at index "
        f"{log.request_index}; the seed checkpoint is the first one past it"
    )


def test_leaves_must_be_exactly_the_checkpoint_size() -> None:
    log = build_draw_log(ledger=LEDGER)
    args = {**log.verify_args(), "leaves": log.leaves[:-1]}
    assert verify_draw(**args)[0].endswith(f"but {len(log.leaves) - 1} leaves were given")


def test_wrong_secret() -> None:
    log = build_draw_log(ledger=LEDGER)
    differences = verify_draw(**{**log.verify_args(), "secret_hex": bytes(32).hex()})
    assert differences == [
        f"secret: does not open the request's commitment {log.request.commitment}"
    ]


def test_changed_candidate_is_named() -> None:
    outsider = uscc(5, region="350100")  # first in canonical order; basic ledger only
    ledger = [*LEDGER, registration(outsider, region="350100")]

    def swap(codes: list[str]) -> list[str]:
        return sorted([*codes[1:], outsider])

    log = build_draw_log(ledger=ledger, claimed=swap)
    differences = verify_draw(**log.verify_args())
    assert differences[0] == (
        f"candidate {outsider}: not in the log's achieved ledger on 2027-01-01 "
        "(with the request's filters)"
    )
    assert differences[1].startswith("candidates: the request commits to 30 with digest")


def test_changed_candidate_without_a_claimed_list() -> None:
    log = build_draw_log(ledger=LEDGER, claimed=lambda codes: codes[1:])
    del log.result["claimed_candidates"]
    differences = verify_draw(**log.verify_args())
    assert differences == [
        f"candidates: the request commits to 29 with digest {log.request.candidates_digest}; "
        f"the log's achieved ledger on 2027-01-01 gives 30 with digest "
        f"{_digest_of(ledger_leaves(count=30))}"
    ]


def _digest_of(ledger: list[bytes]) -> str:
    facts = fold_ledger(ledger, ON)
    return candidates_digest(sorted(c for c, f in facts.items() if f.achieved))


def test_changed_selection_is_named() -> None:
    log = build_draw_log(ledger=LEDGER)
    result = copy.deepcopy(log.result)
    stratum = result["strata"][0]
    logged = stratum["selected"][0]
    others = [c for c in log.codes if c not in stratum["selected"]]
    stratum["selected"][0] = others[0]
    differences = verify_draw(**{**log.verify_args(), "result": result})
    assert differences == [
        f"stratum level-1: selected {others[0]} but the log gives {logged} (position 1)"
    ]


def test_changed_inspector_is_named() -> None:
    log = build_draw_log(ledger=LEDGER)
    result = copy.deepcopy(log.result)
    code = next(iter(result["assignments"]))
    logged = result["assignments"][code]
    result["assignments"][code] = [logged[1], logged[0]]
    differences = verify_draw(**{**log.verify_args(), "result": result})
    assert differences == [
        f"assignments {code}: the result gives {[logged[1], logged[0]]} but the log gives {logged}"
    ]


def test_changed_seed_is_named() -> None:
    log = build_draw_log(ledger=LEDGER)
    result = {**log.result, "seed": "00" * 32}
    differences = verify_draw(**{**log.verify_args(), "result": result})
    assert differences == [
        f"seed: the result gives {'00' * 32} but the log gives {log.result['seed']}"
    ]


def test_result_for_another_draw_or_checkpoint() -> None:
    log = build_draw_log(ledger=LEDGER)
    result = {**log.result, "draw_id": "other"}
    assert verify_draw(**{**log.verify_args(), "result": result}) == [
        "draw_id: the result gives 'other', the log 'draw-2027-01'"
    ]
    result = {**log.result, "seed_checkpoint_size": log.request_index + 1}
    assert verify_draw(**{**log.verify_args(), "result": result})[0].startswith(
        "seed_checkpoint_size: the result gives"
    )


def test_request_index_not_a_request() -> None:
    log = build_draw_log(ledger=LEDGER)
    differences = verify_draw(**{**log.verify_args(), "request_index": 0})
    assert differences[0] == (
        "request (log entry 0): a enterprise.registered entry by fj-yjt, not a "
        "gateway.draw.requested entry by the gateway"
    )


def test_beacon_enters_the_seed() -> None:
    beacon = {"source": "drand quicknet", "round": 9_000_000}
    log = build_draw_log(ledger=LEDGER, beacon_value=b"\x07" * 32, beacon=beacon)
    assert verify_draw(**log.verify_args()) == []
    result = {key: value for key, value in log.result.items() if key != "beacon"}
    assert verify_draw(**{**log.verify_args(), "result": result}) == [
        "beacon: the request names drand quicknet round 9000000 but the result holds no hex "
        "value for it"
    ]
    result = {**log.result, "beacon": "08" * 32}
    assert verify_draw(**{**log.verify_args(), "result": result})[0].startswith("seed: ")


def test_previous_assignments_come_from_the_last_completed_draw() -> None:
    first = build_draw_log(ledger=LEDGER)
    completed = gateway_entry(type=COMPLETED_TYPE, data=first.result, n=1)
    ledger = [*first.leaves, completed]
    second = build_draw_log(ledger=ledger, draw_id="draw-2027-02")
    assert second.request.previous_assignments == {
        code: frozenset(names) for code, names in first.result["assignments"].items()
    }
    assert verify_draw(**second.verify_args()) == []
    for code, names in second.result["assignments"].items():
        assert not set(names) & set(first.result["assignments"].get(code, ()))
    # A request that forgets one: the verifier names it.
    code = next(iter(first.result["assignments"]))
    trimmed = {c: sorted(v) for c, v in second.request.previous_assignments.items() if c != code}
    forgetful = build_draw_log(ledger=ledger, draw_id="draw-2027-02", previous_assignments=trimmed)
    assert verify_draw(**forgetful.verify_args())[0].startswith(
        f"previous_assignments {code}: the request gives [] but the log's last draw gives"
    )


def test_malformed_checkpoint_and_vkey() -> None:
    log = build_draw_log(ledger=LEDGER)
    differences = verify_draw(**{**log.verify_args(), "log_vkey": "nonsense"})
    assert differences[0].startswith("checkpoint: malformed verifier key")


def test_fifty_of_two_thousand_in_three_strata() -> None:
    ledger = ledger_leaves(count=2_000, levels=("1", "2", "2", "3", "3", "3"))
    strata = [
        {"name": "level-1", "where": {"levels": ["1"]}, "sample": 10},
        {"name": "level-2", "where": {"levels": ["2"]}, "sample": 15},
        {"name": "level-3", "where": {"levels": ["3"]}, "sample": 25},
    ]
    inspectors = [f"insp-{i:03d}" for i in range(40)]
    log = build_draw_log(ledger=ledger, strata=strata, inspectors=inspectors)
    # how long it takes is bench/draws.py's to say, not a test's
    assert verify_draw(**log.verify_args(), gateway_jwk=GATEWAY_KEY.public_key.jwk()) == []
    assert [(s["population"], len(s["selected"])) for s in log.result["strata"]] == [
        (334, 10),
        (667, 15),
        (999, 25),
    ]
    load = [n for names in log.result["assignments"].values() for n in names]
    assert len(load) == 100
    assert {load.count(i) for i in inspectors} <= {2, 3}


def test_resolve_fills_the_gateways_members() -> None:
    facts = fold_ledger(LEDGER, ON)
    data = request_json(candidates_digest="f" * 64, candidates_count=7)
    request = resolve_request(data, facts, [])
    codes = sorted(c for c, f in facts.items() if f.achieved)
    assert (request.candidates_digest, request.candidates_count) == (
        candidates_digest(codes),
        30,
    )
    assert request.previous_assignments == {}


@pytest.mark.parametrize(
    ("override", "error", "message"),
    [
        (
            {"strata": [{"name": "all", "sample": 31}]},
            DrawError,
            "stratum all: sample 31 of 30 candidates",
        ),
        (
            {"strata": [{"name": "a", "sample": 1}, {"name": "b", "sample": 1}]},
            ValueError,
            "is in strata a and b",
        ),
        ({"inspectors": ["insp-01"]}, InsufficientInspectorsError, "1 eligible inspectors, 2"),
    ],
)
def test_resolve_refuses_what_cannot_be_drawn(
    override: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        resolve_request(request_json(**override), fold_ledger(LEDGER, ON), [])


def test_resolve_refuses_a_pool_the_last_draw_exhausts() -> None:
    code = uscc(0, region="350101")
    earlier = {"assignments": {code: ["insp-01", "insp-02", "insp-03"]}}
    data = request_json(inspectors=["insp-01", "insp-02", "insp-03", "insp-04"])
    with pytest.raises(InsufficientInspectorsError, match=f"enterprise {code}: 1 eligible"):
        resolve_request(data, fold_ledger(LEDGER, ON), [earlier])


def test_malformed_inputs_are_differences_not_exceptions() -> None:
    log = build_draw_log(ledger=LEDGER)
    assert verify_draw(**{**log.verify_args(), "request_index": -1}) == [
        "request_index: -1 is not a log index"
    ]
    result = {**log.result, "claimed_candidates": [{"not": "a code"}]}
    assert verify_draw(**{**log.verify_args(), "result": result}) == [
        "claimed_candidates: not a list of codes"
    ]
    assert verify_draw(**{**log.verify_args(), "secret_hex": "xyz"}) == ["secret: not hex"]
    assert verify_draw(**{**log.verify_args(), "result": {**log.result, "strata": None}}) == [
        "strata: the result lists no strata, the request 3"
    ]


def test_malformed_earlier_draw_in_the_log() -> None:
    # The gateway would refuse to resolve a request over it; a forged log might hold one.
    placeholder = gateway_entry(type="gateway.agency.registered", data={}, n=7)
    log = build_draw_log(ledger=[*LEDGER, placeholder])
    leaves = list(log.leaves)
    leaves[len(LEDGER)] = gateway_entry(
        type=COMPLETED_TYPE, data={"assignments": {"x": "insp-01"}}, n=7
    )
    args = {**log.verify_args(), "leaves": leaves, "seed_checkpoint": checkpoint_note(leaves)}
    assert verify_draw(**args)[0].startswith(
        "previous draws: a completed draw in the log is malformed: assignments.x"
    )
