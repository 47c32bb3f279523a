"""A connector document reads the measure catalog in force at its message, not the newest
(protocol.md §4, §5: the view of the message): publishing a catalog version never changes a
document already accepted, and the 0014 migration gives existing versions their log index."""

from __future__ import annotations

import copy
import json
from typing import Any

import sqlalchemy as sa
import test_connectors
from alembic import command
from alembic.script import ScriptDirectory
from contract_factories import USCC, make_award, make_registration, make_renewal
from fastapi.testclient import TestClient
from gateway_factories import Publisher
from sqlalchemy import select
from test_connector_asof import bodies
from test_connectors import Story

from gateway.db import make_engine
from gateway.measures.catalog import catalog_as_of, shipped_records
from gateway.migrate import alembic_config, current_revision, upgrade
from gateway.models import LogEntry, MeasureCatalog
from gateway.runtime import Runtime

feeds = test_connectors.feeds  # the fixture: each consumer agency subscribed to its feed

PUBLISHED = "gateway.catalog.published"
# Shown by the insurer's and the bank's documents for an active level-2 grade.
CHANGED = {
    "social_insurance.work_injury.grade_2": {"premium_float": -0.3},
    "bank.grade_factor.level2": {"credit_factor": 1.3},
}


def changed_records() -> list[dict[str, Any]]:
    records = copy.deepcopy(shipped_records())
    for record in records:
        if record["code"] in CHANGED:
            record["effect"] = CHANGED[record["code"]]
    return records


def publish_changed_catalog(client: TestClient) -> None:
    response = client.put("/v1/measures/catalog", json={"records": changed_records()})
    assert response.status_code == 200, response.text
    assert response.json()["version"] == 2


def documents(found: dict[int, tuple[str, bytes]], message_type: str) -> dict[str, Any]:
    """Social insurance's and the bank's documents for the one message of `message_type`."""
    datas = [json.loads(body)["data"] for _, body in found.values()]
    mine = [d for d in datas if d["source"]["type"] == message_type]
    return {
        "social": next(d for d in mine if d.get("product") == "work_injury"),
        "bank": next(d for d in mine if "credit_factor_option" in d),
    }


def work_injury(document: dict[str, Any]) -> float:
    return float(document["premium_factor"])


def credit_factor(document: dict[str, Any]) -> float:
    return float(document["credit_factor_option"]["value"])


def test_a_new_catalog_version_leaves_accepted_documents_byte_identical(
    client: TestClient, runtime: Runtime, authority: Publisher, feeds: dict[str, str]
) -> None:
    story = Story(client, runtime, authority, feeds)
    story.on("2026-11-02")
    story.publish("enterprise.registered", make_registration())
    award = make_award(
        level="2", announced_on="2026-11-01", valid_from="2026-11-01", valid_to="2029-10-31"
    )
    story.publish("grade.awarded", award)
    before = bodies(runtime, feeds)
    awarded = documents(before, "grade.awarded")
    assert work_injury(awarded["social"]) == 0.85
    assert credit_factor(awarded["bank"]) == 1.1

    story.on("2026-11-09")
    publish_changed_catalog(client)
    now = client.get(
        f"/v1/enterprises/{USCC}/measures",
        params={"on": "2026-11-09", "role": "bank", "purpose": "review"},
    ).json()["measures"]["bank"]
    assert {m["effect"].get("credit_factor") for m in now} == {1.3}  # "now" reads the newest
    # Same webhook-id, same bytes: a retry or a feed read of the award is unchanged.
    assert bodies(runtime, feeds) == before

    renewal = make_renewal(
        level="2", announced_on="2026-11-09", valid_from="2026-11-10", valid_to="2029-11-09"
    )
    story.publish("grade.renewed", renewal)
    after = bodies(runtime, feeds)
    assert {i: after[i] for i in before} == before
    renewed = documents({i: after[i] for i in after.keys() - before.keys()}, "grade.renewed")
    assert work_injury(renewed["social"]) == 0.7  # accepted after version 2: it reads it
    assert credit_factor(renewed["bank"]) == 1.3


def test_catalog_as_of_is_the_newest_version_published_at_or_before_the_index(
    client: TestClient, runtime: Runtime
) -> None:
    publish_changed_catalog(client)
    with runtime.db.reader() as session:
        first, second = session.scalars(
            select(MeasureCatalog.log_index).order_by(MeasureCatalog.version)
        )
        assert first is not None
        assert second is not None
        assert first < second
        assert catalog_as_of(session, first - 1) is None  # before any: the shipped default
        shipped = catalog_as_of(session, first)
        assert shipped is not None
        assert catalog_as_of(session, second - 1) == shipped
        newest = catalog_as_of(session, second)
        assert newest is not None
        assert newest != shipped
        assert catalog_as_of(session, second + 1000) == newest
        factors = {m.effect.get("credit_factor") for m in newest.measures if m.code in CHANGED}
        assert factors == {None, 1.3}


def test_the_migration_backfills_each_version_s_log_index_from_its_entry(
    client: TestClient, runtime: Runtime, database_url: str
) -> None:
    publish_changed_catalog(client)
    with runtime.db.reader() as session:
        stored = [
            tuple(row)
            for row in session.execute(
                select(MeasureCatalog.version, MeasureCatalog.log_index).order_by(
                    MeasureCatalog.version
                )
            )
        ]
        entries = list(
            session.scalars(
                select(LogEntry.idx).where(LogEntry.type == PUBLISHED).order_by(LogEntry.idx)
            )
        )
    assert stored == [(1, entries[0]), (2, entries[1])]

    command.downgrade(alembic_config(database_url), "0013")
    assert current_revision(database_url) == "0013"
    engine = make_engine(database_url, pool_size=1)
    try:
        columns = {c["name"] for c in sa.inspect(engine).get_columns("measure_catalogs")}
    finally:
        engine.dispose()
    assert "log_index" not in columns
    upgrade(database_url)
    head = ScriptDirectory.from_config(alembic_config(database_url)).get_current_head()
    assert current_revision(database_url) == head
    engine = make_engine(database_url, pool_size=1)
    try:
        with engine.connect() as conn:
            backfilled = [
                tuple(row)
                for row in conn.execute(
                    sa.text("SELECT version, log_index FROM measure_catalogs ORDER BY version")
                )
            ]
    finally:
        engine.dispose()
    assert backfilled == stored
