"""Every contract and its versions: message types and agency views, each major with its strict
producer schema, the tolerant consumer schema derived from it, its released revisions, and
whether it is live.

Where versions come from (`load_registry`):

- a message type's producer schema is `schemas/v<major>/<type>.json`, the very file publishing
  validates with; it is live while schemas/served.json lists that major of the type;
- an agency view's producer schema is `schemas/views/v<major>/<name>.json` (or, in code,
  `ContractRegistry.register_view`); it is live while the file is there;
- `schemas/released.json` keeps every released revision of each (name, major), oldest first:
  what consumers may have been built against and what the log's older documents follow. A
  version with released revisions but no schema file any more is listed as retired (not live).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any, Literal

import jsonschema_rs

from contracts.consumers import consumer_schema
from contracts.errors import ContractError
from contracts.registry import MESSAGE_TYPES, SERVED_MAJORS

__all__ = [
    "Contract",
    "ContractRegistry",
    "ContractVersion",
    "Kind",
    "envelope_schema",
    "load_registry",
]

Kind = Literal["message", "view"]
DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"
_VIEW_NAME = re.compile(r"^[a-z][a-z0-9_]*(?:[.-][a-z0-9_]+)*$")
_MAJOR_DIR = re.compile(r"^v([1-9][0-9]*)$")
_ENVELOPE = "envelope"  # the envelope versions itself apart (registry.py); it is no contract here


@dataclass(frozen=True)
class ContractVersion:
    """One major of one contract. Treat `producer` as read-only; `consumer` is a fresh copy."""

    name: str
    kind: Kind
    major: int
    producer: dict[str, Any] = field(repr=False)
    live: bool = True
    released: tuple[dict[str, Any], ...] = field(default=(), repr=False)

    @property
    def consumer(self) -> dict[str, Any]:
        return consumer_schema(self.producer)

    @property
    def revision(self) -> str | None:
        """`<major>.<n>`: the producer is the n-th released revision (from 0); None when the
        live schema differs from every released revision (an unreleased change)."""
        for n in reversed(range(len(self.released))):
            if self.released[n] == self.producer:
                return f"{self.major}.{n}"
        return None

    def summary(self) -> dict[str, Any]:
        return {
            "major": self.major,
            "live": self.live,
            "revision": self.revision,
            "released_revisions": len(self.released),
            "producer_id": self.producer.get("$id"),
            "consumer_id": self.consumer.get("$id"),
        }


@dataclass(frozen=True)
class Contract:
    name: str
    kind: Kind
    versions: tuple[ContractVersion, ...]

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "versions": [v.summary() for v in self.versions],
        }


class ContractRegistry:
    """Contract versions by (name, major); one name is either a message type or a view."""

    def __init__(self, versions: Iterable[ContractVersion] = ()) -> None:
        self._versions: dict[tuple[str, int], ContractVersion] = {}
        for version in versions:
            self.add(version)

    def add(self, version: ContractVersion) -> ContractVersion:
        if (version.name, version.major) in self._versions:
            raise ValueError(f"{version.name} v{version.major} is registered already")
        kinds = {v.kind for v in self._versions.values() if v.name == version.name}
        if kinds - {version.kind}:
            raise ValueError(f"{version.name} is a {kinds.pop()} contract, not a {version.kind}")
        self._versions[(version.name, version.major)] = version
        return version

    def register_view(
        self,
        name: str,
        major: int,
        producer: Mapping[str, Any],
        *,
        live: bool = True,
        released: Sequence[Mapping[str, Any]] = (),
    ) -> ContractVersion:
        """Register an agency view contract: `producer` is the strict schema of what the
        gateway sends that view's agencies (unknown fields refused); the consumer schema is
        derived. Raises ValueError for a bad name, major or schema."""
        _check_view(name, major, producer)
        return self.add(
            ContractVersion(
                name=name,
                kind="view",
                major=major,
                producer=copy.deepcopy(dict(producer)),
                live=live,
                released=tuple(copy.deepcopy(dict(r)) for r in released),
            )
        )

    def get(self, name: str, major: int) -> ContractVersion:
        version = self._versions.get((name, major))
        if version is None:
            known = sorted(m for n, m in self._versions if n == name)
            detail = f"known majors: {', '.join(map(str, known))}" if known else "no such contract"
            raise ContractError("unknown_contract", f"contract {name} v{major}: {detail}")
        return version

    def versions(self, *, live_only: bool = False) -> list[ContractVersion]:
        """In a stable order: message types as MESSAGE_TYPES lists them, then views by name."""
        chosen = [v for v in self._versions.values() if v.live or not live_only]
        return sorted(chosen, key=_order)

    def contracts(self) -> list[Contract]:
        grouped: dict[str, list[ContractVersion]] = {}
        for version in self.versions():
            grouped.setdefault(version.name, []).append(version)
        return [Contract(name, vs[0].kind, tuple(vs)) for name, vs in grouped.items()]


def load_registry() -> ContractRegistry:
    """The registry as the schema files define it (a new object each call; files read once)."""
    history = _released()
    registry = ContractRegistry()
    for major, name, schema in _schema_files(""):
        if name == _ENVELOPE:
            continue
        registry.add(
            ContractVersion(
                name=name,
                kind="message",
                major=major,
                producer=schema,
                live=major in SERVED_MAJORS.get(name, ()),
                released=_revisions(history, "message", name, major),
            )
        )
    for major, name, schema in _schema_files("views"):
        registry.register_view(
            name, major, schema, released=_revisions(history, "view", name, major)
        )
    present = {(v.name, v.major) for v in registry.versions()}
    for kind, name, major, revisions in _history_entries(history):
        if (name, major) not in present:  # retired: only its history remains
            registry.add(ContractVersion(name, kind, major, revisions[-1], False, tuple(revisions)))
    return registry


def envelope_schema(major: int = 1) -> dict[str, Any]:
    """The envelope around every published message's `data` (schemas/v<major>/envelope.json)."""
    for found, name, schema in _schema_files(""):
        if (found, name) == (major, _ENVELOPE):
            schema["properties"]["type"]["enum"] = list(MESSAGE_TYPES)  # as registry serves it
            return schema
    raise ContractError("unknown_contract", f"no envelope schema of major {major}")


def _check_view(name: str, major: int, producer: Mapping[str, Any]) -> None:
    if not _VIEW_NAME.fullmatch(name) or len(name) > 64:
        raise ValueError(f"view name {name!r}: lower case words joined by '.', '-' or '_'")
    if name in MESSAGE_TYPES or name == _ENVELOPE:
        raise ValueError(f"view name {name!r} is a message type's name")
    if isinstance(major, bool) or not isinstance(major, int) or major < 1:
        raise ValueError(f"view {name}: the major must be an integer from 1, not {major!r}")
    if producer.get("$schema", DRAFT_2020_12) != DRAFT_2020_12:
        raise ValueError(f"view {name}: schemas are JSON Schema 2020-12 ({DRAFT_2020_12})")
    if producer.get("type") != "object":
        raise ValueError(f"view {name}: a view is a JSON object (type: object)")
    if producer.get("additionalProperties") is not False and (
        producer.get("unevaluatedProperties") is not False
    ):
        raise ValueError(f"view {name}: a producer schema refuses unknown fields")
    try:
        jsonschema_rs.meta.validate(dict(producer) | {"$schema": DRAFT_2020_12})
        jsonschema_rs.Draft202012Validator(
            dict(producer), validate_formats=True, ignore_unknown_formats=False, offline=True
        )
    except (ValueError, jsonschema_rs.ReferencingError) as exc:
        raise ValueError(f"view {name}: not a usable JSON Schema: {exc}") from exc


def _order(version: ContractVersion) -> tuple[int, int, str, int]:
    if version.kind == "message":
        known = version.name in MESSAGE_TYPES
        rank = MESSAGE_TYPES.index(version.name) if known else len(MESSAGE_TYPES)
        return (0, rank, version.name, version.major)
    return (1, 0, version.name, version.major)


def _schema_files(folder: str) -> Iterator[tuple[int, str, dict[str, Any]]]:
    """(major, name, schema) of `schemas/<folder>/v<major>/<name>.json`, parsed afresh."""
    for major, name, text in _read_dir(folder):
        yield major, name, json.loads(text)


@cache
def _read_dir(folder: str) -> tuple[tuple[int, str, str], ...]:
    base = resources.files("contracts") / "schemas"
    if folder:
        base = base / folder
    if not base.is_dir():
        return ()
    found = []
    for major_dir in base.iterdir():
        match = _MAJOR_DIR.fullmatch(major_dir.name)
        if match is None or not major_dir.is_dir():
            continue
        for item in major_dir.iterdir():
            if item.name.endswith(".json"):
                name = item.name.removesuffix(".json")
                found.append((int(match.group(1)), name, item.read_text(encoding="utf-8")))
    return tuple(sorted(found))


@cache
def _released_text() -> str:
    source = resources.files("contracts") / "schemas" / "released.json"
    return source.read_text(encoding="utf-8") if source.is_file() else "{}"


def _released() -> dict[str, Any]:
    history: dict[str, Any] = json.loads(_released_text())
    return history


def _revisions(
    history: Mapping[str, Any], kind: Kind, name: str, major: int
) -> tuple[dict[str, Any], ...]:
    section = history.get("messages" if kind == "message" else "views", {})
    return tuple(section.get(name, {}).get(str(major), ()))


def _history_entries(
    history: Mapping[str, Any],
) -> Iterator[tuple[Kind, str, int, list[dict[str, Any]]]]:
    kinds: tuple[tuple[Kind, str], ...] = (("message", "messages"), ("view", "views"))
    for kind, section in kinds:
        for name, majors in history.get(section, {}).items():
            for major, revisions in majors.items():
                if revisions:
                    yield kind, name, int(major), revisions
