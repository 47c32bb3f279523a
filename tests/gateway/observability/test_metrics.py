"""`/metrics`: Prometheus text with publish counters, the log/delivery gauges and backlogs."""

from __future__ import annotations

from contract_factories import make_award, make_registration, make_revocation
from fastapi.testclient import TestClient
from gateway_factories import Publisher, bearer, publish, register_publisher
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import update

from contracts.uscc import complete_uscc
from gateway.clock import FixedClock
from gateway.models import Delivery
from gateway.runtime import Runtime

TYPES = ["enterprise.registered", "grade.awarded", "grade.revoked"]  # subscribe rights


def test_metrics_count_outcomes_and_read_the_database(
    client: TestClient, authority: Publisher
) -> None:
    publish(client, authority.message("enterprise.registered", make_registration()))
    token = authority.message("grade.awarded", make_award())
    publish(client, token)
    publish(client, token)  # duplicate
    publish(client, authority.message("grade.awarded", make_award()))  # already active: 422
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }
    published = "gateway_published_messages_total"
    assert samples[(published, (("outcome", "accepted"), ("type", "grade.awarded")))] == 1
    assert samples[(published, (("outcome", "duplicate"), ("type", "grade.awarded")))] == 1
    assert samples[(published, (("outcome", "invalid_transition"), ("type", "grade.awarded")))] == 1
    assert samples[("gateway_log_size", ())] >= 4
    assert samples[("gateway_deliveries", (("status", "pending"),))] == 0
    assert samples[("gateway_publish_seconds_count", (("endpoint", "single"),))] == 4


def _samples(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def _subscribe(client: TestClient, agency: str, url: str | None, types: list[str]) -> str:
    body = {"agency_id": agency, "url": url, "types": types}
    response = client.post("/v1/subscriptions", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _register_and_award(client: TestClient, authority: Publisher, code: str) -> int:
    """Publish a registration and an award for `code`; returns the award's log index."""
    registered = authority.message("enterprise.registered", make_registration(), subject=code)
    assert publish(client, registered).status_code == 201
    awarded = publish(client, authority.message("grade.awarded", make_award(), subject=code))
    assert awarded.status_code == 201, awarded.text
    return int(awarded.json()["index"])


def test_backlog_per_subscription_and_the_outbox_lag(
    client: TestClient, authority: Publisher, runtime: Runtime, clock: FixedClock
) -> None:
    register_publisher(runtime, "fj-picc", ["measure.applied"], roles=["insurer"], subscribe=TYPES)
    register_publisher(runtime, "fj-cib", ["measure.applied"], roles=["bank"], subscribe=TYPES)
    push = _subscribe(client, "fj-picc", "http://127.0.0.1:9/hook", ["grade.awarded"])
    pull = _subscribe(client, "fj-cib", None, ["grade.awarded"])
    idle = _subscribe(client, "fj-picc", None, ["grade.revoked"])
    first = _register_and_award(client, authority, complete_uscc("91350100MA000011"))
    clock.advance(seconds=100)
    _register_and_award(client, authority, complete_uscc("91350200MA000012"))
    clock.advance(seconds=20)

    samples = _samples(client)
    lag, pending = (
        "gateway_subscription_delivery_lag_seconds",
        "gateway_subscription_pending_deliveries",
    )
    for sub, agency in ((push, "fj-picc"), (pull, "fj-cib")):
        labels = (("agency", agency), ("subscription", sub))
        assert samples[(lag, labels)] == 120  # the first award, accepted 120 s ago
        assert samples[(pending, labels)] == 2
    assert samples[(lag, (("agency", "fj-picc"), ("subscription", idle)))] == 0
    assert samples[(pending, (("agency", "fj-picc"), ("subscription", idle)))] == 0
    assert samples[("gateway_oldest_undelivered_message_age_seconds", ())] == 120
    assert samples[("gateway_oldest_pending_delivery_age_seconds", ())] == 120
    assert samples[("gateway_deliveries", (("status", "pending"),))] == 4

    # The bank reads its feed and acknowledges the first award: only the second is owed now.
    acked = client.post(
        f"/v1/subscriptions/{pull}/ack",
        json={"index": first},
        headers=bearer(runtime, "fj-cib", "subscribe"),
    )
    assert acked.status_code == 200, acked.text
    # A paused push subscription is not the workers' to deliver: no outbox lag, same backlog.
    paused = client.patch(f"/v1/subscriptions/{push}", json={"status": "paused"})
    assert paused.status_code == 200, paused.text
    samples = _samples(client)
    assert samples[(lag, (("agency", "fj-cib"), ("subscription", pull)))] == 20
    assert samples[(pending, (("agency", "fj-cib"), ("subscription", pull)))] == 1
    assert samples[(lag, (("agency", "fj-picc"), ("subscription", push)))] == 120
    assert samples[("gateway_oldest_pending_delivery_age_seconds", ())] == 0
    assert samples[("gateway_oldest_undelivered_message_age_seconds", ())] == 120


def test_a_delivery_held_back_by_a_dead_one_is_not_outbox_lag(
    client: TestClient, authority: Publisher, runtime: Runtime, clock: FixedClock
) -> None:
    """What waits behind a dead letter waits for an operator, not for a worker: it is not
    late (else /readyz would fail over one receiver's dead letter); once the dead one is
    skipped it is the queue's head again and counts."""
    register_publisher(runtime, "fj-picc", ["measure.applied"], roles=["insurer"], subscribe=TYPES)
    push = _subscribe(
        client, "fj-picc", "http://127.0.0.1:9/hook", ["grade.awarded", "grade.revoked"]
    )
    code = complete_uscc("91350100MA000011")
    award = _register_and_award(client, authority, code)
    with runtime.db.transaction() as session:  # the award's retries ran out
        session.execute(update(Delivery).where(Delivery.log_index == award).values(status="dead"))
    revoked = authority.message("grade.revoked", make_revocation(), subject=code)
    assert publish(client, revoked).status_code == 201
    clock.advance(seconds=300)
    assert _samples(client)[("gateway_oldest_pending_delivery_age_seconds", ())] == 0
    skipped = client.post(f"/v1/subscriptions/{push}/skip", json={"log_indexes": [award]})
    assert skipped.status_code == 200, skipped.text
    samples = _samples(client)
    assert samples[("gateway_oldest_pending_delivery_age_seconds", ())] == 300
    assert samples[("gateway_deliveries", (("status", "skipped"),))] == 1


def test_query_counter_renders_by_agency_and_result(client: TestClient) -> None:
    metrics = client.app.state.metrics  # type: ignore[attr-defined]
    metrics.queries.labels(agency="fj-cib", result="answered").inc(2)
    metrics.queries.labels(agency="fj-picc", result="refused").inc()
    samples = _samples(client)
    queries = "gateway_queries_total"
    assert samples[(queries, (("agency", "fj-cib"), ("result", "answered")))] == 2
    assert samples[(queries, (("agency", "fj-picc"), ("result", "refused")))] == 1
    text = client.get("/metrics").text
    assert "# TYPE gateway_queries_total counter" in text
