"""`gateway demo`: the main job end to end on the embedded SQLite default.

Starts a real gateway (uvicorn on a loopback port), registers Fujian agencies with their own
keys, publishes a generated province's grade decisions over HTTP, sends deliberately bad
messages, verifies every receipt against the gateway's JWKS, and prints the ledgers.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shlex
import tempfile
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

from contracts.dates import local_date
from contracts.registry import latest_major
from gateway.access.assertion import request_token
from gateway.app import create_app
from gateway.cli.tables import print_table
from gateway.demo.dataset import AGENCIES, Step, build_enterprises, dramatic_events
from gateway.demo.deliveries import make_receivers, subscribe_receivers, wait_for_deliveries
from gateway.demo.loopback import running_app
from gateway.demo.mischief import bad_messages
from gateway.demo.report import Tally, delivery_table, feedback_table, print_summary, progress_bar
from gateway.migrate import upgrade
from gateway.registry import service
from gateway.registry.scopes import grant_scopes
from gateway.runtime import Runtime
from gateway.settings import DeliverySettings, Settings
from gateway.signing import ensure_gateway_keys
from keys import jws
from keys.jwks import key_from_jwks
from keys.store import write_key_file
from keys.suites import SigningKey, get_suite

BATCH = 250


@dataclass
class Signers:
    keys: dict[str, SigningKey]
    tokens: dict[tuple[str, str], str] = field(default_factory=dict)  # by (agency, scope)

    def sign(self, step: Step, issued_at: dt.datetime, message_id: str | None = None) -> bytes:
        envelope = {
            "id": message_id or str(uuid.uuid4()),
            "type": step.type,
            "contract": latest_major(step.type),
            "issuer": step.issuer,
            "issued_at": issued_at.isoformat(timespec="seconds"),
            "subject": step.subject,
            "data": step.data,
        }
        payload = json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode()
        return jws.sign_compact(payload, self.keys[step.issuer], typ="gateway-message+jws").encode()

    def signer_of(self, token: bytes) -> str:
        """The agency whose key signed `token` (the grading authority when no known key did:
        the bad messages it sends are refused before the caller matters)."""
        try:
            kid = jws.parse_compact(token).header.get("kid")
        except jws.JWSError:
            return "fj-yjt"
        return next((a for a, k in self.keys.items() if k.public_key.kid == kid), "fj-yjt")

    def login(self, client: httpx.Client, agency: str, scope: str) -> str:
        """The agency's access token: OAuth client credentials with private_key_jwt."""
        if (agency, scope) not in self.tokens:
            self.tokens[agency, scope] = access_token(client, self.keys[agency], agency, scope)
        return self.tokens[agency, scope]

    def publish_headers(self, client: httpx.Client, token: bytes) -> dict[str, str]:
        """Publishing needs a token of the agency whose key signed the message."""
        return {"authorization": "Bearer " + self.login(client, self.signer_of(token), "publish")}


def access_token(client: httpx.Client, key: SigningKey, agency: str, scope: str) -> str:
    token_url = f"{client.base_url}".rstrip("/") + "/v1/oauth/token"
    response = request_token(client, token_url, key, agency, scope)
    response.raise_for_status()
    return str(response.json()["access_token"])


def register_agencies(settings: Settings, key_dir: Path) -> Signers:
    """Each demo agency gets its own Ed25519 key (written as a PEM file beside the data)."""
    runtime = Runtime.open(settings)
    key_dir.mkdir(parents=True, exist_ok=True)
    keys: dict[str, SigningKey] = {}
    now = runtime.clock.now()
    try:
        with runtime.db.transaction() as session:
            for agency in AGENCIES:
                key = get_suite("ed25519").generate()
                write_key_file(key_dir / f"{agency.agency_id}.pem", key)
                service.add_agency(
                    session,
                    runtime.signer,
                    agency_id=agency.agency_id,
                    name=agency.name,
                    uscc=agency.uscc,
                    roles=agency.roles,
                    now=now,
                )
                service.grant_publish(
                    session, runtime.signer, agency.agency_id, agency.publish, now
                )
                scopes = ["admin"] if "operator" in agency.roles else ["subscribe"]
                scopes += ["publish"] if agency.publish else []
                scopes += ["query"] if {"bank", "insurer"} & set(agency.roles) else []
                scopes += ["supervise"] if "work_safety_supervisor" in agency.roles else []
                grant_scopes(session, runtime.signer, agency.agency_id, scopes, now)
                service.add_key(
                    session,
                    runtime.signer,
                    agency_id=agency.agency_id,
                    jwk=key.public_key.jwk(),
                    suite="ed25519",
                    now=now,
                    valid_from=now - dt.timedelta(days=1),
                )
                keys[agency.agency_id] = key
    finally:
        runtime.close()
    return Signers(keys)


def publish_batch(
    client: httpx.Client, signers: Signers, tokens: list[bytes], tally: Tally
) -> list[dict[str, Any]]:
    """One batch request per run of consecutive messages from the same agency (a publish token
    speaks for one agency); results in the order of `tokens`."""
    results: list[dict[str, Any]] = []
    start = 0
    while start < len(tokens):
        agency = signers.signer_of(tokens[start])
        end = start
        while end < len(tokens) and signers.signer_of(tokens[end]) == agency:
            end += 1
        results += _publish_run(client, signers, tokens[start:end], tally)
        start = end
    return results


def _publish_run(
    client: httpx.Client, signers: Signers, tokens: list[bytes], tally: Tally
) -> list[dict[str, Any]]:
    response = client.post(
        "/v1/messages/batch",
        json={"messages": [t.decode() for t in tokens]},
        headers=signers.publish_headers(client, tokens[0]),
    )
    response.raise_for_status()
    results: list[dict[str, Any]] = response.json()["results"]
    for token, result in zip(tokens, results, strict=True):
        if result["status"] == 201:
            tally.accepted += 1
            tally.receipts.append((token, result["receipt"]))
        elif result["status"] == 200:
            tally.duplicates += 1
        else:
            problem = result["problem"]
            tally.unexpected.append(f"{problem['code']}: {problem['detail']}")
    return results


def verify_receipts(client: httpx.Client, tally: Tally) -> int:
    """Check every receipt offline against the published JWKS and the exact JWS bytes."""
    jwks = client.get("/.well-known/jwks.json").json()
    good = 0
    for token, receipt in tally.receipts:
        parsed = jws.parse_compact(receipt)
        try:
            jws.verify_compact(parsed, key_from_jwks(jwks, str(parsed.header["kid"])))
        except jws.JWSError:
            continue
        claims = json.loads(parsed.payload)
        if claims["leaf_hash"] == hashlib.sha256(b"\x00" + token).hexdigest():
            good += 1
    return good


BANK_VIEW = ["grade.status", "grade.level", "grade.valid_to", "lists", "measures"]


def _bank_asks(
    client: httpx.Client, signers: Signers, code: str, tally: Tally, console: Console
) -> None:
    """The bank asks for a revoked enterprise's standing within its field view, checks the
    attestation, and is refused a field outside the view."""
    client.put(
        "/v1/agencies/fj-cib/rights/query/standing", json={"fields": BANK_VIEW}
    ).raise_for_status()
    bank = {"authorization": "Bearer " + signers.login(client, "fj-cib", "query")}
    url = f"/v1/enterprises/{code}"
    answer = client.get(url, params={"purpose": "loan application 2026-118"}, headers=bank)
    if answer.status_code != 200:
        tally.unexpected.append(f"bank query: {answer.status_code} {answer.text[:200]}")
        return
    body = answer.json()
    parsed = jws.parse_compact(body["attestation"])
    jwks = client.get("/.well-known/jwks.json").json()
    try:
        jws.verify_compact(parsed, key_from_jwks(jwks, str(parsed.header["kid"])))
        attested = json.loads(parsed.payload)["answer"] == body["standing"]
    except jws.JWSError:
        attested = False
    if not attested:
        tally.unexpected.append("bank query: the attestation does not verify")
    standing = body["standing"]
    measures = ", ".join(m["code"] for m in standing.get("measures", {}).get("bank", []))
    console.print(
        f"the bank asked about {code} (purpose recorded): grade {standing['grade']['status']}, "
        f"{len(standing['lists'])} list entries, bank measures: {measures or '-'}; "
        f"attestation {'verified' if attested else 'FAILED'}; fields: {', '.join(standing)}"
    )
    outside = client.get(url, params={"purpose": "curiosity", "fields": "name"}, headers=bank)
    code_seen = outside.json().get("code")
    if code_seen != "field_not_in_view":
        tally.unexpected.append(f"bank asking for a field outside its view: got {code_seen}")
    else:
        console.print("  …and asking for the name, outside its view: 403 field_not_in_view")


def run_demo(
    *,
    enterprises: int,
    keep: Path | None,
    seed: int,
    console: Console,
    stay: Callable[[str, Settings], None] | None = None,
) -> int:
    """Returns the process exit code: 0 when every check of the run passed, 2 (having made
    nothing) when the data set is too small for the stories the demo tells. With `stay`, the
    gateway is served again on the demo's data after the summary and `stay(base_url,
    settings)` is called (it returns when the gateway may stop: `gateway demo --console`)."""
    shortfall = _shortfall(enterprises, seed)
    if shortfall is not None:
        console.print(f"[red]error:[/red] {shortfall}")
        return 2
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        code = _run(keep, enterprises, seed, console, kept=True)
        return _stay(keep, stay) if stay is not None and code == 0 else code
    with tempfile.TemporaryDirectory(prefix="gateway-demo-") as tmp:
        code = _run(Path(tmp), enterprises, seed, console)
        return _stay(Path(tmp), stay) if stay is not None and code == 0 else code


def demo_settings(data_dir: Path) -> Settings:
    return Settings(
        data_dir=data_dir,
        database_url=None,
        log_origin="demo.gateway.fj/log",
        delivery=DeliverySettings(allowed_hosts=["127.0.0.1"], idle_sleep_seconds=0.05),
    )


def _stay(data_dir: Path, stay: Callable[[str, Settings], None]) -> int:
    """Serve the demo's gateway again on its data until `stay` returns."""
    settings = demo_settings(data_dir)
    with running_app(create_app(settings), "gateway") as base:
        stay(base, settings)
    return 0


def _shortfall(count: int, seed: int) -> str | None:
    """Why `count` enterprises cannot carry the demo (None: they can). The stories need three
    with an active grade; the refused messages, one only registered and one award."""
    ents = build_enterprises(count, seed, local_date(dt.datetime.now(dt.UTC)))
    registered = any(e.steps[-1].type == "enterprise.registered" for e in ents)
    awarded = any(s.type == "grade.awarded" for e in ents for s in e.steps)
    if dramatic_events(ents, local_date(dt.datetime.now(dt.UTC))) and registered and awarded:
        return None
    return (
        f"{count} enterprises (seed {seed}) are too few for the demo's stories, which need"
        " three with an active grade and one only registered; give --enterprises 45 or more"
    )


def random_draw(
    client: httpx.Client,
    signers: Signers,
    today: dt.date,
    console: Console,
    tally: Tally,
) -> str | None:
    """双随机 (四（二）): the supervisor draws next quarter's inspections of achieved
    enterprises by their classified-supervision frequency, committing to a secret first; the
    first signed checkpoint after the request and the secret make the seed."""
    import secrets

    from keys.draws import commitment

    secret = secrets.token_bytes(32)
    draw_id = f"FJ-{today.isoformat()}-DRAW"
    headers = {"authorization": "Bearer " + signers.login(client, "fj-yjt-zf", "supervise")}
    period = {
        "from": (today + dt.timedelta(days=1)).isoformat(),
        "to": (today + dt.timedelta(days=91)).isoformat(),
    }
    body: dict[str, Any] = {
        "draw_id": draw_id,
        "region_prefix": "35",
        "period": period,
        "ledger": "achieved",
        # 双随机 samples a share of each grade (rates resolved to samples before logging);
        # without strata the gateway would draw by classified-supervision frequency
        "strata": [
            {"name": f"level-{level}", "where": {"levels": [level]}, "rate": 0.1}
            for level in ("1", "2", "3", "small_micro")
        ],
        "inspectors": [f"FJ-INSP-{n:04d}" for n in range(1, 61)],
        "inspectors_per_enterprise": 2,
        "commitment": commitment(secret),
    }
    requested = client.post("/v1/inspections/draws", json=body, headers=headers)
    if requested.status_code != 201:
        tally.unexpected.append(f"draw request: {requested.text[:300]}")
        return None
    client.get("/v1/log/checkpoint")  # the first checkpoint past the request: the randomness
    revealed = client.post(
        f"/v1/inspections/draws/{draw_id}/reveal", json={"secret": secret.hex()}, headers=headers
    )
    if revealed.status_code != 200:
        tally.unexpected.append(f"draw reveal: {revealed.text[:300]}")
        return None
    result = revealed.json()["result"]
    strata = ", ".join(
        f"{s['name']} {len(s['selected'])}/{s['population']}" for s in result["strata"]
    )
    console.print(
        f"  [cyan]#{revealed.json()['result_index']}[/] random draw {draw_id} (双随机) for "
        f"{period['from']} to {period['to']}: {strata}; seed from checkpoint "
        f"{result['seed_checkpoint_size']} and the supervisor's revealed secret"
    )
    return draw_id


def _run(data_dir: Path, count: int, seed: int, console: Console, kept: bool = False) -> int:
    started = time.perf_counter()
    settings = demo_settings(data_dir)
    console.rule("[bold]Work-safety credit gateway — demo (Fujian)")
    console.print(f"data directory: {data_dir}  ·  database: SQLite (WAL)  ·  seed {seed}")
    upgrade(settings.effective_database_url)
    ensure_gateway_keys(settings)
    signers = register_agencies(settings, data_dir / "agency-keys")
    console.print(
        "registered agencies: "
        + ", ".join(f"{a.agency_id} ({a.name})" for a in AGENCIES)
        + "  — each change is a gateway-signed log entry"
    )
    today = local_date(dt.datetime.now(dt.UTC))
    ents = build_enterprises(count, seed, today)
    routine = [step for ent in ents for step in ent.steps]
    tally = Tally()
    issued = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
    receivers = make_receivers(signers)
    with ExitStack() as stack:
        base = stack.enter_context(running_app(create_app(settings), "gateway"))
        client = stack.enter_context(httpx.Client(base_url=base, timeout=60))
        console.print(f"gateway listening on {base} (OpenAPI at {base}/docs)")
        client.headers["authorization"] = "Bearer " + signers.login(client, "fj-dsj", "admin")
        subscribe_receivers(client, stack, receivers, console)
        tokens = [signers.sign(step, issued) for step in routine]
        with progress_bar(console) as progress:
            task = progress.add_task("publishing ledger and grade messages", total=len(tokens))
            for start in range(0, len(tokens), BATCH):
                chunk = tokens[start : start + BATCH]
                publish_batch(client, signers, chunk, tally)
                progress.advance(task, len(chunk))
        console.print(f"[green]published {len(tokens)} routine messages in batches of {BATCH}")
        story = dramatic_events(ents, today)
        ids = _narrate(client, signers, story, issued, tally, console)
        first = next(i for i, step in enumerate(story) if step.type == "grade.revoked")
        _bank_asks(client, signers, story[first].subject, tally, console)
        draw_id = random_draw(client, signers, today, console, tally)
        resend = tokens[: min(50, len(tokens))]
        publish_batch(client, signers, resend, tally)
        console.print(f"resent {len(resend)} messages: answered 200 with their original receipts")
        first_id = json.loads(jws.parse_compact(tokens[0]).payload)["id"]
        for label, token, expected in bad_messages(signers, ents, issued, first_id):
            headers = {"Content-Type": "application/jose", **signers.publish_headers(client, token)}
            response = client.post("/v1/messages", content=token, headers=headers)
            code = response.json().get("code", str(response.status_code))
            tally.refused[code] += 1
            tally.refusals.append((label, code))
            if code != expected:
                tally.unexpected.append(f"{label}: expected {expected}, got {code}")
        verified = verify_receipts(client, tally)
        ledger = client.get("/v1/ledgers/basic", params={"limit": 1}).json()["total"]
        delivery_rows = wait_for_deliveries(client, receivers, console, tally)
        feedback = client.get(f"/v1/messages/{ids[first]}/feedback").json()
    print_summary(settings, tally, verified, ledger, console)
    print_table(delivery_table(delivery_rows), console)
    print_table(feedback_table(feedback), console)
    environment = (
        f"GATEWAY_DATA_DIR={shlex.quote(str(data_dir.resolve()))} "
        f"GATEWAY_LOG_ORIGIN={shlex.quote(settings.log_origin)}"
    )
    if draw_id is not None:
        console.print(
            f"verify the draw from the log alone: {environment} gateway draw verify {draw_id}"
            + ("" if kept else "  (run the demo with --keep DIR to keep the data for it)"),
            soft_wrap=True,
            highlight=False,
        )
    if kept:
        console.print(
            f"the data is kept; to use it next:\n  export {environment}\n"
            "  gateway ledger list --ledger achieved   # or: gateway audit, gateway serve",
            soft_wrap=True,
            highlight=False,
        )
    elapsed = time.perf_counter() - started
    ok = not tally.unexpected and verified == len(tally.receipts)
    for problem in tally.unexpected:
        console.print(f"[red]unexpected: {problem}")
    console.print(
        f"{'[green]OK' if ok else '[red]FAILED'}[/] — {tally.accepted} accepted, "
        f"{tally.duplicates} duplicates, {sum(tally.refused.values())} refused, "
        f"{verified}/{len(tally.receipts)} receipts verified, in {elapsed:.1f} s"
    )
    return 0 if ok else 1


def _narrate(
    client: httpx.Client,
    signers: Signers,
    steps: list[Step],
    issued: dt.datetime,
    tally: Tally,
    console: Console,
) -> list[str]:
    """Publish the story one message at a time, narrating; returns the message ids."""
    ids: list[str] = []
    for step in steps:
        data = dict(step.data)
        if step.refers_to is not None:
            data["decision_message_id"] = ids[step.refers_to]
        if step.cites:
            data["related_message_ids"] = [ids[len(ids) + offset] for offset in step.cites]
        if step.inspection is not None:
            data["inspection_message_id"] = ids[len(ids) + step.inspection]
        message_id = str(uuid.uuid4())
        token = signers.sign(Step(step.issuer, step.type, step.subject, data), issued, message_id)
        ids.append(message_id)
        headers = {"Content-Type": "application/jose", **signers.publish_headers(client, token)}
        response = client.post("/v1/messages", content=token, headers=headers)
        body = response.json()
        if response.status_code == 201:
            tally.accepted += 1
            tally.receipts.append((token, body["receipt"]))
            console.print(f"  [cyan]#{body['index']}[/] {step.story}")
        else:
            tally.unexpected.append(f"{step.story}: {body.get('code')} {body.get('detail')}")
    return ids
