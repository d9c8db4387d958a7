"""The stand-in's objects against Stripe's published example objects (tests/fixtures/stripe, MIT)
and the installed SDK's types.

Every object the stand-in serves over HTTP (through the SDK, as the pinned API version), in the
states the job meets, is checked three ways:

- against Stripe's example of its kind: the same top-level fields, and at every depth each field
  Stripe's example has, with the same JSON type where both are non-null; an expanded field (an
  object where the example has an id) is checked as a whole object of its kind;
- against the installed SDK's annotations (stripe/_charge.py, _payout.py, ...), read from the
  classes at run time, so an SDK upgrade changes the check: every field at every depth is one the
  SDK declares, null only where it is Optional, else of the annotated type (nested classes,
  expanded objects, lists and enums followed). This covers the fields whose example is null
  (`payment_intent`, `client_reference_id`, `amount_total`, `exchange_rate`, a refund's `reason`);
- the fields the job reads (reconcile/stripe/pull.py, payments.py, movements.py) and the ones the
  payouts work will read are served non-null somewhere, so the two checks above bite on them.

A charge carries `refunds` only when expanded (API version: an includable field since 2022-11-15).
"""

from __future__ import annotations

import importlib
import inspect
import json
import re
import sys
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ForwardRef, Literal, Union

import pytest
import stripe
from stripe._list_object import ListObject
from stripe._stripe_object import StripeObject, UntypedStripeObject

from reconcile.demo.standin import StandinStore, serve

FIXTURE_DIR = Path(__file__).parent / "fixtures" / "stripe"
FIXTURES: dict[str, dict[str, Any]] = {
    **json.loads((FIXTURE_DIR / "fixtures.json").read_text())["resources"],
    **json.loads((FIXTURE_DIR / "payout.json").read_text())["resources"],
}
KEY = "sk_test_fidelity"
T0 = 1_763_700_000
SDK_CLASS: dict[str, type[StripeObject]] = {
    "charge": stripe.Charge,
    "balance_transaction": stripe.BalanceTransaction,
    "payment_intent": stripe.PaymentIntent,
    "refund": stripe.Refund,
    "dispute": stripe.Dispute,
    "checkout.session": stripe.checkout.Session,
    "payout": stripe.Payout,
}
PATHS = {
    "charge": "/v1/charges",
    "balance_transaction": "/v1/balance_transactions",
    "payment_intent": "/v1/payment_intents",
    "refund": "/v1/refunds",
    "dispute": "/v1/disputes",
    "checkout.session": "/v1/checkout/sessions",
    "payout": "/v1/payouts",
}
# Each kind listed as the job lists it (its expansions), and with every expandable field the
# stand-in stores expanded, so expanded objects are checked too.
EXPANDED = {
    "charge": ["data.balance_transaction", "data.payment_intent", "data.refunds"],
    "balance_transaction": ["data.source"],
    "payment_intent": ["data.latest_charge"],
    "refund": ["data.charge", "data.balance_transaction", "data.failure_balance_transaction"],
    "dispute": ["data.charge"],
    "checkout.session": ["data.payment_intent"],
    "payout": ["data.balance_transaction", "data.failure_balance_transaction"],
}
# Fields a Stripe object carries only in some states, absent from Stripe's example of it.
CONDITIONAL = {
    "refund": {"failure_balance_transaction", "failure_reason"},  # a failed refund's
    "charge.payment_method_details.card": {"capture_before"},  # an uncaptured authorization's
    "charge.payment_method_details": {"card"},  # a card payment's (a bank debit has its own: sepa_debit, ...)
}
INCLUDABLE = {"charge": {"refunds"}}  # in the answer only when expanded

# The fields the job reads (reconcile/stripe/pull.py charge_row, balance_row, payment_intent_row,
# checkout_session_row; movements.py movement_row) and those the payouts work will read, as dotted
# paths through the served objects (through expanded objects and lists). Each must be a field the
# SDK declares, of its type, and non-null in some served object.
READ = {
    "charge": [
        "status",
        "captured",
        "amount_captured",
        "amount_refunded",
        "refunded",
        "disputed",
        "currency",
        "metadata",
        "payment_intent",
        "description",
        "billing_details.email",
        "receipt_email",
        "failure_code",
        "balance_transaction.currency",
        "balance_transaction.amount",
        "balance_transaction.exchange_rate",
        "payment_method_details.card.capture_before",
        "payment_method_details.type",
        "refunds.data.id",
        "refunds.data.amount",
        "refunds.data.status",
    ],
    "balance_transaction": [
        "type",
        "reporting_category",
        "currency",
        "amount",
        "fee",
        "net",
        "exchange_rate",
        "available_on",
        "status",
        "source.id",
        "source.object",
        "fee_details.amount",
        "fee_details.type",
    ],
    "payment_intent": [
        "status",
        "amount",
        "currency",
        "metadata",
        "latest_charge",
        "receipt_email",
        "cancellation_reason",
        "canceled_at",
        "payment_method_types",
    ],
    "checkout.session": [
        "status",
        "payment_status",
        "client_reference_id",
        "metadata",
        "payment_intent",
        "amount_total",
        "currency",
        "customer_details.email",
        "customer_email",
        "expires_at",
        "payment_method_types",
    ],
    "refund": [
        "status",
        "amount",
        "currency",
        "reason",
        "failure_reason",
        "charge.id",
        "charge.payment_intent",
        "balance_transaction.amount",
    ],
    "dispute": [
        "status",
        "amount",
        "currency",
        "reason",
        "evidence_details.due_by",
        "charge.id",
        "balance_transactions.amount",
        "balance_transactions.reporting_category",
    ],
    "payout": [
        "amount",
        "currency",
        "status",
        "automatic",
        "reconciliation_status",
        "arrival_date",
        "method",
        "failure_code",
        "failure_message",
        "trace_id.status",
        "trace_id.value",
        "balance_transaction.type",
        "balance_transaction.reporting_category",
        "balance_transaction.amount",
        "balance_transaction.source",
        "failure_balance_transaction.type",
        "failure_balance_transaction.reporting_category",
        "destination",
    ],
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


# --------------------------------------------------------------------------- the SDK's annotations

_IMPORT = re.compile(r"^\s*from (stripe[\w.]*) import \(?([\w\s,]+?)\)?\s*$", re.M)
_NAME = re.compile(r"(\w+)(?:\s+as\s+(\w+))?")


def _type_checking_names(module_name: str) -> dict[str, tuple[str, str]]:
    """Names a generated SDK module imports for annotations only (under TYPE_CHECKING), as written
    (`from stripe._x import X`, `... import X as Y`, `... import (\n X,\n)`)."""
    source = inspect.getsource(sys.modules[module_name])
    return {
        alias or name: (module, name)
        for module, names in _IMPORT.findall(source)
        for name, alias in _NAME.findall(names)
    }


def resolve(ref: ForwardRef, owner: type) -> Any:
    """A forward reference in ``owner``'s annotations (e.g. "BalanceTransaction") as its SDK class."""
    name = ref.__forward_arg__
    module = sys.modules[owner.__module__]
    if hasattr(module, name):
        return getattr(module, name)
    where, attr = _type_checking_names(owner.__module__)[name]
    return getattr(importlib.import_module(where), attr)


def sdk_fields(cls: type) -> dict[str, Any]:
    """The fields a generated SDK class declares (its own annotations, evaluated), ClassVars aside."""
    own = cls.__dict__.get("__annotations__", {})
    return {name: ann for name, ann in own.items() if typing.get_origin(ann) is not typing.ClassVar}


def _is_union(ann: Any) -> bool:
    return typing.get_origin(ann) is Union


def object_problems(obj: dict[str, Any], cls: type, path: str) -> list[str]:
    """Whether a served object fits an SDK class: each field declared, each value of its type."""
    fields = sdk_fields(cls)
    out = []
    for name, value in obj.items():
        if name not in fields:
            out.append(f"{path}.{name}: not a field of the SDK's {cls.__qualname__}")
        else:
            out += problems(value, fields[name], cls, f"{path}.{name}")
    return out


def problems(value: Any, ann: Any, owner: type, path: str) -> list[str]:
    """Whether a served value fits an SDK annotation (evaluated, as the class holds it); [] if it does.

    Raises TypeError on an annotation it does not know, so a new SDK shape is noticed, not passed.
    """
    if ann is Any:
        return []
    origin, args = typing.get_origin(ann), typing.get_args(ann)
    if _is_union(ann):
        if value is None:
            return [] if type(None) in args else [f"{path}: null, but the SDK's {ann} is not Optional"]
        arms = [arm for arm in args if arm is not type(None)]
        kind = sdk_class_of(value, ann, owner) if isinstance(value, dict) else None
        if kind is not None:  # an object (expanded, perhaps): the problems of its own class
            arms = [kind]
        tried = [problems(value, arm, owner, path) for arm in arms]
        return [] if any(not t for t in tried) else min(tried, key=len)
    if value is None:
        return [f"{path}: null, but the SDK's {ann} is not Optional"]
    if isinstance(ann, ForwardRef):
        return problems(value, resolve(ann, owner), owner, path)
    if origin is Literal:
        return [] if value in args else [f"{path}: {value!r} is none of the SDK's {args}"]
    if origin is list:
        if not isinstance(value, list):
            return [f"{path}: {json_type(value)}, the SDK says a list"]
        return [p for i, item in enumerate(value) for p in problems(item, args[0], owner, f"{path}[{i}]")]
    if origin is dict:
        if not isinstance(value, dict):
            return [f"{path}: {json_type(value)}, the SDK says a dict"]
        return [p for k, item in value.items() for p in problems(item, args[1], owner, f"{path}.{k}")]
    cls = origin if isinstance(origin, type) else ann
    if isinstance(cls, type) and issubclass(cls, StripeObject):
        if not isinstance(value, dict):
            return [f"{path}: {json_type(value)}, the SDK says an object ({cls.__qualname__})"]
        if issubclass(cls, UntypedStripeObject):  # metadata and the like: any keys
            return (
                [p for k, item in value.items() for p in problems(item, args[0], owner, f"{path}.{k}")] if args else []
            )
        if issubclass(cls, ListObject):
            out = [] if value.get("object") == "list" else [f"{path}.object: not 'list'"]
            if not isinstance(value.get("has_more"), bool) or not isinstance(value.get("url"), str):
                out.append(f"{path}: a list without has_more and url")
            return out + problems(value.get("data"), list[args[0]], owner, f"{path}.data")  # type: ignore[valid-type]
        return object_problems(value, cls, path)
    if ann is bool:
        return [] if isinstance(value, bool) else [f"{path}: {value!r} is not a bool"]
    if ann is int:
        return [] if isinstance(value, int) and not isinstance(value, bool) else [f"{path}: {value!r} is not an int"]
    if ann is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return [] if ok else [f"{path}: {value!r} is not a number"]
    if ann is str:
        return [] if isinstance(value, str) else [f"{path}: {value!r} is not a string"]
    raise TypeError(f"{path}: an SDK annotation this test does not know: {ann!r}")


def sdk_class_of(value: dict[str, Any], ann: Any, owner: type) -> Any:
    """The SDK class (or ListObject[...]) of an object under an annotation: its only object arm, or
    the arm whose OBJECT_NAME is the object's `object` (an expanded field of several kinds)."""
    arms = []
    for arm in typing.get_args(ann) if _is_union(ann) else (ann,):
        arm = resolve(arm, owner) if isinstance(arm, ForwardRef) else arm
        cls = typing.get_origin(arm) or arm
        if isinstance(cls, type) and issubclass(cls, StripeObject):
            arms.append(arm)
    if len(arms) > 1:
        arms = [arm for arm in arms if getattr(arm, "OBJECT_NAME", None) == value.get("object")]
    return arms[0] if len(arms) == 1 else None


def read(obj: Any, cls: Any, parts: list[str], path: str) -> Iterator[tuple[str, Any, Any, type]]:
    """(path, value, annotation, owner) at a dotted path, through nested and expanded objects and lists."""
    if isinstance(obj, list):
        for i, item in enumerate(obj):
            yield from read(item, cls, parts, f"{path}[{i}]")
        return
    fields = sdk_fields(cls)
    assert parts[0] in fields, f"{path}.{parts[0]}: the SDK's {cls.__qualname__} has no such field"
    ann, value, where = fields[parts[0]], obj.get(parts[0]), f"{path}.{parts[0]}"
    if len(parts) == 1:
        yield where, value, ann, cls
        return
    if value is None:
        return
    if isinstance(value, list):
        arms = typing.get_args(ann) if _is_union(ann) else (ann,)
        inner = typing.get_args(next(arm for arm in arms if typing.get_origin(arm) is list))[0]
        for i, item in enumerate(value):
            item_cls = sdk_class_of(item, inner, cls)
            assert item_cls is not None, (where, item.get("object"), inner)
            yield from read(item, item_cls, parts[1:], f"{where}[{i}]")
        return
    if isinstance(value, dict):
        nested = sdk_class_of(value, ann, cls)
        assert nested is not None, (where, value.get("object"), ann)
        if typing.get_origin(nested) is ListObject:  # `refunds.data...`
            assert parts[1] == "data", where
            item_cls = resolve(typing.get_args(nested)[0], cls)
            for i, item in enumerate(value["data"]):
                yield from read(item, item_cls, parts[2:], f"{where}.data[{i}]")
            return
        yield from read(value, nested, parts[1:], where)


# --------------------------------------------------------------------------- Stripe's examples


def shape_problems(value: Any, example: Any, at: str, path: str) -> list[str]:
    """Whether a served value has the shape of Stripe's example at the same place (`at`: kind and
    field names, e.g. "charge.outcome"; `path`: where, for the message). Nulls aside: whether a
    field may be null is the SDK's to say."""
    if value is None or example is None:
        return []
    if isinstance(value, dict) and isinstance(example, str) and value.get("object") in FIXTURES:
        return kind_problems(value, value["object"], path)  # expanded where the example has the id
    if json_type(value) != json_type(example):
        return [f"{path}: {json_type(value)}, Stripe's example has {json_type(example)}"]
    out = []
    if isinstance(value, dict):
        optional = CONDITIONAL.get(at, set())
        out += [f"{path}.{k}: missing (Stripe's example has it)" for k in sorted(set(example) - set(value) - optional)]
        for k in sorted(example.keys() & value.keys()):
            out += shape_problems(value[k], example[k], f"{at}.{k}", f"{path}.{k}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            if example:
                out += shape_problems(item, example[0], at, f"{path}[{i}]")
            elif isinstance(item, dict) and item.get("object") in FIXTURES:
                out += kind_problems(item, item["object"], f"{path}[{i}]")
    return out


def kind_problems(obj: dict[str, Any], kind: str, path: str) -> list[str]:
    """A whole object against Stripe's example of its kind: exactly its top-level fields (some
    conditional or includable), then every field's shape at every depth."""
    example = FIXTURES[kind]
    out = [f"{path}.{k}: missing" for k in sorted(set(example) - INCLUDABLE.get(kind, set()) - set(obj))]
    out += [
        f"{path}.{k}: not in Stripe's object" for k in sorted(set(obj) - set(example) - CONDITIONAL.get(kind, set()))
    ]
    for k in sorted(obj.keys() & example.keys()):
        out += shape_problems(obj[k], example[k], f"{kind}.{k}", f"{path}.{k}")
    return out


# --------------------------------------------------------------------------- the served objects


def build_store() -> StandinStore:
    """Every kind of object, in the states the job (and the payouts work) meets."""
    store = StandinStore(api_key=KEY)
    pi = store.create_payment_intent(amount=5000, created=T0, status="requires_capture", capture_method="manual")
    store.create_charge(amount=5000, created=T0 + 1, captured=False, payment_intent=pi["id"])
    store.cancel_payment_intent(pi["id"], "expired", at=T0 + 9)
    held_pi = store.create_payment_intent(amount=900, created=T0, status="requires_capture", capture_method="manual")
    store.create_charge(amount=900, created=T0 + 1, captured=False, payment_intent=held_pi["id"])
    paid_pi = store.create_payment_intent(
        amount=3000, created=T0 + 2, metadata={"order_id": "o1"}, receipt_email="a@b.example"
    )
    paid = store.create_charge(
        amount=3000, created=T0 + 3, payment_intent=paid_pi["id"], billing_email="a@b.example", description="o1"
    )
    partial = store.create_charge(amount=5000, created=T0 + 4, amount_captured=4000, metadata={"order_id": "o2"})
    store.create_charge(amount=700, created=T0 + 5, status="failed")
    fx = store.create_charge(
        amount=2000, currency="eur", created=T0 + 5, settlement_currency="usd", exchange_rate="1.0843"
    )
    store.create_refund(paid["id"], amount=500, created=T0 + 6, reason="requested_by_customer")
    store.create_refund(partial["id"], amount=100, created=T0 + 7, status="failed")
    store.create_refund(fx["id"], amount=300, created=T0 + 7)
    store.create_dispute(paid["id"], created=T0 + 8)
    store.create_dispute(partial["id"], created=T0 + 8, status="warning_needs_response")
    store.create_payment_intent(amount=100, created=T0 + 9, status="requires_payment_method")
    store.create_checkout_session(
        created=T0 + 9, payment_intent=paid_pi["id"], client_reference_id="o1", customer_email="a@b.example"
    )
    store.create_checkout_session(created=T0 + 10, status="open", payment_status="unpaid", amount_total=100)
    store.create_balance_transaction("payout", -2000, created=T0 + 11)
    store.create_balance_transaction("stripe_fee", -500, created=T0 + 12, reporting_category="fee")
    charges_bt = [paid["balance_transaction"], partial["balance_transaction"]]
    store.create_payout(6000, created=T0 + 86400, transactions=charges_bt)
    store.create_payout(1000, created=T0 + 86401, status="in_transit", reconciliation_status="in_progress")
    store.create_payout(700, created=T0 + 86402, status="failed", failure_code="account_closed")
    store.create_payout(500, created=T0 + 86403, automatic=False, status="pending")
    store.create_payout(400, created=T0 + 86404, automatic=False, status="canceled")
    # Bank debits (delayed notification): one still processing, one settled, one failed.
    for n, (method, outcome) in enumerate((("sepa_debit", "succeeded"), ("us_bank_account", "failed"))):
        store.create_delayed_payment(
            1500,
            "eur" if method == "sepa_debit" else "usd",
            method,
            T0 + 20 + n,
            settles_at=T0 + 30,
            outcome=outcome,
            metadata={"order_id": f"d{n}"},
        )
    store.create_delayed_payment(1700, "eur", "sepa_debit", T0 + 25, settles_at=T0 + 14 * 86400)
    assert len(store.settle_due(T0 + 30)) == 2
    return store


@pytest.fixture(scope="module")
def served() -> dict[str, list[dict[str, Any]]]:
    """Each kind as the stand-in lists it (raw JSON through the SDK): `kind` unexpanded, and
    `kind+` with its expandable fields expanded."""
    store = build_store()
    out: dict[str, list[dict[str, Any]]] = {}
    with serve(store) as srv:
        client = stripe.StripeClient(KEY, base_addresses={"api": srv.url})
        for kind, path in PATHS.items():
            listed = client.raw_request("get", path, limit=100).data["data"]
            out[kind] = [json.loads(json.dumps(obj)) for obj in listed]
            expanded = client.raw_request("get", path, limit=100, expand=EXPANDED[kind]).data["data"]
            out[kind + "+"] = [json.loads(json.dumps(obj)) for obj in expanded]
    return out


KINDS = sorted(PATHS)
BOTH = [k + s for k in KINDS for s in ("", "+")]


@pytest.mark.parametrize("listing", BOTH)
def test_the_standins_objects_have_the_shape_of_stripes_examples(served, listing):
    kind = listing.rstrip("+")
    objects = served[listing]
    assert objects, listing
    found = [p for obj in objects for p in kind_problems(obj, kind, f"{kind} {obj['id']}")]
    assert found == [], "\n".join(found)


@pytest.mark.parametrize("listing", BOTH)
def test_the_standins_objects_have_the_sdks_fields_and_types(served, listing):
    kind = listing.rstrip("+")
    found = [p for obj in served[listing] for p in object_problems(obj, SDK_CLASS[kind], f"{kind} {obj['id']}")]
    assert found == [], "\n".join(found)


@pytest.mark.parametrize("kind", KINDS)
def test_fields_stripes_example_leaves_null_are_served_non_null_somewhere(served, kind):
    """The SDK-type check above bites on a field only where the stand-in fills it: each field
    Stripe's example leaves null that the job or the payouts work reads is filled somewhere."""
    null_in_example = {k for k, v in FIXTURES[kind].items() if v is None}
    read_top = {p.split(".", 1)[0] for p in READ[kind]}
    for name in sorted(null_in_example & read_top):
        assert any(obj.get(name) is not None for obj in served[kind + "+"]), (kind, name, "never filled")


@pytest.mark.parametrize("kind", KINDS)
def test_fields_the_job_reads_are_the_sdks_and_filled(served, kind):
    for dotted in READ[kind]:
        seen = [
            (where, value, ann, owner)
            for obj in served[kind + "+"]
            for where, value, ann, owner in read(obj, SDK_CLASS[kind], dotted.split("."), f"{kind} {obj['id']}")
        ]
        filled = [(where, value, ann, owner) for where, value, ann, owner in seen if value is not None]
        assert filled, (kind, dotted, "never served non-null")
        found = [p for where, value, ann, owner in seen for p in problems(value, ann, owner, where)]
        assert found == [], "\n".join(found)


def test_bank_debits_have_stripes_shapes_in_each_state(served):
    """A delayed-notification payment as the job reads it: the charge's payment_method_details.type and its
    method's details (SDK-checked above), the PaymentIntent's payment_method_types; processing, then settled."""
    debits = {c["id"]: c for c in served["charge+"] if c["payment_method_details"]["type"] != "card"}
    states = sorted((c["payment_method_details"]["type"], c["status"]) for c in debits.values())
    assert states == [("sepa_debit", "pending"), ("sepa_debit", "succeeded"), ("us_bank_account", "failed")]
    for charge in debits.values():
        method = charge["payment_method_details"]["type"]
        assert set(charge["payment_method_details"]) == {"type", method}
        assert (charge["balance_transaction"] is not None) == (charge["status"] == "succeeded")
        intent = charge["payment_intent"]
        assert intent["payment_method_types"] == [method]
        assert (
            intent["status"]
            == {"pending": "processing", "succeeded": "succeeded", "failed": "requires_payment_method"}[
                charge["status"]
            ]
        )
    assert all(c["failure_code"] == "insufficient_funds" for c in debits.values() if c["status"] == "failed")


def test_charges_carry_refunds_exactly_when_expanded(served):
    assert all("refunds" not in c for c in served["charge"])
    for charge in served["charge+"]:
        refunds = charge["refunds"]
        assert set(refunds) == set(FIXTURES["charge"]["refunds"]), refunds
        for refund in refunds["data"]:
            assert set(FIXTURES["refund"]) <= set(refund)


def test_expansions_are_served_as_objects(served):
    """Where the job expands (a charge's balance transaction, a movement's charge, a transaction's
    source) the stand-in answers an object of the right kind, so the checks above see it."""
    charges = served["charge+"]
    assert any(isinstance(c["balance_transaction"], dict) for c in charges)
    assert all(c["balance_transaction"]["object"] == "balance_transaction" for c in charges if c["balance_transaction"])
    sources = {t["source"]["object"] for t in served["balance_transaction+"] if isinstance(t["source"], dict)}
    assert {"charge", "refund", "dispute", "payout"} <= sources, sources
    assert all(isinstance(r["charge"], dict) for r in served["refund+"] + served["dispute+"])
    payouts = served["payout+"]
    assert all(p["balance_transaction"]["type"] == "payout" for p in payouts)
    assert {p["failure_balance_transaction"]["type"] for p in payouts if p["failure_balance_transaction"]} == {
        "payout_failure",
        "payout_cancel",
    }


# --------------------------------------------------------------------------- payouts


@pytest.fixture(scope="module")
def payouts_client() -> Iterator[tuple[StandinStore, stripe.StripeClient]]:
    store = build_store()
    with serve(store) as srv:
        yield store, stripe.StripeClient(KEY, base_addresses={"api": srv.url})


def test_payouts_list_newest_first_by_created_and_cursor(payouts_client):
    store, client = payouts_client
    everything = client.raw_request("get", "/v1/payouts", limit=100).data
    ids = [p["id"] for p in everything["data"]]
    assert len(ids) == 5 and everything["url"] == "/v1/payouts" and not everything["has_more"]
    created = [p["created"] for p in everything["data"]]
    assert created == sorted(created, reverse=True)
    first = client.raw_request("get", "/v1/payouts", limit=2).data
    rest = client.raw_request("get", "/v1/payouts", limit=100, starting_after=first["data"][-1]["id"]).data
    assert first["has_more"] and [p["id"] for p in first["data"] + rest["data"]] == ids
    window = client.raw_request("get", "/v1/payouts", created={"gte": T0 + 86401, "lt": T0 + 86403}).data
    assert [p["created"] for p in window["data"]] == [T0 + 86402, T0 + 86401]
    failed = client.raw_request("get", "/v1/payouts", status="failed").data["data"]
    assert [p["failure_code"] for p in failed] == ["account_closed"]
    arriving = everything["data"][0]["arrival_date"]
    by_arrival = client.raw_request("get", "/v1/payouts", arrival_date={"gte": arriving}).data["data"]
    assert by_arrival and all(p["arrival_date"] >= arriving for p in by_arrival)
    one = client.v1.payouts.retrieve(ids[0])
    assert isinstance(one, stripe.Payout) and one.id == ids[0] and one.trace_id is not None
    with pytest.raises(stripe.InvalidRequestError, match="No such payout"):
        client.v1.payouts.retrieve("po_missing")


def test_balance_transactions_of_an_automatic_payout_and_not_of_a_manual_one(payouts_client):
    store, client = payouts_client
    payouts = client.raw_request("get", "/v1/payouts", limit=100).data["data"]
    paid = next(p for p in payouts if p["automatic"] and p["status"] == "paid")
    listed = client.raw_request(
        "get", "/v1/balance_transactions", payout=paid["id"], limit=100, expand=["data.source"]
    ).data["data"]
    by_type = {t["type"]: t for t in listed}
    assert len(listed) == 3 and by_type["payout"]["id"] == paid["balance_transaction"]
    assert by_type["payout"]["amount"] == -paid["amount"] and by_type["payout"]["source"]["id"] == paid["id"]
    assert by_type["charge"]["source"]["object"] == "charge"
    manual = next(p for p in payouts if not p["automatic"])
    assert manual["reconciliation_status"] == "not_applicable"
    with pytest.raises(stripe.InvalidRequestError, match="only be filtered on automatic transfers"):
        client.raw_request("get", "/v1/balance_transactions", payout=manual["id"])
