"""`Client`: an agency's connection to the gateway. It logs in with the agency's key, signs
and publishes, queries, reads its feed, and verifies every statement of the gateway (receipts,
attestations) against the gateway's JWKS before handing it out."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

from credit_gateway_client.envelopes import fill_envelope, newest_majors, sign_envelope
from credit_gateway_client.errors import ProblemError, UnexpectedResponse, problem_error
from credit_gateway_client.feed import AckMode, Feed
from credit_gateway_client.jose import AgencyKey, PublicKey, load_agency_key
from credit_gateway_client.jwks import JwksCache
from credit_gateway_client.queries import (
    QueryResults,
    Standing,
    batch_results,
    verify_attestation,
)
from credit_gateway_client.receipts import Receipt, verify_receipt
from credit_gateway_client.retry import DEFAULT_RETRY, RetryPolicy
from credit_gateway_client.tokens import TokenSource
from credit_gateway_client.transport import Http, json_object

__all__ = ["MAX_BATCH", "Client"]

MAX_BATCH = 1000  # messages per batch request (GATEWAY_PUBLISH__MAX_BATCH_ITEMS' default)
JOSE = "application/jose"


class Client:
    """`Client(base_url, agency_id, key_file)`; use it as a context manager, or close() it.

    `base_url` is the gateway's public URL: the client assertion's `aud` is
    `{base_url}/v1/oauth/token` (give `token_url` if the gateway names it otherwise). `http`
    is an httpx.Client to use (tests give one with a mock transport); `retry` the policy for
    idempotent calls; `clock` and `sleep` are seams for tests."""

    def __init__(
        self,
        base_url: str,
        agency_id: str,
        key_file: str | Path | AgencyKey,
        *,
        passphrase: bytes | None = None,
        scope: str | None = None,
        token_url: str | None = None,
        http: httpx.Client | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy = DEFAULT_RETRY,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.agency_id = agency_id
        self.key = (
            key_file if isinstance(key_file, AgencyKey) else load_agency_key(key_file, passphrase)
        )
        self._own_http = http is None
        self._http = Http(http or httpx.Client(timeout=timeout), retry=retry, sleep=sleep)
        self._clock = clock
        self._sleep = sleep
        self.tokens = TokenSource(
            self._http,
            token_url or f"{self.base_url}/v1/oauth/token",
            agency_id,
            self.key,
            scope=scope,
            clock=clock,
        )
        self.jwks = JwksCache(
            lambda: self._get_json("/.well-known/jwks.json", auth=False), clock=clock
        )
        self._majors: dict[str, int] | None = None

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._own_http:
            self._http.client.close()

    # -- publishing ------------------------------------------------------------------------

    def sign(self, envelope: Mapping[str, Any]) -> str:
        """The compact JWS `publish` would send: `id`, `issued_at`, `issuer` and `contract`
        (the type's newest major the gateway serves) filled where absent."""
        message_type = str(envelope.get("type", ""))
        contract = None if "contract" in envelope else self._newest_major(message_type)
        now = dt.datetime.fromtimestamp(self._clock(), dt.UTC)
        filled = fill_envelope(envelope, issuer=self.agency_id, contract=contract, now=now)
        return sign_envelope(filled, self.key)

    def publish(self, envelope: Mapping[str, Any] | str) -> Receipt:
        """Sign (unless given a compact JWS already) and publish one message; its verified
        receipt. Retried with the same bytes, which is always safe. Raises the refusal
        (e.g. Unprocessable `invalid_transition`, Conflict `duplicate_conflict`)."""
        message = envelope if isinstance(envelope, str) else self.sign(envelope)
        response = self._http.request(
            "POST",
            self._url("/v1/messages"),
            idempotent=True,
            bearer=self.tokens,
            headers={"content-type": JOSE},
            content=message.encode(),
        )
        body = json_object(response)
        return self._receipt(body, message, response.status_code == 200)

    def publish_many(
        self, envelopes: Iterable[Mapping[str, Any] | str]
    ) -> list[Receipt | ProblemError]:
        """Publish in batches of up to 1,000: per message, in order, its verified Receipt or
        the ProblemError that refused it (returned, not raised). A refusal of a whole
        request (a token, the rate) is raised."""
        messages = [e if isinstance(e, str) else self.sign(e) for e in envelopes]
        out: list[Receipt | ProblemError] = []
        for start in range(0, len(messages), MAX_BATCH):
            chunk = messages[start : start + MAX_BATCH]
            response = self._http.request(
                "POST",
                self._url("/v1/messages/batch"),
                idempotent=True,
                bearer=self.tokens,
                json={"messages": chunk},
            )
            results = json_object(response).get("results")
            if not isinstance(results, list) or len(results) != len(chunk):
                raise UnexpectedResponse("the batch answer has not one result per message")
            for message, item in zip(chunk, results, strict=True):
                if not isinstance(item, dict) or not isinstance(item.get("status"), int):
                    raise UnexpectedResponse("a batch result without its status")
                status = item["status"]
                if status in (200, 201):
                    out.append(self._receipt(item, message, status == 200))
                else:
                    out.append(problem_error(item.get("problem") or {}, status))
        return out

    def _receipt(self, body: Mapping[str, Any], message: str, duplicate: bool) -> Receipt:
        token = body.get("receipt")
        if not isinstance(token, str):
            raise UnexpectedResponse("the publish answer holds no receipt")
        expected = {"index": body.get("index"), "leaf_hash": body.get("leaf_hash")}
        return verify_receipt(
            token, message, self._gateway_key, expected=expected, duplicate=duplicate
        )

    def _newest_major(self, message_type: str) -> int | None:
        if self._majors is None:
            self._majors = newest_majors(self._get_json("/v1/contracts", auth=False))
        return self._majors.get(message_type)

    # -- queries ---------------------------------------------------------------------------

    def standing(self, code: str, purpose: str, fields: Sequence[str] | None = None) -> Standing:
        """An enterprise's standing, cut to the agency's view (and to `fields`), with the
        gateway's attestation verified. Every query is recorded with its `purpose`."""
        params = {"purpose": purpose}
        if fields:
            params["fields"] = ",".join(fields)
        body = self._get_json(f"/v1/enterprises/{quote(code, safe='')}", params=params)
        answer = body.get("standing")
        if not isinstance(answer, dict):
            raise UnexpectedResponse("the standing answer holds no standing")
        attestation = verify_attestation(
            str(body.get("attestation")), answer, self.agency_id, self._gateway_key
        )
        return Standing(str(answer.get("uscc", code)), answer, attestation)

    def query_many(
        self, codes: Sequence[str], purpose: str, fields: Sequence[str] | None = None
    ) -> QueryResults:
        """Up to 1,000 codes in one request: each answered on its own (a code refused carries
        its ProblemError), one attestation over all, verified."""
        payload: dict[str, Any] = {"codes": list(codes), "purpose": purpose}
        if fields:
            payload["fields"] = list(fields)
        response = self._http.request(
            "POST",
            self._url("/v1/enterprises/query"),
            idempotent=True,  # a read (each try is recorded as an access)
            bearer=self.tokens,
            json=payload,
        )
        body = json_object(response)
        results = body.get("results")
        if not isinstance(results, list):
            raise UnexpectedResponse("the query answer holds no results")
        attestation = verify_attestation(
            str(body.get("attestation")), results, self.agency_id, self._gateway_key
        )
        return QueryResults(batch_results(results), attestation)

    # -- feed and evidence -----------------------------------------------------------------

    def feed(
        self,
        subscription_id: str,
        *,
        after: int | None = None,
        limit: int = 100,
        ack: AckMode = "page",
        follow: bool = False,
        poll_seconds: float = 5.0,
    ) -> Feed:
        """The subscription's pull feed as an iterator of Events (see Feed for `ack`)."""
        path = f"/v1/subscriptions/{quote(subscription_id, safe='')}"

        def read_page(start: int | None, size: int) -> dict[str, Any]:
            params: dict[str, Any] = {"limit": size}
            if start is not None:
                params["after"] = start
            return self._get_json(f"{path}/feed", params=params)

        def acknowledge(index: int) -> int:
            response = self._http.request(
                "POST",
                self._url(f"{path}/ack"),
                idempotent=True,  # the cursor only moves forward
                bearer=self.tokens,
                json={"index": index},
            )
            return int(json_object(response).get("acked_index", index))

        return Feed(
            read_page,
            acknowledge,
            after=after,
            limit=limit,
            ack=ack,
            follow=follow,
            poll_seconds=poll_seconds,
            sleep=self._sleep,
        )

    def bundle(self, message_id: str) -> dict[str, Any]:
        """A message's evidence bundle (scope `ledger.read`), for `verify_bundle`."""
        return self._get_json(f"/v1/messages/{quote(message_id, safe='')}/bundle")

    def log_vkey(self) -> str:
        """The log's signed-note verifier key (public)."""
        response = self._http.request("GET", self._url("/v1/log/vkey"), idempotent=True)
        return response.text.strip()

    def gateway_jwks(self) -> dict[str, Any]:
        return self._get_json("/.well-known/jwks.json", auth=False)

    # -- plumbing --------------------------------------------------------------------------

    def _url(self, path: str) -> str:
        return self.base_url + path

    def _gateway_key(self, kid: str) -> PublicKey:
        return self.jwks.key(kid)

    def _get_json(
        self, path: str, *, params: Mapping[str, Any] | None = None, auth: bool = True
    ) -> dict[str, Any]:
        response = self._http.request(
            "GET",
            self._url(path),
            idempotent=True,
            bearer=self.tokens if auth else None,
            params=params,
        )
        return json_object(response)
