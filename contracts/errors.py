"""The exceptions `contracts` raises; every one carries a sentence a person can act on.

Exception
 ├── ContractError            a message does not meet its contract (registry)
 └── RuleError                a message meets its contract but breaks a domain rule
      ├── TransitionError         grade state machine (grades, domain.md §3)
      ├── ListingRuleError        red/black/focus list terms (listings, domain.md §5)
      ├── RectificationRuleError  rectification orders (rectifications)
      └── CauseError              a revocation's cause (revocations)
"""

from __future__ import annotations

from typing import Literal

ContractErrorCode = Literal[
    "unknown_type", "unknown_contract", "schema_violation", "malformed_json"
]


class ContractError(Exception):
    """A message refused before any state is read; `code` is stable for clients (protocol.md §1)."""

    def __init__(self, code: ContractErrorCode, message: str, pointer: str | None = None) -> None:
        super().__init__(message)
        self.code: ContractErrorCode = code
        self.message = message
        self.pointer = pointer  # RFC 6901 pointer into the envelope, e.g. "/data/level"


class RuleError(Exception):
    """A domain rule refused a well-formed message."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class TransitionError(RuleError):
    """The grade state machine refused an event; the message names the state and the event."""


class ListingRuleError(RuleError):
    """A list entry or removal breaks the list's term rules."""


class RectificationRuleError(RuleError):
    """A rectification message contradicts its order; `pointer` names the field, if one."""

    def __init__(self, message: str, pointer: str | None = None) -> None:
        super().__init__(message)
        self.pointer = pointer
