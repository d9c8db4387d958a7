"""Open items: a discrepancy found by an earlier run and still present is the same item, not a new one.

Each item is one document in the job's items collection, keyed by what it is about
(`outcome:order:charge` for an order or charge, `refund:re_...` / `dispute:dp_...` for money that
moved back), with `first_seen`, `last_seen`, `resolved_at` as integer unix seconds.

An item is resolved when a run proves it gone: its window covered the item's order, charge,
refund or dispute and did not find it again, or a re-check of the item against Stripe and the
orders as they are now no longer finds it. An item nobody could re-check stays open: the job
never calls something fixed that it did not look at.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pymongo
from pymongo import UpdateOne
from pymongo.collection import Collection

from reconcile.decide.items import age, plain_value
from reconcile.store.mongo import mongo_errors
from reconcile.timeutil import to_unix

log = logging.getLogger(__name__)

OPEN = "open"
RESOLVED = "resolved"
# Fields a finding carries onto its item (display and re-check).
CARRIED = (
    "kind",
    "source",
    "order_key",
    "charge_id",
    "charge_ids",
    "object_id",
    "anchor",
    "amount",
    "currency",
    "detail",
    "deadline",
    "livemode",
    "email",
)


@dataclass
class ItemsResult:
    open: list[dict[str, Any]] = field(default_factory=list)  # every open item after this run, oldest first
    resolved: list[dict[str, Any]] = field(default_factory=list)  # resolved by this run
    new: int = 0
    buckets: dict[str, int] = field(default_factory=dict)


def open_items(items: Collection) -> list[dict[str, Any]]:
    with mongo_errors("reading open items"):
        return list(items.find({"state": OPEN}).sort([("first_seen", pymongo.ASCENDING), ("_id", pymongo.ASCENDING)]))


def sync(
    items: Collection,
    findings: list[dict[str, Any]],
    *,
    since: datetime,
    until: datetime,
    run_id: str,
    now: datetime,
    confirmed: Iterable[dict[str, Any]] = (),
    cleared: dict[str, str] | None = None,
    checked: Iterable[str] = (),
    dry_run: bool = False,
) -> ItemsResult:
    """Record this run's findings, resolve what it proved gone; return the open items and the resolved.

    `confirmed`: findings of re-checked items still present; `cleared`: re-checked items now
    gone (key -> why); `checked`: keys re-checked this run. `dry_run` changes nothing.
    """
    at, lo, hi = to_unix(now), to_unix(since), to_unix(until)
    cleared = dict(cleared or {})
    existing = {d["_id"]: d for d in open_items(items)}
    seen = {f["key"]: f for f in [*findings, *confirmed]}
    with mongo_errors("reading items"):
        known = {d["_id"]: d for d in items.find({"_id": {"$in": list(seen)}})} if seen else {}

    resolutions: dict[str, str] = {}
    for key, doc in existing.items():
        if key in seen:
            continue
        if key in cleared:
            resolutions[key] = cleared[key]
        elif doc.get("anchor") is not None and lo <= doc["anchor"] < hi:
            resolutions[key] = "not found again when its window was reconciled"

    ops, result = [], ItemsResult()
    after: dict[str, dict[str, Any]] = {k: d for k, d in existing.items() if k not in resolutions}
    for key, f in seen.items():
        before = known.get(key)
        fresh = before is None or before.get("state") == RESOLVED
        carried = {k: plain_value(f.get(k)) for k in CARRIED}
        update: dict[str, Any] = {
            "$set": {
                **carried,
                "state": OPEN,
                "last_seen": at,
                "last_run": run_id,
                "last_checked": at,
                "resolved_at": None,
                "resolved_run": None,
                "resolution": None,
            },
            "$inc": {"times_seen": 1},
        }
        if fresh:
            update["$set"].update(first_seen=at, first_run=run_id)
            if before is not None:
                update["$inc"]["reopened"] = 1
            result.new += 1
        ops.append(UpdateOne({"_id": key}, update, upsert=True))
        merged = dict(before or {}, _id=key, **update["$set"])
        merged["times_seen"] = int((before or {}).get("times_seen") or 0) + 1
        after[key] = merged
    for key in set(checked) - set(seen) - set(resolutions):  # looked at, could not tell: still open
        ops.append(UpdateOne({"_id": key, "state": OPEN}, {"$set": {"last_checked": at}}))
    for key, why in resolutions.items():
        ops.append(
            UpdateOne(
                {"_id": key, "state": OPEN},
                {"$set": {"state": RESOLVED, "resolved_at": at, "resolved_run": run_id, "resolution": why}},
            )
        )
        result.resolved.append(dict(existing[key], state=RESOLVED, resolved_at=at, resolved_run=run_id, resolution=why))
    if ops and not dry_run:
        with mongo_errors("recording open items"):
            items.bulk_write(ops, ordered=False)
    result.open = sorted(after.values(), key=lambda d: (d.get("first_seen") or at, d["_id"]))
    result.buckets = age(result.open, at, run_id)
    log.info("items.synced", extra={"open": len(result.open), "new": result.new, "resolved": len(result.resolved)})
    return result
