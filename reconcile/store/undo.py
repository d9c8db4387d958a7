"""Writes a person asks for on orders: undoing a run's changes, and confirming a probable match.

Each is a compare-and-set update leaving a marker on the order (like a repair: store/repair.py),
followed by its audit record, so each is undoable in turn with `reconcile undo`. decide/undo.py
decides which orders can be put back.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from pymongo import UpdateOne
from pymongo.collection import Collection

from reconcile.config import OrdersConfig
from reconcile.decide import undo as rules
from reconcile.decide.audit import AUDIT_FLAG, AUDIT_PENDING, HOLD, AuditRecord, ChangeMarker
from reconcile.errors import ChangedThenFailed, ConfigError, ReconcileError
from reconcile.store import runs as run_history
from reconcile.store.mongo import Document, mongo_errors
from reconcile.store.orders import MARKER, field_value, id_candidates, order_record
from reconcile.store.repair import RepairStore, audit_record, write_audit

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UndoTarget:
    """What `reconcile undo ID` names: a run, or an invocation's window runs (newest window first), and
    the audit records of their changes in that order."""

    run_id: str  # the id as resolved: a run's, an undo's or a confirm's, or an invocation's
    run_ids: tuple[str, ...]  # the runs whose changes are undone: one, or an invocation's windows
    records: list[AuditRecord]


def audit_of(store: RepairStore, runs: Collection, run_text: str, order_keys: tuple[str, ...] = ()) -> UndoTarget:
    """The changes to undo for an invocation id (every window's, newest window first), a run id, an undo or
    confirm id, or a unique prefix of a run id (looked up in the run history, `runs`)."""
    audit = store.audit
    windows = run_history.invocation_runs(runs, run_text)
    if len(windows) > 1:  # a catch-up: its id (the summary's `run_id`) stands for all its windows
        run_ids = tuple(str(d["_id"]) for d in windows)
        run_id = run_text
    else:
        run_id = _one_run(audit, runs, run_text)
        run_ids = (run_id,)
    with mongo_errors("reading audit records"):
        found: list[AuditRecord] = list(audit.find({"run_id": {"$in": list(run_ids)}}))
    if order_keys:
        wanted = set(order_keys)
        unknown = wanted - {str(r["order_key"]) for r in found}
        if unknown:
            raise ConfigError(f"run {run_id} did not change order(s) {', '.join(sorted(unknown))}")
        found = [r for r in found if str(r["order_key"]) in wanted]
    rank = {rid: i for i, rid in enumerate(run_ids)}
    found.sort(key=lambda r: (rank.get(str(r["run_id"]), 0), str(r["order_key"])))
    return UndoTarget(run_id, run_ids, found)


def _one_run(audit: Collection, runs: Collection, run_text: str) -> str:
    """The id of the one run (or undo, or confirm) `run_text` names: itself if it has audit records or a
    history entry, else the run it is a unique prefix of."""
    with mongo_errors("reading audit records"):
        if audit.find_one({"run_id": run_text}, {"_id": 1}) is not None:
            return run_text
    doc, matching = run_history.match_run(runs, run_text)
    if doc is not None:
        return str(doc["_id"])
    if matching:
        raise ConfigError(f"ambiguous: {matching} runs match {run_text!r}; give more of the id (see `reconcile runs`)")
    raise ConfigError(f"no run {run_text!r} in the history or the audit records (see `reconcile runs`)")


def orders_now(store: RepairStore, records: list[AuditRecord]) -> dict[str, rules.OrderNow]:
    """The orders the records name, as they are now (by their stored _id, its type kept)."""
    fields = store.fields
    ids = [r["order_id"] for r in records]
    found: dict[str, rules.OrderNow] = {}
    with mongo_errors("reading orders to undo"):
        for start in range(0, len(ids), 1000):
            for doc in store.orders.find({"_id": {"$in": ids[start : start + 1000]}}):
                marker = doc.get(MARKER)
                found[str(doc["_id"])] = rules.OrderNow(
                    status=field_value(doc, fields.status_field),
                    charge_id=field_value(doc, fields.charge_id_field),
                    marker=cast(ChangeMarker, marker) if isinstance(marker, dict) else {},
                )
    return found


def _expected(record: AuditRecord, fields: OrdersConfig) -> Document:
    """The compare-and-set filter: the order exactly as the change left it."""
    wanted = {
        "_id": record["order_id"],
        fields.status_field: record["to_status"],
        f"{MARKER}.run_id": record["run_id"],
    }
    if rules.charge_changed(record):
        wanted[fields.charge_id_field] = record.get("charge_id") or None
    return wanted


def put_back(
    store: RepairStore, steps: list[rules.Step], undo_id: str, by: str, now: datetime
) -> tuple[list[str], list[str]]:
    """Put back the orders of the PUT_BACK steps; (order keys put back, order keys changed meanwhile)."""
    fields = store.fields
    todo = [s for s in steps if s.step == rules.PUT_BACK]
    if not todo:
        return [], []
    ops: list[UpdateOne] = []
    audits: dict[str, AuditRecord] = {}
    for s in todo:
        r = s.record
        marker = _undo_marker(r, undo_id, by, now)
        ops.append(UpdateOne(_expected(r, fields), _undo_update(r, marker, fields)))
        audits[s.order_key] = audit_record(
            r["order_id"], s.order_key, marker, r.get("amount"), r.get("currency"), store
        )
    done = _write_put_back(store, todo, ops, undo_id)
    try:
        write_audit(store, [audits[k] for k in done])
    except ReconcileError as error:
        raise ChangedThenFailed(
            error,
            f"{len(done)} order(s) were put back by {undo_id} before this ({', '.join(done)}); their audit "
            "records are written by the same `reconcile undo` again, or by the next run",
        ) from None
    lost = [s.order_key for s in todo if s.order_key not in set(done)]
    log.info("undo.done", extra={"undo_id": undo_id, "put_back": len(done), "lost_race": len(lost)})
    return done, lost


def _undo_marker(r: AuditRecord, undo_id: str, by: str, now: datetime) -> ChangeMarker:
    """The marker an undo leaves on the order it puts back (what it undid, and how to undo it in turn)."""
    changed = rules.charge_changed(r)
    return {
        "action": rules.UNDO,
        "run_id": undo_id,
        "at": now,
        "by": by,
        "undid_run": r["run_id"],
        "undid_action": r["action"],
        "from_status": r["to_status"],
        "to_status": r["from_status"],
        "charge_id": r.get("previous_charge_id") if changed else None,
        "previous_charge_id": r.get("charge_id") if changed else None,
        "charge_changed": changed,
        HOLD: rules.holds(r),
        AUDIT_FLAG: AUDIT_PENDING,
    }


def _undo_update(r: AuditRecord, marker: ChangeMarker, fields: OrdersConfig) -> Document:
    """The update putting an order back as the change found it, with the undo's marker."""
    to_set: dict[str, str | ChangeMarker | None] = {fields.status_field: r["from_status"], MARKER: marker}
    if marker["charge_changed"] and r.get("previous_charge_id"):
        to_set[fields.charge_id_field] = r["previous_charge_id"]
    elif marker["charge_changed"]:
        return {"$set": to_set, "$unset": {fields.charge_id_field: ""}}
    return {"$set": to_set}


def _write_put_back(store: RepairStore, todo: list[rules.Step], ops: list[UpdateOne], undo_id: str) -> list[str]:
    """The compare-and-set updates of an undo; the order keys put back (the others changed meanwhile)."""
    orders = store.orders
    try:
        with mongo_errors("undoing changes"):
            written = orders.bulk_write(ops, ordered=False)
            if written.modified_count == len(todo):
                return [s.order_key for s in todo]
            # Some were changed between the read and this write: those carry no marker of this undo.
            mine = {
                str(d["_id"])
                for d in orders.find(
                    {"_id": {"$in": [s.record["order_id"] for s in todo]}, f"{MARKER}.run_id": undo_id},
                    {"_id": 1},
                )
            }
            return [s.order_key for s in todo if s.order_key in mine]
    except ReconcileError as error:  # each order is put back whole or not at all; which ones is unknown here
        raise ChangedThenFailed(
            error,
            f"the {len(todo)} order(s) being put back by {undo_id} may have changed; "
            "the same `reconcile undo` again says which and finishes the job",
        ) from None


def heal_owed(store: RepairStore, steps: list[rules.Step], found: dict[str, rules.OrderNow]) -> list[str]:
    """Write the audit records an earlier undo of these same changes still owes (MongoDB was lost between
    its putting the orders back and writing their records): rebuilt from the markers it left, as a run
    heals a stopped run's. Returns the order keys."""
    owed: list[AuditRecord] = []
    for s in steps:
        order = found.get(s.order_key)
        if s.step != rules.ALREADY_UNDONE or order is None or order.marker.get(AUDIT_FLAG) != AUDIT_PENDING:
            continue
        r = s.record
        owed.append(audit_record(r["order_id"], s.order_key, order.marker, r.get("amount"), r.get("currency"), store))
    write_audit(store, owed)
    return [a["order_key"] for a in owed]


def confirm_charge(
    store: RepairStore,
    order_key: str,
    charge_id: str,
    confirm_id: str,
    by: str,
    reason: str | None,
    now: datetime,
) -> AuditRecord:
    """Write a confirmed probable match's charge id onto its order (compare-and-set: only an order with
    no charge id yet), with a marker and an audit record (undoable). Returns the audit record; an order
    that already has a charge id, or is gone, is left alone (ConfigError naming what it has)."""
    fields = store.fields
    orders = store.orders
    with mongo_errors("reading the order to confirm"):
        docs = list(orders.find({"_id": {"$in": id_candidates(order_key)}}))
    docs = [d for d in docs if str(d["_id"]) == order_key]  # (a wire server may match an ObjectId's hex as a string)
    if not docs:
        raise ConfigError(f"order {order_key} no longer exists: nothing confirmed")
    doc = docs[0]
    stored = field_value(doc, fields.charge_id_field)
    if stored:
        raise ConfigError(f"order {order_key} already has charge {stored}: left alone, nothing confirmed")
    status = field_value(doc, fields.status_field)
    marker: ChangeMarker = {
        "action": rules.CONFIRMED,
        "run_id": confirm_id,
        "at": now,
        "by": by,
        "reason": reason,
        "from_status": status,
        "to_status": status,
        "charge_id": charge_id,
        "previous_charge_id": None,
        "charge_changed": True,
        AUDIT_FLAG: AUDIT_PENDING,
    }
    cas = {"_id": doc["_id"], fields.charge_id_field: {"$in": [None, ""]}, fields.status_field: status}
    with mongo_errors("confirming a probable match"):
        done = orders.update_one(cas, {"$set": {fields.charge_id_field: charge_id, MARKER: marker}})
    if done.modified_count != 1:
        raise ConfigError(f"order {order_key} changed while confirming: left alone, nothing confirmed")
    record = order_record(doc, fields)
    audit = audit_record(doc["_id"], order_key, marker, record["amount"], record["currency"], store)
    write_audit(store, [audit])
    return audit


def clear_hold(orders: Collection, order_key: str) -> bool:
    """Remove an undo's hold from an order, so the next run may change it again; False if none was held."""
    with mongo_errors("clearing the undo marker"):
        done = orders.update_many(
            {"_id": {"$in": id_candidates(order_key)}, f"{MARKER}.{HOLD}": True}, {"$set": {f"{MARKER}.{HOLD}": False}}
        )
    return done.modified_count > 0
