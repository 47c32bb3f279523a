"""The gateway app with its publishing thread answered by a fixed receipt (no verification, no
database, no signature): what a single publish costs the event loop alone over HTTP, beside
the gateway and the bare baseline (`python bench/publish.py --stub`). Never for serving."""

from __future__ import annotations

from typing import Any

from gateway.app import create_app as create_gateway_app
from gateway.groups import GroupWorker
from gateway.publishing.service import Outcome

RECEIPT = Outcome(
    201,
    "00000000-0000-4000-8000-000000000000",
    index=1,
    leaf_hash="ab" * 32,
    receipt="x" * 700,  # a receipt's size
    message_type="enterprise.registered",
)


async def _fixed(self: Any, item: Any) -> Outcome:
    return RECEIPT


def create_app() -> Any:
    GroupWorker.submit = _fixed  # type: ignore[method-assign,assignment]
    return create_gateway_app()
