"""What the bank leg reads from MongoDB: the payouts earlier runs saw (store/payouts.py keeps them) that
arrived in the days a statement covers, and the bank items a run judges again. Read only: the items are
written with every other finding (store/items.py), the payouts by store/payouts.py."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

from pymongo.collection import Collection

from reconcile.decide.bank import SOURCE
from reconcile.decide.items import LIVE, RESOLVED
from reconcile.decide.payouts import WatchDoc
from reconcile.store.mongo import mongo_errors


def _unix(day: date) -> int:
    return int(datetime.combine(day, time(), UTC).timestamp())


def payouts_arriving(payouts: Collection, first: date, last: date) -> list[WatchDoc]:
    """The kept payouts whose arrival date is from `first` to `last` (both included)."""
    query = {"arrival_date": {"$gte": _unix(first), "$lte": _unix(last)}}
    with mongo_errors("reading kept payouts"):
        return list(payouts.find(query))


def first_arrival(payouts: Collection) -> date | None:
    """The earliest arrival date of any payout a run saw (None: none)."""
    with mongo_errors("reading kept payouts"):
        doc = next(iter(payouts.find({}, {"arrival_date": 1}).sort("arrival_date", 1).limit(1)), None)
    if doc is None or not isinstance(doc.get("arrival_date"), int):
        return None
    return datetime.fromtimestamp(doc["arrival_date"], UTC).date()


def live_items(items: Collection) -> list[str]:
    """The keys of the bank items a run still judges: open or acknowledged, or resolved by a person and not
    verified yet."""
    query = {
        "source": SOURCE,
        "$or": [{"state": {"$in": list(LIVE)}}, {"state": RESOLVED, "resolved_by": {"$ne": None}, "verified_at": None}],
    }
    with mongo_errors("reading bank items"):
        return sorted(str(d["_id"]) for d in items.find(query, {"_id": 1}))
