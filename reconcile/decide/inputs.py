"""What the decision reads: the rows the Stripe pull and the order load build, one type per kind.

TypedDicts (plain dicts at run time) because rows are packed into columns page by page and become
frames (reconcile/decide/columns.py): a million charges must not cost a million objects more.
The frames' column lists (classify.CHARGE_COLUMNS, match.INTENT_COLUMNS, match.SESSION_COLUMNS,
totals.BALANCE_COLUMNS, columns.ORDER_COLUMNS) name the same fields.
"""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict


class ChargeRow(TypedDict):
    """The fields of a charge the job uses (no card data); stripe/pull.charge_row builds it."""

    charge_id: str
    created: int
    status: str | None
    captured: bool
    amount: int
    amount_captured: int
    amount_refunded: int
    refunded: bool
    disputed: bool
    currency: str
    order_ref: str | None
    payment_intent: str | None
    description: str | None
    email: str | None
    livemode: bool
    failure_code: str | None
    settlement_currency: str | None
    settlement_amount: int | None
    exchange_rate: float | None
    capture_before: int | None  # when an uncaptured card authorization lapses
    in_window: NotRequired[bool]  # False: found past the window's edges or by id
    payment_method_type: NotRequired[str | None]  # payment_method_details.type: sepa_debit, card, ...


class BalanceRow(TypedDict):
    """The fields of a balance transaction the totals use."""

    txn_id: str
    created: int
    reporting_category: str | None
    currency: str
    amount: int
    fee: int
    net: int


class IntentRow(TypedDict):
    """The fields of a PaymentIntent the matching uses."""

    pi_id: str
    created: int
    status: str | None
    amount: int
    currency: str
    order_ref: str | None
    latest_charge: str | None
    email: str | None
    cancellation_reason: str | None
    livemode: bool
    in_window: NotRequired[bool]
    # Its payment method's type when known (expanded), else its payment_method_types, space-separated.
    payment_method_type: NotRequired[str | None]


class SessionRow(TypedDict):
    """The fields of a Checkout Session the matching uses."""

    session_id: str
    created: int
    status: str | None
    payment_status: str | None
    client_reference_id: str | None
    order_ref: str | None
    payment_intent: str | None
    amount_total: int | None
    currency: str | None
    email: str | None
    expires_at: int | None
    livemode: bool
    in_window: NotRequired[bool]
    payment_method_type: NotRequired[str | None]  # its payment_method_types, space-separated


class MovementRow(TypedDict):
    """A refund or dispute with its charge's row (None when the charge could not be read)."""

    object: str | None  # "refund" or "dispute"
    object_id: str
    created: int
    status: str | None
    amount: int
    currency: str
    reason: str | None
    failure_reason: str | None
    due_by: int | None  # a dispute's evidence deadline
    charge_id: str | None
    charge: ChargeRow | None


class OrderRecord(TypedDict):
    """One order document, flattened and checked (store/orders.order_record); `problem` says what is odd."""

    order_id: Any  # the document's _id, of whatever type the shop uses
    order_key: str
    status: str | None
    amount: int | None
    currency: str | None
    created: int | None
    stored_charge_id: str | None
    email: str | None
    problem: str | None
    stored_payment_intent_id: str | None
    stored_session_id: str | None
    refunded_amount: int | None
    undone: str | None  # "by NAME on DATE" when a person undid the job's change
    expected_end: NotRequired[int | None]  # unix seconds: when the shop expects the payment settled
