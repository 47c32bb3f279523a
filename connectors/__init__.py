"""Per-agency connectors: each consumer kind's view of a message and its view contract.

A subscription whose `view` names a connector receives, for each matching message, the
connector's document instead of the message (data minimisation by construction: only the
fields of the connector's contract leave the gateway, and never the publisher's JWS)."""

from __future__ import annotations

from connectors import (
    bank_credit,
    credit_disclosure,
    market_regulator,
    premiums,
    revocation_notice,
)
from connectors.base import Connector, ViewContractError
from connectors.facts import Decision, DocumentFacts

CONNECTORS: dict[str, Connector] = {
    c.name: c
    for c in (
        credit_disclosure.CONNECTOR,
        bank_credit.CONNECTOR,
        premiums.LIABILITY,
        premiums.WORK_INJURY,
        market_regulator.CONNECTOR,
        revocation_notice.CONNECTOR,
    )
}

__all__ = ["CONNECTORS", "Connector", "Decision", "DocumentFacts", "ViewContractError"]
