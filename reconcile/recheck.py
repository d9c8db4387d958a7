"""Re-judge open items from earlier windows against Stripe and the orders as they are now.

An item whose order was created days ago is outside today's window, so today's run cannot see
whether it was fixed. Each run re-checks a bounded number of such items: it loads their
orders, retrieves the charges (or refunds, disputes) they name, and classifies them again with
the same pure rules as a window run.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import stripe
from pymongo.database import Database

from reconcile import classify as c
from reconcile import items as item_store
from reconcile import movements
from reconcile import orders as order_store
from reconcile import stripe_pull
from reconcile.config import Config

log = logging.getLogger(__name__)


def recheck(
    client: stripe.StripeClient, db: Database, config: Config, policy: stripe_pull.RetryPolicy,
    docs: list[dict[str, Any]], now: datetime,
) -> tuple[list[dict[str, Any]], dict[str, str], list[str]]:
    """(findings still present, {key: why it is gone}, keys looked at) for these open item documents."""
    if not docs:
        return [], {}, []
    core = [d for d in docs if d.get("source") in ("order", "charge")]
    moved = [d for d in docs if d.get("source") in ("refund", "dispute")]
    confirmed, cleared = _recheck_core(client, db, config, policy, core, now)
    more_confirmed, more_cleared = _recheck_movements(client, db, config, policy, moved, now)
    log.info("items.rechecked", extra={"items": len(docs), "still_open": len(confirmed) + len(more_confirmed),
                                       "resolved": len(cleared) + len(more_cleared)})
    return confirmed + more_confirmed, cleared | more_cleared, [d["_id"] for d in docs]


def _recheck_core(
    client: stripe.StripeClient, db: Database, config: Config, policy: stripe_pull.RetryPolicy,
    docs: list[dict[str, Any]], now: datetime,
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    if not docs:
        return [], {}
    from reconcile.job import rules_for  # the same rules as a window run

    key = config.stripe.order_id_metadata_key
    subjects = {d["charge_id"] for d in docs if d["source"] == "charge" and d.get("charge_id")}
    wanted = sorted({i for d in docs for i in d.get("charge_ids") or []})
    charges = stripe_pull.retrieve_charges(client, wanted, key, policy)
    refs = {d["order_key"] for d in docs if d["source"] == "order" and d.get("order_key")}
    refs |= {ch["order_ref"] for ch in charges if ch["order_ref"]}
    unreferenced = {ch["charge_id"] for ch in charges if not ch["order_ref"]}
    records = order_store.load_orders(db[config.mongodb.orders_collection], config.orders, now, now, refs, unreferenced)
    have = {ch["charge_id"] for ch in charges}
    stored = sorted({r["stored_charge_id"] for r in records if r["stored_charge_id"]} - have)
    charges += stripe_pull.retrieve_charges(client, stored, key, policy)
    for ch in charges:
        # Only a charge that is itself an item may come out as an orphan here.
        ch["in_window"] = ch["charge_id"] in subjects
    outcomes = c.classify(c.orders_frame(records), c.charges_frame(charges), rules_for(config, now))
    found = {f["key"]: f for f in item_store.core_findings(outcomes)}
    by_order = dict(zip(outcomes["order_key"].astype(str), outcomes["outcome"]))
    by_charge = dict(zip(outcomes["charge_id"].astype(str), outcomes["outcome"]))
    orders_loaded = {r["order_key"] for r in records}
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
            cleared[d["_id"]] = f"re-checked: charge is now {now_outcome}" if now_outcome else "re-checked: charge now belongs to an order"
    return confirmed, cleared


def _recheck_movements(
    client: stripe.StripeClient, db: Database, config: Config, policy: stripe_pull.RetryPolicy,
    docs: list[dict[str, Any]], now: datetime,
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    if not docs:
        return [], {}
    key = config.stripe.order_id_metadata_key
    rows = movements.retrieve_movements(client, [(d["source"], d["object_id"]) for d in docs], key, policy)
    orders = movements.load_orders_for(db, config, rows, now)
    paid = (config.orders.paid_status, *config.orders.other_paid_statuses)
    confirmed, cleared = [], {}
    for f in movements.evaluate(rows, orders, paid):
        if f["needs_person"]:
            confirmed.append(f)
        else:
            cleared[f["key"]] = f"re-checked: {f['detail']}"
    return confirmed, cleared
