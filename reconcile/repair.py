"""Apply repairs: compare-and-set updates in unordered bulk batches, each with an audit record."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd
from pymongo import UpdateOne
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import BulkWriteError

from reconcile.classify import IN_FLIGHT, MARKED_FAILED, REPAIRED
from reconcile.config import Config
from reconcile.mongo import mongo_errors
from reconcile.timeutil import from_unix

log = logging.getLogger(__name__)

BATCH = 500
_DUPLICATE_KEY = 11000
MARKER = "reconcile"  # sub-document on each changed order: what changed, when, by which run


@dataclass
class RepairResult:
    repaired: list[str] = field(default_factory=list)       # order keys
    marked_failed: list[str] = field(default_factory=list)
    lost_race: list[str] = field(default_factory=list)      # changed by someone else meanwhile: left alone


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _planned_change(row: Any, config: Config, run_id: str, now: datetime) -> tuple[dict, dict, dict]:
    """(filter, update, audit) for one order; the filter's pending status makes it compare-and-set."""
    fields = config.orders
    action = row.outcome
    # Missing text in a frame may be NaN (pandas' str dtype), which is truthy and not valid in a document.
    previous = _text(row.stored_charge_id)
    to_status = fields.paid_status if action == REPAIRED else fields.failed_status
    marker: dict[str, Any] = {"action": action, "run_id": run_id, "at": now}
    update_set: dict[str, Any] = {fields.status_field: to_status}
    if action == REPAIRED:
        marker["charge_id"] = row.charge_id
        marker["paid_at"] = from_unix(int(row.charge_created))
        update_set[fields.charge_id_field] = row.charge_id
    update_set[MARKER] = marker
    cas_filter = {"_id": row.order_id, fields.status_field: fields.pending_status}
    audit = {
        "_id": f"{run_id}:{row.order_key}",
        "run_id": run_id,
        "at": now,
        "action": action,
        "collection": config.mongodb.orders_collection,
        "order_id": row.order_id,
        "order_key": row.order_key,
        "from_status": fields.pending_status,
        "to_status": to_status,
        "charge_id": row.charge_id if action == REPAIRED else None,
        "previous_charge_id": previous if action == REPAIRED else None,
        "amount": None if pd.isna(row.amount) else int(row.amount),
        "currency": _text(row.currency),
        # How to undo: put the order back exactly as it was, if it is still as we left it.
        "undo": {
            "filter": {"_id": row.order_id, fields.status_field: to_status, f"{MARKER}.run_id": run_id},
            "set": {fields.status_field: fields.pending_status}
            | ({fields.charge_id_field: previous} if action == REPAIRED and previous else {}),
            "unset": [MARKER] + ([fields.charge_id_field] if action == REPAIRED and not previous else []),
        },
    }
    return cas_filter, {"$set": update_set}, audit


def apply_repairs(db: Database, config: Config, outcomes: pd.DataFrame, run_id: str, now: datetime) -> RepairResult:
    """Repair the `repaired` and `marked_failed` orders; returns which changes took effect."""
    todo = outcomes.loc[outcomes["outcome"].isin([REPAIRED, MARKED_FAILED])]
    result = RepairResult()
    orders = db[config.mongodb.orders_collection]
    audit = db[config.mongodb.audit_collection]
    rows = list(todo.itertuples(index=False))
    for start in range(0, len(rows), BATCH):
        batch = rows[start : start + BATCH]
        plans = [_planned_change(row, config, run_id, now) for row in batch]
        with mongo_errors("repairing orders"):
            written = orders.bulk_write([UpdateOne(f, u) for f, u, _ in plans], ordered=False)
            if written.modified_count == len(batch):
                changed = {row.order_key for row in batch}  # every compare-and-set took effect (the usual case)
            else:
                # Some lost their race: the ones that took effect carry this run's marker.
                changed = {
                    str(doc["_id"])
                    for doc in orders.find(
                        {"_id": {"$in": [row.order_id for row in batch]}, f"{MARKER}.run_id": run_id}, {"_id": 1}
                    )
                }
            _insert_audit(audit, [a for _, _, a in plans if a["order_key"] in changed])
        for row in batch:
            if row.order_key not in changed:
                result.lost_race.append(row.order_key)
            elif row.outcome == REPAIRED:
                result.repaired.append(row.order_key)
            else:
                result.marked_failed.append(row.order_key)
        log.info(
            "repair.batch",
            extra={"orders": len(batch), "changed": len(changed), "lost_race": len(batch) - len(changed)},
        )
    return result


def _insert_audit(audit: Collection, records: list[dict[str, Any]]) -> None:
    """One audit record per change; a record already there (same run, same order) is kept as it was."""
    if not records:
        return
    try:
        audit.insert_many(records, ordered=False)
    except BulkWriteError as exc:
        if any(e.get("code") != _DUPLICATE_KEY for e in exc.details.get("writeErrors", [])) or exc.details.get(
            "writeConcernErrors"
        ):
            raise


def mark_lost_races(outcomes: pd.DataFrame, lost: list[str]) -> pd.DataFrame:
    """An order changed by someone else between load and repair is left alone and listed as in flight."""
    if not lost:
        return outcomes
    mask = outcomes["outcome"].isin([REPAIRED, MARKED_FAILED]) & outcomes["order_key"].isin(lost)
    outcomes = outcomes.copy()
    outcomes.loc[mask, "outcome"] = IN_FLIGHT
    outcomes.loc[mask, "detail"] = "changed by another writer during this run; left alone"
    return outcomes
