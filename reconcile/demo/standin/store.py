"""The stand-in's data: Stripe-shaped objects, builders, ordered indexes and cached JSON.

Objects are plain dicts with Stripe's field names and nesting (as in Stripe's published
fixtures). Each resource keeps its ids sorted by one integer key, ``created * 2**32 + seq``
(``seq`` is a store-wide insertion counter, so ties on ``created`` list newest-inserted
first), and a list page is a bisect plus a slice. Builders append in O(1); out-of-order
inserts only mark the resource unsorted and the next read sorts it once, so loading needs
no special path. For a million objects wrap the builder calls in ``with store.bulk():``,
which pauses the cyclic GC (it would otherwise roughly double load time) and sorts at the
end; ``finalize()`` just sorts; ``prerender()`` renders all JSON ahead of a benchmark.

Each object's JSON is rendered on first use and cached as byte pieces split around its
expandable fields, so a page, expanded or not, is a join of cached bytes. Mutate stored
objects only through ``update``/``update_charge``/the builders, which invalidate the cache.
Nested template sub-objects (card details, outcome, ...) are shared between objects and
must not be mutated in place.

Money: amounts are integer minor units. A settled amount is ``amount * exchange_rate``
rounded half-up (away from zero) in ``Decimal`` arithmetic; the default fee is
2.9% + 30 of the settled amount, rounded half-up in integer arithmetic.

``save(path)`` writes every object (and what links them) to a JSON file, ``StandinStore.load(path,
api_key)`` serves them again: the demo keeps its shop that way for the commands after it.
"""

from __future__ import annotations

import binascii
import bisect
import contextlib
import gc
import hashlib
import json
import os
import random
import string
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

__all__ = [
    "ApiError",
    "Resource",
    "RESOURCES",
    "RESOURCES_BY_PATH",
    "StandinStore",
    "settle_amount",
]

_SEQ_SPACE = 1 << 32
_ALNUM = string.ascii_letters + string.digits
_B64_TO_ALNUM = bytes.maketrans(b"+/", b"xz")
# ASCII output (non-ASCII as \u escapes, still valid JSON) is ~40% faster to encode than raw UTF-8.
_JSON = json.JSONEncoder(check_circular=False, separators=(",", ":"), allow_nan=False)
MAX_EXPAND_DEPTH = 4
_STATE_FORMAT = "reconcile-standin-store/1"  # what `save` writes and `load` reads


class ApiError(Exception):
    """A Stripe-style error answer: HTTP status plus the ``error`` object."""

    def __init__(self, status: int, error: dict[str, Any]) -> None:
        super().__init__(error.get("message", ""))
        self.status = status
        self.error = error


def invalid_request(message: str, *, param: str | None = None, code: str | None = None, status: int = 400) -> ApiError:
    """An ``invalid_request_error`` shaped like Stripe's."""
    error: dict[str, Any] = {"type": "invalid_request_error", "message": message}
    if code:
        error["code"] = code
        error["doc_url"] = f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}"
    if param:
        error["param"] = param
    return ApiError(status, error)


def resource_missing(object_name: str, object_id: str, param: str, status: int) -> ApiError:
    return invalid_request(f"No such {object_name}: '{object_id}'", param=param, code="resource_missing", status=status)


def settle_amount(amount: int, rate: Decimal | str | int) -> int:
    """``amount * rate`` rounded half-up (away from zero) to an integer, in exact decimal arithmetic."""
    value = Decimal(amount) * Decimal(str(rate)) if not isinstance(rate, Decimal) else Decimal(amount) * rate
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def default_fee(amount: int) -> int:
    """Stripe's standard card fee, 2.9% + 30, rounded half-up with integer arithmetic."""
    return (abs(amount) * 29 + 500) // 1000 + 30


# --------------------------------------------------------------------------- resources


@dataclass(frozen=True)
class Resource:
    """Static description of one list endpoint and its objects."""

    object: str  # the ``object`` field value, e.g. "checkout.session"
    path: str  # list URL, e.g. "/v1/checkout/sessions"
    prefix: str  # generated id prefix
    id_length: int
    # Expandable fields -> the object types they can expand to (empty: not stored here).
    expandable: Mapping[str, tuple[str, ...]]
    # Filter query parameters -> how to read the matching value from an object.
    filters: Mapping[str, Callable[[StandinStore, dict[str, Any]], Any]] = field(default_factory=dict)
    permission: str = ""  # restricted-key permission name, for the 403 message
    # Integer fields besides ``created`` a list can be narrowed by, as a range (``arrival_date[gte]=...``).
    ranges: tuple[str, ...] = ()


def _field(name: str) -> Callable[[StandinStore, dict[str, Any]], Any]:
    return lambda _store, obj: obj.get(name)


def _bt_payout(store: StandinStore, obj: dict[str, Any]) -> Any:
    # A payout's own transaction belongs to it; other transactions via assign_payout().
    if obj.get("type") == "payout":
        return obj.get("source")
    return store._payout_of.get(obj["id"])


_ALL_TYPES = ("charge", "balance_transaction", "payment_intent", "checkout.session", "refund", "dispute", "payout")

RESOURCES: dict[str, Resource] = {
    r.object: r
    for r in (
        Resource(
            "charge",
            "/v1/charges",
            "ch_",
            24,
            {
                "balance_transaction": ("balance_transaction",),
                "payment_intent": ("payment_intent",),
                "customer": (),
                "failure_balance_transaction": ("balance_transaction",),
                "application": (),
                "application_fee": (),
                "on_behalf_of": (),
                "review": (),
                "source_transfer": (),
                "transfer": (),
                "refunds": (),  # an includable list: in the answer only when expanded (see _emit)
            },
            {
                "payment_intent": _field("payment_intent"),
                "customer": _field("customer"),
                "transfer_group": _field("transfer_group"),
            },
            "rak_charge_read",
        ),
        Resource(
            "balance_transaction",
            "/v1/balance_transactions",
            "txn_",
            24,
            {"source": _ALL_TYPES},
            {
                "type": _field("type"),
                "source": _field("source"),
                "payout": _bt_payout,
                "currency": _field("currency"),
            },
            "rak_balance_read",
        ),
        Resource(
            "payment_intent",
            "/v1/payment_intents",
            "pi_",
            24,
            {
                "latest_charge": ("charge",),
                "customer": (),
                "payment_method": (),
                "application": (),
                "on_behalf_of": (),
                "review": (),
                "invoice": (),
            },
            {"customer": _field("customer")},
            "rak_payment_intent_read",
        ),
        Resource(
            "checkout.session",
            "/v1/checkout/sessions",
            "cs_test_",
            58,
            {
                "payment_intent": ("payment_intent",),
                "customer": (),
                "invoice": (),
                "payment_link": (),
                "setup_intent": (),
                "subscription": (),
                "line_items": (),
            },
            {
                "payment_intent": _field("payment_intent"),
                "status": _field("status"),
                "customer": _field("customer"),
                "payment_link": _field("payment_link"),
                "subscription": _field("subscription"),
                "customer_details[email]": lambda _store, obj: (obj.get("customer_details") or {}).get("email"),
            },
            "rak_checkout_session_read",
        ),
        Resource(
            "refund",
            "/v1/refunds",
            "re_",
            24,
            {
                "charge": ("charge",),
                "payment_intent": ("payment_intent",),
                "balance_transaction": ("balance_transaction",),
                "failure_balance_transaction": ("balance_transaction",),
                "source_transfer_reversal": (),
                "transfer_reversal": (),
            },
            {"charge": _field("charge"), "payment_intent": _field("payment_intent")},
            "rak_refund_read",
        ),
        Resource(
            "dispute",
            "/v1/disputes",
            "dp_",
            24,
            {"charge": ("charge",), "payment_intent": ("payment_intent",)},
            {"charge": _field("charge"), "payment_intent": _field("payment_intent")},
            "rak_dispute_read",
        ),
        Resource(
            "payout",
            "/v1/payouts",
            "po_",
            24,
            {
                "balance_transaction": ("balance_transaction",),
                "failure_balance_transaction": ("balance_transaction",),
                "original_payout": ("payout",),
                "reversed_by": ("payout",),
                "destination": (),  # bank accounts and cards are not stored here
                "application_fee": (),
            },
            {"status": _field("status"), "destination": _field("destination")},
            "rak_payout_read",
            ranges=("arrival_date",),
        ),
    )
}
RESOURCES_BY_PATH: dict[str, Resource] = {r.path: r for r in RESOURCES.values()}


def parse_expand(resource: Resource, paths: Iterable[str], *, is_list: bool) -> dict[str, Any]:
    """Turn ``expand[]`` paths into a tree ``{field: {subfield: {}}}``, validated like Stripe does."""
    tree: dict[str, Any] = {}
    for raw in paths:
        if not raw:
            continue
        parts = raw.split(".")
        if is_list:
            if parts[0] != "data" or len(parts) < 2:
                hint = f" You may want to try expanding 'data.{raw}' instead." if parts[0] != "data" else ""
                raise invalid_request(f"This property cannot be expanded ({raw}).{hint}", param="expand")
            parts = parts[1:]
        if len(parts) > MAX_EXPAND_DEPTH:
            raise invalid_request(
                f"You cannot expand more than {MAX_EXPAND_DEPTH} levels of a property. Property: {raw}", param="expand"
            )
        types: tuple[str, ...] = (resource.object,)
        node = tree
        for part in parts:
            allowed: dict[str, tuple[str, ...]] = {}
            for t in types:
                allowed.update(RESOURCES[t].expandable)
            if types and part not in allowed:
                raise invalid_request(f"This property cannot be expanded ({part}).", param="expand")
            types = allowed.get(part, ())
            node = node.setdefault(part, {})
    return tree


# --------------------------------------------------------------------------- templates
# Shared, never-mutated sub-objects (Stripe's fixture shapes). Per-object values are set
# at top level only, so sharing these keeps a million charges affordable in memory.

_ADDRESS = {"city": None, "country": None, "line1": None, "line2": None, "postal_code": None, "state": None}
_BILLING_EMPTY = {"address": _ADDRESS, "email": None, "name": None, "phone": None, "tax_id": None}
_CARD = {
    "amount_authorized": None,
    "authorization_code": None,
    "brand": "visa",
    "checks": {"address_line1_check": None, "address_postal_code_check": None, "cvc_check": "pass"},
    "country": "US",
    "exp_month": 8,
    "exp_year": 2030,
    "extended_authorization": {"status": "disabled"},
    "fingerprint": "AOB934RVNwzk6xtn",
    "funding": "credit",
    "incremental_authorization": {"status": "unavailable"},
    "installments": None,
    "last4": "4242",
    "mandate": None,
    "multicapture": {"status": "unavailable"},
    "network": "visa",
    "network_token": {"used": False},
    "network_transaction_id": None,
    "overcapture": {"maximum_amount_capturable": 0, "status": "unavailable"},  # per amount: _card_details
    "regulated_status": "unregulated",
    "three_d_secure": None,
    "transaction_link_id": None,
    "wallet": None,
}
_PAYMENT_METHOD_DETAILS = {"card": _CARD, "type": "card"}
# Delayed-notification bank debits: a charge's payment_method_details of each, as the API reference's
# charge object and stripe-python 16 (Charge.PaymentMethodDetails.SepaDebit, .UsBankAccount) show them.
# Such a payment stays `processing` (its charge `pending`) for days, until the bank answers.
_DEBIT_DETAILS: dict[str, dict[str, Any]] = {
    "sepa_debit": {
        "bank_code": "37040044",
        "branch_code": None,
        "country": "DE",
        "expected_debit_date": None,
        "fingerprint": "Kk5PlrfOAlTw5Yz8",
        "last4": "3000",
        "mandate": "mandate_1StandinSepa",
    },
    "us_bank_account": {
        "account_holder_type": "individual",
        "account_type": "checking",
        "bank_name": "STRIPE TEST BANK",
        "expected_debit_date": None,
        "fingerprint": "LstWJFsCK7P349Bg",
        "last4": "6789",
        "mandate": "mandate_1StandinAch",
        "payment_reference": None,
        "routing_number": "110000000",
    },
}
DELAYED_METHODS = tuple(_DEBIT_DETAILS)
# Why a bank debit failed (a charge's failure_code; Stripe's ACH and SEPA failure codes).
_DEBIT_FAILURE = {
    "code": "insufficient_funds",
    "message": "The customer's account has insufficient funds to cover this payment.",
}
_OUTCOMES = {
    "succeeded": {
        "advice_code": None,
        "network_advice_code": None,
        "network_decline_code": None,
        "network_status": "approved_by_network",
        "reason": None,
        "risk_level": "normal",
        "risk_score": 32,
        "seller_message": "Payment complete.",
        "type": "authorized",
    },
    "failed": {
        "advice_code": "try_again_later",
        "network_advice_code": None,
        "network_decline_code": None,
        "network_status": "declined_by_network",
        "reason": "generic_decline",
        "risk_level": "normal",
        "risk_score": 41,
        "seller_message": "The bank did not return any further details with this decline.",
        "type": "issuer_declined",
    },
    "pending": {
        "advice_code": None,
        "network_advice_code": None,
        "network_decline_code": None,
        "network_status": "approved_by_network",
        "reason": None,
        "risk_level": "not_assessed",
        "risk_score": None,
        "seller_message": "Payment pending.",
        "type": "authorized",
    },
}
_EMPTY: dict[str, Any] = {}

_CHARGE_TEMPLATE: dict[str, Any] = {
    "id": None,
    "object": "charge",
    "amount": 0,
    "amount_captured": 0,
    "amount_refunded": 0,
    "application": None,
    "application_fee": None,
    "application_fee_amount": None,
    "balance_transaction": None,
    "billing_details": _BILLING_EMPTY,
    "calculated_statement_descriptor": None,
    "captured": False,
    "created": 0,
    "currency": "usd",
    "customer": None,
    "description": None,
    "disputed": False,
    "failure_balance_transaction": None,
    "failure_code": None,
    "failure_message": None,
    "fraud_details": _EMPTY,
    "livemode": False,
    "metadata": _EMPTY,
    "on_behalf_of": None,
    "outcome": None,
    "paid": False,
    "payment_intent": None,
    "payment_method": None,
    "payment_method_details": _PAYMENT_METHOD_DETAILS,
    "receipt_email": None,
    "receipt_number": None,
    "receipt_url": None,
    "refunded": False,
    "review": None,
    "shipping": None,
    "source": None,
    "source_transfer": None,
    "statement_descriptor": None,
    "statement_descriptor_suffix": None,
    "status": "succeeded",
    "transfer_data": None,
    "transfer_group": None,
}

_BT_TEMPLATE: dict[str, Any] = {
    "id": None,
    "object": "balance_transaction",
    "amount": 0,
    "available_on": 0,
    "balance_type": "payments",
    "created": 0,
    "currency": "usd",
    "description": None,
    "exchange_rate": None,
    "fee": 0,
    "fee_details": [],
    "net": 0,
    "reporting_category": "charge",
    "source": None,
    "status": "available",
    "type": "charge",
}

_PAYMENT_INTENT_TEMPLATE: dict[str, Any] = {
    "id": None,
    "object": "payment_intent",
    "amount": 0,
    "amount_capturable": 0,
    "amount_details": {"tip": {}},
    "amount_received": 0,
    "application": None,
    "application_fee_amount": None,
    "automatic_payment_methods": {"allow_redirects": "always", "enabled": True},
    "canceled_at": None,
    "cancellation_reason": None,
    "capture_method": "automatic",
    "client_secret": None,
    "confirmation_method": "automatic",
    "created": 0,
    "currency": "usd",
    "customer": None,
    "customer_account": None,
    "description": None,
    "excluded_payment_method_types": None,
    "last_payment_error": None,
    "latest_charge": None,
    "livemode": False,
    "managed_payments": {"enabled": False},
    "metadata": _EMPTY,
    "next_action": None,
    "on_behalf_of": None,
    "payment_method": None,
    "payment_method_configuration_details": None,
    "payment_method_options": {
        "card": {"installments": None, "mandate_options": None, "network": None, "request_three_d_secure": "automatic"}
    },
    "payment_method_types": ["card"],
    "processing": None,
    "receipt_email": None,
    "review": None,
    "setup_future_usage": None,
    "shipping": None,
    "source": None,
    "statement_descriptor": None,
    "statement_descriptor_suffix": None,
    "status": "succeeded",
    "transfer_data": None,
    "transfer_group": None,
}

_CHECKOUT_SESSION_TEMPLATE: dict[str, Any] = {
    "id": None,
    "object": "checkout.session",
    "adaptive_pricing": {"enabled": False},
    "after_expiration": None,
    "allow_promotion_codes": None,
    "amount_subtotal": None,
    "amount_total": None,
    "automatic_tax": {"enabled": False, "liability": None, "provider": None, "status": None},
    "billing_address_collection": None,
    "cancel_url": "https://example.com/cancel",
    "client_reference_id": None,
    "client_secret": None,
    "collected_information": None,
    "consent": None,
    "consent_collection": None,
    "created": 0,
    "currency": None,
    "currency_conversion": None,
    "custom_fields": [],
    "custom_text": {
        "after_submit": None,
        "shipping_address": None,
        "submit": None,
        "terms_of_service_acceptance": None,
    },
    "customer": None,
    "customer_account": None,
    "customer_creation": "if_required",
    "customer_details": None,
    "customer_email": None,
    "discounts": [],
    "expires_at": 0,
    "integration_identifier": None,
    "invoice": None,
    "invoice_creation": {
        "enabled": False,
        "invoice_data": {
            "account_tax_ids": None,
            "custom_fields": None,
            "description": None,
            "footer": None,
            "issuer": None,
            "metadata": {},
            "rendering_options": None,
        },
    },
    "livemode": False,
    "locale": None,
    "managed_payments": {"enabled": False},
    "metadata": _EMPTY,
    "mode": "payment",
    "origin_context": None,
    "payment_intent": None,
    "payment_link": None,
    "payment_method_collection": "if_required",
    "payment_method_configuration_details": None,
    "payment_method_options": {"card": {"request_three_d_secure": "automatic"}},
    "payment_method_types": ["card"],
    "payment_status": "unpaid",
    "permissions": None,
    "phone_number_collection": {"enabled": False},
    "recovered_from": None,
    "saved_payment_method_options": None,
    "setup_intent": None,
    "shipping_address_collection": None,
    "shipping_cost": None,
    "shipping_options": [],
    "status": "open",
    "submit_type": None,
    "subscription": None,
    "success_url": "https://example.com/success",
    "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
    "ui_mode": "hosted",
    "url": None,
    "wallet_options": None,
}

_REFUND_TEMPLATE: dict[str, Any] = {
    "id": None,
    "object": "refund",
    "amount": 0,
    "balance_transaction": None,
    "charge": None,
    "created": 0,
    "currency": "usd",
    "customer": None,
    "customer_account": None,
    "destination_details": {
        "card": {"reference_status": "pending", "reference_type": "acquirer_reference_number", "type": "refund"},
        "type": "card",
    },
    "metadata": _EMPTY,
    "payment_intent": None,
    "payment_method": None,
    "reason": None,
    "receipt_number": None,
    "source_transfer_reversal": None,
    "status": "succeeded",
    "transfer_reversal": None,
}

_EVIDENCE: dict[str, Any] = {
    name: None
    for name in (
        "access_activity_log billing_address cancellation_policy cancellation_policy_disclosure "
        "cancellation_rebuttal customer_communication customer_email_address customer_name "
        "customer_purchase_ip customer_signature duplicate_charge_documentation "
        "duplicate_charge_explanation duplicate_charge_id product_description receipt refund_policy "
        "refund_policy_disclosure refund_refusal_explanation service_date service_documentation "
        "shipping_address shipping_carrier shipping_date shipping_documentation "
        "shipping_tracking_number uncategorized_file uncategorized_text"
    ).split()
}
_EVIDENCE["enhanced_evidence"] = {}
_DISPUTE_TEMPLATE: dict[str, Any] = {
    "id": None,
    "object": "dispute",
    "amount": 0,
    "balance_transactions": [],
    "charge": None,
    "created": 0,
    "currency": "usd",
    "enhanced_eligibility_types": [],
    "evidence": _EVIDENCE,
    "evidence_details": None,
    "is_charge_refundable": False,
    "livemode": False,
    "metadata": _EMPTY,
    "payment_intent": None,
    "payment_method_details": {
        "card": {"brand": "visa", "case_type": "chargeback", "network": "visa", "network_reason_code": "10.4"},
        "type": "card",
    },
    "reason": "fraudulent",
    "status": "needs_response",
}

# A payout as Stripe's example shows it (fixtures3.json, resources.payout) and stripe/_payout.py types it.
_PAYOUT_TEMPLATE: dict[str, Any] = {
    "id": None,
    "object": "payout",
    "amount": 0,
    "application_fee": None,
    "application_fee_amount": None,
    "arrival_date": 0,
    "automatic": True,
    "balance_transaction": None,
    "created": 0,
    "currency": "usd",
    "description": "STRIPE PAYOUT",
    "destination": None,
    "failure_balance_transaction": None,
    "failure_code": None,
    "failure_message": None,
    "livemode": False,
    "metadata": _EMPTY,
    "method": "standard",
    "original_payout": None,
    "payout_method": None,
    "reconciliation_status": "completed",
    "reversed_by": None,
    "source_type": "card",
    "statement_descriptor": None,
    "status": "paid",
    "trace_id": None,
    "type": "bank_account",
}
PAYOUT_STATUSES = ("paid", "pending", "in_transit", "canceled", "failed")
PAYOUT_RECONCILIATION_STATUSES = ("completed", "in_progress", "not_applicable")
# A few of Stripe's failure codes for a payout a bank returned (its PayoutFailureCode enum); the
# messages are the stand-in's paraphrase, not Stripe's wording.
_PAYOUT_FAILURES = {
    "account_closed": "The bank account has been closed.",
    "account_frozen": "The bank account has been frozen.",
    "insufficient_funds": "Your Stripe account has insufficient funds to cover the payout.",
    "no_account": "The bank account details on file are probably incorrect.",
}

_REPORTING_CATEGORY = {
    "charge": "charge",
    "payment": "charge",
    "refund": "refund",
    "payment_refund": "refund",
    "payment_failure_refund": "refund",
    "adjustment": "other_adjustment",
    "payout": "payout",
    "payout_cancel": "payout_reversal",
    "payout_failure": "payout_reversal",
    "stripe_fee": "fee",
    "stripe_fx_fee": "fee",
    "tax_fee": "fee",
    "network_cost": "network_cost",
    "transfer": "transfer",
    "transfer_refund": "transfer_reversal",
    "topup": "topup",
    "topup_reversal": "topup_reversal",
    "application_fee": "platform_earning",
    "application_fee_refund": "platform_earning_refund",
    "reserved_funds": "risk_reserved_funds",
}

# Answers are shaped as API version 2026-10-28.endive (what stripe-python 16 pins). The enums below
# follow that version's SDK types (stripe/_dispute.py, _payment_intent.py, checkout/_session.py).
DISPUTE_STATUSES = (
    "warning_needs_response",
    "warning_under_review",
    "warning_closed",
    "needs_response",
    "under_review",
    "appeal_needs_response",
    "appeal_under_review",
    "won",
    "lost",
    "prevented",
)
# Inquiries (warning_*) and prevented disputes withdraw no funds; the others do.
_DISPUTES_WITHOUT_WITHDRAWAL = ("warning_needs_response", "warning_under_review", "warning_closed", "prevented")
CANCELLATION_REASONS = (
    "abandoned",
    "automatic",
    "duplicate",
    "expired",
    "failed_invoice",
    "fraudulent",
    "requested_by_customer",
    "void_invoice",
)
# A card authorization (manual capture) lapses after 7 days unless extended; Stripe says when in
# payment_method_details.card.capture_before.
AUTHORIZATION_SECONDS = 7 * 86400

PAYMENT_INTENT_STATUSES = frozenset(
    {
        "requires_payment_method",
        "requires_confirmation",
        "requires_action",
        "processing",
        "requires_capture",
        "canceled",
        "succeeded",
    }
)
_AVAILABLE_AFTER = 2 * 86400  # funds of a charge become available two days later


# --------------------------------------------------------------------------- collections


class _Collection:
    """One resource's objects, with ids kept in ascending sort-key order for paging."""

    def __init__(self, resource: Resource) -> None:
        self.resource = resource
        self.objects: dict[str, dict[str, Any]] = {}
        self.sort_key: dict[str, int] = {}
        self.keys: list[int] = []  # ascending; newest-first order is this reversed
        self.ids: list[str] = []
        self._unsorted = False
        # filter name -> value -> (keys, ids), built on first use, dropped on any change.
        self._indexes: dict[str, dict[Any, tuple[list[int], list[str]]]] = {}
        self._combos: dict[tuple[tuple[str, str], ...], tuple[list[int], list[str]]] = {}

    def add(self, obj: dict[str, Any], key: int) -> None:
        oid = obj["id"]
        self.objects[oid] = obj
        self.sort_key[oid] = key
        if not self._unsorted and (not self.keys or key > self.keys[-1]):
            self.keys.append(key)
            self.ids.append(oid)
        else:
            self._unsorted = True  # sorted once, lazily, on the next read
        if self._indexes or self._combos:
            self.changed()

    def rekey(self, oid: str, key: int) -> None:
        self.sort_key[oid] = key
        self._unsorted = True
        self.changed()

    def changed(self) -> None:
        if self._indexes or self._combos:
            self._indexes.clear()
            self._combos.clear()

    def sort(self) -> None:
        if self._unsorted:
            key_of = self.sort_key
            self.ids = sorted(key_of, key=key_of.__getitem__)
            self.keys = [key_of[i] for i in self.ids]
            self._unsorted = False

    def view(self, store: StandinStore, filters: tuple[tuple[str, str], ...]) -> tuple[list[int], list[str]]:
        """Ascending (keys, ids) of the objects matching all equality filters."""
        self.sort()
        if not filters:
            return self.keys, self.ids
        if len(filters) == 1:
            return self._index(store, filters[0][0]).get(filters[0][1], ([], []))
        combo = self._combos.get(filters)
        if combo is None:
            # Start from the smallest single-filter index and check the others.
            candidates = min((self._index(store, n).get(v, ([], [])) for n, v in filters), key=lambda kv: len(kv[0]))
            getters = [(self.resource.filters[n], v) for n, v in filters]
            keys: list[int] = []
            ids: list[str] = []
            for k, oid in zip(*candidates, strict=False):
                obj = self.objects[oid]
                if all(_matches(get(store, obj), v) for get, v in getters):
                    keys.append(k)
                    ids.append(oid)
            if len(self._combos) > 256:  # bound the memory of one-off combinations
                self._combos.clear()
            combo = self._combos[filters] = (keys, ids)
        return combo

    def _index(self, store: StandinStore, name: str) -> dict[Any, tuple[list[int], list[str]]]:
        index = self._indexes.get(name)
        if index is None:
            index = {}
            get = self.resource.filters[name]
            for k, oid in zip(self.keys, self.ids, strict=False):
                value = get(store, self.objects[oid])
                if value is None:
                    continue
                entry = index.get(_as_param(value))
                if entry is None:
                    entry = index[_as_param(value)] = ([], [])
                entry[0].append(k)
                entry[1].append(oid)
            self._indexes[name] = index
        return index


def _as_param(value: Any) -> str:
    """How a field value appears in a query string (ids, enums and currencies are strings)."""
    if isinstance(value, dict):
        value = value.get("id")
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _matches(value: Any, wanted: str) -> bool:
    return value is not None and _as_param(value) == wanted


# --------------------------------------------------------------------------- the store


class StandinStore:
    """All objects the stand-in serves, plus its accepted keys.

    ``api_key`` is the only full-access key. ``restricted_keys`` maps a restricted key to the
    set of path prefixes it may NOT read (e.g. ``{"rk_test_nocharges": {"/v1/charges"}}``);
    any other path is allowed for it. Thread-safe: every method takes ``self.lock``.
    """

    def __init__(
        self,
        api_key: str = "sk_test_standin",
        *,
        account_id: str = "acct_standin",
        restricted_keys: Mapping[str, Iterable[str]] | None = None,
        seed: int = 0,
    ) -> None:
        self.api_key = api_key
        self.account_id = account_id
        self.restricted_keys: dict[str, set[str]] = {k: set(v) for k, v in (restricted_keys or {}).items()}
        self.lock = threading.RLock()
        self._rng = random.Random(seed)
        self._seq = 0
        self._cols: dict[str, _Collection] = {name: _Collection(res) for name, res in RESOURCES.items()}
        self._where: dict[str, _Collection] = {}  # any id -> its collection
        self._pieces: dict[str, tuple[list[bytes], tuple[str, ...]]] = {}  # cached JSON
        self._payout_of: dict[str, str] = {}  # balance transaction id -> payout id
        self._card_by_amount: dict[int, dict[str, Any]] = {}  # see _card_details
        self._bank_account: str | None = None  # the account's bank account (payouts' destination), once made
        self._rates: dict[str, Decimal] = {}  # balance transaction id -> exact exchange rate
        # Charge id -> its refund ids, newest first: the `refunds` list Stripe includes only when expanded.
        self._refund_lists: dict[str, list[str]] = {}
        # PaymentIntent id -> (when, succeeded or failed): bank debits still processing (settle_due).
        self._delayed: dict[str, tuple[int, str]] = {}
        # Object types whose lists come in no particular order (see list_page): Stripe documents
        # newest-first only for some lists (charges, balance transactions, refunds).
        self.unordered: set[str] = set()
        # Marker for expandable values while rendering; the random part makes a clash with
        # user data (e.g. metadata) impossible in practice.
        self._marker = f"\x00standin-slot-{self._rng.getrandbits(64):016x}-"

    # ----------------------------------------------------------------- ids and storage

    def new_id(self, prefix: str, length: int = 24) -> str:
        """A fresh random id like Stripe's (``ch_`` + 24 alphanumerics), deterministic per seed."""
        nbytes = (length * 3 + 3) // 4
        with self.lock:
            while True:
                # base64 of random bytes with +/ mapped to letters: ~20x faster than random.choices.
                raw = self._rng.getrandbits(nbytes * 8).to_bytes(nbytes, "little")
                tail = binascii.b2a_base64(raw, newline=False).translate(_B64_TO_ALNUM)[:length]
                oid = prefix + tail.decode()
                if oid not in self._where:
                    return oid

    def _insert(self, object_type: str, obj: dict[str, Any]) -> dict[str, Any]:
        col = self._cols[object_type]
        oid = obj["id"]
        if oid is None:
            obj["id"] = oid = self.new_id(col.resource.prefix, col.resource.id_length)
        elif oid in self._where:
            raise ValueError(f"duplicate object id {oid!r}")
        if type(obj["created"]) is not int:
            raise TypeError(f"created must be int unix seconds, got {obj['created']!r}")
        self._seq += 1
        col.add(obj, obj["created"] * _SEQ_SPACE + self._seq)
        self._where[oid] = col
        return obj

    def _touch(self, oid: str) -> None:
        """Forget cached JSON of ``oid`` and of the objects that embed it inline."""
        self._pieces.pop(oid, None)
        obj = self.get(oid)
        if obj is None:
            return
        kind = obj.get("object")
        if kind == "refund" and obj.get("charge"):
            self._pieces.pop(obj["charge"], None)  # charges embed their refunds list
        elif kind == "balance_transaction" and isinstance(obj.get("source"), str):
            self._pieces.pop(obj["source"], None)  # disputes embed their balance transactions

    def get(self, object_id: str) -> dict[str, Any] | None:
        """The stored object with this id (live: mutate it only through ``update``)."""
        with self.lock:
            col = self._where.get(object_id)
            return None if col is None else col.objects[object_id]

    def _require(self, object_id: str, object_type: str) -> dict[str, Any]:
        col = self._where.get(object_id)
        if col is None or col.resource.object != object_type:
            raise KeyError(f"no {object_type} {object_id!r}")
        return col.objects[object_id]

    def update(self, object_id: str, **fields: Any) -> dict[str, Any]:
        """Shallow-update any stored object; a changed ``created`` moves it in list order."""
        with self.lock:
            col = self._where.get(object_id)
            if col is None:
                raise KeyError(f"no object {object_id!r}")
            if "id" in fields and fields["id"] != object_id:
                raise ValueError("an object's id cannot change")
            obj = col.objects[object_id]
            obj.update(fields)
            if "created" in fields:
                self._seq += 1
                col.rekey(object_id, obj["created"] * _SEQ_SPACE + self._seq)
            col.changed()
            self._touch(object_id)
            return obj

    def update_charge(self, charge_id: str, **fields: Any) -> dict[str, Any]:
        """Shallow-update a charge (e.g. ``metadata=...``); derived objects are not recomputed."""
        with self.lock:
            self._require(charge_id, "charge")
            return self.update(charge_id, **fields)

    def assign_payout(self, payout_id: str, transaction_ids: Iterable[str]) -> None:
        """Mark balance transactions as paid out by ``payout_id`` (for the ``payout`` list filter)."""
        with self.lock:
            for txn in transaction_ids:
                self._require(txn, "balance_transaction")
                self._payout_of[txn] = payout_id
            self._cols["balance_transaction"].changed()

    def count(self, object_type: str) -> int:
        """How many objects of a type (``"charge"``, ``"checkout.session"``, ...) are stored."""
        with self.lock:
            return len(self._cols[object_type].objects)

    @contextlib.contextmanager
    def bulk(self, *, freeze_gc: bool = False) -> Iterator[StandinStore]:
        """Context for loading many objects: pauses Python's cyclic GC, then sorts everything.

        A million builder calls allocate millions of containers, and the GC re-scanning them
        roughly doubles load time. ``freeze_gc=True`` also moves everything alive into
        the GC's permanent generation (``gc.freeze()``), so a long benchmark does not keep
        re-scanning a multi-GB store; that is process-wide, use it in dedicated processes.
        """
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            yield self
        finally:
            self.finalize()
            if freeze_gc:
                gc.freeze()
            if was_enabled:
                gc.enable()

    def finalize(self) -> None:
        """Sort every resource now (otherwise the first read after out-of-order inserts does it)."""
        with self.lock:
            for col in self._cols.values():
                col.sort()

    # ----------------------------------------------------------------- a JSON file

    def save(self, path: Path) -> None:
        """Write every object and what links them to a JSON file (atomically); no API key is written."""
        with self.lock:
            self.finalize()
            version, internal, gauss = self._rng.getstate()
            state = {
                "format": _STATE_FORMAT,
                "account_id": self.account_id,
                "seq": self._seq,
                "rng": [version, list(internal), gauss],
                "objects": {
                    name: [[key, col.objects[oid]] for key, oid in zip(col.keys, col.ids, strict=True)]
                    for name, col in self._cols.items()
                },
                "payout_of": self._payout_of,
                "rates": {txn: str(rate) for txn, rate in self._rates.items()},
                "refund_lists": self._refund_lists,
                "bank_account": self._bank_account,
                "unordered": sorted(self.unordered),
                "delayed": self._delayed,
            }
            text = json.dumps(state, separators=(",", ":"), allow_nan=False)
        part = path.with_name(path.name + ".part")
        part.write_text(text, encoding="utf-8")
        os.replace(part, path)

    @classmethod
    def load(
        cls, path: Path, api_key: str, *, restricted_keys: Mapping[str, Iterable[str]] | None = None
    ) -> StandinStore:
        """A store holding what ``save`` wrote to ``path``, serving ``api_key``: the same objects, ids and order."""
        state = json.loads(path.read_text(encoding="utf-8"))
        if state.get("format") != _STATE_FORMAT:
            raise ValueError(f"{path} is not a stand-in store saved by this version")
        store = cls(api_key, account_id=state["account_id"], restricted_keys=restricted_keys)
        version, internal, gauss = state["rng"]
        store._rng.setstate((version, tuple(internal), gauss))
        store._seq = state["seq"]
        for name, entries in state["objects"].items():
            col = store._cols[name]
            for key, obj in entries:  # ascending keys: appended in order, nothing to sort
                col.add(obj, key)
                store._where[obj["id"]] = col
        store._payout_of = dict(state["payout_of"])
        store._rates = {txn: Decimal(rate) for txn, rate in state["rates"].items()}
        store._refund_lists = {charge: list(ids) for charge, ids in state["refund_lists"].items()}
        store._bank_account = state["bank_account"]
        store.unordered = set(state["unordered"])
        store._delayed = {pi: (int(when), str(outcome)) for pi, (when, outcome) in state.get("delayed", {}).items()}
        return store

    # ----------------------------------------------------------------- builders

    def create_charge(
        self,
        amount: int,
        currency: str = "usd",
        created: int | None = None,
        *,
        status: str = "succeeded",
        captured: bool = True,
        amount_captured: int | None = None,
        metadata: Mapping[str, str] | None = None,
        description: str | None = None,
        billing_email: str | None = None,
        billing_name: str | None = None,
        customer: str | None = None,
        payment_intent: str | None = None,
        fee: int | None = None,
        settlement_currency: str | None = None,
        exchange_rate: Decimal | str | None = None,
        capture_before: int | None = None,
        id: str | None = None,
        payment_method: str = "card",
    ) -> dict[str, Any]:
        """A charge; succeeded and captured ones also get their ``charge`` balance transaction.

        ``amount_captured`` None means ``amount`` if captured and succeeded, else 0. A failed
        charge is never captured. A partial capture (``amount_captured < amount``) releases the
        remainder as Stripe does since 2025-03-31.basil: no Refund, ``amount_refunded`` untouched,
        one balance transaction for the captured amount. An uncaptured (authorized) card charge
        says when its authorization lapses in ``payment_method_details.card.capture_before``
        (default: 7 days after ``created``). Settlement: ``settlement_currency`` (default: ``currency``)
        with ``exchange_rate`` required when they differ; the settled amount is
        ``amount * rate`` rounded half-up in Decimal arithmetic. ``fee`` is in settlement
        minor units; None means 2.9% + 30 of the settled amount (rounded half-up).
        """
        if status not in ("succeeded", "failed", "pending"):
            raise ValueError(f"charge status must be succeeded, failed or pending, not {status!r}")
        _check_amount(amount)
        currency = currency.lower()
        settle_cur = (settlement_currency or currency).lower()
        if exchange_rate is None:
            if settle_cur != currency:
                raise ValueError("exchange_rate is required when settlement_currency differs from currency")
            rate: Decimal | None = None
        else:
            if settlement_currency is None:
                raise ValueError("exchange_rate needs settlement_currency")
            rate = Decimal(str(exchange_rate))
        captured = bool(captured) and status != "failed"
        if amount_captured is None:
            amount_captured = amount if captured and status == "succeeded" else 0
        if not 0 <= amount_captured <= amount:
            raise ValueError(f"amount_captured {amount_captured} must be between 0 and amount {amount}")
        if created is None:
            created = int(time.time())
        with self.lock:
            pi = self._require(payment_intent, "payment_intent") if payment_intent else None
            if customer is None and pi is not None:
                customer = pi.get("customer")
            charge = dict(_CHARGE_TEMPLATE)
            charge.update(
                id=id,
                amount=amount,
                amount_captured=amount_captured,
                captured=captured,
                created=created,
                currency=currency,
                customer=customer,
                description=description,
                metadata=dict(metadata) if metadata else {},
                outcome=_OUTCOMES[status],
                paid=status == "succeeded",
                payment_intent=payment_intent,
                status=status,
            )
            if billing_email is not None or billing_name is not None:
                charge["billing_details"] = dict(_BILLING_EMPTY, email=billing_email, name=billing_name)
                charge["receipt_email"] = billing_email
            if status == "failed":
                charge["failure_code"] = "card_declined"
                charge["failure_message"] = "Your card was declined."
            details = self._card_details(amount)
            if payment_method != "card":  # a bank debit (DELAYED_METHODS)
                details = {"type": payment_method, payment_method: dict(_DEBIT_DETAILS[payment_method])}
            elif not captured and status == "succeeded":
                lapses = created + AUTHORIZATION_SECONDS if capture_before is None else capture_before
                details = dict(details, card=dict(details["card"], capture_before=lapses))
            charge["payment_method_details"] = details
            self._insert("charge", charge)
            cid = charge["id"]
            charge["payment_method"] = "pm_" + cid[3:]
            self._refund_lists[cid] = []
            if status == "succeeded":
                charge["calculated_statement_descriptor"] = "STANDIN SHOP"
                charge["receipt_url"] = f"https://pay.stripe.com/receipts/payment/{cid}"
            if captured and status == "succeeded":
                settled = amount_captured if rate is None else settle_amount(amount_captured, rate)
                bt_fee = default_fee(settled) if fee is None else int(fee)
                bt = self._new_bt(
                    type="charge",
                    amount=settled,
                    currency=settle_cur,
                    created=created,
                    fee_details=_stripe_fee(bt_fee, settle_cur),
                    source=cid,
                    description=description,
                    exchange_rate=rate,
                )
                charge["balance_transaction"] = bt["id"]
            if pi is not None:
                latest = pi.get("latest_charge")
                if latest is None or self._require(latest, "charge")["created"] <= created:
                    pi["latest_charge"] = cid
                    pi["payment_method"] = charge["payment_method"]
                    self._cols["payment_intent"].changed()
                    self._touch(payment_intent)  # type: ignore[arg-type]
            return charge

    def _card_details(self, amount: int) -> dict[str, Any]:
        """A card charge's payment_method_details, shared by charges of the same amount (never
        mutated): the card's `overcapture.maximum_amount_capturable` is the amount authorized."""
        details = self._card_by_amount.get(amount)
        if details is None:
            overcapture = {"maximum_amount_capturable": amount, "status": "unavailable"}
            details = self._card_by_amount[amount] = dict(
                _PAYMENT_METHOD_DETAILS, card=dict(_CARD, overcapture=overcapture)
            )
        return details

    def create_refund(
        self,
        charge_id: str,
        amount: int | None = None,
        created: int | None = None,
        *,
        status: str = "succeeded",
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
        id: str | None = None,
    ) -> dict[str, Any]:
        """A refund of a captured charge; updates the charge's refund fields and list.

        ``amount`` None means the whole remaining captured amount (``amount_captured`` less
        ``amount_refunded``: a released remainder of a partial capture was never refundable). Succeeded and pending
        refunds count toward ``amount_refunded`` and get a ``refund`` balance transaction
        (negative, in the charge's settlement currency and rate); failed or canceled ones
        get neither. ``created`` defaults to the charge's.
        """
        if status not in ("succeeded", "pending", "failed", "canceled", "requires_action"):
            raise ValueError(f"bad refund status {status!r}")
        with self.lock:
            charge = self._require(charge_id, "charge")
            remaining = (charge["amount_captured"] if charge["captured"] else 0) - charge["amount_refunded"]
            if amount is None:
                amount = remaining
            _check_amount(amount)
            if amount <= 0 or amount > remaining:
                raise ValueError(f"refund of {amount} exceeds the {remaining} refundable on {charge_id}")
            if created is None:
                created = charge["created"]
            refund = dict(_REFUND_TEMPLATE)
            refund.update(
                id=id,
                amount=amount,
                charge=charge_id,
                created=created,
                currency=charge["currency"],
                customer=charge["customer"],
                metadata=dict(metadata) if metadata else {},
                payment_intent=charge["payment_intent"],
                payment_method=charge["payment_method"],
                reason=reason,
                status=status,
            )
            if status == "failed":  # only a failed refund carries these (as in Stripe's fixtures)
                refund["failure_balance_transaction"] = None
                refund["failure_reason"] = "expired_or_canceled_card"
            self._insert("refund", refund)
            counts = status in ("succeeded", "pending", "requires_action")
            charge_bt = self.get(charge["balance_transaction"]) if charge["balance_transaction"] else None
            if counts and charge_bt is not None and status != "requires_action":
                rate = self._rates.get(charge_bt["id"])
                settled = amount if rate is None else settle_amount(amount, rate)
                bt = self._new_bt(
                    type="refund",
                    amount=-settled,
                    currency=charge_bt["currency"],
                    created=created,
                    fee_details=[],
                    source=refund["id"],
                    description="REFUND FOR CHARGE" + (f" ({charge['description']})" if charge["description"] else ""),
                    exchange_rate=rate,
                )
                refund["balance_transaction"] = bt["id"]
            self._refund_lists.setdefault(charge_id, []).insert(0, refund["id"])  # newest first
            changes: dict[str, Any] = {}
            if counts:
                changes["amount_refunded"] = charge["amount_refunded"] + amount
                changes["refunded"] = changes["amount_refunded"] >= charge["amount_captured"]
            self.update(charge_id, **changes)
            return refund

    def create_dispute(
        self,
        charge_id: str,
        amount: int | None = None,
        created: int | None = None,
        *,
        status: str = "needs_response",
        reason: str = "fraudulent",
        fee: int = 1500,
        metadata: Mapping[str, str] | None = None,
        id: str | None = None,
    ) -> dict[str, Any]:
        """A dispute on a charge: marks it disputed and withdraws the amount plus a 1500 fee.

        The ``adjustment``/``dispute`` balance transaction is settled like the charge and is
        also embedded in the dispute's ``balance_transactions``. Inquiries (``warning_*``) and
        ``prevented`` disputes withdraw nothing: no balance transaction.
        """
        if status not in DISPUTE_STATUSES:
            raise ValueError(f"bad dispute status {status!r}; known: {DISPUTE_STATUSES}")
        with self.lock:
            charge = self._require(charge_id, "charge")
            if amount is None:
                amount = charge["amount"]
            _check_amount(amount)
            if created is None:
                created = charge["created"]
            dispute = dict(_DISPUTE_TEMPLATE)
            dispute.update(
                id=id,
                amount=amount,
                charge=charge_id,
                created=created,
                currency=charge["currency"],
                evidence_details={
                    "due_by": created + 21 * 86400,
                    "enhanced_eligibility": {},
                    "has_evidence": False,
                    "past_due": False,
                    "submission_count": 0,
                },
                metadata=dict(metadata) if metadata else {},
                payment_intent=charge["payment_intent"],
                reason=reason,
                status=status,
            )
            self._insert("dispute", dispute)
            if status in _DISPUTES_WITHOUT_WITHDRAWAL:
                self.update(charge_id, disputed=True)
                return dispute
            charge_bt = self.get(charge["balance_transaction"]) if charge["balance_transaction"] else None
            settle_cur = charge_bt["currency"] if charge_bt else charge["currency"]
            rate = self._rates.get(charge_bt["id"]) if charge_bt else None
            settled = amount if rate is None else settle_amount(amount, rate)
            bt = self._new_bt(
                type="adjustment",
                amount=-settled,
                currency=settle_cur,
                created=created,
                fee_details=[
                    {
                        "amount": fee,
                        "application": None,
                        "currency": settle_cur,
                        "description": "Dispute fee",
                        "type": "stripe_fee",
                    }
                ]
                if fee
                else [],
                source=dispute["id"],
                description=f"Chargeback withdrawal for {charge_id}",
                reporting_category="dispute",
                exchange_rate=rate,
            )
            dispute["balance_transactions"] = [bt]
            self.update(charge_id, disputed=True)
            return dispute

    def create_payment_intent(
        self,
        amount: int,
        currency: str = "usd",
        created: int | None = None,
        *,
        status: str = "succeeded",
        metadata: Mapping[str, str] | None = None,
        capture_method: str = "automatic",
        customer: str | None = None,
        description: str | None = None,
        cancellation_reason: str = "abandoned",
        receipt_email: str | None = None,
        id: str | None = None,
        payment_method_types: Sequence[str] = ("card",),
    ) -> dict[str, Any]:
        """A PaymentIntent; ``latest_charge`` is set when a charge names it."""
        if status not in PAYMENT_INTENT_STATUSES:
            raise ValueError(f"bad payment_intent status {status!r}")
        if cancellation_reason not in CANCELLATION_REASONS:
            raise ValueError(f"bad cancellation_reason {cancellation_reason!r}")
        _check_amount(amount)
        if created is None:
            created = int(time.time())
        with self.lock:
            pi = dict(_PAYMENT_INTENT_TEMPLATE)
            pi.update(
                id=id,
                amount=amount,
                amount_capturable=amount if status == "requires_capture" else 0,
                amount_received=amount if status == "succeeded" else 0,
                canceled_at=created if status == "canceled" else None,
                cancellation_reason=cancellation_reason if status == "canceled" else None,
                capture_method=capture_method,
                created=created,
                currency=currency.lower(),
                customer=customer,
                description=description,
                metadata=dict(metadata) if metadata else {},
                receipt_email=receipt_email,
                status=status,
                payment_method_types=list(payment_method_types),
            )
            if list(payment_method_types) != ["card"]:
                pi["payment_method_options"] = {t: {} for t in payment_method_types}
            if status == "requires_action":
                pi["next_action"] = {"type": "use_stripe_sdk", "use_stripe_sdk": {}}
            self._insert("payment_intent", pi)
            pi["client_secret"] = f"{pi['id']}_secret_{''.join(self._rng.choices(_ALNUM, k=25))}"
            return pi

    def cancel_payment_intent(
        self, payment_intent: str, reason: str = "requested_by_customer", at: int | None = None
    ) -> dict[str, Any]:
        """Cancel a PaymentIntent (``reason="expired"``: its authorization lapsed), as Stripe does since basil.

        Its uncaptured charge is released without a Refund: it stays ``captured: false``,
        ``amount_captured: 0``, ``refunded: false``, ``amount_refunded: 0``; no balance transaction.
        """
        if reason not in CANCELLATION_REASONS:
            raise ValueError(f"bad cancellation_reason {reason!r}")
        with self.lock:
            pi = self._require(payment_intent, "payment_intent")
            if pi["status"] in ("succeeded", "canceled"):
                raise ValueError(f"a {pi['status']} PaymentIntent cannot be canceled")
            return self.update(
                payment_intent,
                status="canceled",
                cancellation_reason=reason,
                canceled_at=pi["created"] if at is None else at,
                amount_capturable=0,
                next_action=None,
            )

    def create_delayed_payment(
        self,
        amount: int,
        currency: str,
        method: str,
        created: int,
        *,
        settles_at: int,
        outcome: str = "succeeded",
        metadata: Mapping[str, str] | None = None,
        charge_metadata: Mapping[str, str] | None = None,
        billing_email: str | None = None,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """A delayed-notification bank debit (``method``: sepa_debit or us_bank_account), as Stripe makes one:
        its PaymentIntent ``processing`` and its charge ``pending`` until ``settle_due`` reaches
        ``settles_at``, when it ``outcome`` (succeeded or failed). ``metadata`` goes on the PaymentIntent,
        ``charge_metadata`` on the charge. Returns (PaymentIntent, charge)."""
        if method not in _DEBIT_DETAILS:
            raise ValueError(f"a delayed payment method is one of {', '.join(_DEBIT_DETAILS)}, not {method!r}")
        if outcome not in ("succeeded", "failed"):
            raise ValueError(f"a bank debit ends succeeded or failed, not {outcome!r}")
        with self.lock:
            pi = self.create_payment_intent(
                amount, currency, created, status="processing", metadata=metadata, payment_method_types=(method,)
            )
            charge = self.create_charge(
                amount,
                currency,
                created + 1,
                status="pending",
                metadata=charge_metadata,
                billing_email=billing_email,
                payment_intent=pi["id"],
                payment_method=method,
            )
            self._delayed[pi["id"]] = (settles_at, outcome)
            return pi, charge

    def settle_due(self, at: int) -> list[str]:
        """Every delayed payment whose time has come (``settles_at <= at``) gets the bank's answer: its charge
        succeeded (with its balance transaction, created then) or failed (insufficient funds), its
        PaymentIntent succeeded or back to ``requires_payment_method``. Returns their PaymentIntent ids."""
        with self.lock:
            due = sorted(pi for pi, (when, _) in self._delayed.items() if when <= at)
            for pi_id in due:
                when, outcome = self._delayed.pop(pi_id)
                pi = self._require(pi_id, "payment_intent")
                charge = self._require(pi["latest_charge"], "charge")
                if outcome == "succeeded":
                    bt = self._new_bt(
                        type="charge",
                        amount=charge["amount"],
                        currency=charge["currency"],
                        created=when,
                        fee_details=_stripe_fee(default_fee(charge["amount"]), charge["currency"]),
                        source=charge["id"],
                        description=charge["description"],
                        exchange_rate=None,
                    )
                    self.update(
                        charge["id"],
                        status="succeeded",
                        paid=True,
                        amount_captured=charge["amount"],
                        outcome=_OUTCOMES["succeeded"],
                        balance_transaction=bt["id"],
                        calculated_statement_descriptor="STANDIN SHOP",
                        receipt_url=f"https://pay.stripe.com/receipts/payment/{charge['id']}",
                    )
                    self.update(pi_id, status="succeeded", amount_received=pi["amount"])
                else:
                    self.update(
                        charge["id"],
                        status="failed",
                        captured=False,
                        outcome=_OUTCOMES["failed"],
                        failure_code=_DEBIT_FAILURE["code"],
                        failure_message=_DEBIT_FAILURE["message"],
                    )
                    self.update(pi_id, status="requires_payment_method")
            return due

    def create_checkout_session(
        self,
        created: int | None = None,
        *,
        status: str = "complete",
        payment_status: str = "paid",
        client_reference_id: str | None = None,
        metadata: Mapping[str, str] | None = None,
        payment_intent: str | None = None,
        amount_total: int | None = None,
        currency: str | None = None,
        customer_email: str | None = None,
        customer: str | None = None,
        mode: str = "payment",
        id: str | None = None,
    ) -> dict[str, Any]:
        """A Checkout Session; amount and currency default to its PaymentIntent's."""
        if status not in ("open", "complete", "expired"):
            raise ValueError(f"bad checkout session status {status!r}")
        if payment_status not in ("paid", "unpaid", "no_payment_required"):
            raise ValueError(f"bad payment_status {payment_status!r}")
        if status == "open" and payment_intent is not None:
            # Since 2022-08-01 a session's PaymentIntent is created when the customer confirms.
            raise ValueError(
                "an open Checkout Session has no PaymentIntent yet (payment_intent is null until confirmed)"
            )
        if created is None:
            created = int(time.time())
        with self.lock:
            pi = self._require(payment_intent, "payment_intent") if payment_intent else None
            if pi is not None:
                amount_total = pi["amount"] if amount_total is None else amount_total
                currency = currency or pi["currency"]
                customer = customer or pi.get("customer")
            session = dict(_CHECKOUT_SESSION_TEMPLATE)
            session.update(
                id=id,
                amount_subtotal=amount_total,
                amount_total=amount_total,
                client_reference_id=client_reference_id,
                created=created,
                currency=currency.lower() if currency else None,
                customer=customer,
                customer_email=customer_email,
                expires_at=created + 86400,
                metadata=dict(metadata) if metadata else {},
                mode=mode,
                payment_intent=payment_intent,
                payment_status=payment_status,
                status=status,
            )
            if status == "complete":
                session["customer_details"] = {
                    "address": _ADDRESS,
                    "business_name": None,
                    "email": customer_email,
                    "individual_name": None,
                    "name": None,
                    "phone": None,
                    "tax_exempt": "none",
                    "tax_ids": [],
                }
            self._insert("checkout.session", session)
            if status == "open":
                session["url"] = f"https://checkout.stripe.com/c/pay/{session['id']}"
            return session

    def create_balance_transaction(
        self,
        type: str = "payout",
        amount: int = -50000,
        currency: str = "usd",
        created: int | None = None,
        *,
        fee: int = 0,
        reporting_category: str | None = None,
        source: str | None = None,
        description: str | None = None,
        payout: str | None = None,
        available_on: int | None = None,
        status: str = "available",
        id: str | None = None,
    ) -> dict[str, Any]:
        """A free-standing balance transaction (payouts, fees, adjustments ...).

        ``reporting_category`` defaults from ``type`` as Stripe maps it; a payout without a
        ``source`` gets a generated ``po_`` id (naming no stored payout: ``create_payout`` makes
        a payout object with its transaction); ``payout`` assigns it to a payout for the
        ``payout`` list filter.
        """
        _check_amount(amount, allow_negative=True)
        if created is None:
            created = int(time.time())
        with self.lock:
            if type == "payout" and source is None:
                source = self.new_id("po_")
            bt = self._new_bt(
                type=type,
                amount=amount,
                currency=currency.lower(),
                created=created,
                fee_details=_stripe_fee(fee, currency.lower()),
                source=source,
                description=description,
                reporting_category=reporting_category,
                available_on=available_on,
                status=status,
                id=id,
            )
            if payout is not None:
                self._payout_of[bt["id"]] = payout
            return bt

    def create_payout(
        self,
        amount: int,
        currency: str = "usd",
        created: int | None = None,
        *,
        status: str = "paid",
        automatic: bool = True,
        arrival_date: int | None = None,
        reconciliation_status: str | None = None,
        transactions: Iterable[str] = (),
        failure_code: str | None = None,
        destination: str | None = None,
        description: str = "STRIPE PAYOUT",
        metadata: Mapping[str, str] | None = None,
        id: str | None = None,
    ) -> dict[str, Any]:
        """A payout of ``amount`` (positive, minor units) to a bank account, with its balance transactions.

        Its ``payout`` balance transaction (``-amount``, reporting category ``payout``, source the
        payout) is in ``balance_transaction``. A failed or canceled payout also gets the transaction
        that returns the money (``payout_failure`` / ``payout_cancel``, category ``payout_reversal``)
        in ``failure_balance_transaction``; a failed one a ``failure_code`` (default
        ``account_closed``) and its message. ``transactions``: balance transaction ids the payout
        paid out, for ``GET /v1/balance_transactions?payout=`` (automatic payouts only: Stripe does
        not itemise a manual one). ``reconciliation_status`` defaults to ``completed`` for an
        automatic payout and ``not_applicable`` for a manual one; ``arrival_date`` to midnight UTC
        two days after ``created``. ``trace_id`` is ``supported`` with a value once paid, else pending.
        """
        if status not in PAYOUT_STATUSES:
            raise ValueError(f"bad payout status {status!r}; known: {PAYOUT_STATUSES}")
        _check_amount(amount)
        if amount <= 0:
            raise ValueError("a payout's amount is positive")
        if reconciliation_status is None:
            reconciliation_status = "completed" if automatic else "not_applicable"
        if reconciliation_status not in PAYOUT_RECONCILIATION_STATUSES:
            raise ValueError(f"bad reconciliation_status {reconciliation_status!r}")
        if (reconciliation_status == "not_applicable") == automatic:
            raise ValueError("reconciliation_status is not_applicable exactly for a manual payout")
        transactions = list(transactions)
        if transactions and not automatic:
            raise ValueError("only an automatic payout lists the transactions it paid out")
        if status != "failed" and failure_code is not None:
            raise ValueError("only a failed payout has a failure_code")
        if status == "failed":
            failure_code = failure_code or "account_closed"
        currency = currency.lower()
        if created is None:
            created = int(time.time())
        if arrival_date is None:
            arrival_date = (created // 86400 + 2) * 86400
        with self.lock:
            for txn in transactions:
                self._require(txn, "balance_transaction")
            if destination is None:
                if self._bank_account is None:
                    self._bank_account = self.new_id("ba_")
                destination = self._bank_account
            payout = dict(_PAYOUT_TEMPLATE)
            payout.update(
                id=id,
                amount=amount,
                arrival_date=arrival_date,
                automatic=automatic,
                created=created,
                currency=currency,
                description=description,
                destination=destination,
                failure_code=failure_code,
                failure_message=_PAYOUT_FAILURES.get(failure_code or "", "The payout failed.")
                if failure_code
                else None,
                metadata=dict(metadata) if metadata else {},
                reconciliation_status=reconciliation_status,
                status=status,
            )
            self._insert("payout", payout)
            po = payout["id"]
            payout["trace_id"] = (
                {"status": "supported", "value": f"TRACE{po[3:15].upper()}"}
                if status == "paid"
                else {"status": "pending", "value": None}
            )
            bt = self._new_bt(
                type="payout",
                amount=-amount,
                currency=currency,
                created=created,
                fee_details=[],
                source=po,
                description=description,
                available_on=created,
            )
            payout["balance_transaction"] = bt["id"]
            if status in ("failed", "canceled"):
                back = self._new_bt(
                    type="payout_failure" if status == "failed" else "payout_cancel",
                    amount=amount,
                    currency=currency,
                    created=max(created, arrival_date) if status == "failed" else created,
                    fee_details=[],
                    source=po,
                    description=description,
                    available_on=max(created, arrival_date) if status == "failed" else created,
                )
                payout["failure_balance_transaction"] = back["id"]
            for txn in transactions:
                self._payout_of[txn] = po
            self._cols["balance_transaction"].changed()
            return payout

    def fail_payout(
        self, payout_id: str, failure_code: str = "account_closed", at: int | None = None
    ) -> dict[str, Any]:
        """A payout the bank returns after it showed ``paid`` (Stripe: that can happen days later): ``failed``
        with its ``failure_code`` and message, and the ``payout_failure`` transaction that puts the money
        back in the balance (``failure_balance_transaction``), created at ``at`` (default now)."""
        with self.lock:
            payout = self._require(payout_id, "payout")
            if payout["status"] in ("failed", "canceled"):
                raise ValueError(f"payout {payout_id} is already {payout['status']}")
            created = int(time.time()) if at is None else at
            back = self._new_bt(
                type="payout_failure",
                amount=payout["amount"],
                currency=payout["currency"],
                created=created,
                fee_details=[],
                source=payout_id,
                description=payout["description"],
                available_on=created,
            )
            self.update(
                payout_id,
                status="failed",
                failure_code=failure_code,
                failure_message=_PAYOUT_FAILURES.get(failure_code, "The payout failed."),
                failure_balance_transaction=back["id"],
            )
            self._cols["balance_transaction"].changed()
            return payout

    def _new_bt(
        self,
        *,
        type: str,
        amount: int,
        currency: str,
        created: int,
        fee_details: list[dict[str, Any]],
        source: str | None,
        description: str | None,
        reporting_category: str | None = None,
        exchange_rate: Decimal | None = None,
        available_on: int | None = None,
        status: str = "available",
        id: str | None = None,
    ) -> dict[str, Any]:
        fee = sum(d["amount"] for d in fee_details)
        bt = dict(_BT_TEMPLATE)
        bt.update(
            id=id,
            amount=amount,
            available_on=created + _AVAILABLE_AFTER if available_on is None else available_on,
            created=created,
            currency=currency,
            description=description,
            # A JSON number like Stripe's; float(Decimal("1.0843")) prints back as 1.0843.
            exchange_rate=None if exchange_rate is None else float(exchange_rate),
            fee=fee,
            fee_details=fee_details,
            net=amount - fee,
            reporting_category=reporting_category or _REPORTING_CATEGORY.get(type, "other_adjustment"),
            source=source,
            status=status,
            type=type,
        )
        self._insert("balance_transaction", bt)
        if exchange_rate is not None:
            self._rates[bt["id"]] = exchange_rate
        return bt

    # ----------------------------------------------------------------- reading

    def list_page(
        self,
        object_type: str,
        *,
        limit: int = 10,
        created_min: int | None = None,
        created_max: int | None = None,
        starting_after: str | None = None,
        ending_before: str | None = None,
        filters: Mapping[str, str] | None = None,
        expand: Mapping[str, Any] | None = None,
        ranges: Mapping[str, tuple[int | None, int | None]] | None = None,
    ) -> bytes:
        """One list page as JSON bytes, newest first, like Stripe's list endpoints.

        ``created_min``/``created_max`` are inclusive bounds; ``filters`` are equality
        filters on the resource's filter parameters; ``ranges`` inclusive (min, max) bounds
        on its other range fields (``Resource.ranges``, e.g. a payout's ``arrival_date``);
        ``expand`` is a tree from ``parse_expand`` (without the ``data.`` level). Unknown
        cursors raise ``ApiError``.
        """
        with self.lock:
            col = self._cols[object_type]
            res = col.resource
            paid_out = (filters or {}).get("payout", "") if object_type == "balance_transaction" else ""
            payout = self.get(paid_out) if paid_out else None
            if payout is not None and payout.get("object") == "payout" and not payout["automatic"]:
                # Stripe cannot say which transactions a manual payout paid out, and says so.
                raise invalid_request(
                    "Balance transaction history can only be filtered on automatic transfers, not manual."
                )
            keys, ids = col.view(self, tuple(sorted((filters or {}).items())))
            lo = 0 if created_min is None else bisect.bisect_left(keys, created_min * _SEQ_SPACE)
            hi = len(keys) if created_max is None else bisect.bisect_left(keys, (created_max + 1) * _SEQ_SPACE)
            bounds = [(name, low, high) for name, (low, high) in (ranges or {}).items() if (low, high) != (None, None)]
            if bounds:  # a scan of the created range: for the small lists that have such fields (payouts)
                kept = [
                    (keys[i], ids[i])
                    for i in range(lo, hi)
                    if all(_within(col.objects[ids[i]].get(name), low, high) for name, low, high in bounds)
                ]
                keys, ids = [k for k, _ in kept], [oid for _, oid in kept]
                lo, hi = 0, len(keys)
            if object_type in self.unordered:
                keys, ids = self._scrambled(col, ids[lo:hi])
                lo, hi = 0, len(keys)
            if ending_before is not None:
                start = max(lo, bisect.bisect_right(keys, self._cursor_key(col, ending_before, "ending_before")))
                stop = min(hi, start + limit)
                has_more = stop < hi
            else:
                stop = hi
                if starting_after is not None:
                    stop = min(hi, bisect.bisect_left(keys, self._cursor_key(col, starting_after, "starting_after")))
                start = max(lo, stop - limit)
                has_more = start > lo
            out: list[bytes] = [b'{"object":"list","data":[']
            tree = expand or {}
            for i in range(stop - 1, start - 1, -1):
                if i != stop - 1:
                    out.append(b",")
                self._emit(col, ids[i], tree, out)
            out.append(b'],"has_more":true' if has_more else b'],"has_more":false')
            out.append(b',"url":"' + res.path.encode() + b'"}')
            return b"".join(out)

    def retrieve_json(self, object_type: str, object_id: str, expand: Mapping[str, Any] | None = None) -> bytes:
        """One object as JSON bytes; a missing id (or one of another type) raises a 404 ``ApiError``."""
        with self.lock:
            col = self._where.get(object_id)
            if col is None or col.resource.object != object_type:
                raise resource_missing(object_type, object_id, "id", 404)
            out: list[bytes] = []
            self._emit(col, object_id, expand or {}, out)
            return b"".join(out)

    def _cursor_key(self, col: _Collection, object_id: str, param: str) -> int:
        key = col.sort_key.get(object_id)
        if key is None:
            raise resource_missing(col.resource.object, object_id, param, 400)
        if col.resource.object in self.unordered:
            return _scramble(object_id)
        return key

    def _scrambled(self, col: _Collection, ids: list[str]) -> tuple[list[int], list[str]]:
        """These ids in a fixed order unrelated to ``created`` (a list whose order Stripe does not promise)."""
        pairs = sorted((_scramble(oid), oid) for oid in ids)
        return [k for k, _ in pairs], [oid for _, oid in pairs]

    def _emit(self, col: _Collection, oid: str, tree: Mapping[str, Any], out: list[bytes]) -> None:
        """Append the JSON pieces of one object, splicing expanded children in."""
        self._emit_fields(col, oid, tree, out)
        if "refunds" in tree and col.resource.object == "charge":
            # An includable list: only an expanded charge carries it (its refunds unexpanded).
            refunds = self._cols["refund"]
            last = out.pop()
            out.append(last[:-1] + b',"refunds":{"object":"list","data":[')
            ids = self._refund_lists.get(oid, [])
            for n, rid in enumerate(ids):
                if n:
                    out.append(b",")
                self._emit_fields(refunds, rid, {}, out)
            tail = f'],"has_more":false,"url":"/v1/charges/{oid}/refunds"}}}}'
            out.append(tail.encode())

    def _emit_fields(self, col: _Collection, oid: str, tree: Mapping[str, Any], out: list[bytes]) -> None:
        pieces, slots = self._render(col, oid)
        if not tree or not slots:
            out.extend(pieces)
            return
        obj = col.objects[oid]
        out.append(pieces[0])
        for i, name in enumerate(slots):
            sub = tree.get(name)
            child = self._where.get(obj[name]) if sub is not None else None
            if child is not None:
                self._emit(child, obj[name], sub, out)  # type: ignore[arg-type]
            else:
                out.append(pieces[2 * i + 1])
            out.append(pieces[2 * i + 2])

    def _render(self, col: _Collection, oid: str) -> tuple[list[bytes], tuple[str, ...]]:
        """Cached JSON pieces: text, value of slot 0, text, value of slot 1, ..., text.

        Slots are the expandable fields holding an id; a page splices an expanded child's
        pieces in place of a slot's value.
        """
        cached = self._pieces.get(oid)
        if cached is not None:
            return cached
        obj = col.objects[oid]
        expandable = col.resource.expandable
        # In the object's own key order: the pieces are cut left to right.
        slots = tuple(name for name, value in obj.items() if name in expandable and value.__class__ is str)
        if not slots:
            cached = ([_JSON.encode(obj).encode()], ())
        else:
            marked = dict(obj)
            for i, name in enumerate(slots):
                marked[name] = f"{self._marker}{i}"
            rest = _JSON.encode(marked)
            pieces: list[bytes] = []
            for i, name in enumerate(slots):
                before, rest = rest.split(_JSON.encode(f"{self._marker}{i}"), 1)
                pieces.append(before.encode())
                pieces.append(_JSON.encode(obj[name]).encode())
            pieces.append(rest.encode())
            cached = (pieces, slots)
        self._pieces[oid] = cached
        return cached

    def prerender(self) -> None:
        """Render every object's JSON now (~30 us per charge) instead of on its first request.

        For benchmarks that should measure paging, not first-time rendering.
        """
        with self.lock:
            for col in self._cols.values():
                for oid in col.objects:
                    self._render(col, oid)


def _within(value: Any, low: int | None, high: int | None) -> bool:
    return isinstance(value, int) and (low is None or value >= low) and (high is None or value <= high)


def _scramble(object_id: str) -> int:
    """A stable pseudo-random sort key for an id (the same in every list and page)."""
    return int.from_bytes(hashlib.blake2b(object_id.encode(), digest_size=8).digest(), "big")


def _check_amount(amount: Any, *, allow_negative: bool = False) -> None:
    if not isinstance(amount, int) or isinstance(amount, bool):
        raise TypeError(f"amounts are integers in minor units, got {amount!r}")
    if amount < 0 and not allow_negative:
        raise ValueError(f"amount must not be negative, got {amount}")


def _stripe_fee(fee: int, currency: str) -> list[dict[str, Any]]:
    if not fee:
        return []
    return [
        {
            "amount": int(fee),
            "application": None,
            "currency": currency,
            "description": "Stripe processing fees",
            "type": "stripe_fee",
        }
    ]
