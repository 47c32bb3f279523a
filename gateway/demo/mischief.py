"""The deliberately bad messages the demo sends, each with the problem code it must earn."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from gateway.demo.dataset import Enterprise, Step
from keys.suites import get_suite

if TYPE_CHECKING:
    from gateway.demo.run import Signers


def bad_messages(
    signers: Signers, ents: list[Enterprise], issued: dt.datetime, first_id: str
) -> list[tuple[str, bytes, str]]:
    """(what is wrong, the JWS, the expected `code`); `first_id` is the id under which the
    first enterprise's registration was accepted."""
    registered = ents[0]
    plain = next(e for e in ents if e.steps[-1].type == "enterprise.registered")
    award = next(s for e in ents for s in e.steps if s.type == "grade.awarded")
    good = signers.sign(
        Step(
            "fj-yjt",
            "self_assessment.published",
            registered.uscc,
            {
                "year": 2025,
                "report_uri": "https://yjt.fujian.example/zp/2025/x.pdf",
                "published_on": "2026-01-20",
            },
        ),
        issued,
    )
    head, payload, signature = good.split(b".")
    # change the first character: all six of its bits are signature bits, so the result is
    # still canonical base64url (changing the last ones could leave non-zero padding bits,
    # a malformed JWS rather than a wrong signature, once in 256 runs)
    flipped = (b"B" if signature.startswith(b"A") else b"A") + signature[1:]
    stranger = type(signers)({"fj-yjt": get_suite("ed25519").generate()})
    bad_code = registered.uscc[:-1] + ("0" if registered.uscc[-1] != "0" else "1")
    first = registered.steps[0]
    return [
        ("tampered signature", b".".join([head, payload, flipped]), "signature_invalid"),
        ("not a JWS", b"hello gateway", "malformed_jws"),
        ("key nobody registered", stranger.sign(first, issued), "unknown_key"),
        (
            "bank publishing a grade award",
            signers.sign(Step("fj-cib", award.type, award.subject, award.data), issued),
            "not_permitted",
        ),
        (
            "wrong check character in the credit code",
            signers.sign(Step("fj-yjt", first.type, bad_code, first.data), issued),
            "invalid_uscc",
        ),
        (
            "revoking a grade the enterprise never held",
            signers.sign(
                Step(
                    "fj-yjt",
                    "grade.revoked",
                    plain.uscc,
                    {
                        "reason_code": "other",
                        "reason": "test",
                        "decision_no": "X-1",
                        "decided_on": "2026-01-01",
                        "reapply_after": "2027-01-01",
                    },
                ),
                issued,
            ),
            "invalid_transition",
        ),
        (
            "award missing its certificate number",
            signers.sign(
                Step(
                    "fj-yjt",
                    "grade.awarded",
                    plain.uscc,
                    {k: v for k, v in award.data.items() if k != "certificate_no"},
                ),
                issued,
            ),
            "schema_violation",
        ),
        (
            "same message id, different content",
            signers.sign(
                Step("fj-yjt", first.type, first.subject, {**first.data, "name": "改名有限公司"}),
                issued,
                message_id=first_id,
            ),
            "duplicate_conflict",
        ),
    ]
