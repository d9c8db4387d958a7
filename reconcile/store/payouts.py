"""The payouts a run saw, kept so later runs re-check those not final yet (decide/payouts.WatchDoc):
one small document per payout in the `payouts.collection` collection (a payout a day or so).

Also the one order lookup itemizing needs: the orders that store a charge's id (the `order_fields`
link), for transactions whose charge names no order in its metadata.
"""

from __future__ import annotations

from collections.abc import Iterable

from pymongo import UpdateOne
from pymongo.collection import Collection

from reconcile.decide.items import LIVE, RESOLVED, ItemDoc
from reconcile.decide.payouts import WatchDoc
from reconcile.store.mongo import mongo_errors
from reconcile.store.orders import BATCH, field_value


def watched(payouts: Collection) -> list[str]:
    """The ids of the payouts later runs re-check (not final, or paid and still within the watch)."""
    with mongo_errors("reading watched payouts"):
        return sorted(str(d["_id"]) for d in payouts.find({"watching": True}, {"_id": 1}))


def known(payouts: Collection, ids: Iterable[str]) -> dict[str, WatchDoc]:
    """The kept documents of these payouts (those an earlier run saw)."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    with mongo_errors("reading watched payouts"):
        return {str(d["_id"]): d for d in payouts.find({"_id": {"$in": wanted}})}


def record(payouts: Collection, docs: Iterable[WatchDoc]) -> int:
    """Upsert each payout as this run saw it; how many were written."""
    ops = [UpdateOne({"_id": d["_id"]}, {"$set": dict(d)}, upsert=True) for d in docs]
    if not ops:
        return 0
    with mongo_errors("recording watched payouts"):
        payouts.bulk_write(ops, ordered=False)
    return len(ops)


def items_of(items: Collection, payout_ids: Iterable[str]) -> dict[str, ItemDoc]:
    """The payout items (any state) about these payouts, by key."""
    wanted = sorted(set(payout_ids))
    if not wanted:
        return {}
    with mongo_errors("reading payout items"):
        return {d["_id"]: d for d in items.find({"source": "payout", "object_id": {"$in": wanted}})}


def with_live_items(items: Collection) -> list[str]:
    """The payouts with an item a run still judges: open or acknowledged, or resolved by a person and not verified."""
    query = {
        "source": "payout",
        "$or": [{"state": {"$in": list(LIVE)}}, {"state": RESOLVED, "resolved_by": {"$ne": None}, "verified_at": None}],
    }
    with mongo_errors("reading payout items"):
        return sorted({str(d["object_id"]) for d in items.find(query, {"object_id": 1}) if d.get("object_id")})


def orders_by_charge(orders: Collection, charge_id_field: str, charge_ids: Iterable[str]) -> dict[str, str]:
    """charge id -> the key of the order storing it in `charge_id_field` (the first one found)."""
    wanted = sorted({c for c in charge_ids if c})
    found: dict[str, str] = {}
    with mongo_errors("reading orders of payout transactions"):
        for start in range(0, len(wanted), BATCH):
            batch = wanted[start : start + BATCH]
            for doc in orders.find({charge_id_field: {"$in": batch}}, {charge_id_field: 1}):
                charge = field_value(doc, charge_id_field)
                if isinstance(charge, str):
                    found.setdefault(charge, str(doc["_id"]))
    return found
