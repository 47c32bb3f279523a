"""`gateway demo`: the main job end to end on the embedded SQLite default.

Starts a real gateway (uvicorn on a loopback port), registers Fujian agencies with their own
keys, publishes a generated province's grade decisions over HTTP, sends deliberately bad
messages, verifies every receipt against the gateway's JWKS, and prints the ledgers.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import socket
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from gateway.access.assertion import request_token
from gateway.access.tokens import grant_scopes
from gateway.app import create_app
from gateway.demo.dataset import AGENCIES, CITIES, Step, build_enterprises, dramatic_events
from gateway.demo.mischief import bad_messages
from gateway.demo.receivers import DemoReceiver
from gateway.migrate import upgrade
from gateway.registry import service
from gateway.runtime import Runtime
from gateway.settings import DeliverySettings, Settings
from gateway.signing import ensure_gateway_keys
from keys import jws
from keys.jwks import key_from_jwks
from keys.store import write_key_file
from keys.suites import SigningKey, get_suite

BATCH = 250


@dataclass
class Tally:
    accepted: int = 0
    duplicates: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    refusals: list[tuple[str, str]] = field(default_factory=list)
    receipts: list[tuple[bytes, str]] = field(default_factory=list)  # (jws, receipt)
    unexpected: list[str] = field(default_factory=list)


@dataclass
class Signers:
    keys: dict[str, SigningKey]
    tokens: dict[tuple[str, str], str] = field(default_factory=dict)  # by (agency, scope)

    def sign(self, step: Step, issued_at: dt.datetime, message_id: str | None = None) -> bytes:
        envelope = {
            "id": message_id or str(uuid.uuid4()),
            "type": step.type,
            "contract": 1,
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


def progress_bar(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_app(app: Any, name: str) -> Iterator[str]:
    """A real uvicorn server on a loopback port, stopped on exit."""
    port = _free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=name, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError(f"the demo's {name} did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


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


def run_demo(*, enterprises: int, keep: Path | None, seed: int, console: Console) -> int:
    """Returns the process exit code: 0 when every check of the run passed, 2 (having made
    nothing) when the data set is too small for the stories the demo tells."""
    shortfall = _shortfall(enterprises, seed)
    if shortfall is not None:
        console.print(f"[red]error:[/red] {shortfall}")
        return 2
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        return _run(keep, enterprises, seed, console)
    with tempfile.TemporaryDirectory(prefix="gateway-demo-") as tmp:
        return _run(Path(tmp), enterprises, seed, console)


def _shortfall(count: int, seed: int) -> str | None:
    """Why `count` enterprises cannot carry the demo (None: they can). The stories need three
    with an active grade; the refused messages, one only registered and one award."""
    ents = build_enterprises(count, seed, dt.date.today())
    registered = any(e.steps[-1].type == "enterprise.registered" for e in ents)
    awarded = any(s.type == "grade.awarded" for e in ents for s in e.steps)
    if dramatic_events(ents, dt.date.today()) and registered and awarded:
        return None
    return (
        f"{count} enterprises (seed {seed}) are too few for the demo's stories, which need"
        " three with an active grade and one only registered; give --enterprises 45 or more"
    )


def _run(data_dir: Path, count: int, seed: int, console: Console) -> int:
    started = time.perf_counter()
    settings = Settings(
        data_dir=data_dir,
        database_url=None,
        log_origin="demo.gateway.fj/log",
        delivery=DeliverySettings(allowed_hosts=["127.0.0.1"], idle_sleep_seconds=0.05),
    )
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
    today = dt.date.today()
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
    _summary(settings, tally, verified, ledger, console)
    console.print(delivery_table(delivery_rows))
    console.print(feedback_table(feedback))
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


def _summary(
    settings: Settings, tally: Tally, verified: int, ledger_total: int, console: Console
) -> None:
    from gateway.db import Database
    from gateway.ledger.service import counts_by_region_and_grade

    db = Database(settings.effective_database_url, pool_size=1)
    try:
        with db.reader() as session:
            rows = counts_by_region_and_grade(session)
    finally:
        db.dispose()
    per_city: dict[str, Counter[str]] = {}
    for region, status, grade, n in rows:
        counts = per_city.setdefault(region[:4] + "00", Counter())
        counts[status] += n
        counts["total"] += n
        if grade != "-":
            counts[f"level {grade}"] += n
    table = Table(title=f"Ledgers by city ({ledger_total} enterprises in the basic ledger)")
    columns = {
        "新增": "新增",
        "达标": "达标",
        "未达标": "未达标",
        "level 1": "一级",
        "level 2": "二级",
        "level 3": "三级",
        "level small_micro": "小微",
    }
    table.add_column("city")
    table.add_column("total", justify="right")
    for label in columns.values():
        table.add_column(label, justify="right")
    for city, name in CITIES.items():
        counts = per_city.get(city, Counter())
        table.add_row(name, str(counts["total"]), *(str(counts[c]) for c in columns))
    console.print(table)
    refused = Table(title="Refused on purpose (RFC 9457 problem codes); nothing of them stored")
    refused.add_column("what was wrong")
    refused.add_column("code")
    for label, code in tally.refusals:
        refused.add_row(label, code)
    console.print(refused)
    console.print(
        f"receipts verified against /.well-known/jwks.json: {verified}/{len(tally.receipts)}"
    )


@dataclass
class Plan:
    receiver: DemoReceiver
    agency_id: str
    types: list[str]
    view: str
    signing: list[str]
    fields: dict[str, list[str]] = field(default_factory=dict)  # field views by type


def make_receivers(signers: Signers) -> list[Plan]:
    grades = [
        "grade.awarded",
        "grade.renewed",
        "grade.downgraded",
        "grade.revoked",
        "grade.expired",
    ]
    return [
        Plan(
            DemoReceiver("insurer (fj-picc)", signers.keys["fj-picc"], fail_first=3),
            "fj-picc",
            [*grades, "accident.reported", "listing.added"],
            "full",
            ["v1a"],
        ),
        Plan(  # the bank sees a field view: the decision, not its reasons or parties
            DemoReceiver("bank (fj-cib)", signers.keys["fj-cib"]),
            "fj-cib",
            ["grade.revoked", "grade.downgraded", "listing.added"],
            "fields",
            ["v1a", "v1"],
            {
                "grade.revoked": ["reason_code", "decided_on", "reapply_after"],
                "grade.downgraded": ["from_level", "to_level", "decided_on"],
                "listing.added": ["list_type", "term_start", "term_end"],
            },
        ),
        Plan(  # connectors: public records, and the credit-system sync with inspection caps
            DemoReceiver("credit disclosure (fj-scjg)", signers.keys["fj-scjg"]),
            "fj-scjg",
            ["grade.awarded", "grade.revoked", "listing.added"],
            "credit_disclosure",
            ["v1a"],
        ),
        Plan(
            DemoReceiver("market regulator (fj-scjg)", signers.keys["fj-scjg"]),
            "fj-scjg",
            ["enterprise.registered", *grades],
            "market_regulator",
            ["v1a"],
        ),
    ]


def subscribe_receivers(
    client: httpx.Client, stack: ExitStack, plans: list[Plan], console: Console
) -> None:
    for plan in plans:
        for message_type in plan.types:  # the operator grants the rights first (admin API)
            rights = f"/v1/agencies/{plan.agency_id}/rights/subscribe/{message_type}"
            client.put(rights, json={"fields": plan.fields.get(message_type)}).raise_for_status()
        url = (
            stack.enter_context(running_app(plan.receiver.app(), plan.receiver.label)) + "/webhook"
        )
        body = {
            "agency_id": plan.agency_id,
            "url": url,
            "types": plan.types,
            "view": plan.view,
            "signing": plan.signing,
            "retry_schedule": [0, 1, 2, 5, 10, 30],
        }
        response = client.post("/v1/subscriptions", json=body)
        response.raise_for_status()
        sub = response.json()
        plan.receiver.webhook_public_key = base64.b64decode(
            sub["v1a_public_key"].removeprefix("whpk_")
        )
        plan.receiver.hmac_secret = sub.get("hmac_secret")
        plan.receiver.counts["subscription " + sub["id"][:8]] = 0
        console.print(f"subscribed {plan.receiver.label} at {url} ({plan.view} view)")


def wait_for_deliveries(
    client: httpx.Client, plans: list[Plan], console: Console, tally: Tally
) -> list[dict[str, Any]]:
    """Until every delivery is delivered (or 60 s pass), with a progress bar."""

    def counts() -> list[dict[str, Any]]:
        return list(client.get("/v1/subscriptions").json()["items"])

    total = sum(n for s in counts() for k, n in s["deliveries"].items() if k != "consumer_receipts")
    deadline = time.monotonic() + 60
    with progress_bar(console) as progress:
        task = progress.add_task("delivering to the agencies' systems", total=total)
        while True:
            items = counts()
            done = sum(s["deliveries"].get("delivered", 0) for s in items)
            progress.update(task, completed=done)
            if done >= total or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    if done < total:
        tally.unexpected.append(f"only {done} of {total} deliveries were delivered in 60 s")
    rows = []
    for plan, item in zip(plans, items, strict=True):
        bad = plan.receiver.counts["bad signature"]
        if bad:
            tally.unexpected.append(f"{plan.receiver.label}: {bad} deliveries failed verification")
        if item["deliveries"].get("consumer_receipts", 0) != plan.receiver.counts["received"]:
            tally.unexpected.append(f"{plan.receiver.label}: a consumer receipt is missing")
        rows.append(
            {
                "receiver": plan.receiver.label,
                "view": f"{plan.view} ({'+'.join(plan.signing)})",
                "delivered": item["deliveries"].get("delivered", 0),
                "verified": plan.receiver.counts["received"],
                "retried": plan.receiver.counts["answered 503"],
                "receipts": item["deliveries"].get("consumer_receipts", 0),
            }
        )
    return rows


def feedback_table(feedback: dict[str, Any]) -> Table:
    """发起—响应—反馈: who acted on the revocation, which measure, and who is still due."""
    decision = feedback["decision"]
    table = Table(
        "agency",
        "delivered",
        "measures applied",
        "state",
        title=f"Feedback on the revocation of {decision['subject']} "
        f"(deadline {feedback['deadline']}, 5 working days)",
    )
    for agency in feedback["agencies"]:
        measures = ", ".join(m["measure_code"] for m in agency["measures"]) or "-"
        delivered = "yes" if agency["delivered_at"] else "no"
        table.add_row(agency["agency_id"], delivered, measures, agency["state"])
    return table


def delivery_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(
        title="Push deliveries: verified = signatures checked by the receiver; retried = 503s "
        "answered before success; receipts = the receiver's signed receipts kept"
    )
    for column in rows[0] if rows else []:
        table.add_column(column, justify="left" if column in ("receiver", "view") else "right")
    for row in rows:
        table.add_row(*(str(v) for v in row.values()))
    return table
