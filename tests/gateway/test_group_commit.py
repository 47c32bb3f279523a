"""Group commit: concurrent single publishes share transactions, each answered after commit."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import pytest
from contract_factories import make_registration
from gateway_factories import Publisher, snapshot

from contracts.uscc import make_uscc
from gateway.publishing.coalescer import GroupCommitter
from gateway.publishing.service import Outcome
from gateway.runtime import Runtime


def test_concurrent_publishes_get_gapless_indexes_and_all_commit(
    runtime: Runtime, authority: Publisher
) -> None:
    tokens = [
        authority.message(
            "enterprise.registered",
            make_registration(),
            subject=make_uscc(f"91350100MA{n:07d}"),
        )
        for n in range(120)
    ]
    before = snapshot(runtime)["log_size"]
    with ThreadPoolExecutor(max_workers=32) as pool:
        outcomes = list(pool.map(runtime.publish_one, tokens + tokens[:20]))
    assert [o.status for o in outcomes[:120]] == [201] * 120
    assert [o.status for o in outcomes[120:]] == [200] * 20
    assert sorted(o.index for o in outcomes[:120]) == list(range(before, before + 120))
    assert [o.receipt for o in outcomes[120:]] == [o.receipt for o in outcomes[:20]]
    assert snapshot(runtime)["log_size"] == before + 120


def test_a_failed_transaction_fails_every_message_in_it() -> None:
    started = threading.Event()
    release = threading.Event()
    calls: list[int] = []

    def publish(
        raws: Sequence[bytes], too_big: Sequence[int], callers: Sequence[str | None]
    ) -> list[Outcome]:
        assert len(callers) == len(raws)
        calls.append(len(raws))
        if len(calls) == 1:  # hold the first group so the others queue up behind it
            started.set()
            release.wait(5)
            return [Outcome(201, "first") for _ in raws]
        raise RuntimeError("database went away")

    committer = GroupCommitter(publish)
    with ThreadPoolExecutor(max_workers=6) as pool:
        first = pool.submit(committer.submit, b"a")
        started.wait(5)
        rest = [pool.submit(committer.submit, bytes([n])) for n in range(5)]
        while len(committer._queue) < 5:
            threading.Event().wait(0.01)
        release.set()
        assert first.result().status == 201
        for future in rest:
            with pytest.raises(RuntimeError, match="went away"):
                future.result()
    assert calls == [1, 5], "the five waiting messages were published as one group"
