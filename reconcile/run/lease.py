"""One run at a time: a lease in MongoDB, taken and renewed with atomic single-document operations.

The lease is one document (`_id` = the lease name) in the job's state collection:
`owner`, `host`, `pid`, `acquired_at`, `renewed_at`, `expires_at` (unix seconds as numbers: a
`$set` datetime does not round-trip on every server, and numbers compare the same everywhere).

- take: `find_one_and_update` whose filter matches only an expired lease or our own, else
  `insert_one` with the fixed `_id` (a `DuplicateKeyError` means someone holds it). No
  transactions: each step is one atomic document operation, so two runs can never both win.
- renew: `find_one_and_update` filtered on our owner id; no match means it was taken over.
- release: `delete_one` filtered on our owner id.

Expiry uses the clocks of the hosts involved; keep them NTP-synced (skew must stay well under
the TTL). Usage::

    lease = Lease.acquire(db["reconcile_state"], owner=run_id, ttl=timedelta(minutes=2), wait=timedelta(0))
    with lease:                 # renews in the background every ttl/3, releases at the end
        ...
        lease.check()           # before anything that must not happen twice: raises LeaseLost
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pymongo.errors
from pymongo import ReturnDocument
from pymongo.collection import Collection

from reconcile.errors import LeaseHeld, LeaseLost
from reconcile.store.mongo import mongo_errors
from reconcile.timeutil import fmt, from_unix

log = logging.getLogger(__name__)

LEASE_ID = "lease"
Clock = Callable[[], float]


def describe(holder: dict[str, Any] | None, clock: Clock = time.time) -> str:
    """One line naming a lease holder, for people and cron mail."""
    if not holder:
        return "nobody"
    expires = float(holder.get("expires_at") or 0)
    left = expires - clock()
    when = f"expires in {left:.0f}s" if left >= 0 else f"expired {-left:.0f}s ago"
    label = f" ({holder['trigger']})" if holder.get("trigger") else ""
    acquired = holder.get("acquired_at")
    since = f", since {fmt(from_unix(int(acquired)))}" if acquired else ""
    return (
        f"{holder.get('owner')}{label} on host {holder.get('host')}, pid {holder.get('pid')}{since}, "
        f"{when} ({fmt(from_unix(int(expires)))})"
    )


class Lease:
    """A held lease. Create with `Lease.acquire`; `renew`, `check`, `release`; a context manager."""

    def __init__(
        self,
        collection: Collection,
        owner: str,
        ttl: timedelta,
        expires_at: float,
        *,
        name: str = LEASE_ID,
        clock: Clock = time.time,
        previous: dict[str, Any] | None = None,
    ):
        self.collection, self.owner, self.name, self.clock = collection, owner, name, clock
        self.ttl = ttl.total_seconds()
        self.expires_at = expires_at
        # The holder whose expired lease this one replaced (a killed run), or None.
        self.previous = previous
        self._lock = threading.Lock()
        self._lost: dict[str, Any] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def acquire(
        cls,
        collection: Collection,
        owner: str,
        ttl: timedelta,
        wait: timedelta = timedelta(0),
        *,
        name: str = LEASE_ID,
        info: dict[str, Any] | None = None,
        clock: Clock = time.time,
        sleep: Callable[[float], None] = time.sleep,
        poll: float = 1.0,
    ) -> Lease:
        """Take the lease, waiting up to `wait` for a holder to release it or let it expire.

        Raises LeaseHeld naming the holder when the wait runs out. `info` (e.g. a trigger label)
        is stored on the lease document for whoever finds it held.
        """
        if ttl.total_seconds() <= 0:
            raise ValueError("a lease needs a positive ttl")
        deadline = clock() + wait.total_seconds()
        announced = False
        while True:
            lease, holder = cls._try(collection, owner, ttl, name, info or {}, clock)
            if lease is not None:
                return lease
            now = clock()
            if not announced and now < deadline:
                log.info("lease.waiting", extra={"holder": describe(holder, clock), "wait_s": wait.total_seconds()})
                announced = True
            if now >= deadline:
                waited = f" (waited {wait.total_seconds():.0f}s)" if wait else ""
                raise LeaseHeld(f"another run holds the lease: {describe(holder, clock)}{waited}", holder)
            # Poll again when the holder's lease would expire, or sooner: it may be released.
            expiry = float((holder or {}).get("expires_at") or now) - now
            sleep(max(0.01, min(poll, deadline - now, max(expiry, 0.0) + 0.01)))

    @classmethod
    def _try(
        cls,
        collection: Collection,
        owner: str,
        ttl: timedelta,
        name: str,
        info: dict[str, Any],
        clock: Clock,
    ) -> tuple[Lease | None, dict[str, Any] | None]:
        """One attempt: (lease, None) when taken, (None, holder) when someone else holds it."""
        for _ in range(3):  # a lease released between our two steps: try again at once
            now = clock()
            fields = {
                **info,
                "owner": owner,
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "acquired_at": now,
                "renewed_at": now,
                "expires_at": now + ttl.total_seconds(),
                "ttl_s": ttl.total_seconds(),
            }
            with mongo_errors("taking the run lease"):
                before = collection.find_one_and_update(
                    {"_id": name, "$or": [{"expires_at": {"$lt": now}}, {"owner": owner}]},
                    {"$set": fields},
                    return_document=ReturnDocument.BEFORE,
                )
                if before is not None:
                    previous = before if before.get("owner") != owner else None
                    if previous:
                        log.warning("lease.taken_over", extra={"from": describe(previous, clock)})
                    log.info("lease.acquired", extra={"owner": owner, "ttl_s": fields["ttl_s"]})
                    return cls(
                        collection, owner, ttl, fields["expires_at"], name=name, clock=clock, previous=previous
                    ), None
                try:
                    collection.insert_one({"_id": name, **fields})
                except pymongo.errors.DuplicateKeyError:
                    holder = collection.find_one({"_id": name})
                    if holder is not None:
                        return None, holder
                    continue
            log.info("lease.acquired", extra={"owner": owner, "ttl_s": fields["ttl_s"]})
            return cls(collection, owner, ttl, fields["expires_at"], name=name, clock=clock), None
        return None, collection.find_one({"_id": name})

    def renew(self) -> None:
        """Push the expiry out by one TTL; LeaseLost if another run took the lease over."""
        with self._lock:
            if self._lost is not None:
                raise self._lost_error()
            now = self.clock()
            with mongo_errors("renewing the run lease"):
                doc = self.collection.find_one_and_update(
                    {"_id": self.name, "owner": self.owner},
                    {"$set": {"renewed_at": now, "expires_at": now + self.ttl}},
                    return_document=ReturnDocument.AFTER,
                )
                if doc is None:
                    # Not ours any more: remembered before reading who holds it now, which may fail.
                    self._lost = {"owner": None}
                    self._lost = self.collection.find_one({"_id": self.name}) or self._lost
                    raise self._lost_error()
            self.expires_at = now + self.ttl

    def check(self) -> None:
        """Raise LeaseLost unless this run still holds the lease (renewing it when half-spent)."""
        with self._lock:
            if self._lost is not None:
                raise self._lost_error()
            fresh = self.expires_at - self.clock() > self.ttl / 2
        if not fresh:
            self.renew()

    def _lost_error(self) -> LeaseLost:
        holder = self._lost if self._lost and self._lost.get("owner") else None
        now_held = f"now held by {describe(holder, self.clock)}" if holder else "it was released by someone else"
        return LeaseLost(f"this run's lease expired and was taken over ({now_held}); stopped", holder)

    def keep_alive(self, interval: float | None = None) -> None:
        """Renew in a background thread every `interval` seconds (default ttl/3) until release()."""
        if self._thread is not None:
            return
        interval = interval if interval is not None else max(self.ttl / 3, 0.05)

        def loop() -> None:
            while not self._stop.wait(interval):
                try:
                    self.renew()
                except LeaseLost as exc:
                    log.error("lease.lost", extra={"error": str(exc)})
                    return
                except Exception as exc:  # MongoDB blip: keep trying; check() fails once it really expires
                    log.warning("lease.renew_failed", extra={"error": type(exc).__name__})

        self._thread = threading.Thread(target=loop, name=f"lease-renew:{self.owner}", daemon=True)
        self._thread.start()

    def release(self) -> None:
        """Stop renewing and give the lease back (only if still ours); never raises."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        try:
            self.collection.delete_one({"_id": self.name, "owner": self.owner})
            log.info("lease.released", extra={"owner": self.owner})
        except pymongo.errors.PyMongoError as exc:  # it expires on its own
            log.warning("lease.release_failed", extra={"error": type(exc).__name__})

    def __enter__(self) -> Lease:
        self.keep_alive()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
