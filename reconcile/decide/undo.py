"""Undoing a run, the decision: for each audit record of the run, whether its order can be put back.

Pure: audit records and the orders as they are now in, one step per record out. store/undo.py
reads and writes; run/undo.py takes the lease around it.

An audit record says what a change did (status `from_status` -> `to_status`; when
`charge_changed`, the charge id `previous_charge_id` -> `charge_id`) and which run did it (the
order's `reconcile.run_id` marker). An order is put back only if it is still exactly as that run
left it (compare-and-set); an order changed since is left alone, the step holding it as it is now.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reconcile.decide.audit import AuditRecord, ChangeMarker

REPAIRED = "repaired"  # decide.classify's outcome names, kept as the audit records' actions
MARKED_FAILED = "marked_failed"
UNDO = "undo"
CONFIRMED = "confirmed"  # a person confirmed a probable match: the charge id written onto the order

# Steps
PUT_BACK = "put_back"
ALREADY_UNDONE = "already_undone"
CHANGED_SINCE = "changed_since"
MISSING = "missing"


@dataclass(frozen=True)
class OrderNow:
    """The fields of an order an undo compares, as they are now."""

    status: Any
    charge_id: Any
    marker: ChangeMarker


@dataclass(frozen=True)
class Step:
    record: AuditRecord  # the audit record to undo
    step: str  # PUT_BACK, ALREADY_UNDONE, CHANGED_SINCE, MISSING
    order: OrderNow | None  # the order as it is now (None: it no longer exists); report/repair_words.py words it

    @property
    def order_key(self) -> str:
        return str(self.record["order_key"])


def charge_changed(record: AuditRecord) -> bool:
    """Whether the change set the order's charge id (records before this field: repairs did)."""
    flag = record.get("charge_changed")
    return bool(flag) if flag is not None else record.get("action") == REPAIRED


def holds(record: AuditRecord) -> bool:
    """Undoing a repair or a failure mark holds the order: the job would otherwise redo it next run."""
    return record.get("action") in (REPAIRED, MARKED_FAILED)


def left_as_the_run_left_it(record: AuditRecord, order: OrderNow) -> bool:
    if order.status != record.get("to_status") or order.marker.get("run_id") != record.get("run_id"):
        return False
    return not charge_changed(record) or (order.charge_id or None) == (record.get("charge_id") or None)


def already_undone(record: AuditRecord, order: OrderNow) -> bool:
    """An earlier undo of this same change put the order back and nothing changed it since."""
    m = order.marker
    return (
        m.get("action") == UNDO
        and m.get("undid_run") == record.get("run_id")
        and order.status == record.get("from_status")
        and (not charge_changed(record) or (order.charge_id or None) == (record.get("previous_charge_id") or None))
    )


def plan(records: list[AuditRecord], orders: dict[str, OrderNow]) -> list[Step]:
    """One step per audit record (by order key), in the records' order."""
    steps = []
    for record in records:
        order = orders.get(str(record["order_key"]))
        if order is None:
            steps.append(Step(record, MISSING, None))
        elif already_undone(record, order):
            steps.append(Step(record, ALREADY_UNDONE, order))
        elif left_as_the_run_left_it(record, order):
            steps.append(Step(record, PUT_BACK, order))
        else:
            steps.append(Step(record, CHANGED_SINCE, order))
    return steps
