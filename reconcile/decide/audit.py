"""What a change to an order leaves behind: the marker on the order and its audit record (typed records).

store/repair.py and store/undo.py write both (keys as stored: these stay dicts for pymongo);
decide/undo.py decides from them which changes can be put back; report/ lists them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final, TypedDict

AUDIT_FLAG: Final = "audit"  # marker field present only until the change's audit record is written
AUDIT_PENDING: Final = "pending"
HOLD: Final = "hold"  # marker field: an undone repair or failure mark the job must not redo


class ChangeMarker(TypedDict, total=False):
    """The `reconcile` sub-document on a changed order: what changed, when, by which run (or person)."""

    action: str  # repaired, marked_failed, undo, confirmed
    run_id: str  # the run, undo or confirm that made the change
    at: datetime
    from_status: str | None
    to_status: str | None
    charge_id: str | None
    paid_at: datetime  # repairs: when the charge was made
    previous_charge_id: str | None
    charge_changed: bool
    by: str  # a person's change: who
    reason: str | None
    undid_run: str  # an undo: the change it put back
    undid_action: str
    hold: bool
    audit: str  # AUDIT_PENDING until the audit record is written


class UndoSpec(TypedDict):
    """How to undo a change: the order as the change left it (`filter`), and what to put back."""

    filter: dict[str, object]  # keyed by the configured order fields; `_id` holds the order's own id type
    set: dict[str, str | None]
    unset: list[str]


class AuditRecord(TypedDict, total=False):
    """One document of the audit collection (keyed `run:order`). Records read back for a report may hold
    only some fields (store/repair.changes_of_runs reads a projection)."""

    _id: str
    run_id: str
    at: datetime
    action: str
    by: str | None
    reason: str | None
    undid_run: str | None
    undid_action: str | None
    collection: str
    order_id: object  # the order's _id, its type kept (ObjectId, text, number)
    order_key: str
    from_status: str | None
    to_status: str | None
    charge_id: str | None
    previous_charge_id: str | None
    charge_changed: bool
    hold: bool
    amount: int | None
    currency: str | None
    undo: UndoSpec
