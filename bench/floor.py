"""The floor under the publishing goals: what Ed25519 and SQLite alone cost one message.

    python bench/floor.py                                # groups of 32 and of 1,000
    python bench/floor.py --messages 4000 --sizes 32 1000 --json

The gateway publishes `--messages` fresh `enterprise.registered` messages in groups of each
size (`Runtime.publish`, in process, on one thread, as the publishing thread does), and every
statement it sends to SQLite is captured with its parameters as the driver received them. On a
copy of the database as it was before those groups, the captured statements are then replayed
through the bare `sqlite3` module, group by group in the same transactions (SELECT rows
fetched): the database's share, without any of the gateway's Python. Then each message's
signature is verified and the same bytes signed once with libsodium (the receipt's signature):
the cryptography's share. All figures are CPU time of the measuring thread per message.

Their sum is a floor for this design: publishing with these signatures and these statements
(the same rows, indexes and transactions) on this machine cannot go faster on one core,
whatever the Python around them does; another schema or fewer rows per message would move it.
bench/publish.py's goals set against it: 8,000 batch messages/s needs at most 125 µs per
message; a single publish at 50 % of the bare endpoint needs the gateway's whole request
(HTTP included) within twice the bare endpoint's.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from publish import messages, prepare  # noqa: E402
from sqlalchemy import event  # noqa: E402

from gateway.publishing.orchestration import publish as publish_messages  # noqa: E402
from gateway.runtime import Runtime  # noqa: E402
from gateway.settings import Settings  # noqa: E402
from keys.jws import parse_compact  # noqa: E402
from keys.suites import SigningKey, get_suite  # noqa: E402

Statement = tuple[str, Any, bool]  # (SQL, parameters, executemany)


def snapshot(database: Path, copy: Path) -> None:
    """A consistent copy of the live database (WAL included), through SQLite's backup API."""
    source, target = sqlite3.connect(database), sqlite3.connect(copy)
    try:
        source.backup(target)
    finally:
        source.close()
        target.close()


def publish_captured(
    runtime: Runtime, tokens: Sequence[bytes], size: int
) -> tuple[float, list[list[Statement]]]:
    """CPU µs per message published (gateway.publishing.orchestration.publish) in groups of
    `size`, and each group's statements (the capture's own cost, a list append per
    statement, counted with them)."""
    groups: list[list[Statement]] = []
    spent = 0.0

    def capture(
        conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> None:
        groups[-1].append((statement, parameters, many))

    event.listen(runtime.db.engine, "before_cursor_execute", capture)
    try:
        for start in range(0, len(tokens), size):
            groups.append([])
            began = time.thread_time()
            outcomes = publish_messages(runtime, tokens[start : start + size])
            spent += time.thread_time() - began
            if {o.status for o in outcomes} != {201}:
                raise RuntimeError(f"not all accepted: {sorted({o.status for o in outcomes})}")
    finally:
        event.remove(runtime.db.engine, "before_cursor_execute", capture)
    return spent / len(tokens) * 1e6, groups


def replay(copy: Path, groups: list[list[Statement]], messages_count: int) -> float:
    """CPU µs per message of the captured statements through bare sqlite3, per group one
    transaction, on a connection set up as the gateway's (WAL, synchronous NORMAL, FKs)."""
    connection = sqlite3.connect(copy, isolation_level=None)
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON"):
        connection.execute(f"PRAGMA {pragma}")
    connection.execute("PRAGMA integrity_check").fetchall()  # every page read: a warm cache,
    cursor = connection.cursor()  # as the gateway's connection had after its warm-up
    began = time.thread_time()
    for group in groups:
        for statement, parameters, many in group:
            if many:
                cursor.executemany(statement, parameters)
            else:
                cursor.execute(statement, parameters)
                if cursor.description is not None:
                    cursor.fetchall()
        cursor.execute("COMMIT")
    spent = time.thread_time() - began
    connection.close()
    return spent / messages_count * 1e6


def cryptography(tokens: Sequence[bytes], key: SigningKey) -> float:
    """CPU µs per message: its Ed25519 signature verified, and its bytes signed once (the
    receipt's signature, over a payload of about the same size), through keys.eddsa."""
    public = get_suite("ed25519").public_key_from_jwk(key.public_key.jwk())
    parsed = [parse_compact(token) for token in tokens]
    signer = get_suite("ed25519").generate()
    began = time.thread_time()
    for item in parsed:
        public.verify(item.signing_input, item.signature)
        signer.sign(item.signing_input)
    return (time.thread_time() - began) / len(parsed) * 1e6


def measure(count: int, sizes: Sequence[int], workdir: Path) -> list[dict[str, float]]:
    env, key = prepare("sqlite", workdir)
    database = Path(env["GATEWAY_DATABASE_URL"].removeprefix("sqlite:///"))
    settings = Settings(
        data_dir=Path(env["GATEWAY_DATA_DIR"]), database_url=env["GATEWAY_DATABASE_URL"]
    )
    runtime = Runtime.open(settings)
    tokens = messages(key, 0, 1000 + count * len(sizes))
    rows = []
    try:
        publish_messages(runtime, tokens[:1000])  # warm caches, the tree's right edge, the pages
        for n, size in enumerate(sizes):
            batch = tokens[1000 + n * count : 1000 + (n + 1) * count]
            copy = workdir / f"copy-{size}.db"
            snapshot(database, copy)
            gateway, groups = publish_captured(runtime, batch, size)
            database_share = replay(copy, groups, len(batch))
            crypto = cryptography(batch, key)
            floor = database_share + crypto
            rows.append(
                {
                    "group_size": size,
                    "gateway_us": round(gateway, 1),
                    "sqlite_us": round(database_share, 1),
                    "ed25519_us": round(crypto, 1),
                    "floor_us": round(floor, 1),
                    "floor_messages_per_s": round(1e6 / floor),
                    "gateway_messages_per_s": round(1e6 / gateway),
                    "statements_per_group": round(sum(len(g) for g in groups) / len(groups), 1),
                }
            )
    finally:
        runtime.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=4000, help="measured per group size")
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 1000])
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-floor-") as tmp:
        rows = measure(args.messages, args.sizes, Path(tmp))
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(
        f"{'group':>6} {'gateway':>9} {'sqlite':>8} {'ed25519':>8} {'floor':>8} "
        f"{'floor msg/s':>12} {'gateway msg/s':>14}   (CPU µs per message, one thread)"
    )
    for r in rows:
        print(
            f"{r['group_size']:>6} {r['gateway_us']:>9} {r['sqlite_us']:>8} "
            f"{r['ed25519_us']:>8} {r['floor_us']:>8} {r['floor_messages_per_s']:>12,} "
            f"{r['gateway_messages_per_s']:>14,}"
        )
    print("8,000 messages/s on one core needs 125 µs per message.")


if __name__ == "__main__":
    main()
