"""Private-key files on disk: PKCS#8 PEM, owner-only (0600), written atomically.

Every failure to read a usable key surfaces as KeyFileError naming the file.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path

from keys.keypair import InvalidKeyError, SigningKey
from keys.suites import DEFAULT_SUITE, get_suite, load_signing_key_pem

__all__ = ["KeyFileError", "generate_key_file", "read_key_file", "write_key_file"]

_MAX_KEY_FILE = 64 * 1024  # a PEM private key is a few hundred bytes


class KeyFileError(Exception):
    """A key file that is missing, unsafe, undecryptable or not a supported key."""


def write_key_file(
    path: Path,
    key: SigningKey,
    passphrase: bytes | None = None,
    *,
    overwrite: bool = False,
) -> None:
    """Write `key` as PKCS#8 PEM with mode 0600; readers never see a partial file.

    Without `overwrite`, an existing file is never replaced, even one created concurrently.
    """
    pem = key.to_pem(passphrase)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    # O_EXCL: never write through a file or symlink someone planted at the temporary name.
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o600)  # the umask can only narrow; this pins it
            handle.write(pem)
            handle.flush()
            os.fsync(handle.fileno())
        if overwrite:
            os.replace(temporary, path)
        else:
            # link() fails if `path` exists, atomically; exists()-then-replace() would race.
            try:
                os.link(temporary, path)
            except FileExistsError:
                raise KeyFileError(f"{path}: already exists (pass overwrite=True)") from None
            os.unlink(temporary)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
    _fsync_directory(path.parent)


def read_key_file(path: Path, passphrase: bytes | None = None) -> SigningKey:
    """Load a key written by write_key_file (or any PKCS#8 PEM) after checking its mode."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot open: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as handle:
        # fstat on the open descriptor: the mode checked is the mode of the file read.
        status = os.fstat(handle.fileno())
        if not stat.S_ISREG(status.st_mode):
            raise KeyFileError(f"{path}: not a regular file")
        if status.st_mode & 0o077:
            raise KeyFileError(
                f"{path}: mode {stat.S_IMODE(status.st_mode):04o} lets group or others read "
                "the private key; run chmod 600"
            )
        pem = handle.read(_MAX_KEY_FILE + 1)
    if len(pem) > _MAX_KEY_FILE:
        raise KeyFileError(f"{path}: too large to be a private key")
    try:
        return load_signing_key_pem(pem, passphrase)
    except (InvalidKeyError, ValueError) as exc:  # UnknownSuiteError is a ValueError too
        raise KeyFileError(f"{path}: {exc}") from None


def generate_key_file(
    path: Path, suite: str = DEFAULT_SUITE, passphrase: bytes | None = None
) -> SigningKey:
    """Create a new key of `suite` at `path` (never overwriting) and return it."""
    key = get_suite(suite).generate()
    write_key_file(path, key, passphrase)
    return key


def _fsync_directory(directory: Path) -> None:
    # The rename is durable only once the directory entry is on disk (POSIX rename(2)).
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
