"""Pull the Stripe objects a run links to orders: charges, and PaymentIntents and Checkout Sessions
when the configured link kinds use them; then the look past the window's edges. A re-check of
items from earlier windows uses the same looks around the charges and orders it names.

I/O only through stripe_pull; which order each object belongs to is decided in match.py. The
window pulls of the three kinds run side by side (reconcile/stripe/slices.py) and arrive as columns
(reconcile/decide/columns.py); from then on each kind is one frame.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import stripe

from reconcile import config as links
from reconcile.decide import classify as c
from reconcile.decide import columns, match
from reconcile.decide.inputs import ChargeRow, IntentRow, SessionRow
from reconcile.stripe import fetch
from reconcile.stripe import pull as stripe_pull
from reconcile.stripe import slices as pull_plan
from reconcile.timeutil import from_unix, to_unix

log = logging.getLogger(__name__)

INTENTS_PATH = "/v1/payment_intents"
SESSIONS_PATH = "/v1/checkout/sessions"
CHARGES_PATH = "/v1/charges"
# PaymentIntent and session states in which a charge exists (or is on its way) somewhere.
_MONEY_INTENT_STATES = ("succeeded", "requires_capture", "processing")


def _both(first: pd.DataFrame, more: pd.DataFrame, key: str) -> pd.DataFrame:
    """``first`` then ``more``; an object in both counts once, as ``first`` has it."""
    if more.empty:
        return first
    if first.empty:
        return more
    both = pd.concat([first, more], ignore_index=True)
    return both.drop_duplicates(key, keep="first").reset_index(drop=True)


@dataclass
class Payments:
    """Every charge, PaymentIntent and Checkout Session pulled, one frame per kind
    (classify.charges_frame, match.intents_frame, match.sessions_frame)."""

    charges: pd.DataFrame = field(default_factory=lambda: c.charges_frame([]))
    intents: pd.DataFrame = field(default_factory=lambda: match.intents_frame([]))
    sessions: pd.DataFrame = field(default_factory=lambda: match.sessions_frame([]))

    def __bool__(self) -> bool:
        return not (self.charges.empty and self.intents.empty and self.sessions.empty)

    def __add__(self, other: Payments) -> Payments:
        return Payments(
            _both(self.charges, other.charges, "charge_id"),
            _both(self.intents, other.intents, "pi_id"),
            _both(self.sessions, other.sessions, "session_id"),
        )

    def frames(self) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
        return self.charges, self.intents, self.sessions


@dataclass(frozen=True)
class References:
    """What to load orders by: ids named in Stripe, and Stripe ids that orders may store."""

    order_refs: set[str]
    charge_ids: set[str]
    payment_intent_ids: set[str]
    session_ids: set[str]


@dataclass(frozen=True)
class Linking:
    """What the Stripe side needs of the shop's settings: how orders name payments, and how far past a
    window's edges to look."""

    metadata_key: str  # stripe.order_id_metadata_key
    link_by: tuple[str, ...]  # matching.link_by
    edge_slack: timedelta  # window.edge_slack
    orders_store_intent_ids: bool = False  # orders.payment_intent_id_field is set
    orders_store_session_ids: bool = False  # orders.checkout_session_id_field is set


def wants(linking: Linking) -> tuple[bool, bool]:
    """Whether the link kinds need PaymentIntents, and Checkout Sessions."""
    link_by = linking.link_by
    by_fields = links.ORDER_FIELDS in link_by
    return (
        links.PAYMENT_INTENT_METADATA in link_by or (by_fields and linking.orders_store_intent_ids),
        links.CHECKOUT_SESSION in link_by or (by_fields and linking.orders_store_session_ids),
    )


# A row of an object a window may or may not hold.
_Found = TypeVar("_Found", bound=ChargeRow | IntentRow | SessionRow)


def _outside(rows: list[_Found]) -> list[_Found]:
    """The rows, marked as found outside the window (past its edges, or by id)."""
    for row in rows:
        row["in_window"] = False
    return rows


def _flag_window(cols: columns.Columns, start: int) -> columns.Columns:
    """Objects pulled from before the window (the lead) are not the window's own."""
    if cols:
        cols["in_window"] = np.asarray(cols["created"]) >= start
    return cols


def _ids(values: pd.Series) -> set[str]:
    return set(values.dropna())


def _referenced(sessions: pd.DataFrame) -> pd.Series:
    """Sessions naming an order (client_reference_id or metadata)."""
    return sessions["client_reference_id"].notna() | sessions["order_ref"].notna()


def _row_fns(linking: Linking) -> tuple[stripe_pull.RowFn[IntentRow], stripe_pull.RowFn[SessionRow]]:
    key = linking.metadata_key
    return (lambda o: stripe_pull.payment_intent_row(o, key)), (lambda o: stripe_pull.checkout_session_row(o, key))


def pull(
    client: stripe.StripeClient, linking: Linking, since: datetime, until: datetime, policy: stripe_pull.RetryPolicy
) -> Payments:
    """Charges created in the window, with the PaymentIntents and sessions that explain them."""
    key = linking.metadata_key
    want_intents, want_sessions = wants(linking)
    intent_row, session_row = _row_fns(linking)
    # A PaymentIntent or session is created a little before its charge: start the pull earlier.
    lead, start = since - linking.edge_slack, to_unix(since)
    # Without PaymentIntents or sessions to link through, a charge's PaymentIntent id is read only for
    # an authorization (whether it was released): the others are not kept.
    every_intent = want_intents or want_sessions
    calls: list[Callable[[], columns.Columns]] = [
        lambda: stripe_pull.fetch_charge_columns(client, since, until, key, policy, every_intent),
    ]
    if want_intents:
        calls.append(lambda: stripe_pull.fetch_window_columns(client, INTENTS_PATH, lead, until, intent_row, policy))
    if want_sessions:
        calls.append(lambda: stripe_pull.fetch_window_columns(client, SESSIONS_PATH, lead, until, session_row, policy))
    pulled = pull_plan.side_by_side(calls, policy.abort)  # the kinds are independent: all at once
    charges = c.charges_frame(pulled.pop(0))
    intents = match.intents_frame(_flag_window(pulled.pop(0), start)) if want_intents else match.intents_frame([])
    sessions = match.sessions_frame(_flag_window(pulled.pop(0), start)) if want_sessions else match.sessions_frame([])
    del pulled
    intents, sessions = _explain(client, linking, charges, intents, sessions, policy)
    return Payments(charges, intents, sessions)


def of_charges(
    client: stripe.StripeClient, linking: Linking, charges: pd.DataFrame, policy: stripe_pull.RetryPolicy
) -> Payments:
    """These charges (e.g. retrieved by id, from any time) with the PaymentIntents and Checkout
    Sessions that link them to orders, as the link kinds need them (the same look as `pull`'s)."""
    intents, sessions = _explain(client, linking, charges, match.intents_frame([]), match.sessions_frame([]), policy)
    return Payments(charges, intents, sessions)


def _explain(
    client: stripe.StripeClient,
    linking: Linking,
    charges: pd.DataFrame,
    intents: pd.DataFrame,
    sessions: pd.DataFrame,
    policy: stripe_pull.RetryPolicy,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`intents` and `sessions` plus, from outside the window, each charge's PaymentIntent and the
    sessions of PaymentIntents nothing else explains (each only when the link kinds use it)."""
    link_by = linking.link_by
    want_intents, want_sessions = wants(linking)
    intent_row, session_row = _row_fns(linking)
    charge_intents = charges["payment_intent"]
    # Whether an authorization was released shows on its PaymentIntent only (API version: since
    # 2025-03-31.basil a cancellation leaves the charge `refunded: false`): fetch the PaymentIntents
    # of uncaptured charges even when no link kind uses PaymentIntents. They are few.
    if not want_intents:
        intents = _with_held_intents(client, linking, charges, intents, policy)
    else:
        missing = sorted(_ids(charge_intents) - set(intents["pi_id"]))
        if missing:
            found = _outside(stripe_pull.retrieve_objects(client, INTENTS_PATH, missing, intent_row, policy))
            intents = _both(intents, match.intents_frame(found), "pi_id")
            log.info("pull.payment_intents_retrieved", extra={"count": len(missing)})
    if want_sessions:
        # Sessions live up to a day: a charge nothing else explains may belong to an older one.
        explained = _ids(sessions["payment_intent"])
        if links.PAYMENT_INTENT_METADATA in link_by:
            explained |= set(intents.loc[intents["order_ref"].notna(), "pi_id"])
        lone = charges["status"].eq("succeeded") & charge_intents.notna() & ~charge_intents.isin(list(explained))
        if links.CHARGE_METADATA in link_by:
            lone &= charges["order_ref"].isna()
        unexplained = sorted(set(charge_intents[lone]))
        if unexplained:
            older = _outside(
                stripe_pull.list_by(client, SESSIONS_PATH, "payment_intent", unexplained, session_row, policy)
            )
            sessions = _both(sessions, match.sessions_frame(older), "session_id")
            log.info("pull.sessions_by_payment_intent", extra={"count": len(unexplained)})
    return intents, sessions


def _authorizations(charges: pd.DataFrame) -> pd.Series:
    """Uncaptured card authorizations that name their PaymentIntent."""
    return charges["status"].eq("succeeded") & ~charges["captured"].astype(bool) & charges["payment_intent"].notna()


def _with_held_intents(
    client: stripe.StripeClient,
    linking: Linking,
    charges: pd.DataFrame,
    intents: pd.DataFrame,
    policy: stripe_pull.RetryPolicy,
    known: frozenset[str] = frozenset(),
) -> pd.DataFrame:
    """`intents` plus, retrieved, the PaymentIntent of each authorization among `charges` that neither
    it nor `known` holds: whether an authorization was released shows on its PaymentIntent alone."""
    held = sorted(_ids(charges.loc[_authorizations(charges), "payment_intent"]) - set(intents["pi_id"]) - known)
    if not held:
        return intents
    intent_row, _ = _row_fns(linking)
    found = _outside(stripe_pull.retrieve_objects(client, INTENTS_PATH, held, intent_row, policy))
    log.info("pull.payment_intents_of_authorizations", extra={"count": len(held)})
    return _both(intents, match.intents_frame(found), "pi_id")


def references(payments: Payments, link_by: tuple[str, ...]) -> References:
    """Order ids named by the enabled link kinds, and the ids of objects no reference explains."""
    charges, intents, sessions = payments.frames()
    refs: set[str] = set()
    if links.CHARGE_METADATA in link_by:
        refs |= _ids(charges["order_ref"])
    if links.PAYMENT_INTENT_METADATA in link_by:
        refs |= _ids(intents["order_ref"])
    if links.CHECKOUT_SESSION in link_by:
        refs |= _ids(sessions["client_reference_id"]) | _ids(sessions["order_ref"])
    if links.ORDER_FIELDS not in link_by:
        return References(refs, set(), set(), set())
    # Objects with a reference already lead to their order; the others may be named by one.
    referenced_intents = (
        list(intents.loc[intents["order_ref"].notna(), "pi_id"]) if links.PAYMENT_INTENT_METADATA in link_by else []
    )
    referenced_sessions = (
        list(sessions.loc[_referenced(sessions), "session_id"]) if links.CHECKOUT_SESSION in link_by else []
    )
    with_intent = sessions.loc[sessions["payment_intent"].notna()]
    session_of = dict(zip(with_intent["payment_intent"], with_intent["session_id"], strict=False))

    def unexplained(intent_ids: pd.Series) -> pd.Series:
        """Neither the PaymentIntent nor its session names an order."""
        return ~intent_ids.isin(referenced_intents) & ~intent_ids.map(session_of).isin(referenced_sessions)

    charge_intents = charges["payment_intent"]
    lone = unexplained(charge_intents)
    if links.CHARGE_METADATA in link_by:
        lone &= charges["order_ref"].isna()
    charge_ids = set(charges.loc[lone, "charge_id"])
    intent_ids = set(intents.loc[unexplained(intents["pi_id"]), "pi_id"]) | _ids(charge_intents[lone])
    session_ids = set(sessions.loc[~sessions["session_id"].isin(referenced_sessions), "session_id"])
    return References(refs, charge_ids, intent_ids, session_ids)


def _edges(created: pd.Series, since: datetime, until: datetime, slack: timedelta) -> list[tuple[datetime, datetime]]:
    """Where past the window the objects of orders created at ``created`` can be: within edge_slack
    of each order, so only as far as the orders nearest the edges reach (nothing, if none is near)."""
    known = created.dropna()
    if len(known) < len(created) or not len(known):  # an order without a date could be anywhere: all the slack
        earliest, latest = since, until
    else:
        earliest, latest = max(since, from_unix(int(known.min()))), min(until, from_unix(int(known.max())))
    before, after = (earliest - slack, since), (until, latest + slack)
    return [span for span in (before, after) if span[0] < span[1]]


def edge_look(
    client: stripe.StripeClient,
    linking: Linking,
    since: datetime,
    until: datetime,
    orders: pd.DataFrame,
    outcomes: pd.DataFrame,
    payments: Payments,
    policy: stripe_pull.RetryPolicy,
) -> Payments:
    """Objects just outside the window for orders that seem to have no money (a charge can land after `until`)."""
    doubtful = outcomes.loc[outcomes["outcome"].isin(c.NEEDS_EDGE_LOOK), "order_key"]
    if doubtful.empty:
        return Payments()
    candidates = orders.loc[orders["order_key"].isin(doubtful)]
    charges, intents, sessions = _stored_objects(client, linking, candidates, payments, policy)
    _pull_past_the_edges(client, linking, since, until, candidates, policy, charges, intents, sessions)
    charges += _charges_of_paying(client, linking, candidates, payments, charges, intents, sessions, policy)
    # An authorization past the edges is judged as one in the window: by its PaymentIntent.
    found = _outside_payments(charges, intents, sessions)
    known = frozenset(payments.intents["pi_id"])
    found.intents = _with_held_intents(client, linking, found.charges, found.intents, policy, known)
    _log_edge_look(found)
    return found


def _log_edge_look(found: Payments) -> None:
    log.info(
        "edge.done",
        extra={
            "charges": len(found.charges),
            "payment_intents": len(found.intents),
            "checkout_sessions": len(found.sessions),
        },
    )


def _pull_past_the_edges(
    client: stripe.StripeClient,
    linking: Linking,
    since: datetime,
    until: datetime,
    candidates: pd.DataFrame,
    policy: stripe_pull.RetryPolicy,
    charges: list[ChargeRow],
    intents: list[IntentRow],
    sessions: list[SessionRow],
) -> None:
    """Add to `charges`, `intents` and `sessions` what the window pulls past the edges find, side by side:
    charges of orders that store no charge id on both sides; PaymentIntents and sessions (pulled from
    before the window already) after it."""
    key, slack = linking.metadata_key, linking.edge_slack
    want_intents, want_sessions = wants(linking)
    intent_row, session_row = _row_fns(linking)
    looks: list[tuple[list[Any], Callable[[], list[Any]]]] = []
    unnamed = candidates.loc[candidates["stored_charge_id"].isna(), "created"]
    if len(unnamed):
        for lo, hi in _edges(unnamed, since, until, slack):
            looks.append((charges, partial(stripe_pull.fetch_charges, client, lo, hi, key, policy)))
    for lo, hi in [span for span in _edges(candidates["created"], since, until, slack) if span[0] == until]:
        if want_intents:
            looks.append((intents, partial(stripe_pull.fetch_window, client, INTENTS_PATH, lo, hi, intent_row, policy)))
        if want_sessions:
            looks.append(
                (sessions, partial(stripe_pull.fetch_window, client, SESSIONS_PATH, lo, hi, session_row, policy))
            )
    for (into, _), rows in zip(looks, pull_plan.side_by_side([call for _, call in looks], policy.abort), strict=False):
        into += rows


def of_orders(
    client: stripe.StripeClient,
    linking: Linking,
    orders: pd.DataFrame,
    known: Payments,
    policy: stripe_pull.RetryPolicy,
) -> Payments:
    """For orders outside any window (a re-check): the objects whose ids they store, and the charges of
    their PaymentIntents and sessions that say money moved; what edge_look finds without looking past
    a window. Objects in `known` are not asked for again. An authorization among the charges found
    gets its PaymentIntent, as in the window (`_with_held_intents`): whether it was released shows there."""
    charges, intents, sessions = _stored_objects(client, linking, orders, known, policy)
    intents += _intents_of_sessions(client, linking, known, intents, sessions, policy)
    charges += _charges_of_paying(client, linking, orders, known, charges, intents, sessions, policy)
    found = _outside_payments(charges, intents, sessions)
    found.intents = _with_held_intents(
        client, linking, found.charges, found.intents, policy, frozenset(known.intents["pi_id"])
    )
    return found


def _stored_objects(
    client: stripe.StripeClient,
    linking: Linking,
    orders: pd.DataFrame,
    known: Payments,
    policy: stripe_pull.RetryPolicy,
) -> tuple[list[ChargeRow], list[IntentRow], list[SessionRow]]:
    """The charges, and (when the link kinds use them) PaymentIntents and Checkout Sessions, whose
    ids `orders` store, as rows; those `known` has already are not retrieved."""
    key = linking.metadata_key
    stored = sorted(_ids(orders["stored_charge_id"]) - set(known.charges["charge_id"]))
    want_intents, want_sessions = wants(linking)
    intent_row, session_row = _row_fns(linking)
    intent_ids = sorted(set(_column(orders, "stored_payment_intent_id")) - set(known.intents["pi_id"]))
    session_ids = sorted(set(_column(orders, "stored_session_id")) - set(known.sessions["session_id"]))
    # The three kinds side by side, each side by side within (reconcile/stripe/fetch.py; nested, so no
    # kind's end clears the run's abort as side_by_side's would).
    calls: list[Callable[[], list[Any]]] = [  # of three kinds: typed by the return below
        partial(stripe_pull.retrieve_charges, client, stored, key, policy),
        partial(
            stripe_pull.retrieve_objects,
            client,
            INTENTS_PATH,
            intent_ids if want_intents else [],
            intent_row,
            policy,
        ),
        partial(
            stripe_pull.retrieve_objects,
            client,
            SESSIONS_PATH,
            session_ids if want_sessions else [],
            session_row,
            policy,
        ),
    ]
    charges, intents, sessions = fetch.run(calls, policy, "stored ids")
    return charges, intents, sessions


def _intents_of_sessions(
    client: stripe.StripeClient,
    linking: Linking,
    known: Payments,
    intents: list[IntentRow],
    sessions: list[SessionRow],
    policy: stripe_pull.RetryPolicy,
) -> list[IntentRow]:
    """When the link kinds use PaymentIntents: those of the `sessions` retrieved by id that are not at hand,
    as a window pulls them beside their sessions (a session still processing is judged by its
    PaymentIntent's payment method: a SEPA debit's weeks, not the grace period)."""
    have = set(known.intents["pi_id"]) | {r["pi_id"] for r in intents}
    missing = sorted({i for r in sessions if (i := r["payment_intent"])} - have)
    if not missing or not wants(linking)[0]:
        return []
    return stripe_pull.retrieve_objects(client, INTENTS_PATH, missing, _row_fns(linking)[0], policy)


def _charges_of_paying(
    client: stripe.StripeClient,
    linking: Linking,
    orders: pd.DataFrame,
    known: Payments,
    charges: list[ChargeRow],
    intents: list[IntentRow],
    sessions: list[SessionRow],
    policy: stripe_pull.RetryPolicy,
) -> list[ChargeRow]:
    """A PaymentIntent or session of one of `orders` says money moved, but its charge was not seen
    (in `known` or `charges`): that charge, listed by its PaymentIntent."""
    key = linking.metadata_key
    keys = list(orders["order_key"].dropna())
    stored_intents = list(_column(orders, "stored_payment_intent_id"))
    stored_sessions = list(_column(orders, "stored_session_id"))
    seen_intents = _ids(known.charges["payment_intent"]) | {r["payment_intent"] for r in charges if r["payment_intent"]}
    paying: set[str] = set()
    for frame in (known.intents, match.intents_frame(intents)):
        money = frame["status"].isin(_MONEY_INTENT_STATES)
        paying |= set(frame.loc[money & (frame["order_ref"].isin(keys) | frame["pi_id"].isin(stored_intents)), "pi_id"])
    for frame in (known.sessions, match.sessions_frame(sessions)):
        paid = frame["status"].eq("complete") & frame["payment_intent"].notna()
        ours = (
            frame["client_reference_id"].isin(keys)
            | frame["order_ref"].isin(keys)
            | frame["session_id"].isin(stored_sessions)
        )
        paying |= set(frame.loc[paid & ours, "payment_intent"])
    unseen = sorted(paying - seen_intents)
    return stripe_pull.list_by(
        client,
        CHARGES_PATH,
        "payment_intent",
        unseen,
        lambda o: stripe_pull.charge_row(o, key),
        policy,
        stripe_pull.CHARGE_PARAMS,
    )


def _outside_payments(charges: list[ChargeRow], intents: list[IntentRow], sessions: list[SessionRow]) -> Payments:
    """Rows found outside the window, as frames."""
    return Payments(
        c.charges_frame(_outside(charges)),
        match.intents_frame(_outside(intents)),
        match.sessions_frame(_outside(sessions)),
    )


def _column(frame: pd.DataFrame, name: str) -> list[str]:
    return list(frame[name].dropna()) if name in frame else []
