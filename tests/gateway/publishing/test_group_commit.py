"""Group commit: concurrent single publishes share transactions, each answered after commit
(gateway/groups.py, gateway/publishing/service.py `group_publisher`)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import pytest
from contract_factories import make_registration
from gateway_factories import Publisher, snapshot

from contracts.uscc import complete_uscc
from gateway.groups import GroupWorker
from gateway.publishing.orchestration import publish as publish_messages
from gateway.publishing.service import Outcome, group_publisher
from gateway.runtime import Runtime


def test_concurrent_publishes_get_gapless_indexes_and_all_commit(
    runtime: Runtime, authority: Publisher
) -> None:
    tokens = [
        authority.message(
            "enterprise.registered",
            make_registration(),
            subject=complete_uscc(f"91350100MA{n:06d}"),
        )
        for n in range(120)
    ]
    before = snapshot(runtime)["log_size"]
    groups: list[int] = []

    def counted(
        raws: Sequence[bytes], *rest: Sequence[int] | Sequence[str | None]
    ) -> list[Outcome]:
        groups.append(len(raws))
        return publish_messages(runtime, raws, *rest)  # type: ignore[arg-type]

    publisher = group_publisher(counted)

    async def all_at_once() -> list[Outcome]:
        return await asyncio.gather(
            *(publisher.submit((t, "fj-yjt")) for t in tokens + tokens[:20])
        )

    try:
        outcomes = asyncio.run(all_at_once())
    finally:
        publisher.close()
    assert [o.status for o in outcomes[:120]] == [201] * 120
    assert [o.status for o in outcomes[120:]] == [200] * 20
    assert sorted(o.index for o in outcomes[:120]) == list(range(before, before + 120))
    assert [o.receipt for o in outcomes[120:]] == [o.receipt for o in outcomes[:20]]
    assert snapshot(runtime)["log_size"] == before + 120
    assert sum(groups) == 140
    assert len(groups) < 140, "the waiting messages were published in groups"


def test_a_failed_transaction_fails_every_message_in_it() -> None:
    started = threading.Event()
    release = threading.Event()
    calls: list[int] = []

    def publish(items: Sequence[bytes]) -> list[Outcome]:
        calls.append(len(items))
        if len(calls) == 1:  # hold the first group so the others queue up behind it
            started.set()
            release.wait(5)
            return [Outcome(201, "first") for _ in items]
        raise RuntimeError("database went away")

    worker: GroupWorker[bytes, Outcome] = GroupWorker("test-publishing", publish)

    async def scenario() -> tuple[Outcome, list[Outcome | BaseException]]:
        first = asyncio.ensure_future(worker.submit(b"a"))
        assert await asyncio.to_thread(started.wait, 5)
        rest = [asyncio.ensure_future(worker.submit(bytes([n]))) for n in range(5)]
        await asyncio.sleep(0.1)  # all five queued behind the held group
        release.set()
        return await first, await asyncio.gather(*rest, return_exceptions=True)

    try:
        first, rest = asyncio.run(scenario())
    finally:
        worker.close()
    assert first.status == 201
    assert all(isinstance(r, RuntimeError) and "went away" in str(r) for r in rest)
    assert calls == [1, 5], "the five waiting messages were published as one group"


def test_the_worker_answers_what_waits_when_closed_then_refuses() -> None:
    release = threading.Event()

    def slow(items: Sequence[int]) -> list[int]:
        release.wait(5)
        return [i * 2 for i in items]

    worker: GroupWorker[int, int] = GroupWorker("test-closing", slow)

    async def scenario() -> list[int]:
        pending = [asyncio.ensure_future(worker.submit(i)) for i in range(3)]
        await asyncio.sleep(0.05)
        closing = asyncio.ensure_future(asyncio.to_thread(worker.close))
        await asyncio.sleep(0.05)
        release.set()
        answers = await asyncio.gather(*pending)
        await closing
        with pytest.raises(RuntimeError, match="shutting down"):
            await worker.submit(9)
        return answers

    assert asyncio.run(scenario()) == [0, 2, 4]
