"""A client for agencies of the work-safety credit data-exchange gateway.

    from credit_gateway_client import Client
    with Client("https://gateway.example", "fj-ccb", "fj-ccb.pem") as gateway:
        standing = gateway.standing("91350203AY4CL12T2P", purpose="贷前审查 loan 2026-1207")

Everything the gateway states (receipts, attestations) is verified against its JWKS before
it is returned; every refusal is raised as a typed ProblemError (errors.py draws the tree).
"""

from credit_gateway_client.bundles import BundleReport, Check, verify_bundle
from credit_gateway_client.client import Client
from credit_gateway_client.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    GatewayClientError,
    GatewayUnreachable,
    NotFound,
    PayloadTooLarge,
    ProblemError,
    RateLimited,
    ServerError,
    ServiceUnavailable,
    Unauthorized,
    UnexpectedResponse,
    Unprocessable,
    VerificationError,
    WebhookVerificationError,
)
from credit_gateway_client.events import Event
from credit_gateway_client.feed import AckMode, Feed
from credit_gateway_client.jose import AgencyKey, load_agency_key
from credit_gateway_client.queries import Attestation, QueryResult, QueryResults, Standing
from credit_gateway_client.receipts import Receipt
from credit_gateway_client.retry import DEFAULT_RETRY, NO_RETRY, RetryPolicy
from credit_gateway_client.webhooks import consumer_receipt, verify_webhook

__all__ = [
    "DEFAULT_RETRY",
    "NO_RETRY",
    "AckMode",
    "AgencyKey",
    "Attestation",
    "BadRequest",
    "BundleReport",
    "Check",
    "Client",
    "Conflict",
    "Event",
    "Feed",
    "Forbidden",
    "GatewayClientError",
    "GatewayUnreachable",
    "NotFound",
    "PayloadTooLarge",
    "ProblemError",
    "QueryResult",
    "QueryResults",
    "RateLimited",
    "Receipt",
    "RetryPolicy",
    "ServerError",
    "ServiceUnavailable",
    "Standing",
    "Unauthorized",
    "UnexpectedResponse",
    "Unprocessable",
    "VerificationError",
    "WebhookVerificationError",
    "consumer_receipt",
    "load_agency_key",
    "verify_bundle",
    "verify_webhook",
]
