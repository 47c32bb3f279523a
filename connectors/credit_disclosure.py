"""For the credit disclosure system: public records of grade awards, renewals, downgrades,
revocations and list entries, with their publication term (issue 5 §3, domain.md §5).

Public fields only: codes, numbers, dates and the deciding agency; the free-text reasons of a
decision (which may name people) and internal identifiers stay out."""

from __future__ import annotations

from typing import Any

from connectors.base import Connector, Context

RECORD_TYPES = {
    "grade.awarded": "grade_award",
    "grade.renewed": "grade_renewal",
    "grade.downgraded": "grade_downgrade",
    "grade.revoked": "grade_revocation",
    "listing.added": "list_entry",
    "listing.removed": "list_removal",
}


def render(ctx: Context) -> dict[str, Any]:
    d = ctx.decision.data
    kind = RECORD_TYPES[ctx.decision.type]
    record: dict[str, Any] = {
        "record_type": kind,
        "uscc": ctx.enterprise.uscc,
        "enterprise_name": ctx.enterprise.name,
        "region_code": ctx.enterprise.region_code,
        "deciding_agency": str(d.get("deciding_agency") or ctx.decision.issuer),
        "source": ctx.source(),
    }
    if kind in ("grade_award", "grade_renewal"):
        record |= {
            "decision_no": d["announcement_no"],
            "decided_on": d["announced_on"],
            "publication": {"from": d["announced_on"], "until": d["valid_to"]},
            "grade": {
                "level": d["level"],
                "scheme": d.get("scheme") or ctx.enterprise.grade_scheme or ctx.enterprise.scheme,
                "certificate_no": d["certificate_no"],
                "valid_from": d["valid_from"],
                "valid_to": d["valid_to"],
            },
        }
    elif kind == "grade_downgrade":
        until = ctx.enterprise.grade_valid_to.isoformat() if ctx.enterprise.grade_valid_to else None
        record |= {
            "decision_no": d["decision_no"],
            "decided_on": d["decided_on"],
            "publication": {"from": d["decided_on"], "until": until},
            "grade": {"level": d["to_level"], "from_level": d["from_level"]},
        }
    elif kind == "grade_revocation":
        record |= {
            "decision_no": d["decision_no"],
            "decided_on": d["decided_on"],
            "publication": {"from": d["decided_on"], "until": d["reapply_after"]},
            "revocation": {"reason_code": d["reason_code"], "reapply_after": d["reapply_after"]},
        }
    elif kind == "list_entry":
        record |= {
            "decision_no": d["decision_no"],
            "decided_on": d["decided_on"],
            "publication": {"from": d["term_start"], "until": d["term_end"]},
            "list": {
                "list_type": d["list_type"],
                "term_start": d["term_start"],
                "term_end": d["term_end"],
            },
        }
    else:  # list_removal: the entry's publication ends on removal
        record |= {
            "decision_no": d["decision_no"],
            "decided_on": d["removed_on"],
            "publication": {"from": d["removed_on"], "until": d["removed_on"]},
            "list": {"list_type": d["list_type"], "term_start": d["removed_on"], "term_end": None},
        }
    return record


CONNECTOR = Connector(
    name="credit_disclosure",
    role="credit_disclosure",
    types=frozenset(RECORD_TYPES),
    render=render,
    title="Public credit record",
)
