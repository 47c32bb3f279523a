"""Everything the client raises: the gateway's RFC 9457 problems as typed exceptions, a
gateway out of reach, and checks that fail (signatures, receipts, attestations, webhooks).

    GatewayClientError                     code
    ├── ProblemError                       code, status, detail, problem (protocol.md §8)
    │   ├── BadRequest             400     malformed_jws, schema_violation, invalid_uscc, …
    │   ├── Unauthorized           401     signature_invalid, unknown_key, invalid_token, …
    │   ├── Forbidden              403     not_permitted, field_not_in_view, key_not_caller, …
    │   ├── NotFound               404     unknown_enterprise, not_found, not_yet_checkpointed
    │   ├── Conflict               409     duplicate_conflict (`index`)
    │   ├── PayloadTooLarge        413     payload_too_large, batch_too_large
    │   ├── Unprocessable          422     invalid_transition, rule_violation, cause_missing, …
    │   ├── RateLimited            429     rate_limited (`retry_after`)
    │   ├── ServiceUnavailable     503     database_busy, database_unavailable, … (`retry_after`)
    │   └── ServerError            5xx     internal_error, or a proxy's own 5xx
    ├── GatewayUnreachable                 timeout, connect_error, transport_error
    ├── UnexpectedResponse                 unexpected_response: neither the answer nor a problem
    └── VerificationError                  a signature or a claim that does not check out
        └── WebhookVerificationError       missing_header, timestamp_out_of_tolerance, …

Branch on `code`: the gateway never renames its codes, it only adds new ones. A status the
tree does not name (405, 415, another 4xx) is a plain ProblemError.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping
from typing import Any, ClassVar

import httpx

__all__ = [
    "BadRequest",
    "Conflict",
    "Forbidden",
    "GatewayClientError",
    "GatewayUnreachable",
    "NotFound",
    "PayloadTooLarge",
    "ProblemError",
    "RateLimited",
    "ServerError",
    "ServiceUnavailable",
    "Unauthorized",
    "UnexpectedResponse",
    "Unprocessable",
    "VerificationError",
    "WebhookVerificationError",
    "problem_error",
    "problem_from_response",
    "retry_after_seconds",
]


class GatewayClientError(Exception):
    """The root of every error of this package; `code` is machine-readable."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


class ProblemError(GatewayClientError):
    """An RFC 9457 problem answered by the gateway (or for one item of a batch).

    `problem` is the whole document, so members beyond the three (`pointer`, `part`, `needs`,
    `index`, `error`) stay readable: `exc.problem.get("pointer")`."""

    status_code: ClassVar[int | None] = None

    def __init__(
        self, code: str, detail: str, *, status: int, problem: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(code, detail)
        self.status = status
        self.problem: dict[str, Any] = dict(problem or {})

    def __str__(self) -> str:
        return f"{self.status} {self.code}: {self.detail}"


class BadRequest(ProblemError):
    status_code = 400


class Unauthorized(ProblemError):
    status_code = 401


class Forbidden(ProblemError):
    status_code = 403


class NotFound(ProblemError):
    status_code = 404


class Conflict(ProblemError):
    status_code = 409


class PayloadTooLarge(ProblemError):
    status_code = 413


class Unprocessable(ProblemError):
    status_code = 422


class _RetryLater(ProblemError):
    """A problem that says when to ask again (`Retry-After`, RFC 9110 §10.2.3), in seconds."""

    def __init__(
        self,
        code: str,
        detail: str,
        *,
        status: int,
        problem: Mapping[str, Any] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(code, detail, status=status, problem=problem)
        self.retry_after = retry_after


class RateLimited(_RetryLater):
    status_code = 429


class ServiceUnavailable(_RetryLater):
    status_code = 503


class ServerError(ProblemError):
    """Any other 5xx."""


class GatewayUnreachable(GatewayClientError):
    """No answer: a timeout, a refused or reset connection (never an httpx exception)."""


class UnexpectedResponse(GatewayClientError):
    """An answer that is neither what the call documents nor a problem document."""

    def __init__(self, detail: str, *, status: int | None = None) -> None:
        super().__init__("unexpected_response", detail)
        self.status = status


class VerificationError(GatewayClientError):
    """A signature, receipt, attestation or bundle that does not verify; never trust the data
    that came with it."""


class WebhookVerificationError(VerificationError):
    """A push delivery that is not the gateway's (protocol.md §4.3): answer it 4xx."""


_BY_STATUS: dict[int, type[ProblemError]] = {
    cls.status_code: cls
    for cls in (
        BadRequest,
        Unauthorized,
        Forbidden,
        NotFound,
        Conflict,
        PayloadTooLarge,
        Unprocessable,
        RateLimited,
        ServiceUnavailable,
    )
    if cls.status_code is not None
}


def problem_error(
    problem: Mapping[str, Any], status: int | None = None, retry_after: float | None = None
) -> ProblemError:
    """The typed exception of a problem document (raised by the caller, or kept per item)."""
    code = str(problem.get("code") or f"http_{status}")
    detail = str(problem.get("detail") or problem.get("title") or "")
    raw_status = problem.get("status")
    status = status or (raw_status if isinstance(raw_status, int) else 0)
    cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else ProblemError)
    if issubclass(cls, _RetryLater):
        if retry_after is None and isinstance(problem.get("retry_after"), int | float):
            retry_after = float(problem["retry_after"])
        return cls(code, detail, status=status, problem=problem, retry_after=retry_after)
    return cls(code, detail, status=status, problem=problem)


def problem_from_response(response: httpx.Response) -> ProblemError:
    """A refusal as its typed exception. A body that is no problem document (a proxy's HTML
    502) still gives one, with code `http_<status>` and the start of the body as detail."""
    problem: Mapping[str, Any] = {}
    try:
        parsed = response.json()
        if isinstance(parsed, dict) and isinstance(parsed.get("code"), str):
            problem = parsed
    except ValueError:
        pass
    if not problem:
        text = response.text[:200].strip() or response.reason_phrase
        problem = {"code": f"http_{response.status_code}", "detail": text}
    return problem_error(problem, response.status_code, retry_after_seconds(response.headers))


def retry_after_seconds(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """`Retry-After` as seconds from now: delta-seconds or an HTTP date (RFC 9110 §10.2.3);
    None when absent or unreadable."""
    value = headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
