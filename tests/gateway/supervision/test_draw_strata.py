"""How a draw request is sized and seeded (issue 21 §4): strata given by `rate`, strata by
classified-supervision frequency when none are given, and the seed checkpoint when witnesses
must cosign it first (the first checkpoint past the request that meets the quorum)."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import pytest
from contract_factories import make_award, make_registration
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient
from gateway_factories import Publisher, bearer, publish, snapshot
from test_supervision import SECRET, draw_body, province, supervisor

from contracts.uscc import complete_uscc
from gateway.errors import Conflict
from gateway.models import Cosignature, Draw
from gateway.runtime import Runtime
from gateway.supervision import draws
from keys import note

__all__ = ["supervisor"]  # the fixture, shared with test_supervision

WINDOW = dt.timedelta(days=1)


def request(client: TestClient, runtime: Runtime, body: dict[str, Any]) -> Any:
    return client.post(
        "/v1/inspections/draws", json=body, headers=bearer(runtime, "fj-yjt-zf", "supervise")
    )


# --- rate strata ---------------------------------------------------------------------------------


def test_a_rate_is_resolved_to_a_sample_rounded_up_over_the_stratum_population(
    client: TestClient, runtime: Runtime, authority: Publisher, supervisor: Publisher
) -> None:
    codes = province(client, authority, 40)  # levels 1, 2, 3 for n % 4 = 1, 2, 3: 10 each
    in_fuzhou = sum(1 for n, code in enumerate(codes) if n % 4 == 3 and code[2:8] == "350102")
    strata = [
        {"name": "l1", "where": {"levels": ["1"]}, "rate": 0.21},  # 2.1 of 10: 3, not 2
        {"name": "l2", "where": {"levels": ["2"]}, "rate": 1},
        {"name": "l3-fz", "where": {"levels": ["3"], "region_prefix": "350102"}, "rate": 0.5},
    ]
    answer = request(client, runtime, draw_body("RATE", strata=strata))
    assert answer.status_code == 201, answer.text
    logged = answer.json()["request"]["strata"]
    assert [(s["name"], s["sample"]) for s in logged] == [
        ("l1", 3),
        ("l2", 10),
        ("l3-fz", math.ceil(in_fuzhou / 2)),
    ]
    assert all("rate" not in s for s in logged)  # the log holds samples only


@pytest.mark.parametrize("rate", [0, 1.5, -0.1, True, "0.5"])
def test_a_rate_outside_zero_to_one_is_refused_and_nothing_stored(
    client: TestClient,
    runtime: Runtime,
    authority: Publisher,
    supervisor: Publisher,
    rate: Any,
) -> None:
    province(client, authority, 8)
    before = snapshot(runtime)
    strata = [{"name": "l1", "where": {"levels": ["1"]}, "rate": rate}]
    answer = request(client, runtime, draw_body("BAD-RATE", strata=strata))
    assert (answer.status_code, answer.json()["code"]) == (422, "invalid_draw"), answer.text
    assert snapshot(runtime) == before


# --- strata by frequency -------------------------------------------------------------------------


def test_without_strata_the_achieved_ledger_is_drawn_by_each_grade_s_frequency(
    client: TestClient, runtime: Runtime, authority: Publisher, supervisor: Publisher
) -> None:
    province(client, authority, 40)  # hazardous chemicals, 10 each of levels 1, 2, 3
    # an achieved enterprise of another scheme is its own stratum, at its own frequency
    other = complete_uscc("91350102MA900000")
    registration = make_registration(region_code="350102", scheme="industry_trade")
    award = make_award(
        level="2",
        scheme="industry_trade",
        valid_from="2026-01-10",
        announced_on="2026-01-10",
        valid_to="2029-01-09",
    )
    for message_type, data in (("enterprise.registered", registration), ("grade.awarded", award)):
        answer = publish(client, authority.message(message_type, data, subject=other))
        assert answer.status_code == 201, answer.text
    body = draw_body("BY-FREQUENCY", period={"from": "2026-11-02", "to": "2026-11-30"})
    del body["strata"]
    answer = request(client, runtime, body)
    assert answer.status_code == 201, answer.text
    # 29 days. No enterprise published last year's self-assessment report, so each graded one
    # is also under supervision.self_assessment_missing (at least 4 a year): level 1 and 2 at
    # 4 a year (level 1's cap of 2 gives way to the higher minimum), level 3 at 8:
    # ceil(10 × 4 × 29 / 365) = 4 and ceil(10 × 8 × 29 / 365) = 7. The industry-trade
    # level-2 holder (2 a year, raised to 4 the same way) alone: ceil(1 × 4 × 29 / 365) = 1.
    assert [(s["name"], s["where"], s["sample"]) for s in answer.json()["request"]["strata"]] == [
        (
            "hazardous_chemicals-level-1",
            {"region_prefix": "35", "schemes": ["hazardous_chemicals"], "levels": ["1"]},
            4,
        ),
        (
            "hazardous_chemicals-level-2",
            {"region_prefix": "35", "schemes": ["hazardous_chemicals"], "levels": ["2"]},
            4,
        ),
        (
            "hazardous_chemicals-level-3",
            {"region_prefix": "35", "schemes": ["hazardous_chemicals"], "levels": ["3"]},
            7,
        ),
        (
            "industry_trade-level-2",
            {"region_prefix": "35", "schemes": ["industry_trade"], "levels": ["2"]},
            1,
        ),
    ]


def test_strata_by_frequency_are_for_the_achieved_ledger_only(
    client: TestClient, runtime: Runtime, authority: Publisher, supervisor: Publisher
) -> None:
    province(client, authority, 8)
    before = snapshot(runtime)
    body = draw_body("BY-FREQUENCY-BASIC", ledger="basic")
    del body["strata"]
    answer = request(client, runtime, body)
    assert (answer.status_code, answer.json()["code"]) == (422, "invalid_draw"), answer.text
    assert answer.json()["pointer"] == "/strata"
    assert snapshot(runtime) == before


# --- the seed checkpoint under a witness quorum ---------------------------------------------------


def checkpoint_size(client: TestClient) -> tuple[int, str]:
    text = client.get("/v1/log/checkpoint").text
    body = note.parse_note(text).body
    return note.parse_checkpoint(body).size, body


def cosign(runtime: Runtime, body: str, *witnesses: str) -> None:
    size = note.parse_checkpoint(body).size
    with runtime.db.transaction() as session:
        for name in witnesses:
            line = note.cosign(body, name, Ed25519PrivateKey.generate(), 1_790_000_000)
            session.add(
                Cosignature(size=size, witness=name, line=line, signed_at=runtime.clock.now())
            )


def test_with_a_quorum_the_seed_is_the_first_checkpoint_past_the_request_cosigned_by_it(
    client: TestClient, runtime: Runtime, authority: Publisher, supervisor: Publisher
) -> None:
    province(client, authority, 8)
    before, before_body = checkpoint_size(client)
    cosign(runtime, before_body, "w1", "w2", "w3")  # cosigned, but before the request
    small = [{"name": "l1", "where": {"levels": ["1"]}, "sample": 1}]
    assert request(client, runtime, draw_body("QUORUM", strata=small)).status_code == 201
    first, first_body = checkpoint_size(client)
    more = make_registration(region_code="350102")
    code = complete_uscc("91350102MA800000")
    publish(client, authority.message("enterprise.registered", more, subject=code))
    second, second_body = checkpoint_size(client)
    third_code = complete_uscc("91350102MA800001")
    publish(client, authority.message("enterprise.registered", more, subject=third_code))
    third, third_body = checkpoint_size(client)
    assert before < first < second < third
    cosign(runtime, first_body, "w1")
    cosign(runtime, second_body, "w1", "w2")
    cosign(runtime, third_body, "w1", "w2", "w3")

    with runtime.db.reader() as session:
        row = draws.get_draw(session, "QUORUM")
        assert before <= row.request_index < first

        def seed(quorum: int) -> int | None:
            found = draws.seed_checkpoint(session, row, quorum)
            return None if found is None else found.size

        assert [seed(q) for q in (0, 1, 2, 3, 4)] == [first, first, second, third, None]

    # the reveal takes that checkpoint, and without one meeting the quorum it is refused
    with runtime.db.transaction() as session, pytest.raises(Conflict) as missing:
        reveal(runtime, session, quorum=4)
    assert missing.value.code == "seed_checkpoint_missing"
    assert "with 4 cosignatures" in str(missing.value.detail)
    with runtime.db.transaction() as session:
        revealed = reveal(runtime, session, quorum=2)
        assert (revealed.status, revealed.seed_checkpoint_size) == ("completed", second)
        assert revealed.result is not None
        assert revealed.result["seed_checkpoint_size"] == second


def reveal(runtime: Runtime, session: Any, *, quorum: int) -> Draw:
    return draws.reveal(
        session,
        runtime.signer,
        "QUORUM",
        SECRET.hex(),
        "fj-yjt-zf",
        runtime.clock.now(),
        quorum=quorum,
        window=WINDOW,
    )
