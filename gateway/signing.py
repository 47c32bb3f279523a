"""The gateway's own keys: the receipt/entry key (JWS) and the log key (checkpoints).

Created by `gateway init` as PKCS#8 PEM files (mode 0600, encrypted when a passphrase is set)
and loaded once in the app's lifespan.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from gateway.settings import Settings
from keys import jws
from keys.jwks import build_jwks
from keys.store import generate_key_file, read_key_file
from keys.suites import SigningKey

RECEIPT_TYP = "gateway-receipt+jws"
ENTRY_TYP = "gateway-entry+jws"
RECEIPT_KEY_FILE = "gateway-receipt.pem"
LOG_KEY_FILE = "gateway-log.pem"
WEBHOOK_KEY_FILE = "gateway-webhook.pem"  # Standard Webhooks v1a (Ed25519) signatures


@dataclass(frozen=True)
class GatewaySigner:
    receipt_key: SigningKey
    log_key: SigningKey
    webhook_key: SigningKey

    def sign(self, claims: dict[str, Any], typ: str) -> str:
        payload = orjson.dumps(claims)  # compact UTF-8 JSON, as json.dumps(separators=…)
        return jws.sign_compact(payload, self.receipt_key, typ=typ)

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


def load_gateway_signer(settings: Settings) -> GatewaySigner:
    passphrase = settings.key_passphrase
    return GatewaySigner(
        receipt_key=read_key_file(settings.key_dir / RECEIPT_KEY_FILE, passphrase),
        log_key=read_key_file(settings.key_dir / LOG_KEY_FILE, passphrase),
        webhook_key=read_key_file(settings.key_dir / WEBHOOK_KEY_FILE, passphrase),
    )
