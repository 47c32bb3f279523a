"""keys.store: key files are 0600, written atomically, never silently replaced, and refused when
readable by others or undecryptable."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from keys.store import KeyFileError, generate_key_file, read_key_file, write_key_file
from keys.suites import get_suite


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("suite", ["ed25519", "es256", "sm2-sm3"])
def test_generated_file_is_0600_and_reads_back(tmp_path: Path, suite: str) -> None:
    path = tmp_path / "gateway.pem"
    key = generate_key_file(path, suite)
    assert mode_of(path) == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    loaded = read_key_file(path)
    assert (loaded.suite, loaded.kid) == (suite, key.kid)
    assert os.listdir(tmp_path) == ["gateway.pem"]  # no temporary file left behind


def test_default_suite_is_ed25519(tmp_path: Path) -> None:
    assert generate_key_file(tmp_path / "k.pem").suite == "ed25519"


def test_mode_is_0600_even_under_a_permissive_umask(tmp_path: Path) -> None:
    previous = os.umask(0)
    try:
        generate_key_file(tmp_path / "k.pem")
    finally:
        os.umask(previous)
    assert mode_of(tmp_path / "k.pem") == 0o600


@pytest.mark.parametrize("suite", ["ed25519", "sm2-sm3"])
def test_encrypted_file_needs_its_passphrase(tmp_path: Path, suite: str) -> None:
    path = tmp_path / "k.pem"
    key = generate_key_file(path, suite, passphrase=b"s3cret")
    assert path.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert read_key_file(path, b"s3cret").kid == key.kid
    with pytest.raises(KeyFileError, match="no passphrase"):
        read_key_file(path)
    with pytest.raises(KeyFileError, match=r"(?i)incorrect pass"):
        read_key_file(path, b"wrong")


def test_passphrase_for_a_plain_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "k.pem"
    generate_key_file(path)
    with pytest.raises(KeyFileError, match="not encrypted"):
        read_key_file(path, b"s3cret")


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_group_or_world_readable_file_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "k.pem"
    generate_key_file(path)
    path.chmod(mode)
    with pytest.raises(KeyFileError, match="chmod 600"):
        read_key_file(path)


def test_existing_file_is_not_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "k.pem"
    first = generate_key_file(path)
    second = get_suite("ed25519").generate()
    with pytest.raises(KeyFileError, match="already exists"):
        write_key_file(path, second)
    assert read_key_file(path).kid == first.kid
    assert os.listdir(tmp_path) == ["k.pem"]
    write_key_file(path, second, overwrite=True)
    assert read_key_file(path).kid == second.kid
    assert mode_of(path) == 0o600


def test_missing_symlinked_and_garbage_files(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="cannot open"):
        read_key_file(tmp_path / "absent.pem")
    target = tmp_path / "real.pem"
    generate_key_file(target)
    link = tmp_path / "link.pem"
    link.symlink_to(target)
    with pytest.raises(KeyFileError, match="cannot open"):
        read_key_file(link)  # O_NOFOLLOW: a key path must not be redirected
    garbage = tmp_path / "garbage.pem"
    garbage.write_bytes(b"not a key")
    garbage.chmod(0o600)
    with pytest.raises(KeyFileError, match=r"garbage\.pem"):
        read_key_file(garbage)
