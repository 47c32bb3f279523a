"""Standing queries and their attestations (protocol.md §7): the answer is handed out only
once the gateway's signature over exactly that answer, for this agency, checks out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from credit_gateway_client.errors import ProblemError, VerificationError, problem_error
from credit_gateway_client.jose import PublicKey, parse_compact, verify_compact

__all__ = [
    "ATTESTATION_TYP",
    "Attestation",
    "QueryResult",
    "QueryResults",
    "Standing",
    "verify_attestation",
]

ATTESTATION_TYP = "gateway-attestation+jws"


@dataclass(frozen=True)
class Attestation:
    """The gateway's signed statement of what it answered (`answer`), to whom (`audience`),
    when (`issued_at`) and as of which log size (`log_size`). Keep `jws` as proof."""

    jws: str
    kid: str
    answer: Any
    log_size: int
    issued_at: str
    audience: str


@dataclass(frozen=True)
class Standing:
    """One enterprise's standing, cut to the caller's view (`uscc` always)."""

    uscc: str
    answer: dict[str, Any]
    attestation: Attestation


@dataclass(frozen=True)
class QueryResult:
    """One code of a batch: its standing, or the problem that refused it (not raised)."""

    uscc: str
    status: int
    standing: dict[str, Any] | None
    problem: ProblemError | None


@dataclass(frozen=True)
class QueryResults:
    """A batch answer: one result per code, in order, and one attestation over all."""

    results: list[QueryResult]
    attestation: Attestation


def verify_attestation(
    token: str, answer: Any, audience: str, gateway_key: Callable[[str], PublicKey]
) -> Attestation:
    """VerificationError unless a gateway key signed `token` with typ
    gateway-attestation+jws, over exactly `answer`, for `audience`."""
    kid = str(parse_compact(token).header.get("kid", ""))
    claims = verify_compact(token, gateway_key(kid), typ=ATTESTATION_TYP).claims()
    if claims.get("answer") != answer:
        raise VerificationError("attestation_mismatch", "the attestation is over another answer")
    if claims.get("audience") != audience:
        raise VerificationError(
            "attestation_mismatch", f"the attestation is for {claims.get('audience')!r}"
        )
    log_size, issued_at = claims.get("log_size"), claims.get("issued_at")
    if not isinstance(log_size, int) or not isinstance(issued_at, str):
        raise VerificationError("attestation_mismatch", "log_size or issued_at missing")
    return Attestation(token, kid, answer, log_size, issued_at, audience)


def batch_results(results: list[dict[str, Any]]) -> list[QueryResult]:
    """The items of `POST /v1/enterprises/query`, problems made typed exceptions."""
    out = []
    for item in results:
        status = int(item.get("status", 0))
        problem = item.get("problem")
        out.append(
            QueryResult(
                uscc=str(item.get("uscc")),
                status=status,
                standing=item.get("standing") if isinstance(item.get("standing"), dict) else None,
                problem=problem_error(problem, status) if isinstance(problem, dict) else None,
            )
        )
    return out
