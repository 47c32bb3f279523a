"""The demo's receiving agencies: their subscriptions (push, each with its view and signing)
and the wait until every delivery reached them, checked against what they verified."""

from __future__ import annotations

import base64
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
from rich.console import Console

from gateway.demo.loopback import running_app
from gateway.demo.receivers import DemoReceiver
from gateway.demo.report import Tally, progress_bar

if TYPE_CHECKING:
    from gateway.demo.run import Signers


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
