"""Apply repairs: compare-and-set updates in unordered bulk batches, each with an audit record."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

import pandas as pd
from pymongo import UpdateOne
from pymongo.collection import Collection
from pymongo.errors import BulkWriteError

from reconcile.config import OrdersConfig
from reconcile.decide.audit import AUDIT_FLAG, AUDIT_PENDING, AuditRecord, ChangeMarker, UndoSpec
from reconcile.decide.classify import MARKED_FAILED, REPAIRED
from reconcile.decide.undo import OrderNow
from reconcile.runtime import interrupt, progress
from reconcile.store.mongo import Document, mongo_errors
from reconcile.store.orders import MARKER, field_value, order_record, projection
from reconcile.timeutil import from_unix

log = logging.getLogger(__name__)

_DUPLICATE_KEY = 11000  # MongoDB's duplicate key error code
# MARKER (store/orders.py): the sub-document on each changed order: what changed, when, by which run.
PERSON_ACTIONS = ("undo", "confirmed")  # changes a person asked for (reconcile undo, items confirm)
# AUDIT_FLAG (decide/audit.py): a marker field present only until the change's audit record is written.


# One order's repair: (the compare-and-set filter, the update, the audit record if it takes effect).
_Plan = tuple[Document, Document, AuditRecord]


@dataclass
class RepairResult:
    repaired: list[str] = field(default_factory=list)  # order keys
    marked_failed: list[str] = field(default_factory=list)
    lost_race: list[str] = field(default_factory=list)  # changed by someone else meanwhile: left alone
    # Each lost race's order as it is now (None: it no longer exists); report/repair_words.py words it.
    lost_now: dict[str, OrderNow | None] = field(default_factory=dict)
    # The batch being written: its orders may have changed without being listed above yet (a run cut
    # off here leaves them flagged; the next run heals their audit records and reports them).
    in_doubt: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RepairStore:
    """What the repairs use: the orders and audit collections, the order fields, the batch size."""

    orders: Collection
    audit: Collection
    fields: OrdersConfig
    batch_size: int = 500


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def audit_record(
    order_id: object, order_key: str, marker: ChangeMarker, amount: Any, currency: str | None, store: RepairStore
) -> AuditRecord:
    """The audit record of one change, built from the marker left on the order (so it can be rebuilt later)."""
    fields = store.fields
    action = marker["action"]
    if action in PERSON_ACTIONS:
        return person_record(order_id, order_key, marker, amount, currency, store)
    run_id = marker["run_id"]
    to_status = marker.get("to_status") or (fields.paid_status if action == REPAIRED else fields.failed_status)
    from_status = marker.get("from_status") or fields.pending_status
    previous = marker.get("previous_charge_id")
    undo_set: dict[str, str | None] = {fields.status_field: from_status}
    undo_unset = [MARKER]
    if action == REPAIRED:
        if previous:
            undo_set[fields.charge_id_field] = previous
        else:
            undo_unset.append(fields.charge_id_field)
    return {
        "_id": f"{run_id}:{order_key}",
        "run_id": run_id,
        "at": marker["at"],
        "action": action,
        "collection": store.orders.name,
        "order_id": order_id,
        "order_key": order_key,
        "from_status": from_status,
        "to_status": to_status,
        "charge_id": marker.get("charge_id") if action == REPAIRED else None,
        "previous_charge_id": previous if action == REPAIRED else None,
        "charge_changed": action == REPAIRED,
        "amount": None if amount is None or pd.isna(amount) else int(amount),
        "currency": currency,
        # How to undo: put the order back exactly as it was, if it is still as we left it.
        "undo": _undo_spec(order_id, to_status, run_id, undo_set, undo_unset, store),
    }


def person_record(
    order_id: object, order_key: str, marker: ChangeMarker, amount: Any, currency: str | None, store: RepairStore
) -> AuditRecord:
    """The audit record of a change a person asked for (an undo, a confirmed probable match), from its marker."""
    fields = store.fields
    run_id = marker["run_id"]
    changed = bool(marker.get("charge_changed"))
    previous = marker.get("previous_charge_id")
    undo_set: dict[str, str | None] = {fields.status_field: marker.get("from_status")}
    undo_unset = [MARKER]
    if changed:
        if previous:
            undo_set[fields.charge_id_field] = previous
        else:
            undo_unset.append(fields.charge_id_field)
    return {
        "_id": f"{run_id}:{order_key}",
        "run_id": run_id,
        "at": marker["at"],
        "action": marker["action"],
        "by": marker.get("by"),
        "reason": marker.get("reason"),
        "undid_run": marker.get("undid_run"),
        "undid_action": marker.get("undid_action"),
        "collection": store.orders.name,
        "order_id": order_id,
        "order_key": order_key,
        "from_status": marker.get("from_status"),
        "to_status": marker.get("to_status"),
        "charge_id": marker.get("charge_id"),
        "previous_charge_id": previous,
        "charge_changed": changed,
        "hold": bool(marker.get("hold")),
        "amount": None if amount is None or pd.isna(amount) else int(amount),
        "currency": currency,
        "undo": _undo_spec(order_id, marker.get("to_status"), run_id, undo_set, undo_unset, store),
    }


def _undo_spec(
    order_id: object,
    to_status: str | None,
    run_id: str,
    undo_set: dict[str, str | None],
    undo_unset: list[str],
    store: RepairStore,
) -> UndoSpec:
    """How to undo a change: the order as the change left it, what to set and unset."""
    return {
        "filter": {"_id": order_id, store.fields.status_field: to_status, f"{MARKER}.run_id": run_id},
        "set": undo_set,
        "unset": undo_unset,
    }


def write_audit(store: RepairStore, records: list[AuditRecord]) -> None:
    """Audit records of changes made outside a run's repairs (undo, confirm); see `_write_audit`."""
    with mongo_errors("writing audit records"):
        _write_audit(store, records)


def _planned_change(row: Any, store: RepairStore, run_id: str, now: datetime, as_stored: Mapping[str, str]) -> _Plan:
    """(filter, update, audit) for one order. The filter is the compare-and-set: the order still pending
    with the charge id the run read (what the update overwrites), else it is left alone."""
    fields = store.fields
    action = row.outcome
    # Missing text in a frame may be NaN (pandas' str dtype), which is truthy and not valid in a document.
    previous = _text(row.stored_charge_id)
    # What is stored: the load keeps blank or padded text apart (its column holds the id stripped, or
    # None); None matches a missing field and a null alike.
    read = as_stored.get(str(row.order_key), previous)
    to_status = fields.paid_status if action == REPAIRED else fields.failed_status
    marker: ChangeMarker = {
        "action": action,
        "run_id": run_id,
        "at": now,
        "from_status": fields.pending_status,
        "to_status": to_status,
        # Cleared once the audit record is written: a run that dies in between leaves this for the next run.
        AUDIT_FLAG: AUDIT_PENDING,
    }
    update_set: dict[str, str | ChangeMarker | None] = {fields.status_field: to_status}
    if action == REPAIRED:
        marker["charge_id"] = row.charge_id
        marker["paid_at"] = from_unix(int(row.charge_created))
        marker["previous_charge_id"] = previous
        update_set[fields.charge_id_field] = row.charge_id
    update_set[MARKER] = marker
    cas_filter = {"_id": row.order_id, fields.status_field: fields.pending_status, fields.charge_id_field: read}
    audit = audit_record(row.order_id, row.order_key, marker, row.amount, _text(row.currency), store)
    return cas_filter, {"$set": update_set}, audit


def _write_audit(store: RepairStore, records: list[AuditRecord]) -> None:
    """Insert audit records, then clear the orders' pending flags.

    Idempotent: records are keyed by run and order, and one already there (written by an earlier
    attempt or by healing) is kept as it was, so a duplicate key is not an error here.
    """
    if not records:
        return
    _insert_audit(store.audit, records)
    for run_id in sorted({a["run_id"] for a in records}):
        store.orders.update_many(
            {
                "_id": {"$in": [a["order_id"] for a in records if a["run_id"] == run_id]},
                f"{MARKER}.run_id": run_id,
                f"{MARKER}.{AUDIT_FLAG}": AUDIT_PENDING,
            },
            {"$unset": {f"{MARKER}.{AUDIT_FLAG}": ""}},
        )


def owed_audit(store: RepairStore) -> list[AuditRecord]:
    """The audit records a stopped run owed (orders it changed whose record it never wrote), rebuilt
    from the orders' markers. A read: `write_owed` writes them."""
    wanted = {"_id": 1, MARKER: 1} | projection(store.fields)
    with mongo_errors("healing audit records"):
        docs = list(store.orders.find({f"{MARKER}.{AUDIT_FLAG}": AUDIT_PENDING}, wanted))
    records = []
    for doc in docs:
        marker = doc.get(MARKER)
        if not isinstance(marker, dict) or not marker.get("run_id") or not marker.get("action"):
            continue
        record = order_record(doc, store.fields)
        records.append(
            audit_record(
                doc["_id"], str(doc["_id"]), cast(ChangeMarker, marker), record["amount"], record["currency"], store
            )
        )
    return records


def write_owed(store: RepairStore, records: list[AuditRecord]) -> list[str]:
    """Write owed audit records (kept as they are where already there) and clear their orders' flags."""
    with mongo_errors("healing audit records"):
        _write_audit(store, records)
    if records:
        log.warning(
            "repair.audit_healed", extra={"orders": len(records), "runs": sorted({a["run_id"] for a in records})}
        )
    return [a["order_key"] for a in records]


def heal_audit(store: RepairStore) -> list[str]:
    """Write the audit records a stopped run owed: orders it changed whose record it never wrote."""
    return write_owed(store, owed_audit(store))


def apply_repairs(
    store: RepairStore,
    outcomes: pd.DataFrame,
    run_id: str,
    now: datetime,
    checkpoint: Callable[[], None] | None = None,
    into: RepairResult | None = None,
    as_stored: Mapping[str, str] | None = None,
) -> RepairResult:
    """Repair the `repaired` and `marked_failed` orders; returns which changes took effect.

    `checkpoint` (the run lease's check) is called before each batch: a run whose lease was taken
    over while it was paused (a GC pause, a frozen VM) stops there instead of writing beside the
    run that took over. `into` is filled batch by batch, so whatever stops the run, the caller
    knows which orders changed (every finished batch has its audit records). `as_stored`: by order
    key, charge ids the load read as blank or padded text (OrderLoad.charge_ids_as_stored).
    """
    todo = outcomes.loc[outcomes["outcome"].isin([REPAIRED, MARKED_FAILED])]
    result = into if into is not None else RepairResult()
    rows = list(todo.itertuples(index=False))
    size = store.batch_size
    for start in range(0, len(rows), size):
        progress.step("repair", start, len(rows))
        interrupt.checkpoint("repair")  # between batches: every finished batch has its audit records
        if checkpoint is not None:
            checkpoint()
        batch = rows[start : start + size]
        plans = [_planned_change(row, store, run_id, now, as_stored or {}) for row in batch]
        result.in_doubt = [str(row.order_key) for row in batch]
        changed, lost_now = _write_batch(store, batch, plans, run_id)
        _tally(result, batch, changed, lost_now)
        result.in_doubt = []
        log.info(
            "repair.batch",
            extra={"orders": len(batch), "changed": len(changed), "lost_race": len(batch) - len(changed)},
        )
    progress.step("repair", len(rows), len(rows))
    return result


def _write_batch(
    store: RepairStore, batch: list[Any], plans: list[_Plan], run_id: str
) -> tuple[set[str], dict[str, OrderNow | None]]:
    """Write one batch of compare-and-set updates and the audit records of those that took effect:
    (the order keys changed, each other order as it is now)."""
    with mongo_errors("repairing orders"):
        written = store.orders.bulk_write([UpdateOne(f, u) for f, u, _ in plans], ordered=False)
        lost_now: dict[str, OrderNow | None] = {}
        if written.modified_count == len(batch):
            changed = {row.order_key for row in batch}  # every compare-and-set took effect (the usual case)
        else:
            # Some lost their race: the ones that took effect carry this run's marker; the others
            # are read as they are now, for the report.
            now_docs = _orders_now(store, batch)
            changed = {k for k, doc in now_docs.items() if _marker_run(doc) == run_id}
            lost_now = {
                str(row.order_key): _order_now(now_docs.get(str(row.order_key)), store.fields)
                for row in batch
                if str(row.order_key) not in changed
            }
        _write_audit(store, [a for _, _, a in plans if a["order_key"] in changed])
    return changed, lost_now


def _tally(result: RepairResult, batch: list[Any], changed: set[str], lost_now: dict[str, OrderNow | None]) -> None:
    """Add a written batch's orders to the result: repaired, marked failed, or lost to another writer."""
    for row in batch:
        key = str(row.order_key)  # a string column (the order's _id as text)
        if key not in changed:
            result.lost_race.append(key)
            result.lost_now[key] = lost_now[key]
        elif row.outcome == REPAIRED:
            result.repaired.append(key)
        else:
            result.marked_failed.append(key)


def _orders_now(store: RepairStore, batch: list[Any]) -> dict[str, Document]:
    """A batch's orders as they are now (status, charge id, marker), by order key."""
    fields = store.fields
    wanted = {str(row.order_key): row.order_id for row in batch}
    found: dict[str, Document] = {}
    docs = store.orders.find(
        {"_id": {"$in": list(wanted.values())}},
        {"_id": 1, fields.status_field: 1, fields.charge_id_field: 1, MARKER: 1},
    )
    for doc in docs:
        key = str(doc["_id"])
        if key in wanted and doc["_id"] == wanted[key]:  # (a wire server may match an ObjectId's hex as a string)
            found[key] = doc
    return found


def _marker_run(doc: Document) -> Any:
    marker = doc.get(MARKER)
    return marker.get("run_id") if isinstance(marker, dict) else None


def _order_now(doc: Document | None, fields: OrdersConfig) -> OrderNow | None:
    """An order as it is now (status, charge id, marker); None when it no longer exists."""
    if doc is None:
        return None
    marker = doc.get(MARKER)
    return OrderNow(
        status=field_value(doc, fields.status_field),
        charge_id=field_value(doc, fields.charge_id_field),
        marker=cast(ChangeMarker, marker) if isinstance(marker, dict) else {},
    )


def changes_of_runs(store: RepairStore, run_ids: list[str]) -> list[AuditRecord]:
    """The audit records of these runs' changes (run, order, action, charge), oldest run first."""
    if not run_ids:
        return []
    wanted = {"_id": 0, "run_id": 1, "order_key": 1, "action": 1, "charge_id": 1, "amount": 1, "currency": 1}
    with mongo_errors("reading earlier runs' changes"):
        records: list[AuditRecord] = list(store.audit.find({"run_id": {"$in": run_ids}}, wanted))
    order = {r: i for i, r in enumerate(run_ids)}
    return sorted(records, key=lambda r: (order.get(r.get("run_id") or "", 0), str(r.get("order_key"))))


def _insert_audit(audit: Collection, records: list[AuditRecord]) -> None:
    """One unordered insert; a record already there (same run, same order) is kept as it was."""
    if not records:
        return
    try:
        audit.insert_many(records, ordered=False)
    except BulkWriteError as exc:
        if any(e.get("code") != _DUPLICATE_KEY for e in exc.details.get("writeErrors", [])) or exc.details.get(
            "writeConcernErrors"
        ):
            raise
