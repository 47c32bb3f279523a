"""The batch endpoint: one transaction, answered per item; refused items leave no trace."""

from __future__ import annotations

from contract_factories import USCC, make_award, make_registration, make_revocation
from fastapi.testclient import TestClient
from gateway_factories import Publisher, publish_many, snapshot

from contracts.uscc import make_uscc
from gateway.runtime import Runtime


def test_batch_answers_each_item_and_applies_in_order(
    client: TestClient, authority: Publisher, runtime: Runtime
) -> None:
    other = make_uscc("91350100MA2XY0001")
    good_register = authority.message("enterprise.registered", make_registration())
    award = authority.message("grade.awarded", make_award())
    bad_signature = award[:-4] + (b"AAAA" if not award.endswith(b"AAAA") else b"BBBB")
    unknown_enterprise = authority.message("grade.awarded", make_award(), subject=other)
    revoke = authority.message("grade.revoked", make_revocation())
    tokens = [good_register, award, bad_signature, unknown_enterprise, revoke, award]
    response = publish_many(client, tokens)
    assert response.status_code == 200, response.text
    body = response.json()
    statuses = [r["status"] for r in body["results"]]
    assert statuses == [201, 201, 401, 422, 201, 200]
    assert body["accepted"] == 3
    assert body["duplicates"] == 1
    assert body["rejected"] == 2
    codes = [r.get("problem", {}).get("code") for r in body["results"]]
    assert codes[2:4] == ["signature_invalid", "unknown_enterprise"]
    indexes = [r["index"] for r in body["results"] if r["status"] == 201]
    assert indexes == sorted(indexes)
    assert indexes[1] - indexes[0] == 1
    assert body["results"][5]["receipt"] == body["results"][1]["receipt"]
    state = snapshot(runtime)
    assert state["enterprises"] == [(USCC, "revoked", None, "未达标")]
    assert state["log_entries"] == state["log_size"]


def test_refused_item_in_a_batch_changes_nothing_of_its_own(
    client: TestClient, authority: Publisher, runtime: Runtime
) -> None:
    publish_many(client, [authority.message("enterprise.registered")])
    before = snapshot(runtime)
    # Revoking an enterprise with no grade fails the state machine: nothing of it is stored.
    response = publish_many(client, [authority.message("grade.revoked", make_revocation())])
    assert response.json()["results"][0]["problem"]["code"] == "invalid_transition"
    assert snapshot(runtime) == before


def test_many_enterprises_in_one_batch(
    client: TestClient, authority: Publisher, runtime: Runtime
) -> None:
    codes = [make_uscc(f"913502{n:06d}AB12C") for n in range(200)]
    tokens = []
    for code in codes:
        tokens.append(authority.message("enterprise.registered", make_registration(), subject=code))
        tokens.append(authority.message("grade.awarded", make_award(), subject=code))
    response = publish_many(client, tokens)
    body = response.json()
    assert body["accepted"] == 400, [r for r in body["results"] if r["status"] != 201][:3]
    state = snapshot(runtime)
    assert {e[1:] for e in state["enterprises"]} == {("active", "2", "达标")}
    assert len(state["enterprises"]) == 200
