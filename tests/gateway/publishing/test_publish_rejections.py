"""Every bad input of protocol.md §1 is refused with a stable code and leaves no trace.

Each case builds a message that fails exactly one check; the test asserts the status, the
problem's `code`, that the body is RFC 9457 problem+json, and that no table changed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Callable

import pytest
from contract_factories import (
    USCC,
    make_accident,
    make_award,
    make_listing,
    make_registration,
    make_revocation,
)
from fastapi.testclient import TestClient
from gateway_factories import (
    Publisher,
    bearer,
    publish,
    publish_many,
    register_publisher,
    signer_headers,
    snapshot,
)

from gateway.registry import service
from gateway.runtime import Runtime
from keys.base64url import b64url_encode
from keys.suites import get_suite


def _forge(header: dict[str, object], payload: dict[str, object], signature: bytes) -> bytes:
    head = b64url_encode(json.dumps(header).encode())
    body = b64url_encode(json.dumps(payload).encode())
    return f"{head}.{body}.{b64url_encode(signature)}".encode()


def _registered(client: TestClient, authority: Publisher) -> None:
    response = publish(client, authority.message("enterprise.registered", make_registration()))
    assert response.status_code == 201, response.text


def assert_refused(
    client: TestClient, runtime: Runtime, token: bytes, status: int, code: str
) -> dict[str, object]:
    before = snapshot(runtime)
    response = publish(client, token)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["code"] == code
    assert problem["status"] == status
    assert problem["detail"]
    assert snapshot(runtime) == before, "a refused message changed stored state"
    return problem


Case = Callable[[Publisher, Runtime], bytes]


def _alg_none(a: Publisher, _: Runtime) -> bytes:
    header = {"alg": "none", "kid": a.key.kid, "typ": "gateway-message+jws"}
    return _forge(header, a.envelope("enterprise.registered"), b"")


def _hs256_with_public_key(a: Publisher, _: Runtime) -> bytes:
    header = {"alg": "HS256", "kid": a.key.kid, "typ": "gateway-message+jws"}
    head = b64url_encode(json.dumps(header).encode())
    body = b64url_encode(json.dumps(a.envelope("enterprise.registered")).encode())
    secret = json.dumps(a.key.public_key.jwk()).encode()
    mac = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64url_encode(mac)}".encode()


def _other_suite_alg(a: Publisher, _: Runtime) -> bytes:
    # ES256 named in the header of a message whose kid is a registered Ed25519 key.
    other = get_suite("es256").generate()
    header = {"alg": "ES256", "kid": a.key.kid, "typ": "gateway-message+jws"}
    head = b64url_encode(json.dumps(header).encode())
    body = b64url_encode(json.dumps(a.envelope("enterprise.registered")).encode())
    return f"{head}.{body}.{b64url_encode(other.sign(f'{head}.{body}'.encode()))}".encode()


def _tampered_payload(a: Publisher, _: Runtime) -> bytes:
    head, _body, sig = a.message("enterprise.registered").split(b".")
    other = b64url_encode(json.dumps(a.envelope("enterprise.registered")).encode()).encode()
    return b".".join([head, other, sig])


def _unknown_kid(a: Publisher, _: Runtime) -> bytes:
    stranger = Publisher(a.agency_id, get_suite("ed25519").generate(), a.runtime)
    return stranger.message("enterprise.registered")


def _revoked_key(a: Publisher, rt: Runtime) -> bytes:
    with rt.db.transaction() as session:
        service.revoke_key(session, rt.signer, kid=a.key.kid, reason="lost", now=rt.clock.now())
    return a.message("enterprise.registered")


def _before_key_valid(a: Publisher, rt: Runtime) -> bytes:
    late = register_publisher(
        rt, "fj-late", ["enterprise.registered"], valid_from=rt.clock.now() - dt.timedelta(days=1)
    )
    issued = (rt.clock.now() - dt.timedelta(days=2)).isoformat()
    return late.message("enterprise.registered", issued_at=issued)


def _after_key_expired(a: Publisher, rt: Runtime) -> bytes:
    old = register_publisher(
        rt, "fj-old", ["enterprise.registered"], valid_to=rt.clock.now() - dt.timedelta(days=10)
    )
    return old.message("enterprise.registered")


def _issuer_not_owner(a: Publisher, rt: Runtime) -> bytes:
    register_publisher(rt, "fj-other", ["enterprise.registered"])
    return a.message("enterprise.registered", issuer="fj-other")


def _not_permitted(a: Publisher, rt: Runtime) -> bytes:
    bank = register_publisher(rt, "bank-x", ["measure.applied"], roles=["bank"])
    return bank.message("enterprise.registered")


def _future_issued_at(a: Publisher, rt: Runtime) -> bytes:
    return a.message(
        "enterprise.registered", issued_at=(rt.clock.now() + dt.timedelta(hours=1)).isoformat()
    )


CASES: dict[str, tuple[Case, int, str]] = {
    "not three segments": (lambda a, _: b"abc.def", 400, "malformed_jws"),
    "header not base64url JSON": (lambda a, _: b"%%%.e30.AA", 400, "malformed_jws"),
    "payload not JSON": (
        lambda a, _: (
            a.sign_envelope({}).split(b".")[0] + b"." + b64url_encode(b"not json").encode() + b".AA"
        ),
        401,
        "signature_invalid",
    ),
    "alg none": (_alg_none, 401, "algorithm_not_allowed"),
    "HS256 keyed with the public key": (_hs256_with_public_key, 401, "algorithm_not_allowed"),
    "alg of another suite than the key's": (_other_suite_alg, 401, "algorithm_not_allowed"),
    "signature over other bytes": (_tampered_payload, 401, "signature_invalid"),
    "unknown kid": (_unknown_kid, 401, "unknown_key"),
    "revoked key": (_revoked_key, 401, "key_revoked"),
    "issued before the key was valid": (_before_key_valid, 401, "key_not_valid"),
    "issued after the key's validity": (_after_key_expired, 401, "key_not_valid"),
    "missing typ": (
        lambda a, _: a.sign_envelope(a.envelope("enterprise.registered"), typ=None),
        400,
        "typ_not_accepted",
    ),
    "issuer does not own the key": (_issuer_not_owner, 403, "issuer_mismatch"),
    "type not granted": (_not_permitted, 403, "not_permitted"),
    "unknown type": (
        lambda a, _: a.message("enterprise.registered", type="grade.invented"),
        400,
        "unknown_type",
    ),
    "unknown contract major": (
        lambda a, _: a.message("enterprise.registered", contract=9),
        400,
        "unknown_contract",
    ),
    "invalid USCC check character": (
        lambda a, _: a.message("enterprise.registered", subject=USCC[:-1] + "Q"),
        400,
        "invalid_uscc",
    ),
    "issued_at in the future": (_future_issued_at, 400, "issued_at_in_future"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_message_refused_without_trace(
    case: str, client: TestClient, authority: Publisher, runtime: Runtime
) -> None:
    make, status, code = CASES[case]
    assert_refused(client, runtime, make(authority, runtime), status, code)


def test_schema_violation_names_the_field(
    client: TestClient, authority: Publisher, runtime: Runtime
) -> None:
    data = make_registration()
    del data["region_code"]
    token = authority.message("enterprise.registered", data)
    problem = assert_refused(client, runtime, token, 400, "schema_violation")
    assert problem["pointer"] == "/data/region_code"

    wrong_type = authority.message("enterprise.registered", make_registration(required="yes"))
    problem = assert_refused(client, runtime, wrong_type, 400, "schema_violation")
    assert problem["pointer"] == "/data/required"


def test_grade_rules_need_registration_and_follow_the_state_machine(
    client: TestClient, authority: Publisher, runtime: Runtime
) -> None:
    assert_refused(
        client, runtime, authority.message("grade.awarded", make_award()), 422, "unknown_enterprise"
    )
    _registered(client, authority)
    assert_refused(
        client,
        runtime,
        authority.message("grade.revoked", make_revocation()),
        422,
        "invalid_transition",
    )
    assert publish(client, authority.message("grade.awarded", make_award())).status_code == 201
    problem = assert_refused(
        client, runtime, authority.message("grade.awarded", make_award()), 422, "invalid_transition"
    )
    assert "active" in str(problem["detail"])
    assert publish(client, authority.message("grade.revoked", make_revocation())).status_code == 201
    # domain.md §3: a revoked enterprise may re-apply only after the wait (here 2026-06-15).
    early = make_award(announced_on="2026-03-01", valid_from="2026-03-01", valid_to="2029-02-28")
    assert_refused(
        client, runtime, authority.message("grade.awarded", early), 422, "invalid_transition"
    )
    late = make_award(announced_on="2026-07-01", valid_from="2026-07-01", valid_to="2029-06-30")
    assert publish(client, authority.message("grade.awarded", late)).status_code == 201


def test_registration_twice_is_refused(
    client: TestClient, authority: Publisher, runtime: Runtime
) -> None:
    _registered(client, authority)
    token = authority.message("enterprise.registered", make_registration())
    assert_refused(client, runtime, token, 422, "invalid_transition")


def test_accident_class_must_match_its_counts(
    client: TestClient, authority: Publisher, runtime: Runtime
) -> None:
    _registered(client, authority)
    wrong = make_accident(deaths=3, accident_class="ordinary")  # 3 deaths is a larger accident
    problem = assert_refused(
        client,
        runtime,
        authority.message("accident.reported", wrong),
        422,
        "accident_class_mismatch",
    )
    assert problem["pointer"] == "/data/accident_class"


@pytest.mark.parametrize(
    ("field", "value"), [("deaths", 2**31), ("serious_injuries", 2**40), ("direct_loss_cny", 1e30)]
)
def test_implausible_accident_figures_are_refused_alone(
    client: TestClient, authority: Publisher, runtime: Runtime, field: str, value: float
) -> None:
    """Found by the fuzzer: figures beyond the table's columns failed the whole transaction on
    PostgreSQL (a 500 for every message in it); now only that message is refused."""
    _registered(client, authority)
    huge = make_accident(accident_class="especially_major", **{field: value})
    problem = assert_refused(
        client, runtime, authority.message("accident.reported", huge), 422, "implausible_figure"
    )
    assert problem["pointer"] == f"/data/{field}"
    fine = authority.message("accident.reported", make_accident(accident_id="OK-1"))
    batch = publish_many(client, [authority.message("accident.reported", huge), fine]).json()
    assert [r["status"] for r in batch["results"]] == [422, 201]


def test_list_term_beyond_the_maximum_is_refused(
    client: TestClient, authority: Publisher, runtime: Runtime
) -> None:
    _registered(client, authority)
    too_long = make_listing(term_end="2030-07-01")  # black list: at most 36 months
    assert_refused(
        client, runtime, authority.message("listing.added", too_long), 422, "list_term_invalid"
    )


def test_same_id_with_other_bytes_is_a_conflict(
    client: TestClient, authority: Publisher, runtime: Runtime
) -> None:
    envelope = authority.envelope("enterprise.registered", make_registration())
    assert publish(client, authority.sign_envelope(envelope)).status_code == 201
    envelope["data"] = make_registration(name="另一个名字有限公司")
    problem = assert_refused(
        client, runtime, authority.sign_envelope(envelope), 409, "duplicate_conflict"
    )
    assert problem["index"] is not None


def test_body_over_256_kib_is_refused_before_parsing(
    client: TestClient, authority: Publisher, runtime: Runtime
) -> None:
    big = authority.message("enterprise.registered", make_registration(address="福" * 100_000))
    assert len(big) > 256 * 1024
    assert_refused(client, runtime, big, 413, "payload_too_large")


def test_wrong_media_type_is_refused(client: TestClient, authority: Publisher) -> None:
    token = authority.message("enterprise.registered")
    headers = {"Content-Type": "application/json", **signer_headers(client, token)}
    response = client.post("/v1/messages", content=token, headers=headers)
    assert response.status_code == 415
    assert response.json()["code"] == "unsupported_media_type"


def test_batch_over_1000_items_is_refused(
    client: TestClient, authority: Publisher, runtime: Runtime
) -> None:
    before = snapshot(runtime)
    token = authority.message("enterprise.registered").decode()
    response = publish_many(client, [token] * 1001)
    assert response.status_code == 413
    assert response.json()["code"] == "batch_too_large"
    assert snapshot(runtime) == before


def test_batch_body_that_is_not_a_batch_is_refused(client: TestClient) -> None:
    response = client.post(
        "/v1/messages/batch", content=b"[1,2", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["code"] == "malformed_json"


def test_text_with_nul_is_refused_per_message(
    client: TestClient, authority: Publisher, runtime: Runtime
) -> None:
    """U+0000 in a signed message's text (PostgreSQL cannot store it) or in its kid is that
    message's own refusal: it used to fail the batch's (or the group commit's) shared
    transaction with a 500 on PostgreSQL, taking the other messages with it."""
    _registered(client, authority)
    named = authority.message("enterprise.registered", make_registration(name="宁德\x00化工"))
    problem = assert_refused(client, runtime, named, 400, "invalid_text")
    assert problem["pointer"] == "/data/name"
    nul_kid = _forge({"alg": "EdDSA", "kid": "\x00", "typ": "gateway-message+jws"}, {}, b"x" * 64)
    award = authority.message("grade.awarded", make_award())
    response = client.post(
        "/v1/messages/batch",
        json={"messages": [named.decode(), nul_kid.decode(), award.decode()]},
        headers=bearer(runtime, authority.agency_id),
    )
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["status"] for r in results] == [400, 401, 201]
    assert [r["problem"]["code"] for r in results[:2]] == ["invalid_text", "unknown_key"]
