"""Verify a whole draw from the log alone (issue 21 §5): checkpoint, request, reveal, candidates,
seed, selection and inspectors, each recomputed. docs/draws.md §9 lists the steps.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import Any

from keys.draw_records import (
    COMPLETED_TYPE,
    REQUESTED_TYPE,
    DrawFormatError,
    DrawRequest,
    draw_candidates,
    draw_result,
    previous_assignments,
)
from keys.draws import derive_seed
from keys.jws import JWSError, parse_compact, verify_compact
from keys.ledger_fold import (
    LedgerFacts,
    LedgerReplay,
    LedgerReplayError,
    candidates_digest,
    entry_payload,
)
from keys.merkle import leaf_hash, root_bottom_up
from keys.note import NoteError, parse_checkpoint, parse_note, parse_vkey, verify_note
from keys.suites import InvalidKeyError, UnknownSuiteError, public_key_from_jwk

__all__ = ["verify_draw"]

GATEWAY_ISSUER = "gateway"


class _Mismatch(Exception):
    """Stops verification at a step; its args are the differences found there."""


def verify_draw(
    *,
    leaves: Sequence[bytes],
    request_index: int,
    seed_checkpoint: str,
    log_vkey: str,
    secret_hex: str,
    result: Mapping[str, Any],
    gateway_jwk: Mapping[str, object] | None = None,
) -> list[str]:
    """The differences between `result` and what the log gives; empty when the draw verifies.

    `leaves` are log entries 0..m-1, m the seed checkpoint's size. Verification stops at the
    first step that fails, so the first difference names what differs first; later steps that
    build on it are not reported. With `gateway_jwk`, the request entry's signature is checked.
    """
    try:
        root = _check_checkpoint(leaves, request_index, seed_checkpoint, log_vkey)
        request = _request(leaves[request_index], request_index, gateway_jwk)
        secret = _check_reveal(request, secret_hex, result, request_index, len(leaves))
        facts, earlier = _replay(leaves, request_index, request)
        codes = _check_candidates(request, draw_candidates(request, facts), result)
        _check_previous(request, _previous(earlier, codes))
        beacon = _beacon(request, result)
        seed = derive_seed(
            checkpoint_root=root,
            request_leaf_hash=leaf_hash(leaves[request_index]),
            secret=secret,
            beacon=beacon,
        )
        if result.get("seed") != seed.hex():
            raise _Mismatch(
                f"seed: the result gives {result.get('seed')} but the log gives {seed.hex()}"
            )
        expected = _recompute(
            request, facts, codes, request_index, len(leaves), seed, secret, beacon
        )
        _compare_outcome(expected, result)
    except _Mismatch as mismatch:
        return [str(arg) for arg in mismatch.args]
    return []


def _check_checkpoint(
    leaves: Sequence[bytes], request_index: int, note: str, log_vkey: str
) -> bytes:
    if request_index < 0:
        raise _Mismatch(f"request_index: {request_index} is not a log index")
    try:
        key = parse_vkey(log_vkey)
        checkpoint = parse_checkpoint(parse_note(note).body)
    except NoteError as exc:
        raise _Mismatch(f"checkpoint: {exc}") from None
    if not verify_note(note, key.name, key.public_key):
        raise _Mismatch(f"checkpoint: no valid signature by the log key {key.name}")
    if checkpoint.size <= request_index:
        raise _Mismatch(
            f"checkpoint: size {checkpoint.size} does not cover the request at index "
            f"{request_index}; the seed checkpoint is the first one past it"
        )
    if len(leaves) != checkpoint.size:
        raise _Mismatch(f"checkpoint: size {checkpoint.size} but {len(leaves)} leaves were given")
    root = root_bottom_up([leaf_hash(leaf) for leaf in leaves])
    if root != checkpoint.root:
        raise _Mismatch(
            f"checkpoint: root {_b64(checkpoint.root)} but the given leaves hash to {_b64(root)}"
        )
    return root


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _request(leaf: bytes, index: int, gateway_jwk: Mapping[str, object] | None) -> DrawRequest:
    where = f"request (log entry {index})"
    try:
        payload = entry_payload(leaf, index)
        if gateway_jwk is not None:
            verify_compact(parse_compact(leaf), public_key_from_jwk(gateway_jwk))
    except (LedgerReplayError, JWSError, InvalidKeyError, UnknownSuiteError) as exc:
        raise _Mismatch(f"{where}: {exc}") from None
    if payload.get("issuer") != GATEWAY_ISSUER or payload["type"] != REQUESTED_TYPE:
        raise _Mismatch(
            f"{where}: a {payload['type']} entry by {payload.get('issuer')}, not a "
            f"{REQUESTED_TYPE} entry by the gateway"
        )
    try:
        return DrawRequest.from_json(payload.get("data"))
    except DrawFormatError as exc:
        raise _Mismatch(f"{where}: {exc}") from None


def _check_reveal(
    request: DrawRequest, secret_hex: str, result: Mapping[str, Any], index: int, size: int
) -> bytes:
    for key, expected in (
        ("draw_id", request.draw_id),
        ("request_index", index),
        ("seed_checkpoint_size", size),
    ):
        if result.get(key) != expected:
            raise _Mismatch(f"{key}: the result gives {result.get(key)!r}, the log {expected!r}")
    try:
        secret = bytes.fromhex(secret_hex)
    except ValueError:
        raise _Mismatch("secret: not hex") from None
    if not request.opens(secret):
        raise _Mismatch(f"secret: does not open the request's commitment {request.commitment}")
    if result.get("secret", secret_hex) != secret_hex:
        raise _Mismatch("secret: the result holds another secret than the one revealed")
    return secret


def _replay(
    leaves: Sequence[bytes], request_index: int, request: DrawRequest
) -> tuple[dict[str, LedgerFacts], list[Mapping[str, Any]]]:
    """The ledger as of the request's log size, and the completed draws before it."""
    replay = LedgerReplay()
    completed: list[Mapping[str, Any]] = []
    try:
        for index in range(request_index):
            payload = entry_payload(leaves[index], index)
            replay.apply_payload(payload)
            if payload["type"] == COMPLETED_TYPE and payload.get("issuer") == GATEWAY_ISSUER:
                completed.append(payload.get("data") or {})
    except LedgerReplayError as exc:
        raise _Mismatch(f"ledger: {exc}") from None
    return replay.facts(request.on), completed


def _check_candidates(
    request: DrawRequest, codes: list[str], result: Mapping[str, Any]
) -> list[str]:
    claimed = result.get("claimed_candidates")
    differences = []
    if claimed is not None and not (
        isinstance(claimed, list) and all(isinstance(code, str) for code in claimed)
    ):
        raise _Mismatch("claimed_candidates: not a list of codes")
    if claimed is not None and claimed != codes:
        differences.append(_first_candidate_difference(request, codes, claimed))
    digest = candidates_digest(codes)
    if digest != request.candidates_digest or len(codes) != request.candidates_count:
        differences.append(
            f"candidates: the request commits to {request.candidates_count} with digest "
            f"{request.candidates_digest}; the log's {request.ledger} ledger on {request.on} "
            f"gives {len(codes)} with digest {digest}"
        )
    if differences:
        raise _Mismatch(*differences)
    return codes


def _first_candidate_difference(request: DrawRequest, codes: list[str], claimed: list[str]) -> str:
    ledger = f"the log's {request.ledger} ledger on {request.on}"
    logged, listed = set(codes), set(claimed)
    for code in sorted(logged ^ listed):
        if code in listed:
            return f"candidate {code}: not in {ledger} (with the request's filters)"
        return f"candidate {code}: in {ledger} (with the request's filters) but not claimed"
    return "candidates: the claimed list is not in canonical order or repeats a code"


def _previous(earlier: list[Mapping[str, Any]], codes: list[str]) -> dict[str, frozenset[str]]:
    try:
        return previous_assignments(earlier, codes)
    except DrawFormatError as exc:
        raise _Mismatch(
            f"previous draws: a completed draw in the log is malformed: {exc}"
        ) from None


def _check_previous(request: DrawRequest, expected: Mapping[str, frozenset[str]]) -> None:
    given = request.previous_assignments
    for code in sorted(set(given) | set(expected)):
        if given.get(code) != expected.get(code):
            raise _Mismatch(
                f"previous_assignments {code}: the request gives "
                f"{sorted(given.get(code, ()))} but the log's last draw gives "
                f"{sorted(expected.get(code, ()))}"
            )


def _beacon(request: DrawRequest, result: Mapping[str, Any]) -> bytes | None:
    value = result.get("beacon")
    if request.beacon is None:
        if value is not None:
            raise _Mismatch("beacon: the result holds a beacon value the request never named")
        return None
    try:
        raw = bytes.fromhex(value) if isinstance(value, str) else b""
    except ValueError:
        raw = b""
    if not raw:
        raise _Mismatch(
            f"beacon: the request names {request.beacon.source} round {request.beacon.round} "
            "but the result holds no hex value for it"
        )
    return raw


def _recompute(
    request: DrawRequest,
    facts: Mapping[str, LedgerFacts],
    codes: list[str],
    request_index: int,
    size: int,
    seed: bytes,
    secret: bytes,
    beacon: bytes | None,
) -> dict[str, Any]:
    try:
        return draw_result(
            request,
            facts,
            request_index=request_index,
            seed_checkpoint_size=size,
            seed=seed,
            secret=secret,
            beacon=beacon,
            codes=codes,
        )
    except ValueError as exc:  # too few inspectors, a sample above its stratum, strata overlap
        raise _Mismatch(f"draw: the log's request cannot be drawn: {exc}") from None


def _compare_outcome(expected: Mapping[str, Any], result: Mapping[str, Any]) -> None:
    given = result.get("strata")
    if not isinstance(given, list) or len(given) != len(expected["strata"]):
        raise _Mismatch(
            f"strata: the result lists {len(given) if isinstance(given, list) else 'no'} "
            f"strata, the request {len(expected['strata'])}"
        )
    differences = []
    for mine, theirs in zip(expected["strata"], given, strict=True):
        differences.extend(_stratum_differences(mine, theirs))
    if differences:
        raise _Mismatch(*differences)
    theirs_assigned = result.get("assignments")
    if theirs_assigned != expected["assignments"]:
        if not isinstance(theirs_assigned, dict):
            raise _Mismatch("assignments: the result holds none")
        for code, names in expected["assignments"].items():
            if theirs_assigned.get(code) != names:
                raise _Mismatch(
                    f"assignments {code}: the result gives {theirs_assigned.get(code)} "
                    f"but the log gives {names}"
                )
        extra = sorted(set(theirs_assigned) - set(expected["assignments"]), key=str)
        raise _Mismatch(f"assignments {extra[0]}: not a selected enterprise")


def _stratum_differences(mine: Mapping[str, Any], theirs: object) -> list[str]:
    if not isinstance(theirs, dict):
        return [f"stratum {mine['name']}: the result's entry is not an object"]
    name = mine["name"]
    if theirs.get("name") != name:
        return [f"stratum {name}: the result names it {theirs.get('name')!r}"]
    differences = [
        f"stratum {name}: {key} {theirs.get(key)!r} but the log gives {mine[key]!r}"
        for key in ("population", "sample")
        if theirs.get(key) != mine[key]
    ]
    selected = theirs.get("selected")
    if not isinstance(selected, list):
        return [*differences, f"stratum {name}: the result has no selected list"]
    for position, (logged, claimed) in enumerate(zip(mine["selected"], selected, strict=False)):
        if logged != claimed:
            differences.append(
                f"stratum {name}: selected {claimed} but the log gives {logged} "
                f"(position {position + 1})"
            )
            break
    else:
        if len(selected) != len(mine["selected"]):
            differences.append(
                f"stratum {name}: {len(selected)} selected but the log gives "
                f"{len(mine['selected'])}"
            )
    return differences
