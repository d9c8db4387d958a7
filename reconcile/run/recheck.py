"""Re-judge open items from earlier windows against Stripe and the orders as they are now.

An item whose order was created days ago is outside today's window, so today's run cannot see
whether it was fixed. Each run re-checks a bounded number of such items: it loads their
orders, retrieves the charges (or refunds, disputes) they name, with the PaymentIntents and
Checkout Sessions that link charges to orders when the link kinds use them, and classifies them
again with the same pure rules as a window run.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import stripe
from pymongo.database import Database

from reconcile.config import Config
from reconcile.decide import classify as c
from reconcile.decide import items as item_rules
from reconcile.decide import movements
from reconcile.report import wording
from reconcile.store import orders as order_store
from reconcile.stripe import fetch
from reconcile.stripe import movements as stripe_movements
from reconcile.stripe import payments as payment_pull
from reconcile.stripe import pull as stripe_pull

log = logging.getLogger(__name__)


def recheck(
    client: stripe.StripeClient,
    db: Database,
    config: Config,
    policy: stripe_pull.RetryPolicy,
    docs: list[dict[str, Any]],
    now: datetime,
) -> tuple[list[dict[str, Any]], dict[str, str], list[str]]:
    """(findings still present, {key: why it is gone}, keys looked at) for these open item documents."""
    if not docs:
        return [], {}, []
    core = [d for d in docs if d.get("source") in ("order", "charge")]
    moved = [d for d in docs if d.get("source") in ("refund", "dispute")]
    # Independent lookups: the orders' and charges' items beside the refunds' and disputes'.
    (confirmed, cleared), (more_confirmed, more_cleared) = fetch.run(
        [
            lambda: _recheck_core(client, db, config, policy, core, now),
            lambda: _recheck_movements(client, db, config, policy, moved, now),
        ],
        policy,
        "re-check",
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
    db: Database,
    config: Config,
    policy: stripe_pull.RetryPolicy,
    docs: list[dict[str, Any]],
    now: datetime,
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    if not docs:
        return [], {}
    from reconcile.run.window import rules_for  # the same rules as a window run

    key = config.stripe.order_id_metadata_key
    subjects = {d["charge_id"] for d in docs if d["source"] == "charge" and d.get("charge_id")}
    wanted = sorted({i for d in docs for i in d.get("charge_ids") or []})
    # The charges with their PaymentIntents and sessions, and the orders any of them names: the
    # same links as a window run (payments.pull and references), so the same order is found.
    linking = payment_pull.Linking.from_config(config)
    named = payment_pull.of_charges(
        client,
        linking,
        c.charges_frame(stripe_pull.retrieve_charges(client, wanted, key, policy)),
        policy,
    )
    refs = payment_pull.references(named, config.matching.link_by)
    keys = {d["order_key"] for d in docs if d["source"] == "order" and d.get("order_key")}
    orders = c.orders_frame(
        order_store.load_order_columns(
            db[config.mongodb.orders_collection],
            config.orders,
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
    from reconcile.store.items import dismissed_pairs

    rules = rules_for(config, now, dismissed_pairs(db[config.mongodb.decisions_collection]))
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
    db: Database,
    config: Config,
    policy: stripe_pull.RetryPolicy,
    docs: list[dict[str, Any]],
    now: datetime,
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    if not docs:
        return [], {}
    key = config.stripe.order_id_metadata_key
    rows = stripe_movements.retrieve_movements(client, [(d["source"], d["object_id"]) for d in docs], key, policy)
    orders = order_store.orders_of_movements(db[config.mongodb.orders_collection], config.orders, rows, now)
    paid = (config.orders.paid_status, *config.orders.other_paid_statuses)
    confirmed, cleared = [], {}
    for f in movements.evaluate(rows, orders, paid):
        if f["needs_person"]:
            confirmed.append(f)
        else:
            cleared[f["key"]] = f"re-checked: {f['detail']}"
    return confirmed, cleared
