"""Re-judge open items from earlier windows against Stripe and the orders as they are now.

An item whose order was created days ago is outside today's window, so today's run cannot see
whether it was fixed. Each run re-checks a bounded number of such items: the same read, decide
steps as its window with the items' objects as the read scope. `read` loads their orders and
retrieves the charges (or refunds, disputes) they name, with the PaymentIntents and Checkout
Sessions that link charges to orders when the link kinds use them; `verdicts` classifies them again
with the window run's pure rules (run/judge.py) and says which items are still there.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any, NamedTuple, TypeVar

import pandas as pd
import stripe
from pymongo.collection import Collection

from reconcile.config import OrdersConfig
from reconcile.decide import classify as c
from reconcile.decide import items as item_rules
from reconcile.decide import match
from reconcile.decide.findings import Finding
from reconcile.decide.inputs import MovementRow, OrderRecord
from reconcile.decide.items import ItemDoc
from reconcile.run import judge
from reconcile.runtime import progress
from reconcile.store import orders as order_store
from reconcile.stripe import fetch
from reconcile.stripe import movements as stripe_movements
from reconcile.stripe import payments as payment_pull
from reconcile.stripe import pull as stripe_pull

log = logging.getLogger(__name__)

T = TypeVar("T")
STEP = "re-check open items"


@dataclass(frozen=True)
class Remote:
    """Where a re-check reads: Stripe (with the run's retry policy) and the orders collection."""

    client: stripe.StripeClient
    policy: stripe_pull.RetryPolicy
    orders: Collection
    fields: OrdersConfig
    linking: payment_pull.Linking


@dataclass(frozen=True)
class Read:
    """What a re-check read: its items, and the objects they name as they are now."""

    docs: list[ItemDoc] = field(default_factory=list)  # the open item documents re-checked
    orders: pd.DataFrame = field(default_factory=lambda: c.orders_frame([]))  # the orders and charges' items'
    payments: payment_pull.Payments = field(default_factory=payment_pull.Payments)
    named: frozenset[str] = frozenset()  # the charges the items name that still exist
    movement_rows: list[MovementRow] = field(default_factory=list)  # the refunds' and disputes' items'
    movement_orders: list[OrderRecord] = field(default_factory=list)

    @property
    def core(self) -> list[ItemDoc]:
        return [d for d in self.docs if d.get("source") in ("order", "charge")]


class Rechecked(NamedTuple):
    confirmed: list[Finding]  # findings still present
    cleared: dict[str, str]  # {key: why it is gone}
    checked: list[str]  # keys looked at


def read(remote: Remote, docs: list[ItemDoc], now: datetime) -> Read:
    """The objects these open item documents name, as they are now."""
    if not docs:
        return Read()
    core = [d for d in docs if d.get("source") in ("order", "charge")]
    moved = [d for d in docs if d.get("source") in ("refund", "dispute")]
    # Independent lookups: the orders' and charges' items beside the refunds' and disputes'; the
    # progress step counts the items of each half as it finishes.
    progress.step(STEP, 0, len(docs))
    done = {"items": 0}
    lock = threading.Lock()

    def half(call: Callable[[], T], items: int) -> T:
        result = call()
        with lock:
            done["items"] += items
            progress.step(STEP, done["items"], len(docs))
        return result

    # Two kinds of result from one call: typed here, where they are unpacked.
    calls: list[Callable[[], Any]] = [
        partial(half, partial(_read_core, remote, core, now), len(core)),
        partial(half, partial(_read_movements, remote, moved, now), len(moved)),
    ]
    core_read: Read
    moved_read: Read
    core_read, moved_read = fetch.run(calls, remote.policy, "re-check", step=None)
    return Read(
        docs,
        core_read.orders,
        core_read.payments,
        core_read.named,
        moved_read.movement_rows,
        moved_read.movement_orders,
    )


def read_orders(
    remote: Remote, docs: list[ItemDoc], now: datetime, attempts: Sequence[tuple[str, str, str]] = ()
) -> Read:
    """The orders and charges these documents name (`source` "order": `order_key`, `charge_ids`) as they
    are now, with the payments that link them, and the charge-less `attempts` (order key, kind, id: a
    PaymentIntent or Checkout Session) as if the orders stored their ids: what a window judges of watched
    orders (run/window.py)."""
    return _read_core(remote, docs, now, attempts)


def _read_core(
    remote: Remote, docs: list[ItemDoc], now: datetime, attempts: Sequence[tuple[str, str, str]] = ()
) -> Read:
    if not docs:
        return Read()
    client, policy, linking = remote.client, remote.policy, remote.linking
    wanted = sorted({i for d in docs for i in d.get("charge_ids") or []})
    # The charges with their PaymentIntents and sessions, and the orders any of them names: the
    # same links as a window run (payments.pull and references), so the same order is found.
    retrieved = stripe_pull.retrieve_charges(client, wanted, linking.metadata_key, policy)
    named = payment_pull.of_charges(client, linking, c.charges_frame(retrieved), policy)
    refs = payment_pull.references(named, linking.link_by)
    keys = {k for d in docs if d["source"] == "order" and (k := d.get("order_key"))}
    columns = order_store.load_order_columns(
        remote.orders,
        remote.fields,
        now,
        now,
        keys | refs.order_refs,
        refs.charge_ids,
        refs.payment_intent_ids,
        refs.session_ids,
    )
    orders = c.orders_frame(columns)
    # The charge, PaymentIntent and session ids the orders store (and the attempts given), and the charges those lead to.
    payments = named + payment_pull.of_orders(client, linking, _with_attempts(orders, attempts), named, policy)
    return Read(orders=orders, payments=payments, named=frozenset(named.charges["charge_id"]))


def _with_attempts(orders: pd.DataFrame, attempts: Sequence[tuple[str, str, str]]) -> pd.DataFrame:
    """The ids `orders` store, and a row for each attempt (order key, kind, id) as if its order stored it."""
    if not attempts:
        return orders
    stored = ["order_key", "stored_charge_id", "stored_payment_intent_id", "stored_session_id"]
    rows = [
        {
            "order_key": key,
            "stored_charge_id": None,
            "stored_payment_intent_id": i if kind == match.ObjectKind.PAYMENT_INTENT else None,
            "stored_session_id": i if kind == match.ObjectKind.CHECKOUT_SESSION else None,
        }
        for key, kind, i in attempts
    ]
    present = [name for name in stored if name in orders.columns]
    return pd.concat([orders[present], pd.DataFrame(rows, columns=stored)], ignore_index=True)


def _read_movements(remote: Remote, docs: list[ItemDoc], now: datetime) -> Read:
    if not docs:
        return Read()
    refs = [(d["source"], i) for d in docs if (i := d.get("object_id"))]
    rows = stripe_movements.retrieve_movements(remote.client, refs, remote.linking.metadata_key, remote.policy)
    orders = order_store.orders_of_movements(remote.orders, remote.fields, rows, now)
    return Read(movement_rows=rows, movement_orders=orders)


# --------------------------------------------------------------------------- decide (pure)


def verdicts(read: Read, rules: c.Rules) -> Rechecked:
    """The re-checked items judged with the window run's `rules`: which are still there, which are gone and why."""
    if not read.docs:
        return Rechecked([], {}, [])
    core = read.core
    charges, intents, sessions = read.payments.frames()
    # Only a charge that is itself an item may come out as an orphan here.
    subjects = {d["charge_id"] for d in core if d["source"] == "charge" and d.get("charge_id")}
    scope = payment_pull.Payments(
        charges.assign(in_window=charges["charge_id"].isin(list(subjects))), intents, sessions
    )
    # Its refunds and disputes are judged apart from its orders: none is counted as flagged by them.
    judged = judge.judge(
        judge.classify(read.orders, scope, rules), read.movement_rows, read.movement_orders, rules, flagged=()
    )
    confirmed, cleared = _core_verdicts(core, judged, read)
    for f in judged.moved:
        if f["needs_person"]:
            confirmed.append(f)
        else:
            cleared[f["key"]] = item_rules.rechecked_note(str(f["detail"]))
    log.info(
        "items.rechecked",
        extra={"items": len(read.docs), "still_open": len(confirmed), "resolved": len(cleared)},
    )
    return Rechecked(confirmed, cleared, [d["_id"] for d in read.docs])


def _core_verdicts(docs: list[ItemDoc], judged: judge.Judged, read: Read) -> tuple[list[Finding], dict[str, str]]:
    """The orders' and charges' items: the findings still about them, and why each other one is gone."""
    if not docs:
        return [], {}
    outcomes = judged.outcomes
    found = {f["key"]: f for f in judged.core}
    by_order = dict(zip(outcomes["order_key"].astype(str), outcomes["outcome"], strict=False))
    by_charge = dict(zip(outcomes["charge_id"].astype(str), outcomes["outcome"], strict=False))
    orders_loaded = set(read.orders["order_key"])
    related = {d.get("order_key") for d in docs} | {d.get("charge_id") for d in docs}
    confirmed = [f for f in found.values() if f["order_key"] in related or f["charge_id"] in related]
    cleared: dict[str, str] = {}
    for d in docs:
        if d["_id"] in found:
            continue
        order_key, charge_id = d.get("order_key"), d.get("charge_id")
        if d["source"] == "order":
            now = by_order.get(str(order_key), c.OK) if order_key in orders_loaded else None
            cleared[d["_id"]] = item_rules.rechecked_order_note(order_key, now)
        elif charge_id is not None and charge_id in read.named:
            cleared[d["_id"]] = item_rules.rechecked_charge_note(by_charge.get(charge_id))
    return confirmed, cleared
