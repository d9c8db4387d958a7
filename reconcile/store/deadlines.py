"""The watch list: orders to judge again once their payment's deadline has passed (decide/deadlines.py).

One document per order in the job's state collection (beside the watermark and the lease), `_id`
`deadline:<order key>`, with the deadline and when a run last looked at the order (`checked`) as integer
unix seconds (compared on every server).
"""

from __future__ import annotations

import logging

import pymongo
from pymongo import DeleteOne, UpdateOne
from pymongo.collection import Collection

from reconcile.decide.deadlines import Watch, WatchList, WatchPlan
from reconcile.store.mongo import mongo_errors

log = logging.getLogger(__name__)

KIND = "deadline"
_PREFIX = f"{KIND}:"


def to_check(state: Collection, now: int, limit: int) -> WatchList:
    """At most `limit` watched orders to look at in this run: those whose deadline has passed at `now`,
    the earliest first, then the others, the longest unchecked first; and how many are watched in all."""
    if limit <= 0:
        return WatchList((), 0)
    with mongo_errors("reading the watch list"):
        docs = list(
            state.find({"kind": KIND, "deadline": {"$lte": now}})
            .sort([("deadline", pymongo.ASCENDING), ("_id", pymongo.ASCENDING)])
            .limit(limit)
        )
        if len(docs) < limit:  # a watch never checked (no `checked`) sorts first
            docs += list(
                state.find({"kind": KIND, "deadline": {"$gt": now}})
                .sort([("checked", pymongo.ASCENDING), ("deadline", pymongo.ASCENDING), ("_id", pymongo.ASCENDING)])
                .limit(limit - len(docs))
            )
        total = state.count_documents({"kind": KIND}) if len(docs) == limit else len(docs)
    watches = tuple(
        Watch(
            str(d["order_key"]),
            int(d["deadline"]),
            tuple(d.get("charge_ids") or ()),
            d.get("anchor"),
            d["checked"] if isinstance(d.get("checked"), int) else None,
            tuple((str(a[0]), str(a[1])) for a in d.get("attempts") or () if isinstance(a, list) and len(a) == 2),
        )
        for d in docs
        if isinstance(d.get("order_key"), str) and isinstance(d.get("deadline"), int)
    )
    return WatchList(watches, total)


def write(state: Collection, plan: WatchPlan, now: int) -> None:
    """The judged orders' watches removed, then the plan's watches set (one per order: the latest deadline),
    each marked checked at `now` (the run looked at its order)."""
    ops: list[DeleteOne | UpdateOne] = [DeleteOne({"_id": _PREFIX + key}) for key in plan.judged]
    ops += [
        UpdateOne(
            {"_id": _PREFIX + w.order_key},
            {
                "$set": {
                    "kind": KIND,
                    "order_key": w.order_key,
                    "deadline": w.deadline,
                    "charge_ids": list(w.charge_ids),
                    "anchor": w.anchor,
                    "checked": now,
                    "attempts": [list(a) for a in w.attempts],
                }
            },
            upsert=True,
        )
        for w in plan.watch
    ]
    if not ops:
        return
    with mongo_errors("writing the watch list"):
        state.bulk_write(ops, ordered=True)
    log.info("deadlines.watched", extra={"judged": len(plan.judged), "watching": len(plan.watch)})
