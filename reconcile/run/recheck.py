"""Re-judge open items from earlier windows against Stripe and the orders as they are now.

An item whose order was created days ago is outside today's window, so today's run cannot see
whether it was fixed. Each run re-checks a bounded number of such items: it loads their
orders, retrieves the charges (or refunds, disputes) they name, with the PaymentIntents and
Checkout Sessions that link charges to orders when the link kinds use them, and classifies them
again with the same pure rules as a window run.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import Any, TypeVar

import stripe
from pymongo.collection import Collection

from reconcile.config import OrdersConfig
from reconcile.decide import classify as c
from reconcile.decide import items as item_rules
from reconcile.decide import movements
from reconcile.decide.findings import Finding
from reconcile.report import wording
from reconcile.runtime import progress
from reconcile.store import orders as order_store
from reconcile.stripe import fetch
from reconcile.stripe import movements as stripe_movements
from reconcile.stripe import payments as payment_pull
from reconcile.stripe import pull as stripe_pull

log = logging.getLogger(__name__)

T = TypeVar("T")


def recheck(
    client: stripe.StripeClient,
    policy: stripe_pull.RetryPolicy,
    orders: Collection,
    fields: OrdersConfig,
    linking: payment_pull.Linking,
    rules: c.Rules,
    docs: list[dict[str, Any]],
    now: datetime,
) -> tuple[list[Finding], dict[str, str], list[str]]:
    """(findings still present, {key: why it is gone}, keys looked at) for these open item documents,
    judged with the window run's `rules` and links against the `orders` collection as it is now."""
    if not docs:
        return [], {}, []
    core = [d for d in docs if d.get("source") in ("order", "charge")]
    moved = [d for d in docs if d.get("source") in ("refund", "dispute")]
    # Independent lookups: the orders' and charges' items beside the refunds' and disputes'; the
    # progress step counts the items of each half as it finishes.
    progress.step("re-check open items", 0, len(docs))
    done = {"items": 0}
    lock = threading.Lock()

    def half(call: Callable[[], T], items: int) -> T:
        result = call()
        with lock:
            done["items"] += items
            progress.step("re-check open items", done["items"], len(docs))
        return result

    (confirmed, cleared), (more_confirmed, more_cleared) = fetch.run(
        [
            partial(half, partial(_recheck_core, client, policy, orders, fields, linking, rules, core, now), len(core)),
            partial(half, partial(_recheck_movements, client, policy, orders, fields, linking, moved, now), len(moved)),
        ],
        policy,
        "re-check",
        step=None,
    )
    log.info(
        "items.rechecked",
        extra={
            "items": len(docs),
            "still_open": len(confirmed) + len(more_confirmed),
            "resolved": len(cleared) + len(more_cleared),
        },
    )
    return confirmed + more_confirmed, cleared | more_cleared, [d["_id"] for d in docs]


def _recheck_core(
    client: stripe.StripeClient,
    policy: stripe_pull.RetryPolicy,
    orders_collection: Collection,
    fields: OrdersConfig,
    linking: payment_pull.Linking,
    rules: c.Rules,
    docs: list[dict[str, Any]],
    now: datetime,
) -> tuple[list[Finding], dict[str, str]]:
    if not docs:
        return [], {}
    key = linking.metadata_key
    subjects = {d["charge_id"] for d in docs if d["source"] == "charge" and d.get("charge_id")}
    wanted = sorted({i for d in docs for i in d.get("charge_ids") or []})
    # The charges with their PaymentIntents and sessions, and the orders any of them names: the
    # same links as a window run (payments.pull and references), so the same order is found.
    named = payment_pull.of_charges(
        client,
        linking,
        c.charges_frame(stripe_pull.retrieve_charges(client, wanted, key, policy)),
        policy,
    )
    refs = payment_pull.references(named, linking.link_by)
    keys = {d["order_key"] for d in docs if d["source"] == "order" and d.get("order_key")}
    orders = c.orders_frame(
        order_store.load_order_columns(
            orders_collection,
            fields,
            now,
            now,
            keys | refs.order_refs,
            refs.charge_ids,
            refs.payment_intent_ids,
            refs.session_ids,
        )
    )
    # The charge, PaymentIntent and session ids the orders store, and the charges those lead to.
    charges, intents, sessions = (named + payment_pull.of_orders(client, linking, orders, named, policy)).frames()
    # Only a charge that is itself an item may come out as an orphan here.
    charges = charges.assign(in_window=charges["charge_id"].isin(list(subjects)))
    outcomes = wording.worded(c.classify(orders, charges, rules, intents, sessions), rules)
    found = {f["key"]: f for f in item_rules.core_findings(outcomes)}
    by_order = dict(zip(outcomes["order_key"].astype(str), outcomes["outcome"], strict=False))
    by_charge = dict(zip(outcomes["charge_id"].astype(str), outcomes["outcome"], strict=False))
    have = set(named.charges["charge_id"])
    orders_loaded = set(orders["order_key"])
    related = {d.get("order_key") for d in docs} | {d.get("charge_id") for d in docs}
    confirmed = [f for f in found.values() if f["order_key"] in related or f["charge_id"] in related]
    cleared: dict[str, str] = {}
    for d in docs:
        if d["_id"] in found:
            continue
        if d["source"] == "order":
            if d["order_key"] not in orders_loaded:
                cleared[d["_id"]] = f"re-checked: order {d['order_key']} no longer exists"
            else:
                cleared[d["_id"]] = f"re-checked: order is now {by_order.get(d['order_key'], 'ok')}"
        elif d.get("charge_id") in have:
            now_outcome = by_charge.get(d["charge_id"])
            cleared[d["_id"]] = (
                f"re-checked: charge is now {now_outcome}"
                if now_outcome
                else "re-checked: charge now belongs to an order"
            )
    return confirmed, cleared


def _recheck_movements(
    client: stripe.StripeClient,
    policy: stripe_pull.RetryPolicy,
    orders_collection: Collection,
    fields: OrdersConfig,
    linking: payment_pull.Linking,
    docs: list[dict[str, Any]],
    now: datetime,
) -> tuple[list[Finding], dict[str, str]]:
    if not docs:
        return [], {}
    key = linking.metadata_key
    rows = stripe_movements.retrieve_movements(client, [(d["source"], d["object_id"]) for d in docs], key, policy)
    orders = order_store.orders_of_movements(orders_collection, fields, rows, now)
    paid = (fields.paid_status, *fields.other_paid_statuses)
    confirmed, cleared = [], {}
    for f in movements.evaluate(rows, orders, paid):
        if f["needs_person"]:
            confirmed.append(f)
        else:
            cleared[f["key"]] = f"re-checked: {f['detail']}"
    return confirmed, cleared
