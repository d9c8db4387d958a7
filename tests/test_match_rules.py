"""The matching rules, on the frames a run builds: which order each payment belongs to, and what follows.

One row per rule, on the pure decide step (decide/match.py `link` and `propose`, decide/classify.py
`classify`): no Stripe, no MongoDB. The rows are the records stripe/pull.py and store/orders.py make
(charge_row, payment_intent_row, checkout_session_row; an order as columns.ORDER_COLUMNS), framed as
stripe/payments.py frames them. Outcomes are asserted by their codes and facts; the words a person
reads are the report's (tests/test_matching.py checks they reach it).
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import pandas as pd
import pytest

from reconcile.config import (
    CHARGE_METADATA,
    CHECKOUT_SESSION,
    DEFAULT_LINK_BY,
    LINK_KINDS,
    ORDER_FIELDS,
    PAYMENT_INTENT_METADATA,
)
from reconcile.decide import classify as c
from reconcile.decide import match
from reconcile.report import wording

NOW = 1_800_000_000
MINUTE = 60
HOUR = 3600
DAY = 24 * HOUR
EVERY_LINK = LINK_KINDS  # charge metadata, PaymentIntent metadata, Checkout Session, order fields
INTENT_LINKS = (CHARGE_METADATA, PAYMENT_INTENT_METADATA)
SESSION_LINKS = (CHECKOUT_SESSION,)
FIELD_LINKS = (ORDER_FIELDS,)

# Outcome codes (the values the report, the summary and MongoDB hold).
OK = "ok"
REPAIRED = "repaired"
MARKED_FAILED = "marked_failed"
IN_FLIGHT = "in_flight"
STALE_PENDING = "stale_pending"
PAID_WITHOUT_CHARGE = "paid_without_charge"
AMOUNT_MISMATCH = "amount_mismatch"
ORPHAN_CHARGE = "orphan_charge"
REFUNDED_OR_DISPUTED = "refunded_or_disputed"
UNCAPTURED = "uncaptured"
LINK_CONFLICT = "link_conflict"
PROBABLE_MATCH = "probable_match"


# --------------------------------------------------------------------------- records as a run builds them


def order(
    key: str = "o1",
    status: str = "created",
    amount: int = 2500,
    currency: str = "usd",
    age: int = 2 * HOUR,
    email: str | None = None,
    **stored: Any,
) -> dict[str, Any]:
    """An order as store/orders.py loads it; `stored`: stored_charge_id, stored_payment_intent_id,
    stored_session_id, refunded_amount."""
    return {
        "order_id": key,
        "order_key": key,
        "status": status,
        "amount": amount,
        "currency": currency,
        "created": NOW - age,
        "stored_charge_id": None,
        "email": email,
        "problem": None,
        **stored,
    }


def charge(
    cid: str = "ch_1",
    ref: str | None = None,
    pi: str | None = None,
    status: str = "succeeded",
    amount: int = 2500,
    currency: str = "usd",
    age: int = 2 * HOUR - 5,
    captured: bool = True,
    amount_captured: int | None = None,
    email: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A charge as stripe/pull.charge_row reads it; `ref`: metadata[order_id], `pi`: its PaymentIntent."""
    captured = captured and status == "succeeded"
    row = {
        "charge_id": cid,
        "created": NOW - age,
        "status": status,
        "captured": captured,
        "amount": amount,
        "amount_captured": (amount if amount_captured is None else amount_captured) if captured else 0,
        "amount_refunded": 0,
        "refunded": False,
        "disputed": False,
        "currency": currency,
        "order_ref": ref,
        "payment_intent": pi,
        "description": None,
        "email": email,
        "livemode": False,
        "failure_code": None,
        "settlement_currency": currency,
        "settlement_amount": amount,
        "exchange_rate": None,
        "capture_before": None,
        "in_window": True,
    }
    row.update(extra)
    return row


def intent(
    pid: str = "pi_1",
    ref: str | None = None,
    status: str = "succeeded",
    amount: int = 2500,
    age: int = 2 * HOUR,
    **extra: Any,
) -> dict[str, Any]:
    """A PaymentIntent as stripe/pull.payment_intent_row reads it; `ref`: metadata[order_id]."""
    row = {
        "pi_id": pid,
        "created": NOW - age,
        "status": status,
        "amount": amount,
        "currency": "usd",
        "order_ref": ref,
        "latest_charge": None,
        "email": None,
        "cancellation_reason": None,
        "livemode": False,
        "in_window": True,
    }
    row.update(extra)
    return row


def session(
    sid: str = "cs_1",
    client_reference_id: str | None = None,
    ref: str | None = None,
    pi: str | None = None,
    status: str = "complete",
    payment_status: str = "paid",
    amount: int = 2500,
    **extra: Any,
) -> dict[str, Any]:
    """A Checkout Session as stripe/pull.checkout_session_row reads it; `ref`: metadata[order_id]."""
    row = {
        "session_id": sid,
        "created": NOW - 2 * HOUR - 30,
        "status": status,
        "payment_status": payment_status,
        "client_reference_id": client_reference_id,
        "order_ref": ref,
        "payment_intent": pi,
        "amount_total": amount,
        "currency": "usd",
        "email": None,
        "expires_at": None,
        "livemode": False,
        "in_window": True,
    }
    row.update(extra)
    return row


def rules(link_by: tuple[str, ...] = DEFAULT_LINK_BY, **changes: Any) -> c.Rules:
    """The shop's rules (orders section defaults: created, accepted, failed, 15 minutes' grace)."""
    return c.Rules(
        pending_status="created",
        paid_statuses=("accepted",),
        failed_status="failed",
        grace_seconds=15 * MINUTE,
        now=NOW,
        link_by=link_by,
        **changes,
    )


class Payments(NamedTuple):
    """What one window pulled and loaded, as rows."""

    orders: tuple[dict[str, Any], ...] = ()
    charges: tuple[dict[str, Any], ...] = ()
    intents: tuple[dict[str, Any], ...] = ()
    sessions: tuple[dict[str, Any], ...] = ()


def pay(*orders: dict[str, Any], charges=(), intents=(), sessions=()) -> Payments:
    return Payments(tuple(orders), tuple(charges), tuple(intents), tuple(sessions))


def linked(payments: Payments, link_by: tuple[str, ...]) -> match.Links:
    return match.link(
        c.charges_frame(list(payments.charges)),
        c.orders_frame(list(payments.orders)),
        match.intents_frame(list(payments.intents)),
        match.sessions_frame(list(payments.sessions)),
        link_by,
    )


def decided(payments: Payments, the_rules: c.Rules) -> pd.DataFrame:
    """classify's result, fed as run/window.py feeds it."""
    return c.classify(
        c.orders_frame(list(payments.orders)),
        c.charges_frame(list(payments.charges)),
        the_rules,
        match.intents_frame(list(payments.intents)),
        match.sessions_frame(list(payments.sessions)),
    )


def keyed(result: pd.DataFrame) -> dict[str, Any]:
    """Result rows by order key (an order's row) or charge id (an orphan charge's)."""
    return {(row.order_key if row.order_id is not None else row.charge_id): row for row in result.itertuples()}


def outcomes(payments: Payments, rows: dict[str, Any]) -> dict[str, str]:
    """Each order's outcome (ok when classify gives it no row) and each orphan charge's."""
    return {o["order_key"]: OK for o in payments.orders} | {k: str(row.outcome) for k, row in rows.items()}


def facts_of(row: Any) -> dict[str, Any]:
    """What a result row says besides its outcome, as plain values to compare."""
    facts = row.facts if isinstance(row.facts, c.Facts) else c.Facts()
    return {
        "charge_id": row.charge_id if isinstance(row.charge_id, str) else None,
        "link_kind": row.link_kind if isinstance(row.link_kind, str) else None,
        "charge_ids": sorted(row.charge_ids) if isinstance(row.charge_ids, list | tuple) else [],
        "attempts": tuple(state for state, _ in facts.attempts),
        "attempt_ids": tuple(what.id for _, what in facts.attempts if what is not None),
        # the links that disagree: (source code, the order it names), every payment's
        "claims": tuple(sorted(claim for conflict in facts.conflict for claim in conflict.claims)),
        "authorized": facts.authorized,
        "order_refunded": facts.order_refunded,
        "failed_charges": facts.failed_charges,
        "released": facts.released,
        "released_reason": facts.released_reason,
        "ref_source": facts.ref_source,
        # equally likely candidates (none picked): charge ids on an order's row, order keys on a charge's
        "ties": tuple(sorted(candidate for tie in facts.notes for candidate in tie.candidates)),
        "confidence": facts.pair.confidence if facts.pair is not None else None,  # a probable match's
        "settlement": (row.settlement_amount, row.settlement_currency) if row.order_id is not None else None,
    }


class Rule(NamedTuple):
    payments: Payments
    expected: dict[str, str]  # order key or orphan charge id -> outcome
    link_by: tuple[str, ...] = DEFAULT_LINK_BY
    facts: dict[str, dict[str, Any]] = {}  # key -> the facts_of values that row must show
    changes: dict[str, Any] = {}  # Rules fields besides link_by (amount_tolerance, ...)


def check(rule: Rule) -> None:
    rows = keyed(decided(rule.payments, rules(rule.link_by, **rule.changes)))
    assert outcomes(rule.payments, rows) == rule.expected
    for key, wanted in rule.facts.items():
        seen = facts_of(rows[key])
        assert {name: seen[name] for name in wanted} == wanted, key


# --------------------------------------------------------------------------- which order a payment belongs to

STUCK = order("o1")
PAID = order("o1", status="accepted")


@pytest.mark.parametrize(
    "payments, link_by, belongs, conflicts",
    [
        pytest.param(
            pay(STUCK, charges=[charge(ref="o1")]),
            DEFAULT_LINK_BY,
            {"ch_1": ("o1", CHARGE_METADATA)},
            {},
            id="charge_metadata",
        ),
        pytest.param(
            pay(STUCK, charges=[charge(ref="gone")]),
            DEFAULT_LINK_BY,
            {"ch_1": (None, None)},
            {},
            id="charge_metadata_naming_a_missing_order_links_nothing",
        ),
        pytest.param(
            pay(STUCK, charges=[charge(pi="pi_1")], intents=[intent(ref="o1")]),
            INTENT_LINKS,
            {"ch_1": ("o1", PAYMENT_INTENT_METADATA)},
            {},
            id="payment_intent_metadata",
        ),
        pytest.param(
            pay(STUCK, charges=[charge(pi="pi_1")], intents=[intent(ref="o1", age=30 * HOUR, in_window=False)]),
            INTENT_LINKS,
            {"ch_1": ("o1", PAYMENT_INTENT_METADATA)},
            {},
            id="payment_intent_from_before_the_window_links_too",
        ),
        pytest.param(
            pay(STUCK, charges=[charge(pi="pi_1")], intents=[intent(ref="o1")]),
            DEFAULT_LINK_BY,
            {"ch_1": (None, None)},
            {},
            id="payment_intent_metadata_unused_unless_linked_by",
        ),
        pytest.param(
            pay(
                STUCK,
                charges=[charge(pi="pi_1")],
                intents=[intent()],
                sessions=[session(client_reference_id="o1", pi="pi_1")],
            ),
            SESSION_LINKS,
            {"ch_1": ("o1", CHECKOUT_SESSION)},
            {},
            id="checkout_session_client_reference_id",
        ),
        pytest.param(
            pay(STUCK, charges=[charge(pi="pi_1")], intents=[intent()], sessions=[session(ref="o1", pi="pi_1")]),
            SESSION_LINKS,
            {"ch_1": ("o1", CHECKOUT_SESSION)},
            {},
            id="checkout_session_metadata",
        ),
        pytest.param(
            pay(STUCK, charges=[charge(pi="pi_1")], sessions=[session(client_reference_id="o1", pi="pi_1")]),
            SESSION_LINKS,
            {"ch_1": ("o1", CHECKOUT_SESSION)},
            {},
            id="checkout_session_found_by_its_payment_intent_alone",
        ),
        pytest.param(
            pay(order("o1", stored_charge_id="ch_1"), charges=[charge()]),
            FIELD_LINKS,
            {"ch_1": ("o1", ORDER_FIELDS)},
            {},
            id="charge_id_stored_on_the_order",
        ),
        pytest.param(
            pay(order("o1", stored_payment_intent_id="pi_1"), charges=[charge(pi="pi_1")], intents=[intent()]),
            FIELD_LINKS,
            {"ch_1": ("o1", ORDER_FIELDS)},
            {},
            id="payment_intent_id_stored_on_the_order",
        ),
        pytest.param(
            pay(
                order("o1", stored_session_id="cs_1"),
                charges=[charge(pi="pi_1")],
                intents=[intent()],
                sessions=[session(pi="pi_1")],
            ),
            FIELD_LINKS,
            {"ch_1": ("o1", ORDER_FIELDS)},
            {},
            id="checkout_session_id_stored_on_the_order",
        ),
        pytest.param(
            pay(order("o1", stored_charge_id="ch_1"), charges=[charge()]),
            (CHARGE_METADATA,),
            {"ch_1": (None, None)},
            {},
            id="ids_stored_on_the_order_unused_unless_linked_by",
        ),
        pytest.param(
            pay(
                order("o1", stored_session_id="cs_1"),
                charges=[charge(ref="o1", pi="pi_1")],
                intents=[intent(ref="o1")],
                sessions=[session(client_reference_id="o1", pi="pi_1")],
            ),
            EVERY_LINK,
            {"ch_1": ("o1", CHARGE_METADATA)},
            {},
            id="every_link_naming_one_order_the_first_in_link_by_wins",
        ),
        pytest.param(
            pay(
                order("o1", stored_session_id="cs_1"),
                charges=[charge(ref="o1", pi="pi_1")],
                intents=[intent(ref="o1")],
                sessions=[session(client_reference_id="o1", pi="pi_1")],
            ),
            (CHECKOUT_SESSION, PAYMENT_INTENT_METADATA, CHARGE_METADATA, ORDER_FIELDS),
            {"ch_1": ("o1", CHECKOUT_SESSION)},
            {},
            id="the_strongest_link_is_the_first_in_link_by_whatever_it_is",
        ),
        pytest.param(
            pay(STUCK, charges=[charge(ref="gone", pi="pi_1")], intents=[intent(ref="o1")]),
            INTENT_LINKS,
            {"ch_1": ("o1", PAYMENT_INTENT_METADATA)},
            {},
            id="strongest_link_to_an_order_that_exists",
        ),
        pytest.param(
            pay(order("a"), order("b"), charges=[charge(ref="a", pi="pi_1")], intents=[intent(ref="b")]),
            EVERY_LINK,
            {"ch_1": ("a", CHARGE_METADATA)},
            {"a": ("ch_1",), "b": ("ch_1",)},
            id="links_naming_different_orders_conflict",
        ),
        pytest.param(
            pay(
                order("named"),
                order("storing", stored_session_id="cs_1"),
                sessions=[session(client_reference_id="named", status="expired", payment_status="unpaid")],
            ),
            EVERY_LINK,
            {},
            {"named": (), "storing": ()},
            id="a_session_and_a_stored_session_id_disagreeing_conflict",
        ),
    ],
)
def test_link_rules(payments, link_by, belongs, conflicts):
    links = linked(payments, link_by)
    rows = links.charges
    found = {
        cid: (key if isinstance(key, str) else None, kind if isinstance(kind, str) else None)
        for cid, key, kind in zip(rows["charge_id"], rows["order_key"], rows["link_kind"], strict=True)
    }
    assert found == belongs
    assert set(links.conflicts) == set(conflicts)
    assert {key: links.conflict_charges.get(key, ()) for key in conflicts} == conflicts


def test_a_charge_keeps_the_order_reference_it_names_even_when_no_such_order_exists():
    links = linked(pay(STUCK, charges=[charge(ref="gone")]), DEFAULT_LINK_BY)
    assert list(links.charges["order_ref"]) == ["gone"] and list(links.charge_refs) == [True]


# --------------------------------------------------------------------------- outcomes of the links


def stored(**ids: str) -> dict[str, Any]:
    return order("o1", **ids)


def released_auth(**extra: Any) -> dict[str, Any]:
    return charge(ref="o1", pi="pi_1", captured=False, **extra)


LINK_OUTCOMES = [
    pytest.param(
        Rule(
            pay(
                PAID,
                order("o2", amount=4100),
                charges=[charge(pi="pi_1"), charge("ch_2", amount=4100, pi="pi_2")],
                intents=[intent(ref="o1"), intent("pi_2", ref="o2", amount=4100)],
            ),
            {"o1": OK, "o2": REPAIRED},
            INTENT_LINKS,
            facts={"o2": {"link_kind": PAYMENT_INTENT_METADATA, "charge_id": "ch_2"}},
        ),
        id="payment_intent_metadata_links_charges_the_charge_does_not_name",
    ),
    pytest.param(
        Rule(
            pay(
                order("o1", email="customer1@example.com"),  # emails differ: no probable match
                charges=[charge(pi="pi_1", email="buyer@example.com")],
                intents=[intent(ref="o1")],
            ),
            {"o1": STALE_PENDING, "ch_1": ORPHAN_CHARGE},
        ),
        id="without_payment_intent_linking_its_charge_names_no_order",
    ),
    pytest.param(
        Rule(
            pay(
                STUCK,
                charges=[charge(ref="o1", pi="pi_1")],
                intents=[intent(ref="o1")],
                sessions=[session(client_reference_id="o1", pi="pi_1")],
            ),
            {"o1": REPAIRED},
            EVERY_LINK,
            facts={"o1": {"link_kind": CHARGE_METADATA}},
        ),
        id="a_charge_every_link_names_is_matched_once",
    ),
    pytest.param(
        Rule(
            pay(order("a"), order("b"), charges=[charge(ref="a", pi="pi_1")], intents=[intent(ref="b")]),
            {"a": LINK_CONFLICT, "b": LINK_CONFLICT},
            EVERY_LINK,
            facts={
                key: {"charge_ids": ["ch_1"], "claims": (("charge_metadata", "a"), ("intent_metadata", "b"))}
                for key in ("a", "b")
            },
        ),
        id="a_conflict_is_reported_for_every_order_named_and_neither_is_repaired",
    ),
    pytest.param(
        Rule(
            pay(
                order("named"),
                order("storing", stored_session_id="cs_1"),
                sessions=[session(client_reference_id="named", status="expired", payment_status="unpaid")],
            ),
            {"named": LINK_CONFLICT, "storing": LINK_CONFLICT},
            EVERY_LINK,
            facts={
                key: {
                    "charge_ids": [],
                    "claims": (("order_session_id", "storing"), ("session_client_reference_id", "named")),
                }
                for key in ("named", "storing")
            },
        ),
        id="a_session_and_a_stored_session_id_disagreeing_conflict",
    ),
    # PaymentIntents that never produced a succeeded charge
    pytest.param(
        Rule(
            pay(
                order(age=2 * DAY - HOUR),
                intents=[intent(ref="o1", status="processing", payment_method_type="sepa_debit")],
            ),
            {"o1": IN_FLIGHT},
            (PAYMENT_INTENT_METADATA,),
            facts={"o1": {"attempts": (match.PROCESSING,)}},
        ),
        id="payment_intent_processing_days_later_is_in_flight",
    ),
    pytest.param(
        Rule(
            pay(PAID, intents=[intent(ref="o1", status="processing", payment_method_type="sepa_debit")]),
            {"o1": IN_FLIGHT},
            (PAYMENT_INTENT_METADATA,),
        ),
        id="paid_order_shipped_on_a_processing_payment_is_in_flight",
    ),
    pytest.param(
        Rule(
            pay(STUCK, intents=[intent(ref="o1", status="canceled")]),
            {"o1": MARKED_FAILED},
            (PAYMENT_INTENT_METADATA,),
            facts={"o1": {"attempts": (match.CANCELED,)}},
        ),
        id="payment_intent_canceled_marks_failed",
    ),
    pytest.param(
        Rule(
            pay(
                STUCK,
                charges=[charge(pi="pi_1", status="failed")],
                intents=[intent(ref="o1", status="requires_payment_method")],
            ),
            {"o1": MARKED_FAILED},
            (PAYMENT_INTENT_METADATA,),
            facts={"o1": {"failed_charges": 1}},
        ),
        id="payment_intent_declined_marks_failed",
    ),
    *[
        pytest.param(
            Rule(
                pay(STUCK, intents=[intent(ref="o1", status=status)]),
                {"o1": STALE_PENDING},
                (PAYMENT_INTENT_METADATA,),
                facts={"o1": {"attempts": (match.INCOMPLETE,)}},
            ),
            id=f"payment_intent_{status}_never_completed",
        )
        for status in ("requires_payment_method", "requires_action", "requires_confirmation")
    ],
    pytest.param(
        Rule(
            pay(STUCK, intents=[intent(ref="o1", status="succeeded")]),
            {"o1": STALE_PENDING},
            (PAYMENT_INTENT_METADATA,),
            facts={"o1": {"attempts": (match.PAID_ELSEWHERE,)}},
        ),
        id="payment_intent_succeeded_but_its_charge_unseen_is_never_repaired",
    ),
    # Checkout Sessions, with and without PaymentIntent linking
    *[
        pytest.param(
            Rule(payments, {"o1": outcome}, link_by, facts={"o1": {"attempts": attempts}}),
            id=f"{name}[{'with_payment_intents' if len(link_by) > 1 else 'sessions_only'}]",
        )
        for link_by in (SESSION_LINKS, EVERY_LINK)
        for name, payments, outcome, attempts in (
            (
                "checkout_session_expired_is_abandoned",
                pay(STUCK, sessions=[session(client_reference_id="o1", status="expired", payment_status="unpaid")]),
                STALE_PENDING,
                (match.EXPIRED,),
            ),
            (
                "checkout_session_expired_after_a_decline_is_abandoned_not_failed",
                pay(
                    STUCK,
                    intents=[intent(status="canceled")],
                    sessions=[session(client_reference_id="o1", pi="pi_1", status="expired", payment_status="unpaid")],
                ),
                STALE_PENDING,
                (match.EXPIRED,),
            ),
            (
                "checkout_session_open_is_in_flight",
                pay(STUCK, sessions=[session(client_reference_id="o1", status="open", payment_status="unpaid")]),
                IN_FLIGHT,
                (match.OPEN,),
            ),
            (
                "checkout_session_complete_but_settling_is_in_flight",
                pay(
                    STUCK,
                    intents=[intent(status="processing", payment_method_type="sepa_debit")],
                    sessions=[session(client_reference_id="o1", pi="pi_1", payment_status="unpaid")],
                ),
                IN_FLIGHT,
                (match.PROCESSING,),
            ),
        )
    ],
    pytest.param(
        Rule(
            pay(
                STUCK,
                charges=[charge(pi="pi_1")],
                intents=[intent()],
                sessions=[session(client_reference_id="o1", pi="pi_1")],
            ),
            {"o1": REPAIRED},
            SESSION_LINKS,
            facts={"o1": {"link_kind": CHECKOUT_SESSION}},
        ),
        id="checkout_session_links_session_payment_intent_and_charge",
    ),
    # ids stored on the order
    pytest.param(
        Rule(
            pay(stored(stored_payment_intent_id="pi_1"), charges=[charge(pi="pi_1")], intents=[intent()]),
            {"o1": REPAIRED},
            FIELD_LINKS,
            facts={"o1": {"link_kind": ORDER_FIELDS}},
        ),
        id="stored_payment_intent_id_repairs",
    ),
    pytest.param(
        Rule(
            pay(
                order("o1", status="accepted", stored_session_id="cs_1"),
                charges=[charge(pi="pi_1")],
                intents=[intent()],
                sessions=[session(pi="pi_1")],
            ),
            {"o1": OK},
            FIELD_LINKS,
        ),
        id="stored_session_id_pays",
    ),
    pytest.param(
        Rule(pay(order("o1", status="accepted", stored_charge_id="ch_1"), charges=[charge()]), {"o1": OK}, FIELD_LINKS),
        id="stored_charge_id_pays",
    ),
    pytest.param(
        Rule(
            pay(stored(stored_session_id="cs_1"), sessions=[session(status="expired", payment_status="unpaid")]),
            {"o1": STALE_PENDING},
            FIELD_LINKS,
            facts={"o1": {"attempts": (match.EXPIRED,)}},
        ),
        id="stored_expired_session_id_is_abandoned",
    ),
    pytest.param(
        Rule(
            pay(
                order("o1", age=5 * HOUR, stored_payment_intent_id="pi_1"),
                intents=[
                    intent(status="processing", age=3 * DAY, in_window=False, payment_method_type="us_bank_account")
                ],
            ),
            {"o1": IN_FLIGHT},
            FIELD_LINKS,
            facts={"o1": {"attempts": (match.PROCESSING,), "attempt_ids": ("pi_1",)}},
        ),
        id="stored_payment_intent_id_outside_the_window_processing_is_in_flight",
    ),
    # released authorizations: no money, and no attempt in progress
    pytest.param(
        Rule(
            pay(STUCK, charges=[released_auth()], intents=[intent(status="canceled", cancellation_reason="abandoned")]),
            {"o1": MARKED_FAILED},
            facts={"o1": {"released": 1, "released_reason": "abandoned"}},
        ),
        id="authorization_released_by_canceling_its_payment_intent_marks_failed",
    ),
    pytest.param(
        Rule(
            pay(STUCK, charges=[released_auth(age=8 * DAY)], intents=[intent(status="requires_capture")]),
            {"o1": MARKED_FAILED},
            facts={"o1": {"released": 1, "released_reason": c.AUTHORIZATION_LAPSED}},
        ),
        id="authorization_lapsed_after_seven_days_marks_failed",
    ),
    pytest.param(
        Rule(
            pay(
                STUCK, charges=[released_auth(capture_before=NOW - MINUTE)], intents=[intent(status="requires_capture")]
            ),
            {"o1": MARKED_FAILED},
            facts={"o1": {"released": 1}},
        ),
        id="authorization_past_its_capture_before_marks_failed",
    ),
    pytest.param(
        Rule(pay(STUCK, charges=[released_auth(refunded=True)]), {"o1": MARKED_FAILED}, facts={"o1": {"released": 1}}),
        id="authorization_refunded_before_2025_03_31_basil_is_released",
    ),
    pytest.param(
        Rule(
            pay(STUCK, charges=[released_auth()], intents=[intent(status="requires_capture")]),
            {"o1": UNCAPTURED},
            facts={"o1": {"charge_id": "ch_1"}},
        ),
        id="authorization_still_held_is_uncaptured",
    ),
    pytest.param(
        Rule(pay(PAID, charges=[released_auth()], intents=[intent(status="canceled")]), {"o1": PAID_WITHOUT_CHARGE}),
        id="paid_order_whose_authorization_was_released_has_no_charge",
    ),
    pytest.param(
        Rule(pay(charges=[charge(pi="pi_1", captured=False)], intents=[intent(status="canceled")]), {}),
        id="released_authorization_naming_no_order_is_no_orphan",
    ),
]


@pytest.mark.parametrize("rule", LINK_OUTCOMES)
def test_link_outcome_rules(rule):
    check(rule)


# --------------------------------------------------------------------------- currencies and amounts


def paid_at(amount: int, currency: str = "usd", **extra: Any) -> dict[str, Any]:
    return order("o1", status="accepted", amount=amount, currency=currency, **extra)


def stuck_at(amount: int, **extra: Any) -> dict[str, Any]:
    return order("o1", amount=amount, **extra)


def eur_settled_in_usd(amount: int = 2500) -> dict[str, Any]:
    return charge(
        ref="o1", amount=amount, currency="eur", settlement_currency="usd", settlement_amount=2711, exchange_rate=1.0843
    )


AMOUNT_RULES = [
    pytest.param(
        Rule(pay(stuck_at(4000), charges=[charge(ref="o1", amount=5000, amount_captured=4000)]), {"o1": REPAIRED}),
        id="partial_capture_repairs_by_what_was_captured",
    ),
    pytest.param(
        Rule(pay(paid_at(3000), charges=[charge(ref="o1", amount=3500, amount_captured=3000)]), {"o1": OK}),
        id="partial_capture_released_remainder_is_no_refund",
    ),
    pytest.param(
        Rule(
            pay(paid_at(5000), charges=[charge(ref="o1", amount=5000, amount_captured=4500)]),
            {"o1": AMOUNT_MISMATCH},
            facts={"o1": {"authorized": 5000}},
        ),
        id="capture_short_of_the_order_is_a_mismatch",
    ),
    pytest.param(
        Rule(
            pay(paid_at(6000, refunded_amount=1000), charges=[charge(ref="o1", amount=6000, amount_refunded=1000)]),
            {"o1": OK},
        ),
        id="refund_recorded_on_the_order",
    ),
    pytest.param(
        Rule(
            pay(paid_at(3600), charges=[charge(ref="o1", amount=3600, amount_refunded=600)]),
            {"o1": REFUNDED_OR_DISPUTED},
        ),
        id="refund_not_recorded_on_the_order",
    ),
    pytest.param(
        Rule(
            pay(paid_at(2000, refunded_amount=500), charges=[charge(ref="o1", amount=2000)]),
            {"o1": REFUNDED_OR_DISPUTED},
            facts={"o1": {"order_refunded": 500}},
        ),
        id="refund_only_on_the_order",
    ),
    pytest.param(
        Rule(
            pay(
                paid_at(4000, refunded_amount=400),
                charges=[charge(ref="o1", amount=5000, amount_captured=4000, amount_refunded=400)],
            ),
            {"o1": OK},
        ),
        id="captured_in_part_then_refunded_as_recorded",
    ),
    pytest.param(
        Rule(
            pay(
                order("o1", status="failed", amount=1500),
                charges=[charge(ref="o1", amount=1500, amount_refunded=1500, refunded=True)],
            ),
            {"o1": OK},
        ),
        id="failed_order_refunded_in_full_owes_nothing",
    ),
    pytest.param(
        Rule(pay(paid_at(2500, "eur"), charges=[eur_settled_in_usd()]), {"o1": OK}),
        id="presentment_currency_is_compared",
    ),
    pytest.param(
        Rule(
            pay(paid_at(3000, "eur"), charges=[eur_settled_in_usd()]),
            {"o1": AMOUNT_MISMATCH},
            facts={"o1": {"settlement": (2711, "usd")}},
        ),
        id="presentment_amount_differs_and_the_settlement_is_carried",
    ),
    pytest.param(
        Rule(pay(paid_at(2711, "usd"), charges=[eur_settled_in_usd()]), {"o1": AMOUNT_MISMATCH}),
        id="the_settled_amount_is_not_what_the_order_is_compared_with",
    ),
    pytest.param(
        Rule(
            pay(paid_at(4980, "jpy"), charges=[charge(ref="o1", amount=4890, currency="jpy")]), {"o1": AMOUNT_MISMATCH}
        ),
        id="zero_decimal_currency_mismatch",
    ),
    pytest.param(
        Rule(
            pay(paid_at(12500, "kwd"), charges=[charge(ref="o1", amount=12050, currency="kwd")]),
            {"o1": AMOUNT_MISMATCH},
        ),
        id="three_decimal_currency_mismatch",
    ),
    pytest.param(
        Rule(pay(paid_at(1001), charges=[charge(ref="o1", amount=1000)]), {"o1": AMOUNT_MISMATCH}),
        id="default_tolerance_is_exact",
    ),
    pytest.param(
        Rule(pay(paid_at(1001), charges=[charge(ref="o1", amount=1000)]), {"o1": OK}, changes={"amount_tolerance": 2}),
        id="tolerance_applies_to_paid_orders",
    ),
    pytest.param(
        Rule(
            pay(paid_at(1010), charges=[charge(ref="o1", amount=1000)]),
            {"o1": AMOUNT_MISMATCH},
            changes={"amount_tolerance": 2},
        ),
        id="beyond_the_tolerance_is_a_mismatch",
    ),
    pytest.param(
        Rule(
            pay(stuck_at(1001), charges=[charge(ref="o1", amount=1000)]),
            {"o1": AMOUNT_MISMATCH},
            changes={"amount_tolerance": 2},
        ),
        id="tolerance_never_repairs_unless_asked",
    ),
    pytest.param(
        Rule(
            pay(stuck_at(1001), charges=[charge(ref="o1", amount=1000)]),
            {"o1": REPAIRED},
            changes={"amount_tolerance": 2, "repair_within_tolerance": True},
        ),
        id="repair_within_tolerance_when_asked",
    ),
]


@pytest.mark.parametrize("rule", AMOUNT_RULES)
def test_amount_rules(rule):
    check(rule)


# --------------------------------------------------------------------------- probable matches


def crashed(
    key: str = "o1",
    cid: str = "ch_1",
    amount: int = 3150,
    after: int = 4 * MINUTE,
    same_email: bool = True,
    order_age: int = 3 * HOUR,
    **charge_extra: Any,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """An order left pending and a charge with no reference: the checkout died before writing either."""
    email = f"{key}@example.com"
    return (
        order(key, amount=amount, age=order_age, email=email),
        charge(cid, amount=amount, age=order_age - after, **{"email": email if same_email else None, **charge_extra}),
    )


def one_crash(**change: Any) -> Payments:
    o, ch = crashed(**change)
    return pay(o, charges=[ch])


NO_PAIR = {"o1": STALE_PENDING, "ch_1": ORPHAN_CHARGE}
UNNOTED = {"o1": {"ties": ()}, "ch_1": {"ties": ()}}


PROBABLE_RULES = [
    pytest.param(
        Rule(one_crash(), {"o1": PROBABLE_MATCH}, facts={"o1": {"charge_id": "ch_1", "confidence": "high"}}),
        id="a_probable_match_is_one_row_carrying_both",
    ),
    pytest.param(
        Rule(
            pay(
                crashed()[0],
                charges=[
                    crashed()[1],
                    charge("ch_f", ref="o1", amount=3150, status="failed", age=3 * HOUR - 2 * MINUTE),
                ],
            ),
            {"o1": PROBABLE_MATCH},
        ),
        id="a_failed_charge_does_not_mark_failed_an_order_with_a_probable_match",
    ),
    pytest.param(
        Rule(one_crash(), NO_PAIR, facts=UNNOTED, changes={"probable_matches": False}), id="proposals_turned_off"
    ),
    pytest.param(
        Rule(one_crash(), NO_PAIR, facts=UNNOTED, changes={"dismissed_pairs": frozenset({("o1", "ch_1")})}),
        id="a_pair_a_person_dismissed_is_never_proposed_again",
    ),
    pytest.param(
        Rule(
            pay(crashed()[0], charges=[charge(amount=3151, age=3 * HOUR - 4 * MINUTE, email="o1@example.com")]),
            NO_PAIR,
            facts=UNNOTED,
        ),
        id="different_amount",
    ),
    pytest.param(Rule(one_crash(currency="eur"), NO_PAIR, facts=UNNOTED), id="different_currency"),
    pytest.param(Rule(one_crash(after=44 * MINUTE), NO_PAIR, facts=UNNOTED), id="outside_the_drift"),
    pytest.param(
        Rule(one_crash(after=50 * MINUTE), {"o1": PROBABLE_MATCH}, changes={"probable_drift_seconds": HOUR}),
        id="the_drift_is_the_rules",
    ),
    pytest.param(
        Rule(one_crash(same_email=False, email="somebody.else@example.com"), NO_PAIR, facts=UNNOTED),
        id="different_emails",
    ),
    pytest.param(
        Rule(
            one_crash(ref="ord_gone"),
            NO_PAIR | {"ch_1": ORPHAN_CHARGE},
            facts={"ch_1": {"ref_source": "charge_metadata", "ties": ()}},
        ),
        id="charge_names_a_missing_order",
    ),
    pytest.param(
        Rule(
            one_crash(order_age=5 * MINUTE, after=MINUTE),
            {"o1": IN_FLIGHT, "ch_1": ORPHAN_CHARGE},
            facts={"ch_1": {"ties": ()}},
        ),
        id="order_still_in_flight",
    ),
    pytest.param(
        Rule(
            pay(crashed()[0], charges=[crashed()[1], charge("ch_own", ref="o1", amount=3150)]),
            {"o1": REPAIRED, "ch_1": ORPHAN_CHARGE},
            facts={"ch_1": {"ties": ()}},
        ),
        id="order_paid_by_its_own_charge",
    ),
    pytest.param(
        Rule(
            pay(
                order("o1", amount=4200, age=4 * HOUR),
                order("o2", amount=4200, age=4 * HOUR + 10 * MINUTE),
                charges=[charge(amount=4200, age=4 * HOUR - 5 * MINUTE)],
            ),
            {"o1": STALE_PENDING, "o2": STALE_PENDING, "ch_1": ORPHAN_CHARGE},
            facts={
                "o1": {"charge_ids": ["ch_1"], "ties": ("ch_1",)},
                "o2": {"charge_ids": ["ch_1"], "ties": ("ch_1",)},
                "ch_1": {"ties": ("o1", "o2")},
            },
        ),
        id="two_equally_likely_orders_neither_picked",
    ),
    pytest.param(
        Rule(
            pay(
                order("o1", amount=4300, age=4 * HOUR, email="o1@example.com"),
                charges=[
                    charge("ch_1", amount=4300, age=4 * HOUR - 2 * MINUTE, email="o1@example.com"),
                    charge("ch_2", amount=4300, age=4 * HOUR - 10 * MINUTE, email="o1@example.com"),
                ],
            ),
            {"o1": STALE_PENDING, "ch_1": ORPHAN_CHARGE, "ch_2": ORPHAN_CHARGE},
            facts={
                "o1": {"charge_ids": ["ch_1", "ch_2"], "ties": ("ch_1", "ch_2")},
                "ch_1": {"ties": ("o1",)},
                "ch_2": {"ties": ("o1",)},
            },
        ),
        id="two_equally_likely_charges_neither_picked",
    ),
    pytest.param(
        Rule(
            pay(
                order("o1", amount=4200, age=4 * HOUR, email="o1@example.com"),
                order("o2", amount=4200, age=4 * HOUR + MINUTE),
                charges=[charge(amount=4200, age=4 * HOUR - 5 * MINUTE, email="o1@example.com")],
            ),
            {"o1": PROBABLE_MATCH, "o2": STALE_PENDING},
            facts={"o1": {"charge_id": "ch_1"}, "o2": {"ties": ()}},
        ),
        id="a_better_candidate_settles_what_would_otherwise_be_a_tie",
    ),
]


@pytest.mark.parametrize("rule", PROBABLE_RULES)
def test_probable_match_rules(rule):
    check(rule)


def test_probable_matches_come_strongest_first():
    known, known_charge = crashed("known", "ch_k", amount=2222, after=20 * MINUTE)
    unknown, unknown_charge = crashed("unknown", "ch_u", amount=1111, same_email=False)
    result = decided(pay(unknown, known, charges=[unknown_charge, known_charge]), rules())
    paired = result.loc[result["outcome"] == PROBABLE_MATCH]
    assert [(row.order_key, row.charge_id) for row in paired.itertuples()] == [("known", "ch_k"), ("unknown", "ch_u")]
    assert [facts_of(row)["confidence"] for row in paired.itertuples()] == ["high", "medium"]


def side(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(rows)


def o_(key: str, amount: int = 100, created: int = 1000, email: str | None = None) -> dict[str, Any]:
    return {"order_key": key, "amount": amount, "currency": "usd", "created": created, "email": email}


def ch_(cid: str, amount: int = 100, created: int = 1000, email: str | None = None) -> dict[str, Any]:
    return {"charge_id": cid, "amount": amount, "currency": "usd", "created": created, "email": email}


@pytest.mark.parametrize(
    "orders, charges, changes, pairs, order_notes, charge_notes",
    [
        pytest.param(
            [o_("o1", email="a@x.io"), o_("o2", created=1100)],
            [ch_("ch_1", created=1200, email="A@X.io ")],
            {},
            [(0, 0, "high", 1)],
            {},
            {},
            id="each_others_unique_best_emails_compared_loosely",
        ),
        pytest.param([o_("o1", amount=101)], [ch_("ch_1")], {}, [], {}, {}, id="amount_beyond_the_tolerance"),
        pytest.param(
            [o_("o1", amount=101)],
            [ch_("ch_1")],
            {"tolerance": 1},
            [(0, 0, "low", 1)],
            {},
            {},
            id="amount_within_the_tolerance_at_lower_confidence",
        ),
        pytest.param(
            [o_("o1", amount=101, email="a@x.io")],
            [ch_("ch_1", email="a@x.io")],
            {"tolerance": 1},
            [(0, 0, "medium", 1)],
            {},
            {},
            id="within_the_tolerance_with_the_same_email",
        ),
        pytest.param([o_("o1")], [ch_("ch_1")], {}, [(0, 0, "medium", 1)], {}, {}, id="exact_amount_no_email"),
        pytest.param(
            [o_("o1"), o_("o2", created=1100)],
            [ch_("ch_1", created=1050)],
            {},
            {},
            {0: ("ch_1",), 1: ("ch_1",)},
            {0: ("o1", "o2")},
            id="two_orders_tie",
        ),
        pytest.param(
            [o_("o1")],
            [ch_("ch_1"), ch_("ch_2", created=1100)],
            {},
            {},
            {0: ("ch_1", "ch_2")},
            {0: ("o1",), 1: ("o1",)},
            id="two_charges_tie",
        ),
        pytest.param([o_("o1")], [ch_("ch_1", created=1000 + 1801)], {}, [], {}, {}, id="beyond_the_drift"),
        pytest.param([o_("o1")], [ch_("ch_1")], {"dismissed": frozenset({("o1", "ch_1")})}, [], {}, {}, id="dismissed"),
        pytest.param(
            [o_("o1", email="a@x.io"), o_("o2", amount=200)],
            [ch_("ch_2", amount=200, created=1500), ch_("ch_1", email="a@x.io", created=1300)],
            {},
            [(0, 1, "high", 1), (1, 0, "medium", 2)],
            {},
            {},
            id="ranked_by_level_then_gap",
        ),
    ],
)
def test_propose_rules(orders, charges, changes, pairs, order_notes, charge_notes):
    proposals = match.propose(side(orders), side(charges), 1800, **changes)
    assert proposals.pairs[["order", "charge", "confidence", "rank"]].values.tolist() == [list(p) for p in pairs]
    assert {label: tie.candidates for label, tie in proposals.order_notes.items()} == order_notes
    assert {label: tie.candidates for label, tie in proposals.charge_notes.items()} == charge_notes


def test_too_many_possible_pairings_propose_nothing_and_say_why():
    orders = [order(f"o{i}", amount=500, age=7200 - i) for i in range(3)]
    charges = [charge(f"ch_{i}", amount=500, age=7000 - i) for i in range(2)]
    the_rules = dataclasses.replace(rules(), max_pairs=3)
    result = decided(pay(*orders, charges=charges), the_rules)
    assert sorted(result["outcome"]) == [ORPHAN_CHARGE] * 2 + [STALE_PENDING] * 3
    orphans = result.loc[result["outcome"] == ORPHAN_CHARGE]
    assert [f.too_many_pairings for f in orphans["facts"]] == [6, 6]
    details = wording.worded(result, the_rules).loc[orphans.index, "detail"]
    assert all(
        "too many possible pairings (6) to propose probable matches: check matching.link_by" in d for d in details
    )
