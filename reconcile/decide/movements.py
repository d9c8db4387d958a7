"""Money that moves after the payment: refunds and disputes created in the window.

A charge paid on Monday can be refunded on Thursday or disputed weeks later. Each refund and
dispute created in the window is pulled (with its charge expanded, however old the charge),
joined to its order, and judged in the window in which it happened. This module is the decision
(`evaluate`, pure: codes and facts, no words); stripe/movements.py pulls them, store/orders.py loads
their orders and report/wording.py words them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from reconcile.decide.columns import Row
from reconcile.decide.findings import Finding, ItemKind


class MovementKind(ItemKind):
    """Kinds of movement finding, with whether each needs a person (the rest are listed for the record)."""

    REFUND_FAILED = "refund_failed", True
    REFUNDED_ORDER_STILL_PAID = "refunded_order_still_paid", True
    DISPUTE_OPEN = "dispute_open", True
    DISPUTE_LOST = "dispute_lost", True
    REFUND = "refund"
    PARTIAL_REFUND = "partial_refund"
    DISPUTE_CLOSED = "dispute_closed"


REFUND_FAILED = MovementKind.REFUND_FAILED
REFUNDED_ORDER_STILL_PAID = MovementKind.REFUNDED_ORDER_STILL_PAID
DISPUTE_OPEN = MovementKind.DISPUTE_OPEN
DISPUTE_LOST = MovementKind.DISPUTE_LOST
REFUND = MovementKind.REFUND
PARTIAL_REFUND = MovementKind.PARTIAL_REFUND
DISPUTE_CLOSED = MovementKind.DISPUTE_CLOSED
KINDS = tuple(MovementKind)
NEEDS_PERSON = tuple(k for k in MovementKind if k.needs_person)


class Judgement(StrEnum):
    """Why a movement got its kind: the code report/wording.py words as the finding's detail."""

    REFUND_FAILED = "refund_failed"  # a refund failed (failure_reason says why)
    REFUND_CANCELED = "refund_canceled"
    FULL_REFUND_LISTED = "full_refund_listed"  # a full refund of an order already listed as refunded_or_disputed
    FULL_REFUND_ORDER_PAID = "full_refund_order_paid"  # the charge fully refunded, its order still paid
    FULL_REFUND = "full_refund"
    PARTIAL_REFUND = "partial_refund"
    DISPUTE_OPEN = "dispute_open"  # open (an inquiry when its status is warning_*), or in a status not known
    DISPUTE_LOST = "dispute_lost"  # lost while the order is paid (or there is none)
    DISPUTE_LOST_SETTLED = "dispute_lost_settled"  # lost, the order no longer paid
    DISPUTE_CLOSED = "dispute_closed"  # won, an inquiry closed, prevented


# Refund statuses that are not final: `pending` may still fail, `requires_action` waits for the customer.
REFUND_NOT_FINAL = ("pending", "requires_action")

# Dispute statuses (API version 2026-10-28.endive; stripe-python 16's `Dispute.status`, which
# tests/test_api_version.py checks these tables cover). Inquiries (warning_*) come before a
# chargeback; appeal_* follow a lost first round. Each open one needs a person until it closes.
DISPUTE_NEEDS_RESPONSE = ("warning_needs_response", "needs_response", "appeal_needs_response")
DISPUTE_UNDER_REVIEW = ("warning_under_review", "under_review", "appeal_under_review")
DISPUTE_OPEN_STATUSES = DISPUTE_NEEDS_RESPONSE + DISPUTE_UNDER_REVIEW
# Closed: decided (won, lost), an inquiry that ended without a chargeback (warning_closed), or a
# dispute prevented before it became one (prevented). Only `lost` can still need a person.
DISPUTE_CLOSED_STATUSES = ("won", "lost", "warning_closed", "prevented")


@dataclass(frozen=True)
class Movement:
    """A refund or dispute judged: its kind, why (a Judgement) and the facts its finding and its words need."""

    kind: MovementKind
    judgement: Judgement
    source: str  # "refund" or "dispute"
    object_id: str
    status: str | None
    created: int
    amount: int  # minor units
    currency: str
    reason: str | None  # a dispute's reason
    failure_reason: str | None  # a failed refund's
    due_by: int | None  # an open dispute's evidence due date (unix seconds)
    charge_id: str | None
    charge_amount: int | None
    charge_currency: str | None
    charge_created: int | None
    livemode: bool | None
    order_key: str | None
    order_status: str | None
    order_amount: int | None
    order_currency: str | None
    email: str | None

    @property
    def needs_person(self) -> bool:
        """Its kind's; and a refund not final yet is an item too, so the runs after its window re-check it
        until it is (run/recheck.py): it resolves itself when the refund succeeds, becomes refund_failed
        (the same item, keyed by the refund) when it fails."""
        return self.kind.needs_person or (self.source == "refund" and self.status in REFUND_NOT_FINAL)

    def finding(self, detail: str | None) -> Finding:
        """The movement as the items collection records it, with its detail in words (report/wording.py)."""
        return {
            "key": f"{self.source}:{self.object_id}",
            "kind": self.kind.value,
            "needs_person": self.needs_person,
            "source": self.source,
            "object_id": self.object_id,
            "object_status": self.status,
            "created": self.created,
            "amount": self.amount,
            "currency": self.currency,
            "charge_id": self.charge_id,
            "charge_ids": [self.charge_id] if self.charge_id else [],
            "charge_amount": self.charge_amount,
            "charge_currency": self.charge_currency,
            "charge_created": self.charge_created,
            "livemode": self.livemode,
            "order_key": self.order_key,
            "order_status": self.order_status,
            "order_amount": self.order_amount,
            "order_currency": self.order_currency,
            "email": self.email,
            "anchor": self.created,
            "detail": detail,
            # An open dispute must be answered by its evidence due date (unix seconds).
            "deadline": self.due_by if self.kind == DISPUTE_OPEN else None,
        }


def evaluate(
    rows: Sequence[Row],
    orders: Sequence[Row],
    paid_statuses: Iterable[str],
    already_flagged: Iterable[str] = (),
) -> list[Movement]:
    """Each refund or dispute judged: its kind, whether it needs a person, and why (report/wording.py
    words it: `wording.movement_findings` makes the findings).

    `already_flagged`: order keys this run's core classification already lists as
    refunded_or_disputed; a full refund on those is not counted a second time.
    """
    paid = set(paid_statuses)
    flagged = set(already_flagged)
    by_key = {o["order_key"]: o for o in orders}
    by_charge = {o["stored_charge_id"]: o for o in orders if o["stored_charge_id"]}
    judged: list[Movement] = []
    for r in sorted(rows, key=lambda r: (r["created"], r["object_id"])):
        charge: Row = r["charge"] or {}
        order = by_key.get(charge.get("order_ref") or "") or by_charge.get(r["charge_id"] or "")
        status = order["status"] if order else None
        kind, judgement = _judge(r, charge, order, status in paid, flagged)
        judged.append(
            Movement(
                kind=kind,
                judgement=judgement,
                source=r["object"],
                object_id=r["object_id"],
                status=r["status"],
                created=r["created"],
                amount=r["amount"],
                currency=r["currency"],
                reason=r.get("reason"),
                failure_reason=r.get("failure_reason"),
                due_by=r.get("due_by"),
                charge_id=r["charge_id"],
                charge_amount=charge.get("amount_captured") if charge else None,
                charge_currency=charge.get("currency") if charge else None,
                charge_created=charge.get("created") if charge else None,
                livemode=charge.get("livemode") if charge else None,
                order_key=order["order_key"] if order else None,
                order_status=status,
                order_amount=order["amount"] if order else None,
                order_currency=order["currency"] if order else None,
                email=(order or {}).get("email") or charge.get("email"),
            )
        )
    return judged


def _judge(
    r: Row, charge: Row, order: Row | None, order_paid: bool, flagged: set[str]
) -> tuple[MovementKind, Judgement]:
    if r["object"] == "refund":
        if r["status"] == "failed":
            return REFUND_FAILED, Judgement.REFUND_FAILED
        if r["status"] == "canceled":
            return REFUND, Judgement.REFUND_CANCELED
        full = bool(charge.get("refunded")) or (
            charge.get("amount_captured", 0) > 0
            and charge.get("amount_refunded", 0) >= charge.get("amount_captured", 0)
        )
        if full and order_paid and order is not None:  # order_paid implies an order; said for the type checker
            if order["order_key"] in flagged:
                return REFUND, Judgement.FULL_REFUND_LISTED
            return REFUNDED_ORDER_STILL_PAID, Judgement.FULL_REFUND_ORDER_PAID
        if not full:
            return PARTIAL_REFUND, Judgement.PARTIAL_REFUND
        return REFUND, Judgement.FULL_REFUND
    status = r["status"] or ""
    if status not in DISPUTE_CLOSED_STATUSES:  # open, or a status this job does not know: a person looks
        return DISPUTE_OPEN, Judgement.DISPUTE_OPEN
    if status == "lost":
        if order_paid or not order:
            return DISPUTE_LOST, Judgement.DISPUTE_LOST
        return DISPUTE_CLOSED, Judgement.DISPUTE_LOST_SETTLED
    return DISPUTE_CLOSED, Judgement.DISPUTE_CLOSED
