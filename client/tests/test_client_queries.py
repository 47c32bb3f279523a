"""Standing queries: an answer is returned only with a verified attestation over exactly it,
for this agency; a batch carries one attestation and a typed problem per refused code."""

from __future__ import annotations

import json

import httpx
import pytest
from client_fakes import AGENCY, FakeGateway, make_key, problem, resign_header

from credit_gateway_client import BadRequest, VerificationError

CODE = "91350203AY4CL12T2P"
PATH = f"/v1/enterprises/{CODE}"
ANSWER = {"uscc": CODE, "grade": {"status": "revoked", "level": None}, "lists": []}


def answering(body: dict[str, object]) -> httpx.Response:
    return httpx.Response(200, json=body)


def test_a_standing_comes_with_its_verified_attestation() -> None:
    gateway = FakeGateway()
    route = gateway.router.get(PATH).mock(
        return_value=answering({"standing": ANSWER, "attestation": gateway.attest(ANSWER)})
    )
    with gateway.client() as client:
        standing = client.standing(CODE, "贷前审查 loan 2026-1207", fields=["grade", "lists"])
    params = route.calls[0].request.url.params
    assert (params["purpose"], params["fields"]) == ("贷前审查 loan 2026-1207", "grade,lists")
    assert standing.uscc == CODE
    assert standing.answer == ANSWER
    assert standing.attestation.log_size == 1008
    assert standing.attestation.audience == AGENCY
    assert standing.attestation.kid == gateway.receipt_key.kid


@pytest.mark.parametrize(
    "attestation",
    [
        pytest.param(lambda g: g.attest(ANSWER | {"lists": ["black"]}), id="another answer"),
        pytest.param(lambda g: g.attest(ANSWER, audience="fj-cib"), id="another agency"),
        pytest.param(
            lambda g: g.sign({"answer": ANSWER, "audience": AGENCY}, "gateway-receipt+jws"),
            id="a receipt",
        ),
        pytest.param(
            lambda g: g.sign(
                {"answer": ANSWER, "audience": AGENCY, "log_size": 1, "issued_at": "x"},
                "gateway-attestation+jws",
                key=make_key(),
            ),
            id="an unknown key",
        ),
        pytest.param(
            lambda g: resign_header(g.attest(ANSWER), g.receipt_key, alg="none", kid="x"),
            id="alg none",
        ),
        pytest.param(lambda g: "not.a.jws", id="garbage"),
    ],
)
def test_an_answer_without_a_good_attestation_is_refused(attestation) -> None:
    gateway = FakeGateway()
    gateway.router.get(PATH).mock(
        return_value=answering({"standing": ANSWER, "attestation": attestation(gateway)})
    )
    with gateway.client() as client, pytest.raises(VerificationError):
        client.standing(CODE, "loan")


def test_the_fully_specified_ed25519_alg_is_accepted_too() -> None:
    gateway = FakeGateway()
    key = gateway.receipt_key
    token = resign_header(
        gateway.attest(ANSWER), key, alg="Ed25519", kid=key.kid, typ="gateway-attestation+jws"
    )
    gateway.router.get(PATH).mock(
        return_value=answering({"standing": ANSWER, "attestation": token})
    )
    with gateway.client() as client:
        assert client.standing(CODE, "loan").answer == ANSWER


def test_query_many_keeps_each_codes_problem_and_verifies_one_attestation() -> None:
    gateway = FakeGateway()
    refused = problem("invalid_uscc", 400, "check character", part="check").json()
    results = [
        {"uscc": CODE, "status": 200, "standing": ANSWER},
        {"uscc": "91350203AY4CL12T2Q", "status": 400, "problem": refused},
    ]
    route = gateway.router.post("/v1/enterprises/query").mock(
        return_value=answering({"results": results, "attestation": gateway.attest(results)})
    )
    with gateway.client() as client:
        answer = client.query_many([CODE, "91350203AY4CL12T2Q"], "loan", fields=["grade"])
    assert json.loads(route.calls[0].request.content) == {
        "codes": [CODE, "91350203AY4CL12T2Q"],
        "purpose": "loan",
        "fields": ["grade"],
    }
    ok, bad = answer.results
    assert ok.standing == ANSWER
    assert ok.problem is None
    assert isinstance(bad.problem, BadRequest)
    assert bad.problem.problem["part"] == "check"
    assert bad.standing is None
    assert answer.attestation.answer == results


def test_a_batch_whose_attestation_covers_other_results_is_refused() -> None:
    gateway = FakeGateway()
    results = [{"uscc": CODE, "status": 200, "standing": ANSWER}]
    gateway.router.post("/v1/enterprises/query").mock(
        return_value=answering({"results": results, "attestation": gateway.attest([])})
    )
    with gateway.client() as client, pytest.raises(VerificationError) as caught:
        client.query_many([CODE], "loan")
    assert caught.value.code == "attestation_mismatch"
