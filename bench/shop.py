"""The benchmark's shop: N charges with their balance transactions, and N orders, derived from
the index alone so the stand-in's process and the bench's process build the same data."""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bson import ObjectId

PER_DAY = 1_000_000  # charges a day: the merchant the targets are set for
STUCK_EVERY = 100  # one order in this many lost its final write: the job repairs it
API_KEY = "sk_test_reconcile_bench"


def span_seconds(n: int) -> int:
    """How long it takes the merchant to make n charges."""
    return max(1, math.ceil(n * 86_400 / PER_DAY))


def charge_created(i: int, n: int, start: int) -> int:
    return start + i * span_seconds(n) // n


def charge_id(i: int) -> str:
    return f"ch_3Q{i:022d}"


def order_id(i: int) -> ObjectId:
    return ObjectId(f"65{i:022x}")


def amount(i: int) -> int:
    return 500 + (i * 7919) % 20_000


def stuck(i: int) -> bool:
    return i % STUCK_EVERY == 7


def payment_intent_id(i: int) -> str:
    return f"pi_3Q{i:022d}"


# Stripe's published example objects, every field filled: the trimmed copy the stand-in's fidelity
# tests use (MIT, see its NOTICE).
EXAMPLES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "stripe" / "fixtures.json"
# Fields of the example charge never copied: what the job reads keeps the shop's own values
# (`description`), `refunds` comes only when expanded on the pinned API version, `source` is
# empty on a charge made with a PaymentMethod, and the billing details are each charge's own.
KEEP_OWN = frozenset({"description", "refunds", "source", "billing_details"})


@functools.cache
def examples() -> dict[str, dict[str, Any]]:
    loaded: dict[str, dict[str, Any]] = json.loads(EXAMPLES.read_text())["resources"]
    return loaded


class FullSize:
    """Fills what a stand-in object leaves empty (None or missing) from Stripe's example of its kind,
    recursively, so the bench pages through objects the size Stripe sends. Nested dicts the stand-in
    shares between objects (a card's details, an outcome) stay shared: each is padded once."""

    def __init__(self, kind: str, keep_own: frozenset[str] = frozenset()) -> None:
        self.example = examples()[kind]
        self.keep_own = keep_own
        self._padded: dict[int, tuple[Any, dict[str, Any]]] = {}  # id -> (the original, kept alive; padded)

    def pad(self, obj: dict[str, Any]) -> None:
        """Pads `obj` in place (its top level; nested dicts are replaced by padded copies)."""
        for key, value in self._filled(obj, self.example, self.keep_own).items():
            obj[key] = value

    def _filled(self, obj: dict[str, Any], example: dict[str, Any], keep: frozenset[str]) -> dict[str, Any]:
        """The keys of `obj` to set: empty ones the example fills, nested dicts padded."""
        out: dict[str, Any] = {}
        for key, model in example.items():
            if key in keep or model is None:
                continue
            mine = obj.get(key)
            if mine is None:
                out[key] = model
            elif isinstance(mine, dict) and isinstance(model, dict) and model:  # {}: nothing to fill
                padded = self._nested(mine, model)
                if padded is not mine:
                    out[key] = padded
        return out

    def _nested(self, obj: dict[str, Any], example: dict[str, Any]) -> dict[str, Any]:
        known = self._padded.get(id(obj))
        if known is not None:
            return known[1]
        changes = self._filled(obj, example, frozenset())
        padded = {**obj, **changes} if changes else obj
        self._padded[id(obj)] = (obj, padded)
        return padded


def seed_charges(store: Any, n: int, start: int, payment_intents: bool = False, full_size: bool = True) -> None:
    """Succeeded, captured charges (each with its balance transaction), one per order. With
    `payment_intents` each is made by its own PaymentIntent, a second before it (as the PaymentIntents
    API makes every charge); without, the charges name none (the Charges API). `full_size`: every
    charge has the fields Stripe's example charge fills (FullSize), as Stripe sends them; else the
    stand-in's own, lighter objects."""
    charges = FullSize("charge", KEEP_OWN) if full_size else None
    for i in range(n):
        created = charge_created(i, n, start)
        intent = None
        if payment_intents:
            intent = store.create_payment_intent(amount=amount(i), created=created - 1, id=payment_intent_id(i))["id"]
        charge = store.create_charge(
            amount=amount(i),
            currency="usd",
            created=created,
            id=charge_id(i),
            metadata={"order_id": str(order_id(i))},
            billing_email=f"customer{i}@example.com",
            payment_intent=intent,
        )
        if charges is not None:
            charges.pad(charge)  # before the store renders it (prerender, or its first request)


def order_docs(n: int, start: int, first: int = 0, last: int | None = None) -> Iterator[dict[str, Any]]:
    """The shop's orders: created two seconds before their charge; stuck ones still `created`."""
    for i in range(first, n if last is None else last):
        created = datetime.fromtimestamp(charge_created(i, n, start) - 2, UTC).replace(tzinfo=None)
        doc = {
            "_id": order_id(i),
            "status": "created" if stuck(i) else "accepted",
            "amount": amount(i),
            "currency": "usd",
            "created_at": created,
            "email": f"customer{i}@example.com",
        }
        if not stuck(i):
            doc["charge_id"] = charge_id(i)
        yield doc


# The day before the shop's window: a few hundred discrepancies, so a steady-state run finds open
# items to re-check. One in four of each: an amount mismatch, an orphan charge, a paid order without
# a charge, a disputed charge (its order fine).
DISCREPANCY_KINDS = ("amount_mismatch", "orphan_charge", "paid_without_charge", "dispute")


def discrepancy_order_id(j: int) -> ObjectId:
    return ObjectId(f"66{j:022x}")


def discrepancy_charge_id(j: int) -> str:
    return f"ch_3R{j:022d}"


def discrepancy_created(j: int, count: int, start: int) -> int:
    """Spread over the day before `start`, ten minutes clear of both ends."""
    return start - 86_400 + 600 + j * (86_400 - 1200) // max(1, count)


def seed_discrepancies(store: Any, count: int, start: int) -> None:
    for j in range(count):
        kind = DISCREPANCY_KINDS[j % 4]
        if kind == "paid_without_charge":
            continue
        order = str(ObjectId(f"67{j:022x}")) if kind == "orphan_charge" else str(discrepancy_order_id(j))
        charge = store.create_charge(
            amount=amount(j) + (100 if kind == "amount_mismatch" else 0),
            currency="usd",
            created=discrepancy_created(j, count, start),
            id=discrepancy_charge_id(j),
            metadata={"order_id": order},
            billing_email=f"late{j}@example.com",
        )
        if kind == "dispute":
            store.create_dispute(charge["id"], created=discrepancy_created(j, count, start) + 60)


def discrepancy_order_docs(count: int, start: int) -> Iterator[dict[str, Any]]:
    for j in range(count):
        kind = DISCREPANCY_KINDS[j % 4]
        if kind == "orphan_charge":
            continue
        created = datetime.fromtimestamp(discrepancy_created(j, count, start) - 2, UTC).replace(tzinfo=None)
        doc: dict[str, Any] = {
            "_id": discrepancy_order_id(j),
            "status": "accepted",
            "amount": amount(j),
            "currency": "usd",
            "created_at": created,
            "email": f"late{j}@example.com",
        }
        if kind != "paid_without_charge":
            doc["charge_id"] = discrepancy_charge_id(j)
        yield doc
