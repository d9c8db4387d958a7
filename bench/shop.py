"""The benchmark's shop: N charges with their balance transactions, and N orders, derived from
the index alone so the stand-in's process and the bench's process build the same data."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime
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


def seed_charges(store: Any, n: int, start: int) -> None:
    """Succeeded, captured charges (each with its balance transaction), one per order."""
    for i in range(n):
        store.create_charge(
            amount=amount(i),
            currency="usd",
            created=charge_created(i, n, start),
            id=charge_id(i),
            metadata={"order_id": str(order_id(i))},
            billing_email=f"customer{i}@example.com",
        )


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
