"""Publishing under hostile or unlucky input: texts at their longest, dates at the edges of
the calendar, an item that makes the gateway itself fail, a retired key used to backdate, and
concurrent publishes about one enterprise on PostgreSQL."""

from __future__ import annotations

import re
from typing import Any

import pytest
from contract_factories import (
    VALID_DATA,
    make_accident,
    make_award,
    make_downgrade,
    make_listing,
    make_overdue,
    make_rectification_order,
    make_registration,
    make_removal,
    make_revocation,
    make_self_assessment,
)
from fastapi.testclient import TestClient
from gateway_factories import Publisher, publish, publish_many, snapshot

from contracts.registry import _schema
from gateway.runtime import Runtime

_FILLERS = ("甲", "A", "1", "a")


def _longest(message_type: str, data: dict[str, Any]) -> dict[str, Any]:
    """`data` with every free-text field (string, maxLength, no enum or format) at its
    maxLength, in characters that satisfy its pattern."""
    longest = dict(data)
    for name, prop in _schema(message_type, 1)["properties"].items():
        if prop.get("type") != "string" or "maxLength" not in prop:
            continue
        if "enum" in prop or "format" in prop or name not in data:
            continue
        size, pattern = prop["maxLength"], prop.get("pattern")
        for filler in _FILLERS:
            candidate = filler * size
            if pattern is None or re.search(pattern, candidate):
                longest[name] = candidate
                break
        else:
            raise AssertionError(f"no filler satisfies {message_type} {name} pattern {pattern}")
    return longest


def test_every_text_field_at_its_longest_is_stored(
    client: TestClient, authority: Publisher, runtime: Runtime
) -> None:
    """What a contract admits, the database holds: each column is at least as wide as the
    schema's maxLength (on PostgreSQL a narrower VARCHAR would refuse the row)."""
    sequence = [
        ("enterprise.registered", make_registration()),
        ("grade.awarded", make_award()),
        ("grade.downgraded", make_downgrade()),
        ("self_assessment.published", make_self_assessment()),
        ("rectification.ordered", make_rectification_order()),
        ("rectification.overdue", make_overdue()),
        ("accident.reported", make_accident()),
        ("listing.added", make_listing()),
        ("listing.removed", make_removal()),
        ("grade.revoked", make_revocation()),
    ]
    tokens = [authority.message(t, _longest(t, data)) for t, data in sequence]
    response = publish_many(client, tokens)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["status"] for r in results] == [201] * len(sequence), results
