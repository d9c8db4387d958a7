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
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pymongo
from pymongo import UpdateOne
from pymongo.collection import Collection

from reconcile.config import DEFAULT_SEVERITY, Threshold
from reconcile.decide import items as rules
from reconcile.decide.findings import Finding
from reconcile.decide.items import (
    ACCEPTED,
    ACKNOWLEDGED,
    CARRIED,
    LIVE,
    OPEN,
    RESOLVED,
    ItemsResult,
    age,
    plain_value,
)
from reconcile.errors import ConfigError
from reconcile.store.mongo import mongo_errors
from reconcile.timeutil import to_unix

log = logging.getLogger(__name__)

RUNS_KEPT = 100  # the latest runs that saw an item, kept on it (`reconcile items show`)
JOB = "reconcile"  # who the job is, in the decisions it records itself (reopenings, verifications)


def _person_resolved(doc: dict[str, Any]) -> bool:
    """Marked resolved by a person and not yet verified by a run covering it."""
    return doc.get("state") == RESOLVED and bool(doc.get("resolved_by")) and not doc.get("verified_at")


def open_items(items: Collection) -> list[dict[str, Any]]:
    """Items a run still judges: open, acknowledged, and those a person marked resolved (to verify)."""
    order = [("first_seen", pymongo.ASCENDING), ("_id", pymongo.ASCENDING)]
    with mongo_errors("reading open items"):
        live = list(items.find({"state": {"$in": list(LIVE)}}).sort(order))
        marked = [d for d in items.find({"state": RESOLVED, "verified_at": None}) if _person_resolved(d)]
    return sorted([*live, *marked], key=lambda d: (d.get("first_seen") or 0, d["_id"]))


def closed_by_people(items: Collection, since: int) -> list[dict[str, Any]]:
    """Items accepted or resolved by a person at or after `since` (unix seconds), latest first."""
    with mongo_errors("reading decided items"):
        docs = list(items.find({"state": {"$in": [ACCEPTED, RESOLVED]}, "decided_at": {"$gte": since}}))
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
    cleared: dict[str, str] | None = None,
    checked: Iterable[str] = (),
    dry_run: bool = False,
    decisions: Collection | None = None,
    thresholds: tuple[Threshold, ...] = DEFAULT_SEVERITY,
) -> ItemsResult:
    """Record this run's findings, resolve what it proved gone; return the open items and the resolved.

    `confirmed`: findings of re-checked items still present; `cleared`: re-checked items now
    gone (key -> why); `checked`: keys re-checked this run. `dry_run` changes nothing. People's
    decisions are honoured (decide.items.seen_again); what the job decides about them (a reopening,
    a verified resolution) is recorded in `decisions`.
    """
    at, lo, hi = to_unix(now), to_unix(since), to_unix(until)
    existing = {d["_id"]: d for d in open_items(items)}
    seen = {f["key"]: f for f in [*findings, *confirmed]}
    with mongo_errors("reading items"):
        known = {d["_id"]: d for d in items.find({"_id": {"$in": list(seen)}})} if seen else {}
    resolutions = _resolutions(existing, seen, dict(cleared or {}), lo, hi)

    ops, result = [], ItemsResult()
    notes: list[dict[str, Any]] = []
    after: dict[str, dict[str, Any]] = {k: d for k, d in existing.items() if k not in resolutions}
    for key, f in seen.items():
        seen_op = _seen_again(key, f, known.get(key), at, run_id)
        ops.append(seen_op.op)
        after[key] = seen_op.merged
        result.new += seen_op.fresh
        if seen_op.note is not None:
            notes.append(seen_op.note)
    for key in set(checked) - set(seen) - set(resolutions):  # looked at, could not tell: still open
        ops.append(UpdateOne({"_id": key, "state": {"$in": list(LIVE)}}, {"$set": {"last_checked": at}}))
    for key, why in resolutions.items():
        doc = existing[key]
        if _person_resolved(doc):  # a person said it was fixed; this run proves it
            verified = {"verified_at": at, "verified_run": run_id, "resolution": f"verified: {why}"}
            ops.append(UpdateOne({"_id": key, "state": RESOLVED}, {"$set": verified}))
            notes.append(_decision(key, "verified", JOB, why, at, doc, run_id=run_id))
            continue
        ops.append(
            UpdateOne(
                {"_id": key, "state": {"$in": list(LIVE)}},
                {"$set": {"state": RESOLVED, "resolved_at": at, "resolved_run": run_id, "resolution": why}},
            )
        )
        result.resolved.append(dict(doc, state=RESOLVED, resolved_at=at, resolved_run=run_id, resolution=why))
    if ops and not dry_run:
        with mongo_errors("recording open items"):
            items.bulk_write(ops, ordered=False)
            if notes and decisions is not None:
                decisions.insert_many(notes, ordered=False)
    _sort_live(result, after, at, run_id, thresholds)
    if not dry_run:
        result.closed = closed_by_people(items, lo)
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


def _resolutions(
    existing: dict[str, dict[str, Any]], seen: dict[str, Any], cleared: dict[str, str], lo: int, hi: int
) -> dict[str, str]:
    """Open items this run proves gone (key -> why): re-checked and cleared, or not found again in their window."""
    resolutions: dict[str, str] = {}
    for key, doc in existing.items():
        if key in seen:
            continue
        if key in cleared:
            resolutions[key] = cleared[key]
        elif doc.get("anchor") is not None and lo <= doc["anchor"] < hi:
            resolutions[key] = "not found again when its window was reconciled"
    return resolutions


@dataclass
class _SeenAgain:
    op: UpdateOne
    merged: dict[str, Any]  # the item as it stands after the update
    fresh: bool  # new, or reopened after the job resolved it
    note: dict[str, Any] | None  # the job's decision to record (a reopening)


def _seen_again(key: str, f: Finding, before: dict[str, Any] | None, at: int, run_id: str) -> _SeenAgain:
    """The update for one finding found again (or for the first time), honouring a person's decision."""
    fresh = before is None or (before.get("state") == RESOLVED and not _person_resolved(before))
    again = rules.seen_again(None if fresh else before, f)
    carried = {k: plain_value(f.get(k)) for k in CARRIED}
    fields: dict[str, Any] = {
        **carried,
        "state": again.state,
        "last_seen": at,
        "last_run": run_id,
        "last_checked": at,
    }
    if again.state != ACCEPTED:
        fields.update(resolved_at=None, resolved_run=None, resolution=None, resolved_by=None, verified_at=None)
    if again.flag is not None or fresh:
        fields["flag"] = again.flag
    update: dict[str, Any] = {
        "$set": fields,
        "$inc": {"times_seen": 1},
        "$push": {"runs": {"$each": [run_id], "$slice": -RUNS_KEPT}},
    }
    if fresh:
        fields.update(first_seen=at, first_run=run_id)
        if before is not None:
            update["$inc"]["reopened"] = 1
    note = None
    if again.note is not None:
        fields.update(last_note=again.note, last_note_by=JOB, last_note_at=at)
        note = _decision(key, "reopen", JOB, again.note, at, dict(before or {}, **fields), run_id=run_id)
    merged = dict(before or {}, _id=key, **fields)
    merged["times_seen"] = int((before or {}).get("times_seen") or 0) + 1
    return _SeenAgain(UpdateOne({"_id": key}, update, upsert=True), merged, fresh, note)


def _sort_live(
    result: ItemsResult,
    after: dict[str, dict[str, Any]],
    at: int,
    run_id: str,
    thresholds: tuple[Threshold, ...],
) -> None:
    """Open and handled items, oldest first, aged and given their severity."""
    live = sorted(
        (d for d in after.values() if not _person_resolved(d)), key=lambda d: (d.get("first_seen") or at, d["_id"])
    )
    result.open = [d for d in live if d.get("state") == OPEN]
    result.handled = [d for d in live if d.get("state") == ACKNOWLEDGED]
    result.buckets = age(result.open, at, run_id)
    age(result.handled, at, run_id)
    for doc in [*result.open, *result.handled]:
        doc["severity"] = rules.severity(
            rules.stake(doc), doc.get("currency"), at - int(doc.get("first_seen") or at), thresholds
        )


# --------------------------------------------------------------------------- people's decisions


class ItemError(ConfigError):
    """A command about an item that cannot be done as asked (exit 2: nothing was changed)."""


def _decision(
    key: str, action: str, by: str, reason: str | None, at: int, doc: dict[str, Any], **more: Any
) -> dict[str, Any]:
    """One decision record: who, when, why, and the item's facts at that moment."""
    return {
        "item": key,
        "action": action,
        "by": by,
        "at": at,
        "reason": reason,
        "state_before": doc.get("state"),
        "facts": rules.facts_of(doc),
        **more,
    }


def find_item(items: Collection, text: str) -> dict[str, Any]:
    """An item by its key or a unique prefix of it; ItemError says "no item" or how many match."""
    with mongo_errors("reading items"):
        doc: dict[str, Any] | None = items.find_one({"_id": text})
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
        found: dict[str, Any] | None = items.find_one({"_id": matches[0]["_id"]})
    if found is None:
        raise ItemError(f"no item {text!r}")
    return found


def list_items(items: Collection, states: tuple[str, ...]) -> list[dict[str, Any]]:
    with mongo_errors("reading items"):
        return list(items.find({"state": {"$in": list(states)}}).sort([("first_seen", 1), ("_id", 1)]))


def history(decisions: Collection, key: str) -> list[dict[str, Any]]:
    with mongo_errors("reading decisions"):
        return sorted(decisions.find({"item": key}), key=lambda d: (d.get("at") or 0, str(d.get("_id"))))


# What each decision does to the item's state, and from which states it may be taken.
TRANSITIONS: dict[str, tuple[tuple[str, ...], str | None]] = {
    "note": (rules.STATES, None),
    "ack": (LIVE, ACKNOWLEDGED),
    "accept": (LIVE, ACCEPTED),
    "resolve": (LIVE, RESOLVED),
    "confirm": (LIVE, RESOLVED),
    "dismiss": (LIVE, RESOLVED),
    "clear": (LIVE, RESOLVED),
}


def decide(
    items: Collection,
    decisions: Collection,
    doc: dict[str, Any],
    action: str,
    by: str,
    reason: str | None,
    now: datetime,
    **more: Any,
) -> dict[str, Any]:
    """Record one person's decision on an item and move it to its new state (compare-and-set on the
    state it was read in: a run or another person changing it meanwhile makes this an ItemError)."""
    allowed, to_state = TRANSITIONS[action]
    state = doc.get("state")
    if state not in allowed:
        raise ItemError(f"item {doc['_id']} is {state}: `{action}` applies to {' or '.join(allowed)} items")
    at = to_unix(now)
    fields: dict[str, Any] = {"flag": None} if action != "note" else {}
    if reason:
        fields.update(last_note=reason, last_note_by=by, last_note_at=at)
    if to_state is not None:
        fields.update(state=to_state, decision=action, decided_by=by, decided_at=at, reason=reason)
    if to_state == ACCEPTED:
        fields["accepted_facts"] = rules.facts_of(doc)
    if to_state == RESOLVED:
        fields.update(
            resolved_by=by,
            resolved_at=at,
            resolved_run=None,
            verified_at=None,
            resolution=f"{_DONE[action]} by {by}" + (f": {reason}" if reason else ""),
        )
    record = _decision(doc["_id"], action, by, reason, at, doc, **more)
    with mongo_errors("recording a decision"):
        if fields:
            done = items.update_one({"_id": doc["_id"], "state": state}, {"$set": fields})
            if done.matched_count != 1:
                raise ItemError(f"item {doc['_id']} changed while this command ran; look again and retry")
        decisions.insert_one(record)
    return dict(doc, **fields)


_DONE = {"resolve": "marked resolved", "confirm": "confirmed", "dismiss": "dismissed", "clear": "undo marker cleared"}


def dismissed_pairs(decisions: Collection) -> frozenset[tuple[str, str]]:
    """(order key, charge id) of every probable match a person dismissed: never proposed again."""
    with mongo_errors("reading dismissed probable matches"):
        docs = decisions.find({"action": "dismiss"}, {"order_key": 1, "charge_id": 1})
        return frozenset(
            (str(d["order_key"]), str(d["charge_id"])) for d in docs if d.get("order_key") and d.get("charge_id")
        )
