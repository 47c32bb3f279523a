"""Classified supervision and dynamic management (闽安委〔2017〕1号 四（一）（二）, issue 21):
inspections and their bad inputs, the seed's path from a random draw to key supervision, the
supervision plan, and draws that the log alone verifies (keys.draw_verify imports nothing
from gateway/) and that a database row changed under them fails."""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import Any

import pytest
from contract_factories import make_award, make_registration, make_verification
from fastapi.testclient import TestClient
from gateway_factories import Publisher, bearer, publish, publish_many, register_publisher, snapshot
from sqlalchemy import update
from typer.testing import CliRunner

from contracts.uscc import complete_uscc
from gateway.cli import app
from gateway.clock import FixedClock
from gateway.models import Enterprise
from gateway.runtime import Runtime
from gateway.settings import Settings
from keys.draw_verify import verify_draw
from keys.draws import commitment
from keys.jws import parse_compact

SUPERVISOR_TYPES = ["inspection.recorded", "rectification.ordered", "rectification.verified"]
SECRET = bytes(range(32))


@pytest.fixture
def supervisor(runtime: Runtime) -> Publisher:
    return register_publisher(
        runtime, "fj-yjt-zf", SUPERVISOR_TYPES, roles=["work_safety_supervisor"]
    )


def inspection(**overrides: Any) -> dict[str, Any]:
    return {
        "inspection_id": "JC-0001",
        "kind": "unannounced",
        "inspected_on": "2026-10-20",
        "inspectors": ["INSP-1", "INSP-2"],
        "findings": {
            "deducted_items": ["gbt33000.5.5"],
            "system_running": True,
            "safety_conditions_degraded": False,
            "hazards_found": 1,
        },
    } | overrides


def accepted(response: Any) -> int:
    assert response.status_code == 201, response.text
    return int(response.json()["index"])


def refused(client: TestClient, runtime: Runtime, token: bytes, status: int, code: str) -> None:
    """Refused with `code`, and nothing stored."""
    before = snapshot(runtime)
    response = publish(client, token)
    assert (response.status_code, response.json()["code"]) == (status, code), response.text
    assert snapshot(runtime) == before


def auditor(client: TestClient) -> dict[str, str]:
    """The headers of an auditor that reads every message whole: the log's leaves are the
    messages themselves, shown only under a `read` right (issue 20, finding 8)."""
    from contracts.registry import MESSAGE_TYPES
    from gateway.models import Agency
    from gateway.registry import rights, service

    runtime: Runtime = client.app.state.runtime  # type: ignore[attr-defined]
    with runtime.db.transaction() as session:
        if session.get(Agency, "fj-audit") is None:
            now = runtime.clock.now()
            service.add_agency(
                session,
                runtime.signer,
                agency_id="fj-audit",
                name="auditor",
                uscc="11350000MB0000019N",
                roles=["operator"],
                now=now,
            )
            for message_type in MESSAGE_TYPES:
                rights.grant(
                    session,
                    runtime.signer,
                    agency_id="fj-audit",
                    action="read",
                    contract=message_type,
                    fields=None,
                    now=now,
                )
    return bearer(runtime, "fj-audit", "ledger.read")


def message_id(client: TestClient, index: int) -> str:
    entry = client.get(
        f"/v1/log/entries?start={index}&end={index + 1}", headers=auditor(client)
    ).json()["entries"][0]
    return str(json.loads(parse_compact(entry["jws"]).payload)["id"])


# --- bad input: a stable code, nothing stored ----------------------------------------------------


def test_inspections_refused_with_their_codes(
    client: TestClient, runtime: Runtime, authority: Publisher, supervisor: Publisher
) -> None:
    refused(
        client,
        runtime,
        supervisor.message("inspection.recorded", inspection()),
        422,
        "unknown_enterprise",
    )
    accepted(publish(client, authority.message("enterprise.registered", make_registration())))
    outsider = register_publisher(runtime, "fj-other", ["inspection.recorded"], roles=["bank"])
    refused(
        client, runtime, outsider.message("inspection.recorded", inspection()), 403, "role_required"
    )
    unknown_item = inspection(findings=inspection()["findings"] | {"deducted_items": ["5.5"]})
    refused(
        client,
        runtime,
        supervisor.message("inspection.recorded", unknown_item),
        422,
        "unknown_finding",
    )
    drawn = inspection(kind="random_draw", draw_id="no-such-draw")
    refused(client, runtime, supervisor.message("inspection.recorded", drawn), 422, "not_drawn")
    # never graded: classified supervision puts it at the upper-limit penalty scale
    mild = inspection(
        penalties=[{"decision_no": "罚〔2026〕1号", "amount_cny": 10000, "at_upper_limit": False}]
    )
    refused(client, runtime, supervisor.message("inspection.recorded", mild), 422, "rule_violation")
    first = accepted(publish(client, supervisor.message("inspection.recorded", inspection())))
    refused(
        client,
        runtime,
        supervisor.message("inspection.recorded", inspection()),
        422,
        "invalid_transition",
    )
    # an order of a system not running cites an inspection that found it not running
    order = {
        "rectification_id": "ZG-1",
        "order_no": "责改〔2026〕1号",
        "kind": "system_not_running",
        "description": "体系未有效运行",
        "ordered_on": "2026-10-21",
        "deadline": "2026-11-20",
        "inspection_message_id": message_id(client, first),
    }
    refused(
        client, runtime, supervisor.message("rectification.ordered", order), 422, "finding_missing"
    )
    recheck = make_verification(rectification_id="ZG-1", verified_on="2026-10-25")
    refused(
        client,
        runtime,
        supervisor.message("rectification.verified", recheck),
        422,
        "unknown_reference",
    )
    closure = {
        "closed_on": "2026-10-30",
        "closure": "deregistered",
        "deciding_body": "宁德市市场监督管理局",
    }
    accepted(publish(client, authority.message("enterprise.closed", closure)))
    later = inspection(inspection_id="JC-0002", inspected_on="2026-10-31")
    refused(
        client, runtime, supervisor.message("inspection.recorded", later), 422, "enterprise_closed"
    )


def test_a_recheck_before_its_order_is_refused(
    client: TestClient, runtime: Runtime, authority: Publisher, supervisor: Publisher
) -> None:
    accepted(publish(client, authority.message("enterprise.registered", make_registration())))
    found = inspection(findings=inspection()["findings"] | {"safety_conditions_degraded": True})
    at = accepted(publish(client, supervisor.message("inspection.recorded", found)))
    order = {
        "rectification_id": "ZG-2",
        "order_no": "责改〔2026〕2号",
        "kind": "safety_conditions_degraded",
        "description": "安全生产条件降低",
        "ordered_on": "2026-10-21",
        "deadline": "2026-11-20",
        "inspection_message_id": message_id(client, at),
    }
    accepted(publish(client, supervisor.message("rectification.ordered", order)))
    early = make_verification(rectification_id="ZG-2", verified_on="2026-10-20")
    refused(
        client, runtime, supervisor.message("rectification.verified", early), 422, "rule_violation"
    )


# --- draws -------------------------------------------------------------------------------------

CITIES = ("350102", "350203", "350581")


def province(client: TestClient, authority: Publisher, count: int) -> list[str]:
    """`count` registered enterprises, three in four awarded (levels 1, 2, 3 in turn)."""
    codes, tokens = [], []
    for n in range(count):
        code = complete_uscc(f"91{CITIES[n % 3]}MA{n:06d}")
        codes.append(code)
        registration = make_registration(region_code=CITIES[n % 3], name=f"企业{n}")
        tokens.append(authority.message("enterprise.registered", registration, subject=code))
        if n % 4:
            award = make_award(
                level=str(n % 4),
                valid_from="2026-01-10",
                announced_on="2026-01-10",
                valid_to="2029-01-09",
            )
            tokens.append(authority.message("grade.awarded", award, subject=code))
    for start in range(0, len(tokens), 1000):
        body = publish_many(client, tokens[start : start + 1000]).json()
        assert body["rejected"] == 0, [r for r in body["results"] if "problem" in r][:3]
    return codes


def draw_body(draw_id: str, **overrides: Any) -> dict[str, Any]:
    return {
        "draw_id": draw_id,
        "region_prefix": "35",
        "period": {"from": "2026-11-02", "to": "2027-01-31"},
        "ledger": "achieved",
        "strata": [
            {"name": "level-1", "where": {"levels": ["1"]}, "sample": 10},
            {"name": "level-2", "where": {"levels": ["2"]}, "sample": 15},
            {"name": "level-3", "where": {"levels": ["3"]}, "sample": 25},
        ],
        "inspectors": [f"INSP-{n:03d}" for n in range(12)],
        "inspectors_per_enterprise": 2,
        "commitment": commitment(SECRET),
    } | overrides


def draw(client: TestClient, runtime: Runtime, body: dict[str, Any]) -> dict[str, Any]:
    """Request, have a checkpoint signed past the request, reveal: the completed draw."""
    headers = bearer(runtime, "fj-yjt-zf", "supervise")
    requested = client.post("/v1/inspections/draws", json=body, headers=headers)
    assert requested.status_code == 201, requested.text
    early = client.post(
        f"/v1/inspections/draws/{body['draw_id']}/reveal",
        json={"secret": SECRET.hex()},
        headers=headers,
    )
    assert (early.status_code, early.json()["code"]) == (409, "seed_checkpoint_missing")
    assert client.get("/v1/log/checkpoint").status_code == 200  # signs one past the request
    revealed = client.post(
        f"/v1/inspections/draws/{body['draw_id']}/reveal",
        json={"secret": SECRET.hex()},
        headers=headers,
    )
    assert revealed.status_code == 200, revealed.text
    return dict(revealed.json())


def verify_from_the_log(client: TestClient, drawn: dict[str, Any]) -> list[str]:
    """What a third party does: fetch the log and the checkpoint over HTTP, then the pure
    verifier of keys/ (no gateway code)."""
    result = drawn["result"]
    size = result["seed_checkpoint_size"]
    leaves: list[bytes] = []
    headers = auditor(client)
    for start in range(0, size, 1000):
        end = min(size, start + 1000)
        page = client.get(f"/v1/log/entries?start={start}&end={end}", headers=headers).json()
        leaves += [entry["jws"].encode() for entry in page["entries"]]
    checkpoint = drawn["seed_checkpoint"]  # the signed note of the first checkpoint past it
    assert f"\n{size}\n" in checkpoint
    vkey = client.get("/v1/log/vkey").text.strip()
    return verify_draw(
        leaves=leaves,
        request_index=drawn["request_index"],
        seed_checkpoint=checkpoint,
        log_vkey=vkey,
        secret_hex=SECRET.hex(),
        result=result,
    )


def test_fifty_of_two_thousand_in_three_strata_verified_from_the_log_alone(
    client: TestClient,
    runtime: Runtime,
    authority: Publisher,
    supervisor: Publisher,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    codes = province(client, authority, 2000)
    drawn = draw(client, runtime, draw_body("FJ-2026-Q4-01"))
    strata = drawn["result"]["strata"]
    assert [(s["name"], s["sample"], len(s["selected"])) for s in strata] == [
        ("level-1", 10, 10),
        ("level-2", 15, 15),
        ("level-3", 25, 25),
    ]
    assert sum(s["population"] for s in strata) == drawn["request"]["candidates_count"] == 1500
    selected = {code for s in strata for code in s["selected"]}
    assert selected <= set(codes)
    assert all(len(set(names)) == 2 for names in drawn["result"]["assignments"].values())
    assert verify_from_the_log(client, drawn) == []
    # the same id with the same request: the stored draw; with another: refused
    headers = bearer(runtime, "fj-yjt-zf", "supervise")
    again = client.post("/v1/inspections/draws", json=draw_body("FJ-2026-Q4-01"), headers=headers)
    assert again.status_code == 200
    other = client.post(
        "/v1/inspections/draws",
        json=draw_body("FJ-2026-Q4-01", region_prefix="3501"),
        headers=headers,
    )
    assert (other.status_code, other.json()["code"]) == (409, "draw_conflict")
    # a tampered result fails, naming it
    tampered = dict(drawn, result=drawn["result"] | {"seed": "00" * 32})
    assert verify_from_the_log(client, tampered)

    # A ledger row changed in the database behind the log's back: the draw made from it
    # does not verify, and gateway draw verify names the enterprise.
    victim = sorted(codes[1::4])[7]  # a level-1 holder, a candidate of the first stratum
    with runtime.db.transaction() as session:
        session.execute(
            update(Enterprise).where(Enterprise.uscc == victim).values(grade_status="revoked")
        )
    second = draw(client, runtime, draw_body("FJ-2026-Q4-02", commitment=commitment(SECRET)))
    monkeypatch.setenv("GATEWAY_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("GATEWAY_DATABASE_URL", settings.effective_database_url)
    monkeypatch.setenv("GATEWAY_LOG_ORIGIN", settings.log_origin)
    result = CliRunner().invoke(app, ["draw", "verify", "FJ-2026-Q4-02"])
    assert result.exit_code == 1, result.output
    assert victim in result.output
    ok = CliRunner().invoke(app, ["draw", "verify", "FJ-2026-Q4-01", "--json"])
    assert ok.exit_code == 0, ok.output
    assert second["status"] == "completed"


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"strata": []}, 422, "invalid_draw"),
        (
            {"strata": [{"name": "l1", "where": {"levels": ["1"]}, "sample": 999}]},
            422,
            "draw_error",
        ),
        ({"period": {"from": "2026-10-01", "to": "2026-12-31"}}, 422, "rule_violation"),
        ({"inspectors": ["INSP-1"]}, 422, "insufficient_inspectors"),
        ({"commitment": "xyz"}, 400, "invalid_request"),
    ],
)
def test_draw_requests_refused_with_their_codes(
    client: TestClient,
    runtime: Runtime,
    authority: Publisher,
    supervisor: Publisher,
    change: dict[str, Any],
    status: int,
    code: str,
) -> None:
    province(client, authority, 40)
    before = snapshot(runtime)
    small = {"strata": [{"name": "l1", "where": {"levels": ["1"]}, "sample": 2}]}
    response = client.post(
        "/v1/inspections/draws",
        json=draw_body("bad") | small | change,
        headers=bearer(runtime, "fj-yjt-zf", "supervise"),
    )
    assert (response.status_code, response.json()["code"]) == (status, code), response.text
    assert snapshot(runtime) == before
    bank = client.post(
        "/v1/inspections/draws",
        json=draw_body("bank"),
        headers=bearer(runtime, "fj-cib", "supervise"),
    )
    assert bank.status_code in (401, 403)


# --- the seed's path, and the plan -----------------------------------------------------------


def test_a_draw_to_key_supervision_and_the_plan_shows_it_behind(
    client: TestClient,
    runtime: Runtime,
    authority: Publisher,
    supervisor: Publisher,
    clock: FixedClock,
) -> None:
    codes = province(client, authority, 40)
    drawn = draw(
        client,
        runtime,
        draw_body(
            "FJ-2026-Q4-09", strata=[{"name": "l2", "where": {"levels": ["2"]}, "sample": 3}]
        ),
    )
    target = drawn["result"]["strata"][0]["selected"][0]
    inspectors = drawn["result"]["assignments"][target]
    headers = bearer(runtime, "fj-yjt-zf", "supervise")
    # a random-draw inspection of an enterprise the draw did not select is refused
    other = next(c for c in codes if c not in drawn["result"]["assignments"])
    off = inspection(
        kind="random_draw",
        draw_id="FJ-2026-Q4-09",
        inspected_on="2026-11-03",
        inspectors=inspectors,
    )
    refused(
        client,
        runtime,
        supervisor.message("inspection.recorded", off, subject=other),
        422,
        "not_drawn",
    )
    clock.at = dt.datetime(2026, 11, 10, 9, tzinfo=dt.UTC)
    not_running = off | {"findings": off["findings"] | {"system_running": False}}
    found = accepted(
        publish(client, supervisor.message("inspection.recorded", not_running, subject=target))
    )
    order = {
        "rectification_id": "ZG-9",
        "order_no": "责改〔2026〕9号",
        "kind": "system_not_running",
        "description": "双随机抽查发现标准化体系未有效运行",
        "ordered_on": "2026-11-04",
        "deadline": "2026-12-04",
        "inspection_message_id": message_id(client, found),
    }
    accepted(publish(client, supervisor.message("rectification.ordered", order, subject=target)))
    clock.at = dt.datetime(2026, 12, 10, 9, tzinfo=dt.UTC)
    failed = accepted(
        publish(
            client,
            supervisor.message(
                "rectification.verified",
                make_verification(rectification_id="ZG-9", verified_on="2026-12-08"),
                subject=target,
            ),
        )
    )
    revocation = {
        "reason_code": "system_not_running",
        "reason": "整改复查仍不合格",
        "decision_no": "闽应急撤〔2026〕9号",
        "decided_on": "2026-12-09",
        "reapply_after": "2027-12-09",
        "related_message_ids": [message_id(client, failed)],
    }
    accepted(publish(client, authority.message("grade.revoked", revocation, subject=target)))
    measures = client.get(
        f"/v1/enterprises/{target}/measures?on=2026-12-10&role=work_safety_supervisor&purpose=plan"
    ).json()
    effects = {m["code"]: m["effect"] for m in measures["measures"]["work_safety_supervisor"]}
    assert effects["supervision.key_supervision.ungraded"] == {
        "key_supervision": True,
        "penalty_scale": "upper_limit",
    }
    assert effects["supervision.frequency.hazardous.ungraded"] == {"inspections_per_year_min": 12}

    def row() -> dict[str, Any]:
        page = client.get(
            f"/v1/supervision/plan?region={target[2:8]}&year=2026", headers=headers
        ).json()
        return next(item for item in page["items"] if item["uscc"] == target)

    planned = row()
    assert planned["supervision"]["penalty_scale"] == "upper_limit"
    assert planned["supervision"]["key_supervision"] is True
    assert (planned["required_per_year"], planned["recorded"]) == (12, 1)
    assert planned["due_by_now"] == math.ceil(12 * 344 / 365)  # 10 December: day 344 of 365
    assert planned["behind"] is True
    behind = client.get(
        f"/v1/supervision/plan?region={target[2:8]}&year=2026&behind_only=true", headers=headers
    ).json()
    assert target in {item["uscc"] for item in behind["items"]}
    # a key-supervision inspection's penalties are at the upper limit, or refused
    mild = inspection(
        inspection_id="JC-K1",
        inspected_on="2026-12-10",
        penalties=[{"decision_no": "罚1", "amount_cny": 5e4, "at_upper_limit": False}],
    )
    refused(
        client,
        runtime,
        supervisor.message("inspection.recorded", mild, subject=target),
        422,
        "rule_violation",
    )
    for n in range(11):
        again = inspection(inspection_id=f"JC-K{n + 2}", inspected_on="2026-12-10")
        accepted(publish(client, supervisor.message("inspection.recorded", again, subject=target)))
    assert row()["behind"] is False


def test_a_draw_never_revealed_is_void_and_recorded(
    client: TestClient,
    runtime: Runtime,
    authority: Publisher,
    supervisor: Publisher,
    clock: FixedClock,
) -> None:
    from gateway.supervision.routes import void_overdue_draws

    province(client, authority, 40)
    headers = bearer(runtime, "fj-yjt-zf", "supervise")
    body = draw_body("FJ-VOID", strata=[{"name": "l1", "where": {"levels": ["1"]}, "sample": 2}])
    assert client.post("/v1/inspections/draws", json=body, headers=headers).status_code == 201
    assert void_overdue_draws(runtime) == []  # no checkpoint past it yet: nothing to wait for
    assert client.get("/v1/log/checkpoint").status_code == 200
    assert void_overdue_draws(runtime) == []  # within its window
    clock.at += dt.timedelta(days=2)
    assert void_overdue_draws(runtime) == ["FJ-VOID"]
    shown = client.get(
        "/v1/inspections/draws/FJ-VOID", headers=bearer(runtime, "fj-yjt-zf", "supervise")
    ).json()
    assert shown["status"] == "voided"
    entry = client.get(
        f"/v1/log/entries?start={shown['result_index']}&end={shown['result_index'] + 1}"
    ).json()
    voided = json.loads(parse_compact(entry["entries"][0]["jws"]).payload)
    assert (voided["type"], voided["data"]["reason"]) == ("gateway.draw.voided", "not_revealed")
    late = client.post(
        "/v1/inspections/draws/FJ-VOID/reveal",
        json={"secret": SECRET.hex()},
        headers=bearer(runtime, "fj-yjt-zf", "supervise"),
    )
    assert (late.status_code, late.json()["code"]) == (409, "draw_voided")
