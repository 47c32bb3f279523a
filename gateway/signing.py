"""The gateway's own keys: the receipt/entry key (JWS) and the log key (checkpoints).

Created by `gateway init` as PKCS#8 PEM files (mode 0600, encrypted when a passphrase is set)
and loaded once in the app's lifespan.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from gateway.settings import Settings
from keys import eddsa, jws
from keys.jwks import build_jwks
from keys.store import generate_key_file, read_key_file, write_key_file
from keys.suites import SigningKey

RECEIPT_TYP = "gateway-receipt+jws"
ENTRY_TYP = "gateway-entry+jws"
RECEIPT_KEY_FILE = "gateway-receipt.pem"
LOG_KEY_FILE = "gateway-log.pem"
WEBHOOK_KEY_FILE = "gateway-webhook.pem"  # Standard Webhooks v1a (Ed25519) signatures
PREVIOUS_WEBHOOK_KEY_FILE = "gateway-webhook-previous.pem"
PREVIOUS_WEBHOOK_UNTIL_FILE = "gateway-webhook-previous.json"


@dataclass(frozen=True)
class GatewaySigner:
    receipt_key: SigningKey
    log_key: SigningKey
    webhook_key: SigningKey
    previous_webhook_key: SigningKey | None = None
    previous_webhook_until: dt.datetime | None = None
    # the receipt key's protected header per typ, worked out on first use
    _headers: dict[str, bytes] = field(default_factory=dict, init=False, compare=False, repr=False)

    def webhook_keys(self, now: dt.datetime) -> list[SigningKey]:
        """The v1a keys that sign now: the current one, and the previous during its overlap."""
        keys = [self.webhook_key]
        if (
            self.previous_webhook_key
            and self.previous_webhook_until
            and now < self.previous_webhook_until
        ):
            keys.append(self.previous_webhook_key)
        return keys

    def sign(self, claims: dict[str, Any], typ: str) -> str:
        """A compact JWS of `claims` by the receipt key, with `typ` in its header."""
        segment = self._headers.get(typ)
        if segment is None:  # receipts, attestations, tokens…: a handful of types
            segment = self._headers[typ] = jws.header_segment(self.receipt_key, typ=typ)
        payload = orjson.dumps(claims)  # compact UTF-8 JSON, as json.dumps(separators=…)
        return jws.sign_with_header(segment, payload, self.receipt_key)

    def jwks(self) -> dict[str, Any]:
        return build_jwks([self.receipt_key.public_key])


def ensure_gateway_keys(settings: Settings) -> tuple[bool, Path]:
    """Create the gateway's keys if missing; returns (created, key directory)."""
    directory = settings.key_dir
    directory.mkdir(parents=True, exist_ok=True)
    created = False
    passphrase = settings.key_passphrase
    receipt = directory / RECEIPT_KEY_FILE
    if not receipt.exists():
        generate_key_file(receipt, settings.keys.receipt_suite, passphrase)
        created = True
    for name in (LOG_KEY_FILE, WEBHOOK_KEY_FILE):  # signed notes and v1a webhooks are Ed25519
        path = directory / name
        if not path.exists():
            generate_key_file(path, "ed25519", passphrase)
            created = True
    return created, directory


def rotate_webhook_key(settings: Settings, overlap: dt.timedelta, now: dt.datetime) -> SigningKey:
    """A new v1a key; the current one keeps signing beside it (two v1a signatures) until
    `now + overlap`, so receivers can switch keys without missing a delivery. Processes pick
    the new key up when they restart."""
    directory = settings.key_dir
    passphrase = settings.key_passphrase
    current = directory / WEBHOOK_KEY_FILE
    write_key_file(
        directory / PREVIOUS_WEBHOOK_KEY_FILE, read_key_file(current, passphrase), passphrase
    )
    (directory / PREVIOUS_WEBHOOK_UNTIL_FILE).write_text(
        json.dumps({"valid_until": (now + overlap).isoformat()}) + "\n"
    )
    current.unlink()
    return generate_key_file(current, "ed25519", passphrase)


def _named(key: SigningKey, settings: Settings) -> SigningKey:
    """The receipt key under the JWS alg name the settings choose (`GATEWAY_KEYS__JOSE_ALG`)."""
    if settings.keys.jose_alg == eddsa.FULLY_SPECIFIED_ALG and isinstance(
        key, eddsa.Ed25519SigningKey
    ):
        return eddsa.fully_specified(key)
    return key


def load_gateway_signer(settings: Settings) -> GatewaySigner:
    passphrase = settings.key_passphrase
    previous_path = settings.key_dir / PREVIOUS_WEBHOOK_KEY_FILE
    until_path = settings.key_dir / PREVIOUS_WEBHOOK_UNTIL_FILE
    previous = until = None
    if previous_path.exists() and until_path.exists():
        previous = read_key_file(previous_path, passphrase)
        until = dt.datetime.fromisoformat(json.loads(until_path.read_text())["valid_until"])
    return GatewaySigner(
        previous_webhook_key=previous,
        previous_webhook_until=until,
        receipt_key=_named(
            read_key_file(settings.key_dir / RECEIPT_KEY_FILE, passphrase), settings
        ),
        log_key=read_key_file(settings.key_dir / LOG_KEY_FILE, passphrase),
        webhook_key=read_key_file(settings.key_dir / WEBHOOK_KEY_FILE, passphrase),
    )
