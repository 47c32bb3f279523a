"""The batch endpoint: one transaction, answered per item; refused items leave no trace."""

from __future__ import annotations

from contract_factories import (
    USCC,
    make_accident,
    make_award,
    make_listing,
    make_rectification_order,
    make_registration,
    make_revocation,
    make_self_assessment,
)
from fastapi.testclient import TestClient
from gateway_factories import Publisher, publish_many, snapshot
from sqlalchemy import func, select

from contracts.uscc import complete_uscc
from gateway import models
from gateway.runtime import Runtime


def test_batch_answers_each_item_and_applies_in_order(
    client: TestClient, authority: Publisher, runtime: Runtime
) -> None:
    other = complete_uscc("91350100MA2XY001")
    good_register = authority.message("enterprise.registered", make_registration())
    award = authority.message("grade.awarded", make_award())
    head, payload, signature = award.split(b".")  # a first character carries no padding bits
    flipped = (b"B" if signature.startswith(b"A") else b"A") + signature[1:]
    bad_signature = b".".join([head, payload, flipped])
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
    codes = [complete_uscc(f"913502{n:06d}AB12") for n in range(200)]
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


def test_a_new_enterprise_and_rows_that_refer_to_it_in_one_batch(
    client: TestClient, authority: Publisher, runtime: Runtime
) -> None:
    """Accidents, orders and listings refer to the enterprise row (a foreign key checked at
    once on both databases): the registration earlier in the same batch must be written
    before them, and the enterprise's later changes in the batch must reach its row."""
    tokens = [
        authority.message("enterprise.registered", make_registration()),
        authority.message("accident.reported", make_accident()),
        authority.message("rectification.ordered", make_rectification_order()),
        authority.message("listing.added", make_listing()),
        authority.message("grade.awarded", make_award()),
        authority.message("self_assessment.published", make_self_assessment()),
    ]
    body = publish_many(client, tokens).json()
    assert [r["status"] for r in body["results"]] == [201] * 6, body["results"]
    last_index = body["results"][-1]["index"]
    with runtime.db.reader() as session:
        ent = session.get(models.Enterprise, USCC)
        assert ent is not None
        assert (ent.grade_status, ent.grade_level, ent.ledger_status) == ("active", "2", "达标")
        assert ent.self_assessment_year == make_self_assessment()["year"]
        assert ent.last_index == last_index
        assert ent.certificate_no == make_award()["certificate_no"]
        for table in (models.Accident, models.Rectification, models.Listing):
            assert session.scalar(select(func.count()).select_from(table)) == 1, table
    # a later batch changes the stored row (an UPDATE, not a second INSERT)
    body = publish_many(client, [authority.message("grade.revoked", make_revocation())]).json()
    assert body["accepted"] == 1, body["results"]
    state = snapshot(runtime)
    assert state["enterprises"] == [(USCC, "revoked", None, "未达标")]
