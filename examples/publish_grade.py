"""The grading authority registers an enterprise and awards it a grade; each receipt is
verified against the gateway's JWKS before it is printed.

GATEWAY_URL=http://127.0.0.1:8000 AGENCY_ID=fj-yjt AGENCY_KEY=fj-yjt.pem \
    python publish_grade.py 91350203AY4CL12T2P
"""

import datetime as dt
import os
import sys

from credit_gateway_client import Client

code = sys.argv[1]  # the enterprise's unified social credit code
today = dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).date()  # a day in Fujian
registered = {
    "name": "厦门某某机械制造有限公司", "legal_representative": "陈某某", "region_code": "350203",
    "industry_section": "C", "scheme": "industry_trade", "required": True,
    "registered_on": today.isoformat(),
}  # fmt: skip
awarded = {
    "level": "2", "scheme": "industry_trade", "authority_level": "city",
    "announcement_no": "厦应急公告〔2026〕17号", "certificate_no": "闽AQBJXⅡ20260017",
    "announced_on": today.isoformat(), "valid_from": today.isoformat(),
    "valid_to": (today + dt.timedelta(days=3 * 365 - 1)).isoformat(),
}  # fmt: skip

env = os.environ
with Client(env["GATEWAY_URL"], env["AGENCY_ID"], env["AGENCY_KEY"]) as gateway:
    for kind, data in [("enterprise.registered", registered), ("grade.awarded", awarded)]:
        receipt = gateway.publish({"type": kind, "subject": code, "data": data})
        print(receipt.type, receipt.subject, receipt.index, receipt.message_id)
