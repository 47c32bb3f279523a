"""Issue 20 replayed against a running `gateway serve` on loopback: tokens, rights, input, logs
and the log's integrity (findings 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14), and the classes of
attack that held (algorithm confusion, `none`, HS256 with the public key, jti replay across
two processes, SSRF spellings, cross-agency reads). Each refusal: its status and code, and
nothing stored or leaked."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from contract_factories import make_listing, make_registration
from live_gateway import LiveGateway, fresh_address, running
from sqlalchemy import select

from contracts.uscc import complete_uscc
from gateway import models
from gateway.registry import service
from keys.jws import parse_compact

ENTERPRISE = complete_uscc("91350100MA000ATK")
FLUSH = 0.2  # GATEWAY_REFUSALS__FLUSH_SECONDS here: counts reach the records quickly


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveGateway]:
    with running(
        tmp_path_factory.mktemp("access-attacks"),
        REFUSALS__FLUSH_SECONDS=str(FLUSH),
        DELIVERY__IN_PROCESS_WORKER="false",
    ) as gateway:
        gateway.agency(
            "fj-yjt",
            roles=["grading_authority", "listing_department"],
            publish=["enterprise.registered", "listing.added"],
            scopes=["publish", "ledger.read"],
        )
        gateway.agency(
            "fj-cib", scopes=["query", "subscribe", "ledger.read"], subscribe=["listing.added"]
        )
        gateway.agency("fj-other", scopes=["query", "subscribe", "ledger.read"])
        gateway.agency("fj-scjg", roles=["market_regulator"], scopes=["subscribe"])
        gateway.agency("ops", roles=["operator"], scopes=["admin"])
        authority = gateway.agencies["fj-yjt"]
        registered = gateway.publish(
            authority.message("enterprise.registered", make_registration(), ENTERPRISE)
        )
        assert registered.status_code == 201, registered.text
        listed = gateway.publish(authority.message("listing.added", make_listing(), ENTERPRISE))
        assert listed.status_code == 201, listed.text
        yield gateway


def admin(live: LiveGateway) -> dict[str, str]:
    return live.bearer("ops", "admin")


def refused(answer: Any, status: int, code: str) -> dict[str, Any]:
    assert (answer.status_code, answer.json().get("code")) == (status, code), answer.text
    problem: dict[str, Any] = answer.json()
    assert problem["detail"]
    return problem


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forged_jws(header: dict[str, Any], payload: dict[str, Any], key: bytes | None) -> str:
    """A compact JWS with any header: HMAC-SHA256 under `key`, or no signature."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest() if key else b""
    return f"{signing_input}.{b64(signature)}"


def the_listing(live: LiveGateway) -> tuple[str, str]:
    """The published listing's id and JWS."""
    with live.runtime.db.reader() as session:
        entry = session.scalars(
            select(models.LogEntry).where(models.LogEntry.type == "listing.added")
        ).first()
        assert entry is not None
        return entry.message_id, entry.jws.decode()


# --- classes that held: algorithm confusion, `none`, HS256 with the public key -------------------


@pytest.mark.parametrize("alg", ["none", "HS256", "EdDSA-none"])
def test_a_login_with_a_confused_algorithm_gets_no_token(live: LiveGateway, alg: str) -> None:
    bank = live.agencies["fj-cib"]
    claims = json.loads(parse_compact(live.login_form(bank)["client_assertion"]).payload)
    public = base64.urlsafe_b64decode(bank.key.public_key.jwk()["x"] + "==")
    header = {"alg": alg.removesuffix("-none"), "kid": bank.key.kid, "typ": "JWT"}
    assertion = forged_jws(header, claims, None if alg.endswith("none") else public)
    form = live.login_form(bank) | {"client_assertion": assertion}
    with live.client(fresh_address()) as http:
        answer = http.post("/v1/oauth/token", data=form)
    problem = refused(
        answer, 401, "signature_invalid" if alg == "EdDSA-none" else "algorithm_not_allowed"
    )
    assert problem["error"] == "invalid_client"
    assert "access_token" not in answer.text


@pytest.mark.parametrize("alg", ["none", "HS256"])
def test_a_message_or_token_with_a_confused_algorithm_changes_nothing(
    live: LiveGateway, alg: str
) -> None:
    authority = live.agencies["fj-yjt"]
    before = live.log_size()
    envelope = json.loads(
        parse_compact(
            authority.message("enterprise.registered", make_registration(), ENTERPRISE)
        ).payload
    )
    public = base64.urlsafe_b64decode(authority.key.public_key.jwk()["x"] + "==")
    header = {"alg": alg, "kid": authority.key.kid, "typ": "gateway-message+jws"}
    message = forged_jws(header, envelope, public if alg == "HS256" else None)
    answer = live.publish(message.encode(), caller="fj-yjt")
    refused(answer, 401, "algorithm_not_allowed")
    # an access token forged the same ways, with the gateway's own public key as the secret
    receipt_key = live.runtime.signer.receipt_key
    claims = json.loads(parse_compact(live.token("ops", "admin")).payload)
    raw = base64.urlsafe_b64decode(receipt_key.public_key.jwk()["x"] + "==")
    token = forged_jws(
        {"alg": alg, "kid": receipt_key.kid, "typ": "at+jwt"},
        claims,
        raw if alg == "HS256" else None,
    )
    with live.client(fresh_address()) as http:
        refused(
            http.get("/v1/agencies", headers={"authorization": f"Bearer {token}"}),
            401,
            "invalid_token",
        )
    assert live.log_size() == before


# --- class that held: a jti used once, across two API processes -----------------------------


def test_a_client_assertion_is_used_once_across_two_processes(live: LiveGateway) -> None:
    other = live.start_another()
    form = live.login_form(live.agencies["fj-cib"])
    with live.client(fresh_address()) as http:
        first = http.post(f"{live.url}/v1/oauth/token", data=form)
        assert first.status_code == 200, first.text
        used = live.count(models.UsedAssertion)
        again = http.post(f"{other}/v1/oauth/token", data=form)
    problem = refused(again, 401, "assertion_replayed")
    assert problem["error"] == "invalid_client"
    assert live.count(models.UsedAssertion) == used


# --- class that held: cross-agency reads ----------------------------------------------------------


def test_another_agencys_feed_query_and_records_are_refused(live: LiveGateway) -> None:
    with live.client() as http:
        made = http.post(
            "/v1/subscriptions",
            json={"agency_id": "fj-cib", "url": None, "types": ["listing.added"]},
            headers=admin(live),
        )
        assert made.status_code == 201, made.text
        feed = f"/v1/subscriptions/{made.json()['id']}/feed?after=-1"
        other = live.bearer("fj-other", "subscribe query ledger.read")
        refused(http.get(feed, headers=other), 403, "not_your_subscription")
        standing = http.get(f"/v1/enterprises/{ENTERPRISE}?purpose=peek", headers=other)
        refused(standing, 403, "not_permitted")
        records = http.get(
            f"/v1/enterprises/{ENTERPRISE}/access-records?purpose=peek", headers=other
        )
        refused(records, 403, "not_permitted")
        for answer in (standing, records):
            assert make_registration()["name"] not in answer.text
        as_authority = live.agencies["fj-yjt"].message(
            "enterprise.registered", make_registration(), complete_uscc("91350100MA000ATX")
        )
        before = live.log_size()
        refused(live.publish(as_authority, caller="fj-cib"), 403, "key_not_caller")
        assert live.log_size() == before


# --- finding 4: the token endpoint's body is bounded before it is read ---------------------------


def test_an_oversized_or_crowded_token_request_is_refused_before_it_is_parsed(
    live: LiveGateway,
) -> None:
    with live.client(fresh_address()) as http:
        big = http.post(
            "/v1/oauth/token",
            content=b"grant_type=" + b"x" * 2_000_000,
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        crowded = http.post(
            "/v1/oauth/token",
            content="&".join(f"f{n}=1" for n in range(40)).encode(),
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
    assert refused(big, 413, "payload_too_large")["error"] == "invalid_request"
    assert refused(crowded, 413, "too_many_fields")["error"] == "invalid_request"


# --- finding 5: a flood of refusals is answered, and written down as a count --------------------


def test_a_flood_of_bad_tokens_gets_429_and_two_counted_records(live: LiveGateway) -> None:
    address, flood = fresh_address(), 100
    burst = live.runtime.settings.refusals.burst
    with live.client(address) as http:
        answers = [
            http.get("/v1/ledgers/basic", headers={"authorization": "Bearer x.y.z"})
            for _ in range(flood)
        ]
    codes = [(a.status_code, a.json()["code"]) for a in answers]
    assert codes == [(401, "invalid_token")] * burst + [(429, "rate_limited")] * (flood - burst)
    assert int(answers[-1].headers["retry-after"]) >= 1
    deadline = time.monotonic() + 10
    rows: list[tuple[str, int]] = []
    while time.monotonic() < deadline:
        with live.runtime.db.reader() as session:
            rows = [
                (r.result, r.count)
                for r in session.scalars(
                    select(models.AccessRecord)
                    .where(models.AccessRecord.address == address)
                    .order_by(models.AccessRecord.id)
                )
            ]
        if sum(count for _, count in rows) == flood:
            break
        time.sleep(FLUSH)
    assert rows == [("invalid_token", burst), ("rate_limited", flood - burst)]
    with live.client() as http:  # operators read them, with their counts
        listed = http.get(f"/v1/access-records?refused=true&address={address}", headers=admin(live))
    assert [i["count"] for i in listed.json()["items"]] == [flood - burst, burst]


# --- finding 6: a withdrawn subscribe right shows nothing --------------------------------------


def test_a_withdrawn_subscribe_right_shows_nothing_new_in_the_feed(live: LiveGateway) -> None:
    live.agency("fj-ins", roles=["insurer"], scopes=["subscribe"], subscribe=["listing.added"])
    with live.client() as http:
        made = http.post(
            "/v1/subscriptions",
            json={"agency_id": "fj-ins", "url": None, "types": ["listing.added"], "view": "notice"},
            headers=admin(live),
        )
        assert made.status_code == 201, made.text
        withdrawn = http.delete(
            "/v1/agencies/fj-ins/rights/subscribe/listing.added", headers=admin(live)
        )
        assert withdrawn.status_code == 200
        later = live.agencies["fj-yjt"].message(
            "listing.added", make_listing(listing_id="FJ-SX-2026-0099"), ENTERPRISE
        )
        assert live.publish(later).status_code == 201
        feed = http.get(
            f"/v1/subscriptions/{made.json()['id']}/feed?after=-1",
            headers=live.bearer("fj-ins", "subscribe"),
        )
    assert feed.status_code == 200
    assert feed.json()["items"] == []
    assert ENTERPRISE not in feed.text
    assert live.count(models.Delivery, models.Delivery.subscription_id == made.json()["id"]) == 0


# --- finding 7: snapshots obey the regulator's rights ------------------------------------------


def test_a_regulator_without_subscribe_rights_reads_no_snapshot(live: LiveGateway) -> None:
    url = "/v1/connectors/market_regulator/snapshots"
    with live.client() as http:
        assert http.post(url, headers=admin(live)).status_code == 201
        regulator = live.bearer("fj-scjg", "subscribe")
        listing = http.get(url, headers=regulator)
        names = http.get(url, headers=admin(live)).json()["snapshots"][0]
        download = http.get(f"{url}/{names['data']}", headers=regulator)
    refused(listing, 403, "not_permitted")
    refused(download, 403, "not_permitted")
    assert ENTERPRISE not in listing.text + download.text


# --- finding 8: ledger.read is not a licence to read every message -----------------------------


def test_ledger_read_without_the_read_right_sees_hashes_not_the_message(live: LiveGateway) -> None:
    message_id, token = the_listing(live)
    payload, signature = token.split(".")[1:]
    reader = live.bearer("fj-other", "ledger.read")
    with live.client() as http:
        http.get("/v1/log/checkpoint")
        answers = [
            http.get(f"/v1/messages/{message_id}", headers=reader),
            http.get("/v1/log/entries?start=0&end=1000", headers=reader),
            http.get(f"/v1/messages/{message_id}/bundle", headers=reader),
        ]
    for answer in answers:
        assert answer.status_code == 200, answer.text
        assert payload not in answer.text
        assert signature not in answer.text
    assert answers[0].json()["view"] == "hashes"
    assert answers[2].json()["leaf_hash"] == answers[0].json()["leaf_hash"]


# --- finding 9: a revoked key's and a disabled agency's tokens stop at once ---------------------


def test_revoking_a_key_or_disabling_an_agency_refuses_its_tokens(live: LiveGateway) -> None:
    agency = live.agency("fj-rev", scopes=["ledger.read"])
    with live.client(fresh_address()) as http:
        login = http.post("/v1/oauth/token", data=live.login_form(agency))
        assert login.status_code == 200, login.text
        token = {"authorization": f"Bearer {login.json()['access_token']}"}
        assert http.get("/v1/ledgers/basic", headers=token).status_code == 200
        with live.runtime.db.transaction() as session:
            service.revoke_key(
                session,
                live.runtime.signer,
                kid=agency.key.kid,
                reason="attack test",
                now=live.runtime.clock.now(),
            )
        deadline = time.monotonic() + 5
        while http.get("/v1/ledgers/basic", headers=token).status_code == 200:
            assert time.monotonic() < deadline, "the revoked key's token still works"
            time.sleep(0.05)
        refused(http.get("/v1/ledgers/basic", headers=token), 401, "token_revoked")

    second = live.agency("fj-dis", scopes=["ledger.read"])
    with live.client(fresh_address()) as http:
        login = http.post("/v1/oauth/token", data=live.login_form(second))
        token = {"authorization": f"Bearer {login.json()['access_token']}"}
        disabled = http.put(
            "/v1/agencies/fj-dis/status",
            json={"status": "disabled", "reason": "attack test"},
            headers=admin(live),
        )
        assert disabled.status_code == 200, disabled.text
        refused(http.get("/v1/ledgers/basic", headers=token), 401, "agency_disabled")
        refused(http.post("/v1/oauth/token", data=live.login_form(second)), 401, "agency_disabled")


# --- finding 10: forwarded headers never choose the token audience ------------------------------


@pytest.mark.parametrize("scheme", ["https", "ws"])
def test_a_forwarded_scheme_does_not_change_the_audience(live: LiveGateway, scheme: str) -> None:
    bank = live.agencies["fj-cib"]
    audience = live.token_url.replace("http://", f"{scheme}://")
    form = live.login_form(bank, aud=audience)
    with live.client(fresh_address()) as http:
        answer = http.post(
            "/v1/oauth/token",
            data=form,
            headers={"x-forwarded-proto": scheme, "x-forwarded-for": "203.0.113.9"},
        )
    refused(answer, 401, "wrong_audience")


# --- finding 11: a date outside the stated range is a schema violation ------------------------


def test_year_0000_is_refused_per_item_and_nothing_is_stored(live: LiveGateway) -> None:
    authority = live.agencies["fj-yjt"]
    before = live.log_size()
    items = []
    for n in range(3):
        token = authority.message(
            "enterprise.registered", make_registration(), complete_uscc(f"91350100MA00Y{n:03d}")
        )
        envelope = json.loads(parse_compact(token).payload)
        envelope["issued_at"] = "0000-01-01T00:00:00+00:00"
        items.append(authority.sign(envelope).decode())
    with live.client() as http:
        single = http.post(
            "/v1/messages",
            content=items[0],
            headers={"content-type": "application/jose", **live.bearer("fj-yjt", "publish")},
        )
        batch = http.post(
            "/v1/messages/batch",
            json={"messages": items},
            headers=live.bearer("fj-yjt", "publish"),
        )
    assert refused(single, 400, "schema_violation")["pointer"] == "/issued_at"
    assert batch.status_code == 200
    assert [r["problem"]["code"] for r in batch.json()["results"]] == ["schema_violation"] * 3
    assert live.log_size() == before


# --- findings 12 and the SSRF class: endpoints that cannot be, or lead inside ---------------------

MALFORMED = ["http://127.0.0.1:99999/", "http://example.com:abc/", "http://[::1/", "http://a]b/"]
INSIDE = [
    "http://127.0.0.1:9/hook",
    "http://localhost:9/hook",
    "http://127.1:9/hook",
    "http://2130706433/hook",
    "http://0x7f000001/hook",
    "http://[::1]:9/hook",
    "http://[::ffff:127.0.0.1]:9/hook",
    "http://0.0.0.0:9/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://10.0.0.1/hook",
    "http://192.168.1.1/hook",
    "file:///etc/passwd",
]


@pytest.mark.parametrize(
    ("url", "code"),
    [(u, "invalid_endpoint") for u in MALFORMED] + [(u, "unsafe_endpoint") for u in INSIDE],
)
def test_a_subscription_endpoint_that_cannot_be_or_leads_inside_is_refused(
    live: LiveGateway, url: str, code: str
) -> None:
    before = live.count(models.Subscription)
    body = {"agency_id": "fj-cib", "url": url, "types": ["listing.added"]}
    with live.client() as http:
        answer = http.post("/v1/subscriptions", json=body, headers=admin(live))
    if url.startswith("file:"):
        assert answer.status_code == 400
        assert answer.json()["code"] in ("invalid_url", "invalid_endpoint", "unsafe_endpoint")
    else:
        refused(answer, 400, code)
    assert live.count(models.Subscription) == before


# --- finding 13: one request, one log line --------------------------------------------------------


def test_an_encoded_line_break_in_a_path_forges_no_log_line(live: LiveGateway) -> None:
    with live.client() as http:
        http.get("/v1/ledgers/basic%0Aforged=yes level=ERROR%0D%0Aalso=forged")
    time.sleep(0.3)  # the server's log lines reach its file
    lines = live.server_log()
    assert not [line for line in lines if line.startswith(("forged", "also="))]
    assert any("forged" in line for line in lines)  # written, escaped, on the request's line


# --- finding 14: the audit checks the database against more than itself ------------------------


def test_a_rewritten_copy_of_the_log_fails_the_audit(live: LiveGateway, tmp_path: Path) -> None:
    with live.client() as http:
        kept = http.get("/v1/log/checkpoint").text
    (tmp_path / "kept.checkpoint").write_text(kept)
    source = live.settings.effective_database_url.removeprefix("sqlite:///")
    copy = tmp_path / "copy.db"
    with sqlite3.connect(source) as src, sqlite3.connect(copy) as dst:
        src.backup(dst)
    shutil.copytree(live.settings.data_dir / "keys", tmp_path / "keys")

    def audit(*args: str) -> subprocess.CompletedProcess[str]:
        env = os.environ | {
            "GATEWAY_DATA_DIR": str(tmp_path),
            "GATEWAY_DATABASE_URL": f"sqlite:///{copy}",
            "GATEWAY_LOG_ORIGIN": live.settings.log_origin,
        }
        command = [sys.executable, "-m", "gateway.cli", "audit", "--json", *args]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)

    clean = audit("--checkpoint", str(tmp_path / "kept.checkpoint"))
    assert clean.returncode == 0, clean.stdout + clean.stderr
    with sqlite3.connect(copy) as db:  # the type column routes deliveries and names events
        db.execute("UPDATE log_entries SET type = 'grade.awarded' WHERE type = 'listing.added'")
    tampered = audit("--checkpoint", str(tmp_path / "kept.checkpoint"))
    assert tampered.returncode == 1
    report = json.loads(tampered.stdout)
    assert report["ok"] is False
    assert isinstance(report["first_bad_index"], int)
