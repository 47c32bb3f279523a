"""`/metrics`: Prometheus text with publish counters and the log/delivery gauges."""

from __future__ import annotations

from contract_factories import make_award, make_registration
from fastapi.testclient import TestClient
from gateway_factories import Publisher, publish
from prometheus_client.parser import text_string_to_metric_families


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
