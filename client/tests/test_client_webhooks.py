"""Push deliveries: the real delivery of protocol.md §4.2 as a golden vector (v1a and v1), v1
checked against the `standardwebhooks` library both ways, the timestamp tolerance, key
rotation, and the consumer receipt the receiver answers with."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json

import pytest
from client_fakes import make_key
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from standardwebhooks import Webhook

from credit_gateway_client import WebhookVerificationError, consumer_receipt, verify_webhook
from credit_gateway_client.jose import verify_compact

# A real delivery (docs/protocol.md §4.2): the bank's `fields` view of a revocation.
WHPK = "whpk_6gBUBO7nn1uOOrYWmCZNcmq+KjO2mRlZzkZ8g0OpHJQ="
WHSEC = "whsec_5F7PMDqugdM982AbVZAtbcSz/Rt8+eYm"
TIMESTAMP = 1796633282
HEADERS = {
    "Content-Type": "application/cloudevents+json",
    "Webhook-Id": "msg_7cc31130-de06-44c1-8a2b-490cc20329a5.38af2acc-1bf4-4f74-a8e7-00d80ce7f827",
    "Webhook-Timestamp": str(TIMESTAMP),
    "Webhook-Signature": "v1a,YCVjt2bhT/FQTJQaZtTbgr7Ygcl3zQIhlVtIqXiikG6M9iYxynYiYc/iL8/TZCl+6UcE"
    "+EA4r16kvqyNFSfVBg== v1,4RUA8iNN0lCqEis2mOZdVvi9vHRH3KRZuk1wPuZcTTo=",
}
BODY = (
    b'{"specversion":"1.0","id":"7cc31130-de06-44c1-8a2b-490cc20329a5","source":"gateway.example/'
    b'log","type":"grade.revoked","subject":"91350203AY4CL12T2P","time":"2026-12-07T08:48:01.5345'
    b'26+00:00","datacontenttype":"application/json","sequence":"1000","subseq":1,"leafhash":"328f'
    b'91d970bba2df2a4cd429af9f8dd244441ccfc722e08d9ec7357364082463","data":{"decided_on":"2026-12-'
    b'07","reapply_after":"2027-12-07","reason_code":"fatal_accident"}}'
)


def test_the_golden_delivery_verifies_with_both_schemes() -> None:
    event = verify_webhook(HEADERS, BODY, [WHPK, WHSEC], now=TIMESTAMP + 10)
    assert (event.id, event.type, event.index, event.subseq) == (
        "7cc31130-de06-44c1-8a2b-490cc20329a5",
        "grade.revoked",
        1000,
        1,
    )
    assert event.data == {
        "decided_on": "2026-12-07",
        "reapply_after": "2027-12-07",
        "reason_code": "fatal_accident",
    }
    assert event.leaf_hash.startswith("328f91d9")
    assert verify_webhook(HEADERS, BODY, WHPK, now=TIMESTAMP).index == 1000
    assert verify_webhook(HEADERS, BODY, WHSEC, now=TIMESTAMP).index == 1000


def test_the_golden_v1_signature_is_what_standardwebhooks_computes() -> None:
    when = dt.datetime.fromtimestamp(TIMESTAMP, dt.UTC)
    expected = Webhook(WHSEC).sign(HEADERS["Webhook-Id"], when, BODY.decode())
    assert expected in HEADERS["Webhook-Signature"].split()


def test_what_standardwebhooks_signs_verifies_here() -> None:
    secret = "whsec_" + base64.b64encode(b"k" * 24).decode()
    body = json.dumps(json.loads(BODY) | {"sequence": "7"}).encode()
    now = dt.datetime.now(dt.UTC)
    signature = Webhook(secret).sign("msg_1", now, body.decode())
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
    }
    assert verify_webhook(headers, body, secret).index == 7
    Webhook(secret).verify(body, headers)  # and the library agrees on the same request
    with pytest.raises(WebhookVerificationError) as caught:
        verify_webhook(headers, body + b" ", secret)
    assert caught.value.code == "no_valid_signature"


@pytest.mark.parametrize("skew", [-301, 301])
def test_a_timestamp_more_than_five_minutes_away_is_refused(skew: int) -> None:
    with pytest.raises(WebhookVerificationError) as caught:
        verify_webhook(HEADERS, BODY, WHPK, now=TIMESTAMP + skew)
    assert caught.value.code == "timestamp_out_of_tolerance"
    verify_webhook(HEADERS, BODY, WHPK, now=TIMESTAMP + skew, tolerance=400)


@pytest.mark.parametrize("missing", ["Webhook-Id", "Webhook-Timestamp", "Webhook-Signature"])
def test_a_missing_header_is_named(missing: str) -> None:
    headers = {k: v for k, v in HEADERS.items() if k != missing}
    with pytest.raises(WebhookVerificationError) as caught:
        verify_webhook(headers, BODY, WHPK, now=TIMESTAMP)
    assert caught.value.code == "missing_header"
    assert missing.lower() in caught.value.detail


def test_another_key_or_a_changed_body_or_id_is_refused() -> None:
    other = Ed25519PrivateKey.generate().public_key()
    for headers, body, key in [
        (HEADERS, BODY, other),
        (HEADERS, BODY.replace(b"fatal_accident", b"other"), WHPK),
        (HEADERS | {"Webhook-Id": "msg_other"}, BODY, WHPK),
        (HEADERS, BODY, "whsec_" + base64.b64encode(b"x" * 24).decode()),
    ]:
        with pytest.raises(WebhookVerificationError) as caught:
            verify_webhook(headers, body, key, now=TIMESTAMP)
        assert caught.value.code == "no_valid_signature"


def test_a_v1_secret_needs_a_v1_signature_even_when_v1a_verifies() -> None:
    headers = HEADERS | {"Webhook-Signature": HEADERS["Webhook-Signature"].split()[0]}
    verify_webhook(headers, BODY, WHPK, now=TIMESTAMP)
    with pytest.raises(WebhookVerificationError):
        verify_webhook(headers, BODY, [WHPK, WHSEC], now=TIMESTAMP)


def test_during_a_rotation_either_key_will_do() -> None:
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    signed = f"msg_r.{TIMESTAMP}.".encode() + BODY
    headers = {
        "webhook-id": "msg_r",
        "webhook-timestamp": str(TIMESTAMP),
        "webhook-signature": " ".join(
            "v1a," + base64.b64encode(k.sign(signed)).decode() for k in (new, old)
        ),
    }
    whpk_old = "whpk_" + base64.b64encode(old.public_key().public_bytes_raw()).decode()
    assert verify_webhook(headers, BODY, whpk_old, now=TIMESTAMP).index == 1000
    assert verify_webhook(headers, BODY, [new.public_key()], now=TIMESTAMP).index == 1000


def test_a_body_that_is_no_cloud_event_is_refused_after_its_signature() -> None:
    secret = b"s" * 24
    body = b'{"hello": "world"}'
    signed = f"msg_x.{TIMESTAMP}.".encode() + body
    mac = base64.b64encode(hmac.new(secret, signed, hashlib.sha256).digest()).decode()
    headers = {
        "webhook-id": "msg_x",
        "webhook-timestamp": str(TIMESTAMP),
        "webhook-signature": "v1," + mac,
    }
    whsec = "whsec_" + base64.b64encode(secret).decode()
    with pytest.raises(WebhookVerificationError) as caught:
        verify_webhook(headers, body, whsec, now=TIMESTAMP)
    assert caught.value.code == "malformed_body"


def test_a_plain_string_that_is_no_key_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="whpk_"):
        verify_webhook(HEADERS, BODY, "6gBUBO7nn1uOOrYWmCZNcmq", now=TIMESTAMP)


@pytest.mark.parametrize("kind", ["ed25519", "es256"])
def test_the_consumer_receipt_is_what_the_gateway_checks(kind: str) -> None:
    key = make_key(kind)
    event = verify_webhook(HEADERS, BODY, WHPK, now=TIMESTAMP)
    token = consumer_receipt(key, event)
    # protocol.md §4.4: starts "ey", two dots, no spaces; signed by the agency's key
    assert token.startswith("ey")
    assert token.count(".") == 2
    assert " " not in token
    parsed = verify_compact(token, key.public)
    assert parsed.header["kid"] == key.kid
    assert parsed.claims() == {
        "message_id": "7cc31130-de06-44c1-8a2b-490cc20329a5",
        "leaf_hash": "328f91d970bba2df2a4cd429af9f8dd244441ccfc722e08d9ec7357364082463",
    }
