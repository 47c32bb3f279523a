"""No access token outlives the key it was obtained with, nor its agency's disabling: when
each agency key was revoked and which agencies are disabled, as the registry says, read again
at most every REFRESH_SECONDS per process (at once in the process that made the change).

A token minted before `gateway key revoke` kept working until it expired (issue 20, finding
9). Tokens now name the key of their client assertion (claim `client_key`); one whose key is
revoked is refused with `401 token_revoked`. A token without the claim (minted before it
existed) is refused once any key of its agency was revoked after it was issued. Every token
of a disabled agency is refused with `401 agency_disabled` (`gateway agency disable`).

Checked on every authenticated request, the event loop's included, so a check never waits
for the database but the first of a process: a stale table is read again in a thread of its
own while the check uses what is known, so a revocation, whichever process made it, holds
within about REFRESH_SECONDS.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from dataclasses import dataclass, field

from sqlalchemy import select

from gateway.access.tokens import Caller
from gateway.db import Database
from gateway.errors import Unauthorized
from gateway.models import Agency, AgencyKey

__all__ = ["REFRESH_SECONDS", "Revocations", "check_not_revoked", "revocations_of"]

REFRESH_SECONDS = 1.0
log = logging.getLogger(__name__)


@dataclass
class _Known:
    by_key: dict[str, float] = field(default_factory=dict)  # kid: revoked at (Unix seconds)
    latest_by_agency: dict[str, float] = field(default_factory=dict)
    disabled: frozenset[str] = frozenset()  # agencies whose tokens are all refused


class Revocations:
    """The registry's key revocations as one process knows them."""

    def __init__(self, db: Database) -> None:
        self._db = weakref.ref(db)
        self._known: _Known | None = None
        self._read_at = 0.0
        self._reading = threading.Lock()
        self._failing = False

    def check(self, caller: Caller) -> None:
        """Raise 401 agency_disabled if the caller's agency is disabled, 401 token_revoked if
        its token came from a key revoked since."""
        known = self._known
        if known is None:
            known = self.refresh()  # the process's first check (or invalidated): read now
        elif time.monotonic() - self._read_at >= REFRESH_SECONDS:
            self._refresh_in_background()
        if caller.agency_id in known.disabled:
            raise Unauthorized(
                "agency_disabled",
                f"agency {caller.agency_id!r} is disabled: its access tokens are refused "
                "until an operator enables it again",
                error="invalid_token",
            )
        if caller.key is not None:
            revoked = caller.key in known.by_key
        else:  # `iat` is whole seconds: a token of the revocation's own second is let be
            latest = known.latest_by_agency.get(caller.agency_id)
            revoked = latest is not None and int(latest) > caller.issued_at
        if revoked:
            raise Unauthorized(
                "token_revoked",
                "the key this access token was obtained with has been revoked: log in again "
                "with a key of the agency that is not",
                error="invalid_token",
            )

    def invalidate(self) -> None:
        """Read the registry again at the next check, before answering it: this process
        changed it (a revocation, a disabling) and must not let a stale table through."""
        with self._reading:
            self._known = None

    def refresh(self) -> _Known:
        """Read the revocations now (a thread already reading: wait for it and use that)."""
        with self._reading:
            if self._known is not None and time.monotonic() - self._read_at < REFRESH_SECONDS:
                return self._known
            db = self._db()
            if db is None:  # the runtime closed: nothing more will be asked
                return self._known or _Known()
            known = _Known()
            with db.reader() as session:
                rows = session.execute(
                    select(AgencyKey.kid, AgencyKey.agency_id, AgencyKey.revoked_at).where(
                        AgencyKey.revoked_at.is_not(None)
                    )
                )
                for kid, agency_id, revoked_at in rows:
                    if revoked_at is None:
                        continue
                    at = revoked_at.timestamp()
                    known.by_key[kid] = at
                    latest = known.latest_by_agency.get(agency_id, at)
                    known.latest_by_agency[agency_id] = max(latest, at)
                known.disabled = frozenset(
                    session.scalars(select(Agency.id).where(Agency.status != "active"))
                )
            self._known, self._read_at = known, time.monotonic()
            return known

    def _refresh_in_background(self) -> None:
        if self._reading.locked():
            return  # a thread is reading already

        def read() -> None:
            try:
                self.refresh()
            except Exception as exc:  # the database down, say: the next check tries again
                if not self._failing:  # once per streak, not once a second
                    log.warning("access: the key revocations could not be read: %r", exc)
                self._failing = True
            else:
                self._failing = False

        threading.Thread(target=read, name="key-revocations", daemon=True).start()


_BY_DATABASE: weakref.WeakKeyDictionary[Database, Revocations] = weakref.WeakKeyDictionary()
_CREATING = threading.Lock()


def revocations_of(db: Database) -> Revocations:
    """The one Revocations of `db` in this process."""
    found = _BY_DATABASE.get(db)
    if found is None:
        with _CREATING:
            found = _BY_DATABASE.setdefault(db, Revocations(db))
    return found


def check_not_revoked(db: Database, caller: Caller) -> None:
    revocations_of(db).check(caller)
