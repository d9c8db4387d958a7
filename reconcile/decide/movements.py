"""Money that moves after the payment: refunds and disputes created in the window.

A charge paid on Monday can be refunded on Thursday or disputed weeks later. Each refund and
dispute created in the window is pulled (with its charge expanded, however old the charge),
joined to its order, and judged in the window in which it happened. This module is the decision
(`evaluate`, pure); stripe/movements.py pulls them and store/orders.py loads their orders.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from reconcile.decide.findings import Finding
from reconcile.money import format_amount
from reconcile.timeutil import fmt, from_unix

# Kinds of movement finding. The first four need a person; the rest are listed for the record.
REFUND_FAILED = "refund_failed"
REFUNDED_ORDER_STILL_PAID = "refunded_order_still_paid"
DISPUTE_OPEN = "dispute_open"
DISPUTE_LOST = "dispute_lost"
REFUND = "refund"
PARTIAL_REFUND = "partial_refund"
DISPUTE_CLOSED = "dispute_closed"
KINDS = (REFUND_FAILED, REFUNDED_ORDER_STILL_PAID, DISPUTE_OPEN, DISPUTE_LOST, REFUND, PARTIAL_REFUND, DISPUTE_CLOSED)

# Dispute statuses (API version 2026-10-28.endive; stripe-python 16's `Dispute.status`, which
# tests/test_api_version.py checks these tables cover). Inquiries (warning_*) come before a
# chargeback; appeal_* follow a lost first round. Each open one needs a person until it closes.
DISPUTE_NEEDS_RESPONSE = ("warning_needs_response", "needs_response", "appeal_needs_response")
DISPUTE_UNDER_REVIEW = ("warning_under_review", "under_review", "appeal_under_review")
DISPUTE_OPEN_STATUSES = DISPUTE_NEEDS_RESPONSE + DISPUTE_UNDER_REVIEW
# Closed: decided (won, lost), an inquiry that ended without a chargeback (warning_closed), or a
# dispute prevented before it became one (prevented). Only `lost` can still need a person.
DISPUTE_CLOSED_STATUSES = ("won", "lost", "warning_closed", "prevented")
TITLES = {
    REFUND_FAILED: "Refund failed: the customer did not get the money back",
    REFUNDED_ORDER_STILL_PAID: "Charge fully refunded, order still paid",
    DISPUTE_OPEN: "Dispute open: respond before the due date",
    DISPUTE_LOST: "Dispute lost, order still paid",
    REFUND: "Refund",
    PARTIAL_REFUND: "Partial refund",
    DISPUTE_CLOSED: "Dispute closed",
}


def evaluate(
    rows: list[dict[str, Any]],
    orders: list[dict[str, Any]],
    paid_statuses: Iterable[str],
    already_flagged: Iterable[str] = (),
) -> list[Finding]:
    """One finding per refund or dispute: its kind, whether it needs a person, and why.

    `already_flagged`: order keys this run's core classification already lists as
    refunded_or_disputed; a full refund on those is not counted a second time.
    """
    paid = set(paid_statuses)
    flagged = set(already_flagged)
    by_key = {o["order_key"]: o for o in orders}
    by_charge = {o["stored_charge_id"]: o for o in orders if o["stored_charge_id"]}
    findings: list[Finding] = []
    for r in sorted(rows, key=lambda r: (r["created"], r["object_id"])):
        charge = r["charge"] or {}
        order = by_key.get(charge.get("order_ref") or "") or by_charge.get(r["charge_id"] or "")
        status = order["status"] if order else None
        order_paid = status in paid
        kind, needs, detail = _judge(r, charge, order, order_paid, flagged)
        findings.append(
            {
                "key": f"{r['object']}:{r['object_id']}",
                "kind": kind,
                "needs_person": needs,
                "source": r["object"],
                "object_id": r["object_id"],
                "object_status": r["status"],
                "created": r["created"],
                "amount": r["amount"],
                "currency": r["currency"],
                "charge_id": r["charge_id"],
                "charge_ids": [r["charge_id"]] if r["charge_id"] else [],
                "charge_amount": charge.get("amount_captured") if charge else None,
                "charge_currency": charge.get("currency") if charge else None,
                "charge_created": charge.get("created") if charge else None,
                "livemode": charge.get("livemode") if charge else None,
                "order_key": order["order_key"] if order else None,
                "order_status": status,
                "order_amount": order["amount"] if order else None,
                "order_currency": order["currency"] if order else None,
                "email": (order or {}).get("email") or charge.get("email"),
                "anchor": r["created"],
                "detail": detail,
                # An open dispute must be answered by its evidence due date (unix seconds).
                "deadline": r.get("due_by") if kind == DISPUTE_OPEN else None,
            }
        )
    return findings


def _judge(
    r: dict[str, Any], charge: dict[str, Any], order: dict[str, Any] | None, order_paid: bool, flagged: set[str]
) -> tuple[str, bool, str]:
    amount = format_amount(r["amount"], r["currency"])
    whose = f"order {order['order_key']} is {order['status']}" if order else "the charge names no order"
    if r["object"] == "refund":
        if r["status"] == "failed":
            return (
                REFUND_FAILED,
                True,
                f"refund of {amount} failed ({r['failure_reason'] or 'no reason given'}); {whose}",
            )
        if r["status"] == "canceled":
            return REFUND, False, f"refund of {amount} canceled; {whose}"
        full = bool(charge.get("refunded")) or (
            charge.get("amount_captured", 0) > 0
            and charge.get("amount_refunded", 0) >= charge.get("amount_captured", 0)
        )
        if full and order_paid and order is not None:  # order_paid implies an order; said for the type checker
            if order["order_key"] in flagged:
                return REFUND, False, f"charge fully refunded ({amount}); {whose}, listed under refunded_or_disputed"
            return REFUNDED_ORDER_STILL_PAID, True, f"charge fully refunded ({amount}) but {whose}"
        if not full:
            return PARTIAL_REFUND, False, f"partial refund of {amount} ({r['status']}); {whose}"
        return REFUND, False, f"charge fully refunded ({amount}); {whose}"
    status = r["status"] or ""
    if status not in DISPUTE_CLOSED_STATUSES:  # open, or a status this job does not know: a person looks
        kind = "inquiry" if status.startswith("warning_") else "dispute"
        due = f", respond by {fmt(from_unix(r['due_by']))}" if r.get("due_by") else ""
        words = status.replace("_", " ") if status in DISPUTE_OPEN_STATUSES else f"in unknown status {status[:40]!r}"
        return DISPUTE_OPEN, True, f"{kind} of {amount} {words} ({r['reason']}){due}; {whose}"
    if status == "lost":
        if order_paid or not order:
            return DISPUTE_LOST, True, f"dispute of {amount} lost ({r['reason']}); {whose}"
        return DISPUTE_CLOSED, False, f"dispute of {amount} lost; {whose}"
    return DISPUTE_CLOSED, False, f"dispute of {amount} {status.replace('_', ' ')} ({r['reason']}); {whose}"
