"""The witness at the edges of tlog-witness: the empty tree has exactly one root, and a fork at
the size the witness holds is a 409 Conflict (C2SP), never taken for a stale old size."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from gateway.transparency.service import log_vkey, sign_checkpoint
from gateway.witness.app import create_witness_app
from gateway.witness.service import Witness
from keys import merkle
from keys.suites import SigningKey, get_suite

ORIGIN = "log.example/edges"


@pytest.fixture
def log_key() -> SigningKey:
    return get_suite("ed25519").generate()


@pytest.fixture
def client(tmp_path: Path, log_key: SigningKey) -> TestClient:
    witness = Witness.open(tmp_path / "witness", "witness.example/w1")
    witness.state.trust(ORIGIN, log_vkey(ORIGIN, log_key))
    return TestClient(create_witness_app(witness))


def add(client: TestClient, key: SigningKey, old: int, size: int, root: bytes) -> tuple[int, str]:
    response = client.post(
        "/add-checkpoint", content=f"old {old}\n\n{sign_checkpoint(ORIGIN, size, root, key)}"
    )
    return response.status_code, response.headers["content-type"]


def test_a_size_0_checkpoint_with_another_root_is_a_bad_proof(
    client: TestClient, log_key: SigningKey
) -> None:
    bogus = hashlib.sha256(b"not the empty tree").digest()
    assert add(client, log_key, 0, 0, bogus)[0] == 422
    # nothing was recorded: the empty tree's own root, then a first leaf, still go through
    assert add(client, log_key, 0, 0, merkle.EMPTY_ROOT)[0] == 200
    leaf = merkle.leaf_hash(b"entry 0")
    assert add(client, log_key, 0, 1, leaf)[0] == 200


def test_a_fork_at_the_witness_size_is_409_without_a_size_body(
    client: TestClient, log_key: SigningKey
) -> None:
    leaf = merkle.leaf_hash(b"entry 0")
    assert add(client, log_key, 0, 1, leaf)[0] == 200
    status, content_type = add(client, log_key, 1, 1, merkle.leaf_hash(b"rewritten"))
    # C2SP tlog-witness: "If the old size matches the checkpoint size, the witness MUST check
    # that the root hashes are also identical. If they don't match, ... 409 Conflict". Not
    # text/x.tlog.size, so a client does not retry it as a stale old size.
    assert (status, content_type.startswith("text/x.tlog.size")) == (409, False)
