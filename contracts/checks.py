"""The registry-wide compatibility check behind `gateway contracts check` and the tests: every
live producer schema against its own consumer schema and against each released revision.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from contracts.compat import check_compatible, judge_change
from contracts.versions import ContractRegistry, ContractVersion

__all__ = ["VersionBreak", "VersionReport", "check_registry", "check_version"]


@dataclass(frozen=True)
class VersionBreak:
    against: str  # "consumer": the version's own consumer schema; "1.0": a released revision
    pointer: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"against": self.against, "pointer": self.pointer, "reason": self.reason}


@dataclass(frozen=True)
class VersionReport:
    name: str
    kind: str
    major: int
    revision: str | None  # None: the live schema is not a released revision yet
    compared: int  # released revisions the live schema was judged against
    breaks: tuple[VersionBreak, ...]

    @property
    def compatible(self) -> bool:
        return not self.breaks

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "major": self.major,
            "revision": self.revision,
            "compared_revisions": self.compared,
            "compatible": self.compatible,
            "breaks": [b.as_dict() for b in self.breaks],
        }


def check_registry(registry: ContractRegistry) -> list[VersionReport]:
    """One report per live version, in the registry's order."""
    return [check_version(version) for version in registry.versions(live_only=True)]


def check_version(version: ContractVersion) -> VersionReport:
    """The producer must admit only what its own consumer schema accepts (a proof that the
    schema stays inside what the checker understands), and every change since each released
    revision of the major must be compatible (judge_change)."""
    found = [
        VersionBreak("consumer", b.pointer, b.reason)
        for b in check_compatible(version.producer, version.consumer)
    ]
    for n, old in enumerate(version.released):
        label = f"{version.major}.{n}"
        found += [
            VersionBreak(label, b.pointer, b.reason) for b in judge_change(old, version.producer)
        ]
    return VersionReport(
        name=version.name,
        kind=version.kind,
        major=version.major,
        revision=version.revision,
        compared=len(version.released),
        breaks=tuple(found),
    )
