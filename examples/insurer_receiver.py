"""An insurer's push receiver: verify the delivery, handle each webhook-id once, apply the
premium document (view insurance_premium), answer with a signed consumer receipt.

GATEWAY_WHPK=whpk_… AGENCY_KEY=fj-picc.pem uvicorn insurer_receiver:app --port 9000
"""

import os

from credit_gateway_client import (
    WebhookVerificationError,
    consumer_receipt,
    load_agency_key,
    verify_webhook,
)
from fastapi import FastAPI, Request, Response

WHPK = os.environ["GATEWAY_WHPK"]  # the subscription's v1a_public_key
KEY = load_agency_key(os.environ["AGENCY_KEY"])  # the insurer's registered key
premium_factors: dict[str, float] = {}  # enterprise → factor at its next renewal
handled: set[str] = set()  # in production: a table written with the premium factors
app = FastAPI()


@app.post("/webhooks")
async def webhook(request: Request) -> Response:
    try:
        event = verify_webhook(request.headers, await request.body(), WHPK)
    except WebhookVerificationError as refused:
        return Response(refused.code, status_code=401)
    if request.headers["webhook-id"] in handled:
        print("duplicate", request.headers["webhook-id"], flush=True)
    else:
        premium_factors[event.subject] = event.data["premium_factor"]
        handled.add(request.headers["webhook-id"])
        print("premium", event.subject, event.data["premium_factor"], flush=True)
    return Response(consumer_receipt(KEY, event), media_type="application/jose")
