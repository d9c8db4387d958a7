"""Open items: a discrepancy found by an earlier run and still present is the same item, not a new one.

Each item is one document in the job's items collection, keyed by what it is about
(`outcome:order:charge` for an order or charge, `refund:re_...` / `dispute:dp_...` for money that
moved back), with `first_seen`, `last_seen`, `resolved_at` as integer unix seconds.

An item is resolved when a run proves it gone: its window covered the item's order, charge,
refund or dispute and did not find it again, or a re-check of the item against Stripe and the
orders as they are now no longer finds it. An item nobody could re-check stays open: the job
never calls something fixed that it did not look at.

People act on items (`reconcile items`): each decision (note, ack, accept, resolve, confirm,
dismiss, clear) is one document in the decisions collection, with who, when, why and the item's
facts at that moment; the item keeps its current state and last note. Nothing is deleted. The
rules for what a run does to a decision when it sees the item again are in decide/items.py.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import datetime

import pymongo
from pymongo import UpdateOne
from pymongo.collection import Collection

from reconcile.config import DEFAULT_SEVERITY, Threshold
from reconcile.decide import items as rules
from reconcile.decide.findings import Finding
from reconcile.decide.items import (
    ACCEPTED,
    LIVE,
    RESOLVED,
    DecisionRecord,
    ItemDoc,
    ItemsResult,
    SeenChange,
    SyncPlan,
)
from reconcile.errors import ConfigError
from reconcile.store.mongo import mongo_errors
from reconcile.timeutil import to_unix

log = logging.getLogger(__name__)

RUNS_KEPT = 100  # the latest runs that saw an item, kept on it (`reconcile items show`)


def open_items(items: Collection) -> list[ItemDoc]:
    """Items a run still judges: open, acknowledged, and those a person marked resolved (to verify)."""
    order = [("first_seen", pymongo.ASCENDING), ("_id", pymongo.ASCENDING)]
    with mongo_errors("reading open items"):
        live = list(items.find({"state": {"$in": list(LIVE)}}).sort(order))
        marked = [d for d in items.find({"state": RESOLVED, "verified_at": None}) if rules.person_resolved(d)]
    return sorted([*live, *marked], key=lambda d: (d.get("first_seen") or 0, d["_id"]))


def closed_by_people(items: Collection, since: int) -> list[ItemDoc]:
    """Items accepted or resolved by a person at or after `since` (unix seconds), latest first."""
    with mongo_errors("reading decided items"):
        docs: list[ItemDoc] = list(items.find({"state": {"$in": [ACCEPTED, RESOLVED]}, "decided_at": {"$gte": since}}))
    return sorted((d for d in docs if d.get("decided_by")), key=lambda d: (-(d.get("decided_at") or 0), d["_id"]))


def sync(
    items: Collection,
    findings: list[Finding],
    *,
    since: datetime,
    until: datetime,
    run_id: str,
    now: datetime,
    confirmed: Iterable[Finding] = (),
    cleared: Mapping[str, str] | None = None,
    checked: Iterable[str] = (),
    dry_run: bool = False,
    decisions: Collection | None = None,
    thresholds: tuple[Threshold, ...] = DEFAULT_SEVERITY,
) -> ItemsResult:
    """Record this run's findings, resolve what it proved gone; return the open items and the resolved.

    `confirmed`: findings of re-checked items still present; `cleared`: re-checked items now
    gone (key -> why); `checked`: keys re-checked this run. `dry_run` changes nothing. What the run
    does to each item is decide.items.plan_sync's (people's decisions honoured: decide.items.seen_again);
    what the job decides about them (a reopening, a verified resolution) is recorded in `decisions`.
    """
    seen = {f["key"]: f for f in [*findings, *confirmed]}
    plan = rules.plan_sync(
        {d["_id"]: d for d in open_items(items)},
        seen,
        _known(items, list(seen)),
        cleared=dict(cleared or {}),
        checked=checked,
        span=(to_unix(since), to_unix(until)),
        at=to_unix(now),
        run_id=run_id,
        thresholds=thresholds,
    )
    if not dry_run:
        write_sync(items, decisions, plan, run_id)
        plan.result.closed = closed_by_people(items, to_unix(since))
    result = plan.result
    log.info(
        "items.synced",
        extra={
            "open": len(result.open),
            "handled": len(result.handled),
            "new": result.new,
            "resolved": len(result.resolved),
        },
    )
    return result


def _known(items: Collection, keys: list[str]) -> dict[str, ItemDoc]:
    """The items of these keys, in any state."""
    if not keys:
        return {}
    with mongo_errors("reading items"):
        return {d["_id"]: d for d in items.find({"_id": {"$in": keys}})}


def write_sync(items: Collection, decisions: Collection | None, plan: SyncPlan, run_id: str) -> None:
    """Write a run's plan for the items (unordered), then the job's own decisions."""
    ops = [_seen_op(change, run_id) for change in plan.seen]
    ops += [
        UpdateOne({"_id": key, "state": {"$in": list(LIVE)}}, {"$set": {"last_checked": plan.at}})
        for key in plan.unsure
    ]
    for r in plan.resolutions:
        state: str | dict[str, list[str]] = RESOLVED if r.verify else {"$in": list(LIVE)}
        ops.append(UpdateOne({"_id": r.key, "state": state}, {"$set": r.fields}))
    if not ops:
        return
    notes = plan.notes
    with mongo_errors("recording open items"):
        items.bulk_write(ops, ordered=False)
        if notes and decisions is not None:
            decisions.insert_many(notes, ordered=False)


def _seen_op(change: SeenChange, run_id: str) -> UpdateOne:
    """The upsert of one item found again: its fields set, counted seen, this run kept among its runs."""
    counts = {"times_seen": 1, **({"reopened": 1} if change.reopened else {})}
    update = {"$set": change.fields, "$inc": counts, "$push": {"runs": {"$each": [run_id], "$slice": -RUNS_KEPT}}}
    return UpdateOne({"_id": change.key}, update, upsert=True)


# --------------------------------------------------------------------------- people's decisions


class ItemError(ConfigError):
    """A command about an item that cannot be done as asked (exit 2: nothing was changed)."""


def find_item(items: Collection, text: str) -> ItemDoc:
    """An item by its key or a unique prefix of it; ItemError says "no item" or how many match."""
    with mongo_errors("reading items"):
        doc: ItemDoc | None = items.find_one({"_id": text})
        if doc is not None:
            return doc
        # Keys hold ':' and ids: a prefix scan of the keys (a range on _id, as runs.find_run does).
        matches = list(items.find({"_id": {"$gte": text, "$lt": text + "\uffff"}}, {"_id": 1}))
    matches = [m for m in matches if str(m["_id"]).startswith(text)]
    if not matches:
        raise ItemError(f"no item {text!r} (see `reconcile items --state all`)")
    if len(matches) > 1:
        raise ItemError(f"ambiguous: {len(matches)} items match {text!r}; give more of the key")
    with mongo_errors("reading items"):
        found: ItemDoc | None = items.find_one({"_id": matches[0]["_id"]})
    if found is None:
        raise ItemError(f"no item {text!r}")
    return found


def list_items(items: Collection, states: tuple[str, ...]) -> list[ItemDoc]:
    with mongo_errors("reading items"):
        return list(items.find({"state": {"$in": list(states)}}).sort([("first_seen", 1), ("_id", 1)]))


def history(decisions: Collection, key: str) -> list[DecisionRecord]:
    with mongo_errors("reading decisions"):
        return sorted(decisions.find({"item": key}), key=lambda d: (d.get("at") or 0, str(d.get("_id"))))


def decide(
    items: Collection,
    decisions: Collection,
    doc: ItemDoc,
    action: str,
    by: str,
    reason: str | None,
    now: datetime,
    **more: str | None,
) -> ItemDoc:
    """Record one person's decision on an item and move it to its new state (compare-and-set on the
    state it was read in: a run or another person changing it meanwhile makes this an ItemError)."""
    state = doc.get("state")
    if not rules.may_take(doc, action):
        allowed = rules.TRANSITIONS[action][0]
        raise ItemError(f"item {doc['_id']} is {state}: `{action}` applies to {' or '.join(allowed)} items")
    at = to_unix(now)
    fields = rules.decision_fields(doc, action, by, reason, at)
    record = rules.decision_record(doc["_id"], action, by, reason, at, doc, more)
    with mongo_errors("recording a decision"):
        if fields:
            done = items.update_one({"_id": doc["_id"], "state": state}, {"$set": fields})
            if done.matched_count != 1:
                raise ItemError(f"item {doc['_id']} changed while this command ran; look again and retry")
        decisions.insert_one(record)
    return {**doc, **fields}


def dismissed_pairs(decisions: Collection) -> frozenset[tuple[str, str]]:
    """(order key, charge id) of every probable match a person dismissed: never proposed again."""
    with mongo_errors("reading dismissed probable matches"):
        docs = decisions.find({"action": "dismiss"}, {"order_key": 1, "charge_id": 1})
        return frozenset(
            (str(d["order_key"]), str(d["charge_id"])) for d in docs if d.get("order_key") and d.get("charge_id")
        )
