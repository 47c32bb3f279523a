"""Publishing: the envelope filled and signed as the gateway expects, the receipt verified
against the gateway's JWKS before it is returned, the same bytes on every retry."""

from __future__ import annotations

import json

import httpx
import pytest
from client_fakes import AGENCY, FakeClock, FakeGateway, make_key, problem

from credit_gateway_client import Conflict, Receipt, Unprocessable, VerificationError
from credit_gateway_client.jose import parse_compact, verify_compact

REGISTRATION = {
    "type": "enterprise.registered",
    "subject": "91350203AY4CL12T2P",
    "data": {"name": "厦门某某机械制造有限公司", "legal_representative": "陈某某"},
}


def accepting(gateway: FakeGateway, index: int = 1000, status: int = 201, **overrides: object):
    def answer(request: httpx.Request) -> httpx.Response:
        body = gateway.publish_answer(request.content.decode(), index, **overrides)
        return httpx.Response(status, json=body)

    return answer


def test_publish_fills_signs_and_returns_a_verified_receipt() -> None:
    gateway = FakeGateway()
    route = gateway.router.post("/v1/messages").mock(side_effect=accepting(gateway))
    with gateway.client() as client:
        receipt = client.publish(REGISTRATION)
    request = route.calls[0].request
    assert request.headers["content-type"] == "application/jose"
    sent = request.content.decode()
    parsed = verify_compact(sent, gateway.agency_key.public, typ="gateway-message+jws")
    envelope = parsed.claims()
    assert envelope["contract"] == 2  # the newest live major of the type
    assert envelope["issuer"] == AGENCY
    assert envelope["issued_at"].endswith("+00:00")
    assert parsed.header["kid"] == gateway.agency_key.kid
    assert "厦门某某" in parsed.payload.decode()  # I-JSON in UTF-8, not \\u escapes
    assert isinstance(receipt, Receipt)
    assert (receipt.message_id, receipt.index, receipt.type) == (
        envelope["id"],
        1000,
        "enterprise.registered",
    )
    assert receipt.message == sent
    assert not receipt.duplicate


def test_the_callers_own_id_time_and_contract_are_kept() -> None:
    gateway = FakeGateway()
    route = gateway.router.post("/v1/messages").mock(side_effect=accepting(gateway))
    own = REGISTRATION | {
        "id": "7CC31130-DE06-44C1-8A2B-490CC20329A5",
        "issued_at": "2026-12-07T16:48:01+08:00",
        "contract": 1,
    }
    with gateway.client() as client:
        receipt = client.publish(own)
    envelope = parse_compact(route.calls[0].request.content.decode()).claims()
    assert (envelope["id"], envelope["issued_at"], envelope["contract"]) == (
        own["id"],
        own["issued_at"],
        1,
    )
    assert receipt.message_id == own["id"].lower()  # the gateway stores ids in lower case


def test_a_retry_resends_the_same_bytes_and_an_identical_resend_is_a_duplicate() -> None:
    gateway = FakeGateway()
    route = gateway.router.post("/v1/messages")
    route.side_effect = [
        httpx.ReadTimeout("slow"),
        problem("database_busy", 503, retry_after=1),
        accepting(gateway, status=200),
    ]
    with gateway.client() as client:
        receipt = client.publish(REGISTRATION)
    bodies = {c.request.content for c in route.calls}
    assert route.call_count == 3
    assert len(bodies) == 1
    assert receipt.duplicate


def test_a_receipt_by_another_key_is_refused() -> None:
    gateway = FakeGateway()
    impostor = make_key()

    def answer(request: httpx.Request) -> httpx.Response:
        body = gateway.publish_answer(request.content.decode(), 7)
        genuine = body["receipt"]
        forged = impostor.sign_compact(parse_compact(genuine).payload, typ="gateway-receipt+jws")
        # the gateway's header (its kid) and claims, with another key's signature
        body["receipt"] = ".".join(genuine.split(".")[:2] + forged.split(".")[2:])
        return httpx.Response(201, json=body)

    gateway.router.post("/v1/messages").mock(side_effect=answer)
    with gateway.client() as client, pytest.raises(VerificationError) as caught:
        client.publish(REGISTRATION)
    assert caught.value.code == "signature_invalid"


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"leaf_hash": "00" * 32}, "receipt_mismatch"),
        ({"message_id": "6cc31130-de06-44c1-8a2b-490cc20329a5"}, "receipt_mismatch"),
        ({"subject": "91350900587527783P"}, "receipt_mismatch"),
    ],
)
def test_a_receipt_for_other_bytes_is_refused(overrides: dict[str, str], code: str) -> None:
    gateway = FakeGateway()
    gateway.router.post("/v1/messages").mock(side_effect=accepting(gateway, **overrides))
    with gateway.client() as client, pytest.raises(VerificationError) as caught:
        client.publish(REGISTRATION)
    assert caught.value.code == code


def test_a_statement_of_another_typ_is_no_receipt() -> None:
    gateway = FakeGateway()

    def answer(request: httpx.Request) -> httpx.Response:
        body = gateway.publish_answer(request.content.decode(), 3)
        claims = parse_compact(body["receipt"]).claims()
        body["receipt"] = gateway.sign(claims, "gateway-attestation+jws")
        return httpx.Response(201, json=body)

    gateway.router.post("/v1/messages").mock(side_effect=answer)
    with gateway.client() as client, pytest.raises(VerificationError) as caught:
        client.publish(REGISTRATION)
    assert caught.value.code == "wrong_typ"


def test_a_rotated_gateway_key_is_fetched_once_on_its_first_kid() -> None:
    gateway = FakeGateway()
    gateway.router.post("/v1/messages").mock(side_effect=accepting(gateway))
    clock = FakeClock()
    with gateway.client(clock=clock) as client:
        client.publish(REGISTRATION)
        gateway.receipt_key = make_key()  # the gateway rotates its receipt key
        clock.now += 31  # refreshes are at least 30 s apart
        client.publish(REGISTRATION)
        client.publish(REGISTRATION)
    assert gateway.jwks_route.call_count == 2


def test_an_unknown_kid_does_not_refetch_the_jwks_on_every_call() -> None:
    gateway = FakeGateway()
    stranger = make_key()

    def answer(request: httpx.Request) -> httpx.Response:
        body = gateway.publish_answer(request.content.decode(), 3)
        claims = parse_compact(body["receipt"]).claims()
        body["receipt"] = gateway.sign(claims, "gateway-receipt+jws", key=stranger)
        return httpx.Response(201, json=body)

    gateway.router.post("/v1/messages").mock(side_effect=answer)
    with gateway.client() as client:
        for _ in range(3):
            with pytest.raises(VerificationError) as caught:
                client.publish(REGISTRATION)
            assert caught.value.code == "unknown_key"
    assert gateway.jwks_route.call_count == 1


def test_a_refusal_is_raised_with_its_members() -> None:
    gateway = FakeGateway()
    gateway.router.post("/v1/messages").mock(
        return_value=problem("duplicate_conflict", 409, "same id, other bytes", index=991)
    )
    with gateway.client() as client, pytest.raises(Conflict) as caught:
        client.publish(REGISTRATION)
    assert caught.value.problem["index"] == 991


def test_publish_many_answers_per_message_in_order() -> None:
    gateway = FakeGateway()

    def answer(request: httpx.Request) -> httpx.Response:
        messages = json.loads(request.content)["messages"]
        refused = problem("invalid_transition", 422, "already registered").json()
        results = [
            {"status": 201, **gateway.publish_answer(messages[0], 10)},
            {"status": 422, "problem": refused},
            {"status": 200, **gateway.publish_answer(messages[2], 8)},
        ]
        return httpx.Response(
            200, json={"accepted": 1, "duplicates": 1, "rejected": 1, "results": results}
        )

    gateway.router.post("/v1/messages/batch").mock(side_effect=answer)
    with gateway.client() as client:
        first, second, third = client.publish_many([REGISTRATION, REGISTRATION, REGISTRATION])
    assert isinstance(first, Receipt)
    assert first.index == 10
    assert isinstance(second, Unprocessable)
    assert second.code == "invalid_transition"
    assert isinstance(third, Receipt)
    assert third.duplicate


def test_an_es256_agency_key_signs_what_its_public_key_verifies() -> None:
    gateway = FakeGateway(agency_key=make_key("es256"))
    route = gateway.router.post("/v1/messages").mock(side_effect=accepting(gateway))
    with gateway.client() as client:
        client.publish(REGISTRATION)
    sent = route.calls[0].request.content.decode()
    assert parse_compact(sent).header["alg"] == "ES256"
    verify_compact(sent, gateway.agency_key.public)
    assert gateway.assertions[0]["header"]["alg"] == "ES256"
