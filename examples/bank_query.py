"""A bank asks about enterprises before a loan: each answer comes with the gateway's
attestation, verified, to keep with the credit file.

GATEWAY_URL=http://127.0.0.1:8000 AGENCY_ID=fj-ccb AGENCY_KEY=fj-ccb.pem \
    python bank_query.py 91350203AY4CL12T2P [more codes …]
"""

import os
import sys

from credit_gateway_client import Client, ProblemError

codes = sys.argv[1:]
env = os.environ
with Client(env["GATEWAY_URL"], env["AGENCY_ID"], env["AGENCY_KEY"]) as gateway:
    try:
        standing = gateway.standing(codes[0], purpose="贷前审查 loan application")
    except ProblemError as refused:  # e.g. 404 unknown_enterprise, 403 field_not_in_view
        sys.exit(f"{refused.status} {refused.code}: {refused.detail}")
    grade = standing.answer["grade"]
    print(standing.uscc, grade["status"], grade["level"], standing.attestation.log_size)
    batch = gateway.query_many(codes, purpose="贷后检查 portfolio review")
    for result in batch.results:
        if result.standing is not None:
            print(result.uscc, result.status, result.standing["grade"]["status"])
        elif result.problem is not None:
            print(result.uscc, result.status, result.problem.code)
