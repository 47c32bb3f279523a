"""The pull feed as an iterator: pages read in order, acknowledged as asked, resumable from the
gateway's cursor or the caller's; a parked item is skipped and named."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import httpx
import pytest
from client_fakes import FakeGateway

SUB = "7f18aef2-2d88-41b4-903c-509f4c5f8e55"


def event(index: int, subseq: int) -> dict[str, object]:
    return {
        "specversion": "1.0",
        "id": f"00000000-0000-4000-8000-{index:012d}",
        "source": "gateway.test/log",
        "type": "grade.awarded",
        "subject": "91350203AY4CL12T2P",
        "time": "2026-12-07T08:48:01.261381+00:00",
        "datacontenttype": "application/json",
        "sequence": str(index),
        "subseq": subseq,
        "leafhash": "00" * 32,
        "data": {"level": "2"},
    }


@dataclass
class FakeFeed:
    """The gateway's read_feed and acknowledge over deliveries at these log indexes."""

    indexes: list[int]
    parked: set[int] = field(default_factory=set)
    acked: int = -1
    reads: list[int | None] = field(default_factory=list)
    acks: list[int] = field(default_factory=list)

    def install(self, gateway: FakeGateway) -> None:
        gateway.router.get(f"/v1/subscriptions/{SUB}/feed").mock(side_effect=self.read)
        gateway.router.post(f"/v1/subscriptions/{SUB}/ack").mock(side_effect=self.ack)

    def read(self, request: httpx.Request) -> httpx.Response:
        params = request.url.params
        after = int(params["after"]) if "after" in params else None
        self.reads.append(after)
        start = self.acked if after is None else after
        limit = int(params["limit"])
        rows = [i for i in self.indexes if i > start][: limit + 1]
        more, rows = len(rows) > limit, rows[:limit]
        page = {
            "subscription": SUB,
            "after": start,
            "items": [event(i, self.indexes.index(i) + 1) for i in rows if i not in self.parked],
            "parked": [{"sequence": str(i), "reason": "view"} for i in rows if i in self.parked],
            "next": rows[-1] if rows else start,
            "has_more": more,
        }
        return httpx.Response(200, json=page)

    def ack(self, request: httpx.Request) -> httpx.Response:
        index = json.loads(request.content)["index"]
        self.acks.append(index)
        self.acked = max(self.acked, index)
        return httpx.Response(200, json={"acked_index": self.acked})


def test_the_feed_reads_every_page_and_acknowledges_each_once_handled() -> None:
    gateway, feed = FakeGateway(), FakeFeed([3, 5, 8, 13, 21])
    feed.install(gateway)
    with gateway.client() as client:
        reader = client.feed(SUB, limit=2)
        seen = []
        for item in reader:
            seen.append(item.index)
            # a page is acknowledged only after its last event was handled
            assert feed.acked < item.index
    assert seen == [3, 5, 8, 13, 21]
    assert feed.acks == [5, 13, 21]
    assert feed.reads == [None, 5, 13]  # from the gateway's cursor, then from each `next`
    assert reader.cursor == 21


def test_a_reader_that_stops_mid_page_reads_the_rest_again() -> None:
    gateway, feed = FakeGateway(), FakeFeed([3, 5, 8, 13])
    feed.install(gateway)
    with gateway.client() as client:
        for item in client.feed(SUB, limit=2):
            if item.index == 8:
                break  # crashed while handling 8
        again = [item.index for item in client.feed(SUB, limit=2)]
    assert again == [8, 13]  # at least once


def test_ack_each_acknowledges_every_handled_event() -> None:
    gateway, feed = FakeGateway(), FakeFeed([3, 5, 8])
    feed.install(gateway)
    with gateway.client() as client:
        for _ in client.feed(SUB, limit=10, ack="each"):
            pass
    assert feed.acks == [3, 5, 8]


def test_manual_ack_leaves_the_cursor_to_the_caller_and_resumes_from_its_own() -> None:
    gateway, feed = FakeGateway(), FakeFeed([3, 5, 8, 13])
    feed.install(gateway)
    with gateway.client() as client:
        reader = client.feed(SUB, limit=3, ack="manual")
        first = [next(reader).index, next(reader).index]
        assert feed.acks == []
        assert reader.ack() == 5
        kept = reader.cursor  # e.g. stored with the business data
        resumed = [item.index for item in client.feed(SUB, after=kept, ack="manual")]
    assert first == [3, 5]
    assert resumed == [8, 13]
    assert feed.acks == [5]


def test_parked_items_are_named_and_acknowledged_past() -> None:
    gateway, feed = FakeGateway(), FakeFeed([3, 5, 8], parked={5, 8})
    feed.install(gateway)
    with gateway.client() as client:
        reader = client.feed(SUB)
        assert [item.index for item in reader] == [3]
    assert [p["sequence"] for p in reader.parked] == ["5", "8"]
    assert feed.acked == 8
    assert reader.cursor == 8


def test_follow_polls_after_the_end() -> None:
    gateway, feed = FakeGateway(), FakeFeed([3])
    feed.install(gateway)
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        feed.indexes.append(feed.indexes[-1] + 1)  # something new arrives meanwhile

    with gateway.client(sleep=sleep) as client:
        reader = client.feed(SUB, follow=True, poll_seconds=2.5)
        assert [next(reader).index for _ in range(3)] == [3, 4, 5]
    assert sleeps == [2.5, 2.5]


def test_an_unknown_ack_mode_is_refused() -> None:
    gateway = FakeGateway()
    with gateway.client() as client, pytest.raises(ValueError, match="ack"):
        client.feed(SUB, ack="never")  # type: ignore[arg-type]
