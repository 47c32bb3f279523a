"""`gateway audit` finds a modified, deleted, inserted or reordered entry and names its index."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from contract_factories import make_registration
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from fastapi.testclient import TestClient
from gateway_factories import Publisher, publish_many
from sqlalchemy import delete, func, select, update
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


# --- issue 20 finding 14: the database checked against more than itself ----------------------


def test_derived_columns_are_recomputed_from_the_jws(
    audited: Callable[[], dict[str, object]], runtime: Runtime
) -> None:
    with runtime.db.reader() as session:
        entry = session.get(LogEntry, 10)
        assert entry is not None
        kept = {"type": entry.type, "subject": entry.subject}
    for column, value in (("type", "grade.awarded"), ("subject", "91350900587527783P")):
        _tamper(
            runtime,
            lambda s, c=column, v=value: s.execute(
                update(LogEntry).where(LogEntry.idx == 10).values({c: v})
            ),
        )
        report = audited()
        assert report["first_bad_index"] == 10
        assert f"column {column}" in str(report["problems"])
        _tamper(
            runtime,
            lambda s: s.execute(update(LogEntry).where(LogEntry.idx == 10).values(kept)),
        )
    assert audited()["ok"] is True


def test_a_receipt_rewritten_or_taken_from_another_entry_is_named(
    audited: Callable[[], dict[str, object]], runtime: Runtime
) -> None:
    def borrow(session: Session) -> None:
        other = session.scalar(select(LogEntry.receipt).where(LogEntry.idx == 14))
        session.execute(update(LogEntry).where(LogEntry.idx == 13).values(receipt=other))

    _tamper(runtime, borrow)
    report = audited()
    assert report["first_bad_index"] == 13
    assert "receipt" in str(report["problems"])


def rewrite_history(runtime: Runtime, client: TestClient) -> int:
    """What a database administrator could do: rewrite a gateway entry (no receipt to give it
    away) with other signature bytes, recompute every tree node and the head, delete the
    stored checkpoints; returns the entry's index."""
    from gateway.models import Checkpoint, LogHead, TreeNode
    from gateway.transparency.tlog import Appender
    from keys.merkle import leaf_hash

    with runtime.db.reader() as session:
        target = session.scalar(select(func.min(LogEntry.idx)).where(LogEntry.kind == "gateway"))
    assert target is not None

    def change(session: Session) -> None:
        tokens = list(session.scalars(select(LogEntry.jws).order_by(LogEntry.idx)))
        forged = tokens[target][:-8] + b"AAAAAAAA"
        session.execute(
            update(LogEntry)
            .where(LogEntry.idx == target)
            .values(jws=forged, leaf_hash=leaf_hash(forged))
        )
        tokens[target] = forged
        session.execute(delete(TreeNode))
        session.execute(delete(Checkpoint))
        session.execute(update(LogHead).values(size=0))
        appender = Appender(session)
        for token in tokens:
            appender.append(token)
        appender.finish()

    _tamper(runtime, change)
    return target


def test_a_log_rewritten_with_its_nodes_passes_alone_but_not_an_outside_checkpoint(
    audited: Callable[[], dict[str, object]],
    runtime: Runtime,
    client: TestClient,
    tmp_path: pytest.TempPathFactory,
) -> None:
    kept = client.get("/v1/log/checkpoint").text  # what an agency kept from before
    path = tmp_path / "kept.checkpoint"  # type: ignore[operator]
    path.write_text(kept, encoding="utf-8")
    rewritten = rewrite_history(runtime, client)
    assert audited()["ok"] is True  # on itself the database is consistent

    result = CliRunner().invoke(app, ["audit", "--json", "--checkpoint", str(path)])
    report = json.loads(result.output)
    assert result.exit_code == 1
    assert any(f"{path}: the log's root" in p["problem"] for p in report["problems"])
    assert report["first_bad_index"] >= rewritten


def test_cut_off_entries_fail_against_an_outside_checkpoint(
    audited: Callable[[], dict[str, object]],
    runtime: Runtime,
    client: TestClient,
    tmp_path: pytest.TempPathFactory,
) -> None:
    from gateway.models import Checkpoint, LogHead, TreeNode

    kept = client.get("/v1/log/checkpoint").text
    path = tmp_path / "kept.checkpoint"  # type: ignore[operator]
    path.write_text(kept, encoding="utf-8")

    def cut(session: Session) -> None:
        size = session.scalar(select(LogHead.size))
        assert size is not None
        session.execute(delete(LogEntry).where(LogEntry.idx >= size - 3))
        session.execute(delete(Checkpoint))
        session.execute(delete(TreeNode).where(TreeNode.idx >= 0).where(TreeNode.level > 30))
        session.execute(update(LogHead).values(size=size - 3))

    _tamper(runtime, cut)
    result = CliRunner().invoke(app, ["audit", "--json", "--checkpoint", str(path)])
    report = json.loads(result.output)
    assert result.exit_code == 1
    assert "truncated" in str(report["problems"])


WITNESS = "witness.test.example"


@pytest.fixture
def cosigned(
    audited: Callable[[], dict[str, object]],
    runtime: Runtime,
    client: TestClient,
    monkeypatch: pytest.MonkeyPatch,
) -> Ed25519PrivateKey:
    """A witness cosigned the log's checkpoint (as gateway.transparency.witnessing stores it),
    and the gateway names the witness in its settings."""
    from gateway.models import Cosignature
    from keys import note

    key = Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    checkpoint = client.get("/v1/log/checkpoint").text
    body = note.parse_note(checkpoint).body
    size = note.parse_checkpoint(body).size
    line = note.cosign(body, WITNESS, key, 1_790_000_000)

    def store(session: Session) -> None:
        session.add(
            Cosignature(size=size, witness=WITNESS, line=line, signed_at=runtime.clock.now())
        )

    _tamper(runtime, store)
    witness = {"name": WITNESS, "url": "http://127.0.0.1:9/", "vkey": note.vkey(WITNESS, public)}
    monkeypatch.setenv("GATEWAY_WITNESSES__ENDPOINTS", json.dumps([witness]))
    return key


def test_a_witness_cosignature_is_checked_with_or_without_its_checkpoint(
    audited: Callable[[], dict[str, object]], cosigned: Ed25519PrivateKey, runtime: Runtime
) -> None:
    from gateway.models import Checkpoint

    report = audited()
    assert report["ok"] is True, report
    _tamper(runtime, lambda session: session.execute(delete(Checkpoint)))
    report = audited()
    assert report["ok"] is True, report  # the cosignature alone still signs the true root
    assert report["checkpoints_checked"] == 1


def test_a_rewrite_with_the_checkpoints_deleted_fails_against_the_witnesses_cosignature(
    audited: Callable[[], dict[str, object]],
    cosigned: Ed25519PrivateKey,
    runtime: Runtime,
    client: TestClient,
) -> None:
    rewritten = rewrite_history(runtime, client)  # deletes every stored checkpoint too
    report = audited()
    assert report["ok"] is False
    (problem,) = report["problems"]  # type: ignore[misc]
    assert f"witness {WITNESS}'s cosignature" in problem["problem"], problem
    assert "does not sign the recomputed root" in problem["problem"]
    assert report["first_bad_index"] >= rewritten


def test_a_forged_cosignature_is_named(
    audited: Callable[[], dict[str, object]], cosigned: Ed25519PrivateKey, runtime: Runtime
) -> None:
    from gateway.models import Cosignature
    from keys import note

    other = Ed25519PrivateKey.generate()  # not the witness's key

    def forge(session: Session) -> None:
        row = session.scalars(select(Cosignature)).one()
        body = note.format_checkpoint(runtime.settings.log_origin, row.size, b"\0" * 32)
        row.line = note.cosign(body, WITNESS, other, 1_790_000_000)

    _tamper(runtime, forge)
    report = audited()
    assert report["ok"] is False
    assert "is forged" in str(report["problems"])
