"""The MongoDB indexes the job needs: created by `reconcile init`, listed by `reconcile check`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pymongo
from pymongo.database import Database

from reconcile.config import Config
from reconcile.mongo import mongo_errors


@dataclass(frozen=True)
class IndexSpec:
    collection: str
    keys: tuple[tuple[str, int], ...]
    why: str

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.keys)

    def text(self) -> str:
        return f"{self.collection} {{{', '.join(f'{k}: {d}' for k, d in self.keys)}}}"


def required(config: Config) -> list[IndexSpec]:
    m, o = config.mongodb, config.orders
    return [
        IndexSpec(m.orders_collection, ((o.created_at_field, 1),), "orders created in the window"),
        IndexSpec(m.orders_collection, ((o.charge_id_field, 1),), "orders naming a charge"),
        IndexSpec(m.audit_collection, (("run_id", 1),), "repairs of one run (to see or undo them)"),
        IndexSpec(m.runs_collection, (("started", pymongo.DESCENDING),), "reconcile runs"),
        IndexSpec(m.runs_collection, (("email.status", 1),), "reports still to be emailed"),
        IndexSpec(m.runs_collection, (("invocation", 1),), "runs of a killed invocation"),
        IndexSpec(m.items_collection, (("state", 1), ("first_seen", 1)), "open items, oldest first"),
    ]


def present(db: Database, spec: IndexSpec) -> bool:
    """Whether an index on these fields, in this order, exists (direction not compared: a
    B-tree serves both directions; some MongoDB-compatible servers do not report it)."""
    with mongo_errors(f"listing the indexes of {spec.collection}"):
        info: dict[str, Any] = db[spec.collection].index_information()
    return any(tuple(k for k, _ in index.get("key", [])) == spec.fields for index in info.values())


def create(db: Database, config: Config) -> list[tuple[IndexSpec, bool]]:
    """Create every missing index; (spec, created) per index. Idempotent."""
    done = []
    for spec in required(config):
        if present(db, spec):
            done.append((spec, False))
            continue
        with mongo_errors(f"creating an index on {spec.collection}"):
            db[spec.collection].create_index(list(spec.keys))
        done.append((spec, True))
    return done
