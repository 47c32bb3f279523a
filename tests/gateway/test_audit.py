"""`gateway audit` finds a modified, deleted, inserted or reordered entry and names its index."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from contract_factories import make_registration
from fastapi.testclient import TestClient
from gateway_factories import Publisher, publish_many
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from contracts.uscc import complete_uscc
from gateway.cli import app
from gateway.models import LogEntry
from gateway.runtime import Runtime
from gateway.settings import Settings


@pytest.fixture
def audited(
    client: TestClient, authority: Publisher, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> Callable[[], dict[str, object]]:
    tokens = [
        authority.message(
            "enterprise.registered",
            make_registration(),
            subject=complete_uscc(f"91350400MA{n:06d}"),
        ).decode()
        for n in range(20)
    ]
    assert publish_many(client, tokens).json()["accepted"] == 20
    assert client.get("/v1/log/checkpoint").status_code == 200
    monkeypatch.setenv("GATEWAY_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("GATEWAY_DATABASE_URL", settings.effective_database_url)
    monkeypatch.setenv("GATEWAY_LOG_ORIGIN", settings.log_origin)

    def run() -> dict[str, object]:
        result = CliRunner().invoke(app, ["audit", "--json"])
        report: dict[str, object] = json.loads(result.output)
        assert result.exit_code == (0 if report["ok"] else 1)
        return report

    return run


def _tamper(runtime: Runtime, change: Callable[[Session], None]) -> None:
    with runtime.db.transaction() as session:
        change(session)


def test_clean_log_passes(audited: Callable[[], dict[str, object]]) -> None:
    report = audited()
    assert report["ok"] is True, report["problems"]
    assert report["entries_checked"] == report["size"]
    assert report["checkpoints_checked"] == 1


def test_modified_entry_is_named(
    audited: Callable[[], dict[str, object]], runtime: Runtime
) -> None:
    def change(session: Session) -> None:
        jws = session.scalar(select(LogEntry.jws).where(LogEntry.idx == 9))
        assert jws is not None
        other = b"X" if jws[40:41] != b"X" else b"Y"
        session.execute(
            update(LogEntry).where(LogEntry.idx == 9).values(jws=jws[:40] + other + jws[41:])
        )

    _tamper(runtime, change)
    assert audited()["first_bad_index"] == 9


def test_modified_entry_with_rewritten_leaf_hash_is_named(
    audited: Callable[[], dict[str, object]], runtime: Runtime
) -> None:
    from keys.merkle import leaf_hash

    forged = b"eyJhbGciOiJFZERTQSJ9.e30.AAAA"
    _tamper(
        runtime,
        lambda s: s.execute(
            update(LogEntry)
            .where(LogEntry.idx == 12)
            .values(jws=forged, leaf_hash=leaf_hash(forged))
        ),
    )
    assert audited()["first_bad_index"] == 12


def test_deleted_entry_is_named(audited: Callable[[], dict[str, object]], runtime: Runtime) -> None:
    _tamper(runtime, lambda s: s.execute(delete(LogEntry).where(LogEntry.idx == 7)))
    report = audited()
    assert report["first_bad_index"] == 7
    assert "deleted" in str(report["problems"])


def test_reordered_entries_are_named(
    audited: Callable[[], dict[str, object]], runtime: Runtime
) -> None:
    def swap(session: Session) -> None:
        a, b = (
            session.execute(
                select(LogEntry.jws, LogEntry.leaf_hash, LogEntry.message_id).where(
                    LogEntry.idx == i
                )
            ).one()
            for i in (5, 8)
        )
        for idx, row in ((5, b), (8, a)):
            session.execute(
                update(LogEntry).where(LogEntry.idx == idx).values(message_id=f"tmp-{idx}")
            )
        for idx, row in ((5, b), (8, a)):
            session.execute(
                update(LogEntry)
                .where(LogEntry.idx == idx)
                .values(jws=row.jws, leaf_hash=row.leaf_hash, message_id=row.message_id)
            )

    _tamper(runtime, swap)
    assert audited()["first_bad_index"] == 5


def test_inserted_entry_is_named(
    audited: Callable[[], dict[str, object]], runtime: Runtime
) -> None:
    def insert(session: Session) -> None:
        last = session.scalars(select(LogEntry).order_by(LogEntry.idx.desc())).first()
        assert last is not None
        session.add(
            LogEntry(
                idx=last.idx + 1,
                kind="message",
                message_id="00000000-0000-4000-8000-000000000000",
                type=last.type,
                issuer=last.issuer,
                subject=last.subject,
                issued_at=last.issued_at,
                accepted_at=last.accepted_at,
                jws=last.jws + b"x",
                leaf_hash=last.leaf_hash,
                receipt="",
            )
        )

    _tamper(runtime, insert)
    report = audited()
    assert report["first_bad_index"] == report["size"]
    assert "inserted" in str(report["problems"])
