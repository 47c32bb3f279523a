"""Single standing queries answered in groups (gateway/queries/batcher.py): each question in a
group gets the answer it would get alone, or its own refusal, each is recorded with its own
result, and a group that fails fails all of its questions, records none, and the next group
is served."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from contract_factories import USCC, make_award, make_registration
from fastapi.testclient import TestClient
from gateway_factories import (
    Publisher,
    allow_query,
    operator_token,
    publish,
    register_publisher,
)
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from contracts.uscc import complete_uscc
from gateway.errors import GatewayError
from gateway.models import AccessRecord
from gateway.queries import batcher, service
from gateway.queries.batcher import StandingQueries
from gateway.queries.service import Ask
from gateway.runtime import Runtime
from keys.jws import parse_compact, verify_compact

UNKNOWN = complete_uscc("91350100MA000099")
BAD_CHECK = USCC[:-1] + ("0" if USCC[-1] != "0" else "1")


@pytest.fixture
def desk(runtime: Runtime) -> Iterator[StandingQueries]:
    queries = StandingQueries(runtime)
    try:
        yield queries
    finally:
        queries.close()


@pytest.fixture
def agencies(client: TestClient, authority: Publisher, runtime: Runtime) -> None:
    """A bank with the whole standing, an insurer with two fields, an agency with no right."""
    register_publisher(runtime, "fj-cib", [], roles=["bank"])
    allow_query(runtime, "fj-cib", "standing")
    register_publisher(runtime, "fj-picc", [], roles=["insurer"])
    allow_query(runtime, "fj-picc", "standing", ["grade", "measures"])
    register_publisher(runtime, "fj-none", [], roles=["bank"])
    for message_type, data in (
        ("enterprise.registered", make_registration()),
        ("grade.awarded", make_award()),
    ):
        assert publish(client, authority.message(message_type, data)).status_code == 201


def _ask(runtime: Runtime, agency: str, code: str, fields: list[str] | None = None) -> Ask:
    return Ask(code, agency, fields, runtime.clock.now().date())


async def _ask_all(
    desk: StandingQueries, asks: Sequence[Ask], purposes: Sequence[str]
) -> list[bytes | GatewayError]:
    async def one(ask: Ask, purpose: str) -> bytes | GatewayError:
        try:
            return await desk.ask(ask, purpose=purpose.strip(), sent_purpose=purpose)
        except GatewayError as exc:
            return exc

    return await asyncio.gather(*(one(a, p) for a, p in zip(asks, purposes, strict=True)))


def _records(runtime: Runtime) -> list[tuple[str | None, str | None, str | None, str]]:
    with runtime.db.reader() as session:
        rows = session.scalars(select(AccessRecord).order_by(AccessRecord.id))
        return [(r.agency_id, r.uscc, r.purpose, r.result) for r in rows]


def test_a_group_answers_each_question_as_if_alone(
    agencies: None, runtime: Runtime, desk: StandingQueries, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the first question holds the thread until the other 20 are queued: they form one group
    groups: list[int] = []
    entered, release = threading.Event(), threading.Event()
    real = service.standings

    def held(session: Any, asks: Sequence[Ask]) -> list[Any]:
        groups.append(len(asks))
        entered.set()
        if len(groups) == 1:
            assert release.wait(10)
        return real(session, asks)

    monkeypatch.setattr(service, "standings", held)
    cases = [
        ("fj-cib", USCC, None),
        ("fj-picc", USCC, None),
        ("fj-picc", USCC, ["grade"]),
        ("fj-picc", USCC, ["lists"]),  # outside its view
        ("fj-none", USCC, None),  # no right
        ("fj-cib", BAD_CHECK, None),
        ("fj-cib", UNKNOWN, None),
    ] * 3
    asks = [_ask(runtime, agency, code, fields) for agency, code, fields in cases]

    async def scenario() -> list[bytes | GatewayError]:
        first = asyncio.ensure_future(_ask_all(desk, asks[:1], [" loan "]))
        assert await asyncio.to_thread(entered.wait, 10)
        rest = asyncio.ensure_future(_ask_all(desk, asks[1:], [" loan "] * (len(asks) - 1)))
        await asyncio.sleep(0.2)
        release.set()
        return [*(await first), *(await rest)]

    answers = asyncio.run(scenario())
    assert groups == [1, len(asks) - 1]

    expected_codes = ["ok", "ok", "ok", "field_not_in_view", "not_permitted", "invalid_uscc"]
    expected_codes += ["unknown_enterprise"]
    with runtime.db.reader() as session:
        for (agency, code, fields), answer, result in zip(
            cases, answers, expected_codes * 3, strict=True
        ):
            if result != "ok":
                assert isinstance(answer, GatewayError)
                assert answer.code == result
                continue
            assert isinstance(answer, bytes)
            body = json.loads(answer)
            view, roles = service.query_view(session, agency, "standing")
            # what the batch query (its own path to the rights and ledgers) answers for it
            on = runtime.clock.now().date()
            alone = service.batch(session, [code], agency, on, view.narrowed(fields), roles=roles)
            alone = alone[0]["standing"]
            assert body["standing"] == alone
            parsed = parse_compact(body["attestation"])
            verify_compact(parsed, runtime.signer.receipt_key.public_key)
            claims = json.loads(parsed.payload)
            assert (claims["answer"], claims["audience"]) == (alone, agency)
    # one record per question, in the order asked; refusals before admission keep the purpose
    # as it was sent, the others the stripped one
    records = _records(runtime)
    assert len(records) == len(cases)
    before_admission = {"field_not_in_view", "not_permitted"}
    assert sorted(records) == sorted(
        (agency, code, " loan " if result in before_admission else "loan", result)
        for (agency, code, _), result in zip(cases, expected_codes * 3, strict=True)
    )


def test_a_failing_group_fails_every_question_records_none_and_the_next_is_served(
    agencies: None, runtime: Runtime, desk: StandingQueries, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = service.record_accesses
    failing = threading.Event()
    failing.set()

    def flaky(session: Any, records: Any) -> None:
        if failing.is_set():
            raise OperationalError("INSERT", {}, Exception("the database went away"))
        real(session, records)

    monkeypatch.setattr(service, "record_accesses", flaky)
    asks = [_ask(runtime, "fj-cib", USCC) for _ in range(5)]

    async def scenario() -> tuple[list[bytes | BaseException], bytes]:
        failed = await asyncio.gather(
            *(desk.ask(a, purpose="loan", sent_purpose="loan") for a in asks),
            return_exceptions=True,
        )
        failing.clear()
        after = await desk.ask(asks[0], purpose="loan", sent_purpose="loan")
        return failed, after

    failed, after = asyncio.run(scenario())
    assert all(isinstance(f, OperationalError) for f in failed)
    assert json.loads(after)["standing"]["uscc"] == USCC
    assert _records(runtime) == [("fj-cib", USCC, "loan", "ok")]


def test_a_bug_in_a_group_does_not_stop_the_thread(
    agencies: None, runtime: Runtime, desk: StandingQueries, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = batcher.answer
    calls = iter([True])

    def broken(runtime: Runtime, group: Sequence[Any]) -> list[Any]:
        if next(calls, False):
            raise RuntimeError("a bug")
        return real(runtime, group)

    monkeypatch.setattr(batcher, "answer", broken)

    async def scenario() -> tuple[BaseException | None, bytes]:
        ask = _ask(runtime, "fj-cib", USCC)
        try:
            await desk.ask(ask, purpose="loan", sent_purpose="loan")
        except RuntimeError as exc:
            error: BaseException | None = exc
        else:
            error = None
        return error, await desk.ask(ask, purpose="loan", sent_purpose="loan")

    error, after = asyncio.run(scenario())
    assert isinstance(error, RuntimeError)
    assert json.loads(after)["standing"]["uscc"] == USCC


def test_a_question_with_nul_is_refused_alone_and_its_group_is_answered(
    agencies: None, runtime: Runtime, desk: StandingQueries, monkeypatch: pytest.MonkeyPatch
) -> None:
    groups: list[int] = []
    real = service.standings

    def counted(session: Any, asks: Sequence[Ask]) -> list[Any]:
        groups.append(len(asks))
        return real(session, asks)

    monkeypatch.setattr(service, "standings", counted)
    questions = [
        batcher.Question(_ask(runtime, "fj-cib", USCC), "loan", "loan", runtime.clock.now()),
        batcher.Question(
            _ask(runtime, "fj-cib", USCC), "lo\x00an", "lo\x00an", runtime.clock.now()
        ),
        batcher.Question(_ask(runtime, "fj-cib", "9135\x00"), "loan", "loan", runtime.clock.now()),
        batcher.Question(_ask(runtime, "fj-none", USCC), "loan", "loan", runtime.clock.now()),
    ]
    answers = batcher.answer(runtime, questions)
    assert groups == [2]  # the two storable questions, in one transaction
    assert json.loads(answers[0])["standing"]["uscc"] == USCC  # type: ignore[arg-type]
    assert [a.code for a in answers[1:] if isinstance(a, GatewayError)] == [
        "invalid_text",
        "invalid_text",
        "not_permitted",
    ]
    assert _records(runtime) == [
        ("fj-cib", USCC, "loan", "ok"),
        ("fj-none", USCC, "loan", "not_permitted"),
    ]


def test_the_api_answers_a_nul_purpose_with_400(
    agencies: None, client: TestClient, runtime: Runtime
) -> None:
    bank = {"authorization": f"Bearer {operator_token(runtime, 'query', 'fj-cib')}"}
    refused = client.get(f"/v1/enterprises/{USCC}?purpose=lo%00an", headers=bank)
    assert (refused.status_code, refused.json()["code"]) == (400, "invalid_text")
    assert client.get(f"/v1/enterprises/{USCC}?purpose=loan", headers=bank).status_code == 200
