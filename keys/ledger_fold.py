"""The three ledgers as the log alone gives them: log entries replayed as accepted, then read on a
day; the candidate lists of draws (issue 21 §4) and their digest. docs/draws.md §3 specifies it.
"""

from __future__ import annotations

import binascii
import datetime as dt
import hashlib
import json
import json.scanner
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from keys.draws import Stratum

__all__ = [
    "LEDGERS",
    "Ledger",
    "LedgerFacts",
    "LedgerReplay",
    "LedgerReplayError",
    "StratumSpec",
    "Where",
    "candidates",
    "candidates_digest",
    "entry_payload",
    "fold_ledger",
    "split_strata",
]

Ledger = Literal["basic", "required", "achieved"]
LEDGERS: tuple[Ledger, ...] = ("basic", "required", "achieved")
UPDATABLE = ("region_code", "industry_section", "scheme", "required")  # others are not facts here


class LedgerReplayError(ValueError):
    """A log entry that is not a compact JWS of a JSON object, or a ledger entry missing a field."""

    code: ClassVar[str] = "ledger_replay_error"


@dataclass(frozen=True, slots=True)
class LedgerFacts:
    uscc: str
    region_code: str
    industry_section: str
    scheme: str  # the grade's while it is valid on the day, else the registered one
    required: bool
    closed: bool  # closed on or before the day
    grade_level: str | None  # only while the grade is active and valid on the day
    achieved: bool  # holds a grade valid on the day (达标)


class _Enterprise:
    __slots__ = (
        "closed_on",
        "grade",
        "grade_scheme",
        "industry_section",
        "level",
        "region_code",
        "required",
        "scheme",
        "valid_from",
        "valid_to",
    )

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.grade: str | None = None  # "active", "revoked", "expired"
        self.level: str | None = None
        self.grade_scheme = ""
        self.valid_from = self.valid_to = dt.date.min
        self.closed_on: dt.date | None = None
        self.register(data)

    def register(self, data: Mapping[str, Any]) -> None:
        self.region_code = str(data["region_code"])
        self.industry_section = str(data["industry_section"])
        self.scheme = str(data["scheme"])
        self.required = bool(data["required"])

    def facts(self, uscc: str, on: dt.date) -> LedgerFacts:
        valid = self.grade == "active" and self.valid_from <= on <= self.valid_to
        return LedgerFacts(  # positional: half the cost of keywords, 10^5 times per draw
            uscc,
            self.region_code,
            self.industry_section,
            self.grade_scheme if valid else self.scheme,
            self.required,
            self.closed_on is not None and self.closed_on <= on,
            self.level if valid else None,
            valid,
        )


def _update(ent: _Enterprise, data: Mapping[str, Any]) -> None:
    changes = data["changes"]
    for name in UPDATABLE:
        if name in changes:
            setattr(ent, name, bool(changes[name]) if name == "required" else str(changes[name]))


def _close(ent: _Enterprise, data: Mapping[str, Any]) -> None:
    ent.closed_on = dt.date.fromisoformat(data["closed_on"])
    if ent.grade == "active":  # the grade ends with the enterprise (gateway.ledger.apply)
        ent.grade, ent.level = "expired", None


def _award(ent: _Enterprise, data: Mapping[str, Any]) -> None:
    ent.grade, ent.level, ent.grade_scheme = "active", str(data["level"]), str(data["scheme"])
    # valid_from here is the holding's start (the gateway's grade_held_since): the award's
    ent.valid_from = dt.date.fromisoformat(data["valid_from"])
    ent.valid_to = dt.date.fromisoformat(data["valid_to"])


def _renew(ent: _Enterprise, data: Mapping[str, Any]) -> None:
    """A renewal extends the validity and keeps the holding's start: a renewal announced
    before its new term begins never leaves a gap in the grade held."""
    ent.valid_to = dt.date.fromisoformat(data["valid_to"])


def _downgrade(ent: _Enterprise, data: Mapping[str, Any]) -> None:
    ent.level = str(data["to_level"])


def _revoke(ent: _Enterprise, data: Mapping[str, Any]) -> None:
    ent.grade, ent.level = "revoked", None


def _expire(ent: _Enterprise, data: Mapping[str, Any]) -> None:
    ent.grade = "expired"


_CHANGES: dict[str, Callable[[_Enterprise, Mapping[str, Any]], None]] = {
    "enterprise.updated": _update,
    "enterprise.closed": _close,
    "grade.awarded": _award,
    "grade.renewed": _renew,
    "grade.downgraded": _downgrade,
    "grade.revoked": _revoke,
    "grade.expired": _expire,
}
REPLAYED = frozenset({"enterprise.registered", *_CHANGES})


_TO_BASE64 = bytes.maketrans(b"-_", b"+/")
_SEXTET = {
    c: i for i, c in enumerate(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
}
_UNUSED_BITS = (0, 0, 0b1111, 0b11)  # by length mod 4: the last character's bits past the data
_PADDING = (b"", b"", b"==", b"=")


def _base64url(segment: bytes) -> bytes:
    """keys.base64url.b64url_decode (canonical unpadded base64url only) in about 60 % of the time:
    the fold decodes every entry of the log, and this was most of its cost. Once "+", "/" and
    "=" are refused, strict a2b_base64 over the translated text refuses everything else."""
    rest = len(segment) % 4
    if rest == 1 or b"+" in segment or b"/" in segment or b"=" in segment:
        raise ValueError("the payload is not unpadded base64url")
    if segment and _SEXTET.get(segment[-1], 0) & _UNUSED_BITS[rest]:
        raise ValueError("the payload is not canonical base64url (non-zero trailing bits)")
    try:
        return binascii.a2b_base64(segment.translate(_TO_BASE64) + _PADDING[rest], strict_mode=True)
    except binascii.Error as exc:
        raise ValueError(f"the payload is not base64url: {exc}") from None


# typeshed types make_scanner's argument as the scanner class itself; it takes a JSONDecoder.
_SCAN: Callable[[str, int], tuple[Any, int]] = json.scanner.make_scanner(
    json.JSONDecoder()  # type: ignore[arg-type]
)


def _json(text: str) -> Any:
    """json.loads(text), without its three Python layers when the text is one bare value (as
    every payload the gateway accepts is): a quarter of the fold's JSON time."""
    try:
        value, end = _SCAN(text, 0)
    except StopIteration:  # leading whitespace, or not JSON: json.loads decides
        return json.loads(text)
    return value if end == len(text) else json.loads(text)


def entry_payload(leaf: bytes, index: int) -> dict[str, Any]:
    """A log entry's JWS payload, an object with a string "type"; signatures are not checked
    (the gateway checked them on acceptance)."""
    parts = leaf.split(b".")
    try:
        if len(parts) != 3:
            raise ValueError("not a compact JWS")
        payload = _json(_base64url(parts[1]).decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeError too
        raise LedgerReplayError(f"log entry {index}: {exc}") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("type"), str):
        raise LedgerReplayError(f"log entry {index}: the payload is not an object with a type")
    return payload


class LedgerReplay:
    """Replays log entries in log order, as accepted: no rule is checked again.

    Entries of other types (other messages, gateway entries) are skipped; a change to an
    enterprise never registered in the entries replayed so far is skipped too (the gateway
    refuses it, so only a log that is not the gateway's holds one).
    """

    def __init__(self) -> None:
        self._enterprises: dict[str, _Enterprise] = {}
        self.size = 0  # entries replayed

    def apply(self, leaf: bytes) -> None:
        self.apply_payload(entry_payload(leaf, self.size))

    def apply_payload(self, envelope: Mapping[str, Any]) -> None:
        """`apply` for a payload decoded already (`entry_payload` of the next entry)."""
        index, self.size = self.size, self.size + 1
        if envelope["type"] not in REPLAYED:
            return
        try:
            subject, data = envelope["subject"], envelope["data"]
            if not isinstance(subject, str):
                raise TypeError("subject")
            if envelope["type"] == "enterprise.registered":
                known = self._enterprises.get(subject)
                if known is None:
                    self._enterprises[subject] = _Enterprise(data)
                else:
                    known.register(data)
            elif subject in self._enterprises:
                _CHANGES[envelope["type"]](self._enterprises[subject], data)
        except (KeyError, TypeError, ValueError) as exc:
            raise LedgerReplayError(
                f"log entry {index} ({envelope['type']}): missing or malformed {exc}"
            ) from None

    def facts(self, on: dt.date) -> dict[str, LedgerFacts]:
        return {code: ent.facts(code, on) for code, ent in self._enterprises.items()}


def fold_ledger(leaves: Iterable[bytes], on: dt.date) -> dict[str, LedgerFacts]:
    """Every enterprise registered in `leaves` (log order), its facts read on the day `on`."""
    replay = LedgerReplay()
    for leaf in leaves:
        replay.apply(leaf)
    return replay.facts(on)


@dataclass(frozen=True)
class Where:
    """A conjunction; None (or "" for the prefix) leaves that fact unconstrained. A level
    constraint matches only enterprises holding a grade valid on the day."""

    region_prefix: str = ""
    schemes: frozenset[str] | None = None
    industries: frozenset[str] | None = None
    levels: frozenset[str] | None = None

    def matches(self, facts: LedgerFacts) -> bool:
        return (
            facts.region_code.startswith(self.region_prefix)
            and (self.schemes is None or facts.scheme in self.schemes)
            and (self.industries is None or facts.industry_section in self.industries)
            and (self.levels is None or facts.grade_level in self.levels)
        )

    def filter(self, facts: Mapping[str, LedgerFacts], codes: Iterable[str]) -> list[str]:
        """The `codes` whose facts match, in the order given: `matches` inlined, since a draw
        runs it over every candidate once per stratum."""
        prefix, schemes, industries, levels = (
            self.region_prefix,
            self.schemes,
            self.industries,
            self.levels,
        )
        return [
            code
            for code in codes
            if (f := facts[code]).region_code.startswith(prefix)
            and (schemes is None or f.scheme in schemes)
            and (industries is None or f.industry_section in industries)
            and (levels is None or f.grade_level in levels)
        ]


def _in_ledger(facts: LedgerFacts, ledger: Ledger) -> bool:
    if ledger == "basic":
        return True
    if ledger == "required":
        return facts.required
    if ledger == "achieved":
        return facts.achieved
    raise ValueError(f"unknown ledger {ledger!r}; known: {', '.join(LEDGERS)}")


def candidates(
    facts: Mapping[str, LedgerFacts],
    *,
    region_prefix: str,
    ledger: Ledger,
    schemes: Iterable[str] | None = None,
    industries: Iterable[str] | None = None,
    levels: Iterable[str] | None = None,
) -> list[str]:
    """Codes in `ledger` matching the filters, never a closed enterprise; sorted canonically."""
    where = Where(
        region_prefix,
        None if schemes is None else frozenset(schemes),
        None if industries is None else frozenset(industries),
        None if levels is None else frozenset(levels),
    )
    if ledger not in LEDGERS:
        raise ValueError(f"unknown ledger {ledger!r}; known: {', '.join(LEDGERS)}")
    return sorted(
        code
        for code, f in facts.items()
        if not f.closed and _in_ledger(f, ledger) and where.matches(f)
    )


def candidates_digest(codes: Iterable[str]) -> str:
    """Hex SHA-256 of each code followed by "\\n" (UTF-8); of no codes, SHA-256 of nothing."""
    digest = hashlib.sha256()
    for code in codes:
        digest.update(code.encode("utf-8") + b"\n")
    return digest.hexdigest()


@dataclass(frozen=True)
class StratumSpec:
    name: str
    where: Where
    sample: int


def split_strata(
    facts: Mapping[str, LedgerFacts], codes: Sequence[str], specs: Sequence[StratumSpec]
) -> list[Stratum]:
    """The candidates `codes` split by each stratum's `where`, strata in the given order.

    A candidate matching no stratum is drawn in none; one matching two is a ValueError.
    """
    members = [spec.where.filter(facts, codes) for spec in specs]
    if sum(map(len, members)) > len(set().union(*members)):
        seen: dict[str, str] = {}
        for spec, codes_in in zip(specs, members, strict=True):
            for code in codes_in:
                if code in seen:
                    raise ValueError(f"enterprise {code} is in strata {seen[code]} and {spec.name}")
                seen[code] = spec.name
    return [
        Stratum(spec.name, tuple(m), spec.sample) for spec, m in zip(specs, members, strict=True)
    ]
