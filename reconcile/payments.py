"""Pull the Stripe objects a run links to orders: charges, and PaymentIntents and Checkout Sessions
when the configured link kinds use them; then the look past the window's edges.

I/O only through stripe_pull; which order each object belongs to is decided in match.py.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd
import stripe

from reconcile import classify as c
from reconcile import match, stripe_pull
from reconcile.config import Config
from reconcile.timeutil import to_unix

log = logging.getLogger(__name__)

INTENTS_PATH = "/v1/payment_intents"
SESSIONS_PATH = "/v1/checkout/sessions"
CHARGES_PATH = "/v1/charges"
# PaymentIntent and session states in which a charge exists (or is on its way) somewhere.
_MONEY_INTENT_STATES = ("succeeded", "requires_capture", "processing")


@dataclass
class Payments:
    """Rows (stripe_pull row functions) of every charge, PaymentIntent and Checkout Session pulled."""

    charges: list[dict[str, Any]] = field(default_factory=list)
    intents: list[dict[str, Any]] = field(default_factory=list)
    sessions: list[dict[str, Any]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.charges or self.intents or self.sessions)

    def __add__(self, other: "Payments") -> "Payments":
        return Payments(self.charges + other.charges, self.intents + other.intents, self.sessions + other.sessions)

    def frames(self) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
        return c.charges_frame(self.charges), match.intents_frame(self.intents), match.sessions_frame(self.sessions)


@dataclass(frozen=True)
class References:
    """What to load orders by: ids named in Stripe, and Stripe ids that orders may store."""

    order_refs: set[str]
    charge_ids: set[str]
    payment_intent_ids: set[str]
    session_ids: set[str]


def wants(config: Config) -> tuple[bool, bool]:
    """Whether the link kinds need PaymentIntents, and Checkout Sessions."""
    link_by, orders = config.matching.link_by, config.orders
    by_fields = match.ORDER_FIELDS in link_by
    return (
        match.PAYMENT_INTENT_METADATA in link_by or (by_fields and bool(orders.payment_intent_id_field)),
        match.CHECKOUT_SESSION in link_by or (by_fields and bool(orders.checkout_session_id_field)),
    )


def _outside(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for row in rows:
        row["in_window"] = False
    return rows


def _session_refs(session: dict[str, Any]) -> list[str]:
    return [r for r in (session.get("client_reference_id"), session.get("order_ref")) if r]


def pull(client: stripe.StripeClient, config: Config, since: datetime, until: datetime,
         policy: stripe_pull.RetryPolicy) -> Payments:
    """Charges created in the window, with the PaymentIntents and sessions that explain them."""
    key = config.stripe.order_id_metadata_key
    link_by = config.matching.link_by
    charges = stripe_pull.fetch_charges(client, since, until, key, policy)
    want_intents, want_sessions = wants(config)
    # A PaymentIntent or session is created a little before its charge: start the pull earlier.
    lead, start = since - config.window.edge_slack, to_unix(since)
    intents: list[dict[str, Any]] = []
    sessions: list[dict[str, Any]] = []
    if want_intents:
        intents = stripe_pull.fetch_window(
            client, INTENTS_PATH, lead, until, lambda o: stripe_pull.payment_intent_row(o, key), policy)
        for row in intents:
            row["in_window"] = row["created"] >= start
        known = {r["pi_id"] for r in intents}
        missing = sorted({r["payment_intent"] for r in charges if r["payment_intent"] and r["payment_intent"] not in known})
        intents += _outside(stripe_pull.retrieve_objects(
            client, INTENTS_PATH, missing, lambda o: stripe_pull.payment_intent_row(o, key), policy))
        if missing:
            log.info("pull.payment_intents_retrieved", extra={"count": len(missing)})
    if want_sessions:
        sessions = stripe_pull.fetch_window(
            client, SESSIONS_PATH, lead, until, lambda o: stripe_pull.checkout_session_row(o, key), policy)
        for row in sessions:
            row["in_window"] = row["created"] >= start
        # Sessions live up to a day: a charge nothing else explains may belong to an older one.
        have = {s["payment_intent"] for s in sessions if s["payment_intent"]}
        intent_refs = {i["pi_id"] for i in intents if i["order_ref"]} if match.PAYMENT_INTENT_METADATA in link_by else set()
        by_charge = match.CHARGE_METADATA in link_by
        unexplained = sorted({
            r["payment_intent"] for r in charges
            if r["status"] == "succeeded" and r["payment_intent"] and r["payment_intent"] not in have
            and r["payment_intent"] not in intent_refs and not (by_charge and r["order_ref"])
        })
        sessions += _outside(stripe_pull.list_by(
            client, SESSIONS_PATH, "payment_intent", unexplained, lambda o: stripe_pull.checkout_session_row(o, key),
            policy))
        if unexplained:
            log.info("pull.sessions_by_payment_intent", extra={"count": len(unexplained)})
    return Payments(charges, intents, sessions)


def references(payments: Payments, link_by: tuple[str, ...]) -> References:
    """Order ids named by the enabled link kinds, and the ids of objects no reference explains."""
    refs: set[str] = set()
    if match.CHARGE_METADATA in link_by:
        refs |= {r["order_ref"] for r in payments.charges if r["order_ref"]}
    if match.PAYMENT_INTENT_METADATA in link_by:
        refs |= {r["order_ref"] for r in payments.intents if r["order_ref"]}
    if match.CHECKOUT_SESSION in link_by:
        refs |= {ref for s in payments.sessions for ref in _session_refs(s)}
    if match.ORDER_FIELDS not in link_by:
        return References(refs, set(), set(), set())
    # Objects with a reference already lead to their order; the others may be named by one.
    referenced_intents = {i["pi_id"] for i in payments.intents if i["order_ref"]} \
        if match.PAYMENT_INTENT_METADATA in link_by else set()
    referenced_sessions = {s["session_id"] for s in payments.sessions if _session_refs(s)} \
        if match.CHECKOUT_SESSION in link_by else set()
    session_of = {s["payment_intent"]: s["session_id"] for s in payments.sessions if s["payment_intent"]}
    by_charge = match.CHARGE_METADATA in link_by
    charge_ids = {
        r["charge_id"] for r in payments.charges
        if not (by_charge and r["order_ref"]) and r["payment_intent"] not in referenced_intents
        and session_of.get(r["payment_intent"]) not in referenced_sessions
    }
    intent_ids = {
        i["pi_id"] for i in payments.intents
        if i["pi_id"] not in referenced_intents and session_of.get(i["pi_id"]) not in referenced_sessions
    }
    intent_ids |= {r["payment_intent"] for r in payments.charges if r["charge_id"] in charge_ids and r["payment_intent"]}
    session_ids = {s["session_id"] for s in payments.sessions if s["session_id"] not in referenced_sessions}
    return References(refs, charge_ids, intent_ids, session_ids)


def edge_look(
    client: stripe.StripeClient, config: Config, since: datetime, until: datetime, orders: pd.DataFrame,
    outcomes: pd.DataFrame, payments: Payments, policy: stripe_pull.RetryPolicy,
) -> Payments:
    """Objects just outside the window for orders that seem to have no money (a charge can land after `until`)."""
    doubtful = outcomes.loc[outcomes["outcome"].isin(c.NEEDS_EDGE_LOOK), "order_key"]
    if doubtful.empty:
        return Payments()
    key = config.stripe.order_id_metadata_key
    slack = config.window.edge_slack
    candidates = orders.loc[orders["order_key"].isin(doubtful)]
    known_charges = {r["charge_id"] for r in payments.charges}
    stored = sorted(set(candidates["stored_charge_id"].dropna()) - known_charges)
    found = Payments(charges=stripe_pull.retrieve_charges(client, stored, key, policy))
    if candidates["stored_charge_id"].isna().any():
        found.charges += stripe_pull.fetch_charges(client, since - slack, since, key, policy)
        found.charges += stripe_pull.fetch_charges(client, until, until + slack, key, policy)

    want_intents, want_sessions = wants(config)
    intent_row = lambda o: stripe_pull.payment_intent_row(o, key)  # noqa: E731
    session_row = lambda o: stripe_pull.checkout_session_row(o, key)  # noqa: E731
    if want_intents:
        known = {r["pi_id"] for r in payments.intents}
        ids = sorted(set(_column(candidates, "stored_payment_intent_id")) - known)
        found.intents += stripe_pull.retrieve_objects(client, INTENTS_PATH, ids, intent_row, policy)
        found.intents += stripe_pull.fetch_window(client, INTENTS_PATH, until, until + slack, intent_row, policy)
    if want_sessions:
        known = {s["session_id"] for s in payments.sessions}
        ids = sorted(set(_column(candidates, "stored_session_id")) - known)
        found.sessions += stripe_pull.retrieve_objects(client, SESSIONS_PATH, ids, session_row, policy)
        found.sessions += stripe_pull.fetch_window(client, SESSIONS_PATH, until, until + slack, session_row, policy)

    # A PaymentIntent or session of a doubtful order says money moved, but its charge was not seen.
    keys = set(doubtful)
    stored_intents = set(_column(candidates, "stored_payment_intent_id"))
    stored_sessions = set(_column(candidates, "stored_session_id"))
    seen_intents = {r["payment_intent"] for r in payments.charges + found.charges if r["payment_intent"]}
    paying = {
        i["pi_id"] for i in payments.intents + found.intents
        if i["status"] in _MONEY_INTENT_STATES and (i["order_ref"] in keys or i["pi_id"] in stored_intents)
    } | {
        s["payment_intent"] for s in payments.sessions + found.sessions
        if s["status"] == "complete" and s["payment_intent"]
        and (set(_session_refs(s)) & keys or s["session_id"] in stored_sessions)
    }
    unseen = sorted(paying - seen_intents)
    found.charges += stripe_pull.list_by(
        client, CHARGES_PATH, "payment_intent", unseen, lambda o: stripe_pull.charge_row(o, key), policy,
        {"expand": ["data.balance_transaction"]},
    )
    for rows in (found.charges, found.intents, found.sessions):
        _outside(rows)
    log.info("edge.done", extra={
        "charges": len(found.charges), "payment_intents": len(found.intents), "checkout_sessions": len(found.sessions),
    })
    return found


def _column(frame: pd.DataFrame, name: str) -> list[str]:
    return list(frame[name].dropna()) if name in frame else []
