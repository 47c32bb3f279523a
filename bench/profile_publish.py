"""Where one batch of 1,000 publishes spends its time, in-process, and what one Ed25519
verification and signature cost on this CPU (the figures of bench/RESULTS.md's breakdown).

    python bench/profile_publish.py [--db sqlite|postgresql]
    python bench/profile_publish.py --groups     # CPU per message by group size, 1 to 1,000

Single publishes reach the database in groups (whatever waits when the publishing thread is
free): `--groups` shows what a group's fixed statements cost a message at each size.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402
from publish import messages, prepare  # noqa: E402

from gateway import signing  # noqa: E402
from gateway.publishing import service  # noqa: E402
from gateway.publishing.orchestration import publish as publish_messages  # noqa: E402
from gateway.runtime import Runtime  # noqa: E402
from gateway.settings import Settings  # noqa: E402
from keys import eddsa  # noqa: E402

STAGES = ("peek_kid", "verify_message", "apply_message", "_write", "_accept_one")


def timed(owner: Any, name: str, spent: dict[str, float]) -> None:
    original: Callable[..., Any] = getattr(owner, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        began = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            spent[name] = spent.get(name, 0.0) + time.perf_counter() - began

    setattr(owner, name, wrapper)


def per_call(call: Callable[[], object], rounds: int = 5000) -> float:
    began = time.perf_counter()
    for _ in range(rounds):
        call()
    return (time.perf_counter() - began) / rounds * 1e6


def crypto_costs() -> None:
    """One Ed25519 verification and signature of a 700-byte message: OpenSSL through
    `cryptography`, and libsodium through keys.eddsa (what the gateway uses)."""
    key, data = Ed25519PrivateKey.generate(), b"x" * 700
    public, signature = key.public_key(), key.sign(data)
    ours = eddsa.Ed25519SigningKey(key)
    openssl = per_call(lambda: public.verify(signature, data)), per_call(lambda: key.sign(data))
    sodium = (
        per_call(lambda: ours.public_key.verify(data, signature)),
        per_call(lambda: ours.sign(data)),
    )
    for name, (verify, sign) in (
        ("cryptography/OpenSSL", openssl),
        ("keys.eddsa/libsodium", sodium),
    ):
        print(f"Ed25519 ({name}): verify {verify:.0f} µs, sign {sign:.0f} µs")


def by_group_size(db: str, per_size: int = 2000) -> None:
    sizes = (1, 4, 16, 32, 128, 1000)
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp:
        env, key = prepare(db, Path(tmp))
        settings = Settings(
            data_dir=Path(env["GATEWAY_DATA_DIR"]), database_url=env["GATEWAY_DATABASE_URL"]
        )
        runtime = Runtime.open(settings)
        tokens = messages(key, 0, 1000 + per_size * len(sizes))
        publish_messages(runtime, tokens[:1000])  # warm caches and the tree's right edge
        position = 1000
        for size in sizes:
            done, began = 0, time.thread_time()
            while done < per_size:
                publish_messages(runtime, tokens[position : position + size])
                position, done = position + size, done + size
            cpu = (time.thread_time() - began) / done * 1e6
            print(f"[{db}] groups of {size:5}: {cpu:6.0f} µs of CPU per message")
        runtime.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--groups", action="store_true", help="CPU per message by group size")
    args = parser.parse_args()
    if args.groups:
        by_group_size(args.db)
        return
    crypto_costs()
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp:
        env, key = prepare(args.db, Path(tmp))
        settings = Settings(
            data_dir=Path(env["GATEWAY_DATA_DIR"]), database_url=env["GATEWAY_DATABASE_URL"]
        )
        runtime = Runtime.open(settings)
        tokens = messages(key, 0, 2000)
        publish_messages(runtime, tokens[:1000])  # warm caches and the tree's right edge
        spent: dict[str, float] = {}
        for name in STAGES:
            timed(service, name, spent)
        timed(signing.GatewaySigner, "sign", spent)
        began = time.perf_counter()
        publish_messages(runtime, tokens[1000:])
        total = time.perf_counter() - began
        runtime.close()
    print(f"[{args.db}] batch of 1,000: {total * 1000:.0f} ms")
    for name, seconds in spent.items():
        print(f"  {name:16} {seconds * 1000:6.0f} ms  ({seconds * 1000:.0f} µs per message)")


if __name__ == "__main__":
    main()
