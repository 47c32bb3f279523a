"""The witness's own SQLite state: trusted logs and the latest checkpoint cosigned for each.

Checking the old size and recording the new checkpoint happen in one `BEGIN IMMEDIATE`
transaction, as tlog-witness requires (two racing requests must never roll the size back).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS logs (
    origin TEXT PRIMARY KEY,
    vkey TEXT NOT NULL,
    size INTEGER NOT NULL DEFAULT 0,
    root BLOB,
    updated_at INTEGER
);
CREATE TABLE IF NOT EXISTS refused (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    origin TEXT NOT NULL,
    at INTEGER NOT NULL,
    status INTEGER NOT NULL,
    reason TEXT NOT NULL,
    body TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class TrustedLog:
    origin: str
    vkey: str
    size: int
    root: bytes | None


class WitnessState:
    def __init__(self, path: Path) -> None:
        self.path = path
        with self.connect() as db:
            db.executescript(SCHEMA)

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")  # a cosigned size must survive power loss
            yield db
        finally:
            db.close()

    @contextmanager
    def exclusive(self) -> Iterator[sqlite3.Connection]:
        """One atomic check-and-update (BEGIN IMMEDIATE … COMMIT)."""
        with self.connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def trust(self, origin: str, vkey: str) -> None:
        with self.connect() as db:
            db.execute(
                "INSERT INTO logs (origin, vkey) VALUES (?, ?) "
                "ON CONFLICT(origin) DO UPDATE SET vkey = excluded.vkey",
                (origin, vkey),
            )

    def logs(self) -> list[TrustedLog]:
        with self.connect() as db:
            rows = db.execute("SELECT origin, vkey, size, root FROM logs ORDER BY origin")
            return [TrustedLog(*row) for row in rows]

    @staticmethod
    def get(db: sqlite3.Connection, origin: str) -> TrustedLog | None:
        row = db.execute(
            "SELECT origin, vkey, size, root FROM logs WHERE origin = ?", (origin,)
        ).fetchone()
        return TrustedLog(*row) if row else None

    @staticmethod
    def advance(db: sqlite3.Connection, origin: str, size: int, root: bytes, at: int) -> None:
        db.execute(
            "UPDATE logs SET size = ?, root = ?, updated_at = ? WHERE origin = ?",
            (size, root, at, origin),
        )

    @staticmethod
    def record_refusal(
        db: sqlite3.Connection, origin: str, at: int, status: int, reason: str, body: str
    ) -> None:
        """Kept as possible evidence of log misbehaviour (tlog-witness allows logging it)."""
        db.execute(
            "INSERT INTO refused (origin, at, status, reason, body) VALUES (?, ?, ?, ?, ?)",
            (origin, at, status, reason, body[:20000]),
        )
