"""The stand-in's objects against Stripe's published example objects (tests/fixtures/stripe, MIT).

Each object the stand-in serves over HTTP (through the SDK, as the pinned API version) has the
same top-level fields as Stripe's example of its kind, each with the same JSON type, or null where
Stripe's field is nullable (the installed SDK's annotation is Optional). A charge carries
`refunds` only when expanded (API version: an includable field since 2022-11-15).
"""

from __future__ import annotations

import json
import typing
from pathlib import Path
from typing import Any

import pytest
import stripe

from reconcile.demo.standin import StandinStore, serve

FIXTURES = json.loads((Path(__file__).parent / "fixtures" / "stripe" / "fixtures.json").read_text())["resources"]
KEY = "sk_test_fidelity"
T0 = 1_763_700_000
SDK_CLASS = {
    "charge": stripe.Charge,
    "balance_transaction": stripe.BalanceTransaction,
    "payment_intent": stripe.PaymentIntent,
    "refund": stripe.Refund,
    "dispute": stripe.Dispute,
    "checkout.session": stripe.checkout.Session,
}
PATHS = {
    "charge": "/v1/charges",
    "balance_transaction": "/v1/balance_transactions",
    "payment_intent": "/v1/payment_intents",
    "refund": "/v1/refunds",
    "dispute": "/v1/disputes",
    "checkout.session": "/v1/checkout/sessions",
}


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    raise TypeError(type(value))


def nullable(kind: str, field: str) -> bool:
    """Whether the SDK types the field Optional (Stripe's schema says nullable)."""
    annotation = SDK_CLASS[kind].__annotations__.get(field)
    return annotation is not None and type(None) in typing.get_args(annotation)


@pytest.fixture(scope="module")
def served() -> dict[str, list[dict[str, Any]]]:
    """Every kind of object, in the states the job meets, as the stand-in serves them (raw JSON)."""
    store = StandinStore(api_key=KEY)
    pi = store.create_payment_intent(amount=5000, created=T0, status="requires_capture", capture_method="manual")
    authorized = store.create_charge(amount=5000, created=T0 + 1, captured=False, payment_intent=pi["id"])
    store.cancel_payment_intent(pi["id"], "expired", at=T0 + 9)
    paid_pi = store.create_payment_intent(amount=3000, created=T0 + 2, metadata={"order_id": "o1"})
    paid = store.create_charge(amount=3000, created=T0 + 3, payment_intent=paid_pi["id"], billing_email="a@b.example")
    partial = store.create_charge(amount=5000, created=T0 + 4, amount_captured=4000)
    failed = store.create_charge(amount=700, created=T0 + 5, status="failed")
    store.create_refund(paid["id"], amount=500, created=T0 + 6)
    store.create_refund(partial["id"], amount=100, created=T0 + 7, status="failed")
    store.create_dispute(paid["id"], created=T0 + 8)
    store.create_dispute(partial["id"], created=T0 + 8, status="warning_needs_response")
    store.create_checkout_session(created=T0 + 9, payment_intent=paid_pi["id"], client_reference_id="o1")
    store.create_checkout_session(created=T0 + 10, status="open", payment_status="unpaid", amount_total=100)
    store.create_balance_transaction("payout", -2000, created=T0 + 11)
    store.create_balance_transaction("stripe_fee", -500, created=T0 + 12, reporting_category="fee")
    assert authorized and failed
    out: dict[str, list[dict[str, Any]]] = {}
    with serve(store) as srv:
        client = stripe.StripeClient(KEY, base_addresses={"api": srv.url})
        for kind, path in PATHS.items():
            listed = client.raw_request("get", path, limit=100).data["data"]
            out[kind] = [json.loads(json.dumps(obj)) for obj in listed]
        expanded = client.raw_request("get", PATHS["charge"], limit=100, expand=["data.refunds"]).data["data"]
        out["charge+refunds"] = [json.loads(json.dumps(obj)) for obj in expanded]
    return out


@pytest.mark.parametrize("kind", sorted(PATHS))
def test_the_standins_objects_have_stripes_fields_and_json_types(served, kind):
    example = FIXTURES[kind]
    objects = served[kind]
    assert objects, kind
    includable = {"refunds"} if kind == "charge" else set()
    # Fields a Stripe object carries only in some states (a failed refund's failure fields).
    conditional = {"failure_balance_transaction", "failure_reason"} if kind == "refund" else set()
    for obj in objects:
        assert set(example) - includable - set(obj) == set(), (kind, obj["id"], "missing")
        assert set(obj) - set(example) - conditional == set(), (kind, obj["id"], "not in Stripe's object")
        for field, value in obj.items():
            if field not in example or example[field] is None:
                continue
            if value is None:
                assert nullable(kind, field), (kind, field, "null, but Stripe's field is not nullable")
            else:
                assert json_type(value) == json_type(example[field]), (kind, obj["id"], field, value)


def test_charges_carry_refunds_exactly_when_expanded(served):
    assert all("refunds" not in c for c in served["charge"])
    for charge in served["charge+refunds"]:
        refunds = charge["refunds"]
        assert set(refunds) == set(FIXTURES["charge"]["refunds"]), refunds
        for refund in refunds["data"]:
            assert set(FIXTURES["refund"]) <= set(refund)
