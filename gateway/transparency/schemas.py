"""The log API's answers (protocol.md §3): proofs, entries, bundles and the witnesses' state.
Hashes are hex in JSON; base64 only inside the C2SP text formats (`tlog_proof`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

View = Literal["raw", "fields", "hashes"]
VIEW = (
    "what the caller sees of the message: `raw` the JWS (a `read` right, or its own), "
    "`fields` its subscribe view's data, `hashes` nothing but the leaf hash"
)


class WitnessState(BaseModel):
    name: str
    url: str
    cosigned_size: int
    behind_by: int
    cosigned_at: str | None = Field(description="ISO 8601; null: never cosigned")
    age_seconds: float | None
    last_error: str | None


class WitnessReport(BaseModel):
    checkpoint_size: int
    quorum: int
    cosignatures_on_latest: int
    latest_meets_quorum: bool
    witnesses: list[WitnessState]


class InclusionProof(BaseModel):
    # an answer of the gateway's (docs/protocol.md §3), its path cut to two hashes
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "index": 1000,
                    "tree_size": 1010,
                    "leaf_hash": "328f91d970bba2df2a4cd429af9f8dd244441ccfc722e08d9ec7357364082463",
                    "inclusion_path": [
                        "7d92aabee7b27d24d78811f1add01b3470001e5916d85e22bb6a99bb6d1cac78",
                        "8da5f8e0a37f355f821ba98bc186ac22ec5d0199c2c5919d6233263050dbc981",
                    ],
                }
            ]
        }
    )

    index: int
    tree_size: int
    leaf_hash: str = Field(description="hex SHA-256 of 0x00 || the leaf (RFC 6962)")
    inclusion_path: list[str] = Field(description="hex hashes, the leaf's sibling first")


class ConsistencyProof(BaseModel):
    first: int
    second: int
    consistency: list[str] = Field(description="hex hashes (RFC 6962 §2.1.2)")


class MessageFacts(BaseModel):
    """What a reader sees of a message beside its index and leaf hash (absent keys: not
    shown to this reader)."""

    view: View = Field(description=VIEW)
    type: str | None = None
    issuer: str | None = None
    subject: str | None = None
    issued_at: str | None = None
    accepted_at: str | None = None
    receipt: str | None = None
    jws: str | None = Field(default=None, description="the exact JWS, for `raw` only")
    data: dict[str, Any] | None = Field(default=None, description="for `fields` only")


class LogEntry(MessageFacts):
    index: int
    kind: str = Field(description="`message`, or the gateway's own entry kind")
    message_id: str
    leaf_hash: str


class LogEntries(BaseModel):
    entries: list[LogEntry]


class Bundle(BaseModel):
    """The evidence bundle: the JWS and receipt for whom may read the message whole, else
    its id, index, leaf hash and what the caller's subscribe view shows (absent keys: not
    shown to this caller)."""

    jws: str | None = None
    receipt: str | None = None
    message_id: str | None = None
    index: int | None = None
    leaf_hash: str | None = None
    tlog_proof: str = Field(description="c2sp.org/tlog-proof text")
    view: View | None = Field(default=None, description=VIEW)
    type: str | None = None
    issuer: str | None = None
    subject: str | None = None
    issued_at: str | None = None
    accepted_at: str | None = None
    data: dict[str, Any] | None = None
