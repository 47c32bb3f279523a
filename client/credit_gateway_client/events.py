"""The CloudEvents 1.0 bodies of push deliveries and feed items (protocol.md §4.2)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from credit_gateway_client.errors import UnexpectedResponse
from credit_gateway_client.merkle import leaf_hash

__all__ = ["Event"]


@dataclass(frozen=True)
class Event:
    """One delivered message. `index` is the log index (CloudEvents `sequence`, a decimal
    string on the wire); `subseq` the subscription's own gapless count; `data` the view
    (the message's data, a notice, or a connector's document such as a premium adjustment);
    `jws` the publisher's compact JWS, in the `full` view only; `raw` the whole event."""

    id: str
    type: str
    subject: str
    source: str
    time: str
    index: int
    subseq: int | None
    leaf_hash: str
    data: dict[str, Any]
    jws: str | None
    dataschema: str | None
    raw: dict[str, Any]

    @classmethod
    def from_json(cls, event: Mapping[str, Any]) -> Event:
        try:
            return cls(
                id=str(event["id"]),
                type=str(event["type"]),
                subject=str(event["subject"]),
                source=str(event["source"]),
                time=str(event["time"]),
                index=int(event["sequence"]),
                subseq=int(event["subseq"]) if event.get("subseq") is not None else None,
                leaf_hash=str(event["leafhash"]),
                data=dict(event.get("data") or {}),
                jws=str(event["jws"]) if event.get("jws") is not None else None,
                dataschema=str(event["dataschema"]) if event.get("dataschema") else None,
                raw=dict(event),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise UnexpectedResponse(f"not a gateway CloudEvent: {exc!r}") from exc

    def jws_matches_leaf_hash(self) -> bool:
        """In the `full` view: the publisher's JWS is the very leaf the log holds."""
        return self.jws is not None and leaf_hash(self.jws.encode()).hex() == self.leaf_hash
