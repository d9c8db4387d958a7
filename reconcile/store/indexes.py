"""The MongoDB indexes the job needs: created by `reconcile init`, listed by `reconcile check` (a missing
one fails the check, a missing advised one is a warning)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pymongo
from pymongo.database import Database

from reconcile.config import MongoConfig, OrdersConfig
from reconcile.decide.audit import AUDIT_FLAG
from reconcile.store.mongo import mongo_errors
from reconcile.store.orders import MARKER

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IndexSpec:
    collection: str
    keys: tuple[tuple[str, int], ...]
    why: str
    # Sparse: only documents with the field are indexed (for a field few documents have, e.g. the
    # audit flag on orders a stopped run changed), so it costs nothing on the rest of a big collection.
    sparse: bool = False
    # Advised, not needed: the job's queries work without it on any size it reaches (a collection of
    # people's decisions), and an install from before it existed is not unfit. `check` warns.
    advised: bool = False

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.keys)

    def text(self) -> str:
        return f"{self.collection} {{{', '.join(f'{k}: {d}' for k, d in self.keys)}}}" + (
            " sparse" if self.sparse else ""
        )

    def shell(self) -> str:
        """The mongosh command that builds it."""
        keys = ", ".join(f'"{k}": {d}' for k, d in self.keys)
        return f"db.{self.collection}.createIndex({{{keys}}}" + (", {sparse: true})" if self.sparse else ")")


def required(m: MongoConfig, o: OrdersConfig) -> list[IndexSpec]:
    """The indexes the job's queries need, on the configured collections and order fields."""
    by_reference = [
        IndexSpec(m.orders_collection, ((field, 1),), why)
        for field, why in (
            (o.payment_intent_id_field, "orders naming a PaymentIntent"),
            (o.checkout_session_id_field, "orders naming a Checkout Session"),
        )
        if field
    ]
    return [
        IndexSpec(m.orders_collection, ((o.created_at_field, 1),), "orders created in the window"),
        IndexSpec(m.orders_collection, ((o.charge_id_field, 1),), "orders naming a charge"),
        *by_reference,
        IndexSpec(
            m.orders_collection,
            ((f"{MARKER}.{AUDIT_FLAG}", 1),),
            "orders a stopped run changed without its audit record (checked at every run's start)",
            sparse=True,
        ),
        IndexSpec(m.audit_collection, (("run_id", 1),), "repairs of one run (to see or undo them)"),
        IndexSpec(m.runs_collection, (("started", pymongo.DESCENDING),), "reconcile runs"),
        IndexSpec(m.runs_collection, (("email.status", 1),), "reports still to be emailed"),
        IndexSpec(m.runs_collection, (("invocation", 1),), "runs of a killed invocation"),
        IndexSpec(m.items_collection, (("state", 1), ("first_seen", 1)), "open items, oldest first"),
        IndexSpec(m.decisions_collection, (("item", 1),), "decisions on one item", advised=True),
        IndexSpec(m.decisions_collection, (("action", 1),), "dismissed probable matches (every run)", advised=True),
        # The watch list of slow payments (store/deadlines.py), past their deadline first: a few documents per
        # bank debit in flight; added after installs ran `init`.
        IndexSpec(m.state_collection, (("kind", 1), ("deadline", 1)), "watched payments (every run)", advised=True),
    ]


def present(db: Database, spec: IndexSpec) -> bool:
    """Whether an index starting with these fields, in this order, exists (a compound index serves
    queries on its prefix; direction not compared: a B-tree serves both directions, and some
    MongoDB-compatible servers do not report it)."""
    with mongo_errors(f"listing the indexes of {spec.collection}"):
        info = db[spec.collection].index_information()
    width = len(spec.fields)
    return any(tuple(k for k, _ in index.get("key", []))[:width] == spec.fields for index in info.values())


def create(db: Database, mongodb: MongoConfig, orders: OrdersConfig) -> list[tuple[IndexSpec, bool]]:
    """Create every missing index; (spec, created) per index. Idempotent."""
    done = []
    for spec in required(mongodb, orders):
        if present(db, spec):
            done.append((spec, False))
            continue
        with mongo_errors(f"creating an index on {spec.collection}"):
            db[spec.collection].create_index(list(spec.keys), sparse=spec.sparse)
        done.append((spec, True))
    return done


def warn_missing(db: Database, mongodb: MongoConfig, orders: OrdersConfig) -> list[IndexSpec]:
    """The indexes on orders the job's queries need that are missing; each logged once, with how to build it.

    The job does not build indexes itself: on a big collection that is a decision for whoever runs
    the database (it loads the server while it builds).
    """
    missing = [
        spec
        for spec in required(mongodb, orders)
        if spec.collection == mongodb.orders_collection and not present(db, spec)
    ]
    for spec in missing:
        log.warning(
            "load.index_missing",
            extra={
                "collection": spec.collection,
                "field": ", ".join(spec.fields),
                "hint": f"`reconcile init` creates it (or {spec.shell()}): without it every run scans the collection",
            },
        )
    return missing
