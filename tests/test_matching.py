"""Matching end to end: every way a shop links orders to Stripe, money details, conflicts, probable matches.

The real `reconcile` command runs against the Stripe stand-in (HTTP, official SDK) and nx-27017.
Outcomes are read from the summary JSON and the CSV of discrepancies (every outcome but `ok`).
"""

from __future__ import annotations

import csv
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from reconcile.decide import classify as c
from reconcile.decide import match
from reconcile.report import wording
from reconcile.timeutil import to_unix

EVERY_LINK = ["charge_metadata", "payment_intent_metadata", "checkout_session", "order_fields"]
ORDER_FIELDS = {
    "payment_intent_id_field": "payment_intent_id",
    "checkout_session_id_field": "checkout_session_id",
    "refunded_amount_field": "refunded_amount",
}


# Each test means the last day, whatever earlier runs in the test did to the watermark.
WINDOW = ("--since", "24h")


def every_link(cli, orders: dict[str, Any] | None = None, **matching: Any) -> None:
    cli.configure(
        matching={"link_by": EVERY_LINK, **matching}, orders={"email_field": "email", **ORDER_FIELDS, **(orders or {})}
    )


def rows(result) -> list[dict[str, str]]:
    with open(result.summary["report"]["csv"], newline="") as handle:
        return list(csv.DictReader(handle))


def row_of(result, order_id: Any = None, charge_id: str | None = None) -> dict[str, str]:
    found = [
        r
        for r in rows(result)
        if (order_id is None or r["order_id"] == str(order_id)) and (charge_id is None or r["charge_id"] == charge_id)
    ]
    assert len(found) == 1, (order_id, charge_id, rows(result))
    return found[0]


def outcome_of(result, order_id: Any) -> str:
    found = [r["outcome"] for r in rows(result) if r["order_id"] == str(order_id)]
    assert len(found) <= 1, found
    return found[0] if found else c.OK


def status_of(db, order_id: Any) -> str:
    return db["orders"].find_one({"_id": order_id})["status"]


def nonzero(result) -> dict[str, int]:
    return {k: v for k, v in result.summary["counts"].items() if v}


# --------------------------------------------------------------------------- PaymentIntents


def test_payment_intent_metadata_links_charges_the_charge_does_not_name(cli, shop, db):
    paid = shop.order(None, status="accepted", amount=3300)
    shop.intent(paid, amount=3300)
    stuck = shop.order(None, amount=4100)
    shop.intent(stuck, amount=4100)
    cli.configure(matching={"link_by": ["charge_metadata", "payment_intent_metadata"]})
    result = cli(*WINDOW)
    assert result.exit_code == 0, result.output
    assert nonzero(result) == {c.OK: 1, c.REPAIRED: 1}
    assert result.summary["repaired"] == [str(stuck)] and status_of(db, stuck) == "accepted"
    assert row_of(result, stuck)["linked_by"] == "payment intent metadata"


def test_without_payment_intent_linking_those_charges_name_no_order(cli, shop, db):
    stuck = shop.order(None, amount=4100)
    shop.intent(stuck, amount=4100)
    result = cli(*WINDOW)  # the default: a Charges API shop
    assert nonzero(result) == {c.STALE_PENDING: 1, c.ORPHAN_CHARGE: 1}  # emails differ: no probable match
    assert status_of(db, stuck) == "created"


def test_payment_intents_that_never_produced_a_succeeded_charge(cli, shop, db):
    processing = shop.order(None, amount=5200, age=timedelta(days=2) - timedelta(hours=1))
    shop.intent(processing, amount=5200, status="processing", charge=None)
    canceled = shop.order(None, amount=2700)
    shop.intent(canceled, amount=2700, status="canceled", charge=None)
    no_card = shop.order(None, amount=1900)
    shop.intent(no_card, amount=1900, status="requires_payment_method", charge=None)
    three_ds = shop.order(None, amount=1950)
    shop.intent(three_ds, amount=1950, status="requires_action", charge=None)
    declined = shop.order(None, amount=2050)
    shop.intent(declined, amount=2050, status="requires_payment_method", charge="failed")
    shipped_early = shop.order(None, status="accepted", amount=8100)  # shop ships on a processing bank debit
    shop.intent(shipped_early, amount=8100, status="processing", charge=None)
    cli.configure(matching={"link_by": ["payment_intent_metadata"]}, window={"lookback": "3d"})
    result = cli(*WINDOW)

    assert outcome_of(result, processing) == c.IN_FLIGHT  # two days old and still not failed
    assert "payment processing" in row_of(result, processing)["detail"]
    assert status_of(db, processing) == "created"
    assert outcome_of(result, canceled) == c.MARKED_FAILED and status_of(db, canceled) == "failed"
    assert "canceled" in row_of(result, canceled)["detail"]
    assert outcome_of(result, declined) == c.MARKED_FAILED and status_of(db, declined) == "failed"
    for order in (no_card, three_ds):
        assert outcome_of(result, order) == c.STALE_PENDING and status_of(db, order) == "created"
        assert "never completed" in row_of(result, order)["detail"]
    assert outcome_of(result, shipped_early) == c.IN_FLIGHT
    assert result.exit_code == 0


def test_payment_intent_created_before_the_window_is_retrieved(cli, shop, store, db, now):
    stuck = shop.order(None, amount=4400, age=timedelta(hours=2))
    intent = store.create_payment_intent(
        amount=4400, created=to_unix(now - timedelta(hours=30)), metadata={"order_id": str(stuck)}
    )
    shop.charge(None, amount=4400, metadata={}, payment_intent=intent["id"])
    cli.configure(matching={"link_by": ["payment_intent_metadata"]})
    result = cli(*WINDOW)
    assert result.summary["repaired"] == [str(stuck)], rows(result)


def test_payment_intent_and_charge_just_after_the_window_are_found(cli, shop, store, db, now):
    until = now - timedelta(hours=1)
    order = shop.order(None, status="accepted", amount=2800, age=timedelta(hours=1, seconds=20))
    intent = store.create_payment_intent(amount=2800, created=to_unix(until) + 10, metadata={"order_id": str(order)})
    shop.charge(None, amount=2800, metadata={}, payment_intent=intent["id"], age=timedelta(minutes=59))
    cli.configure(matching={"link_by": ["payment_intent_metadata"]})
    result = cli("--until", until.strftime("%Y-%m-%dT%H:%M:%S"))
    assert nonzero(result) == {c.OK: 1}, rows(result)
    assert result.exit_code == 0


def test_charge_of_a_stored_payment_intent_is_fetched_when_only_the_intent_is_known(
    cli, shop, store, db, now, stripe_server
):
    intent = store.create_payment_intent(amount=3100, created=to_unix(now - timedelta(days=3)))
    charge = shop.charge(None, amount=3100, metadata={}, payment_intent=intent["id"], age=timedelta(days=3))
    order = shop.order(None, status="accepted", amount=3100, payment_intent_id=intent["id"], age=timedelta(hours=1))
    cli.configure(matching={"link_by": ["order_fields"]}, orders=ORDER_FIELDS)
    result = cli(*WINDOW)
    assert nonzero(result) == {c.OK: 1}, rows(result)
    assert ("GET", f"/v1/payment_intents/{intent['id']}") in [(m, p) for m, p, q in stripe_server.request_log]
    assert [q.get("payment_intent") for m, p, q in stripe_server.request_log if p == "/v1/charges"][-1] == intent["id"]
    assert charge["id"] not in str(result.summary["discrepancies"]) and status_of(db, order) == "accepted"


# --------------------------------------------------------------------------- Checkout Sessions


def test_checkout_session_links_session_payment_intent_and_charge(cli, shop, db):
    by_reference = shop.order(None, amount=2350, object_id=False)
    shop.checkout(by_reference, amount=2350)
    by_metadata = shop.order(None, status="accepted", amount=6400)
    session = shop.checkout(None, amount=6400)
    shop.store.update(session["id"], metadata={"order_id": str(by_metadata)})
    cli.configure(matching={"link_by": ["checkout_session"]})
    result = cli(*WINDOW)
    assert result.exit_code == 0, result.output
    assert nonzero(result) == {c.OK: 1, c.REPAIRED: 1}
    assert result.summary["repaired"] == [by_reference] and status_of(db, by_reference) == "accepted"


@pytest.mark.parametrize("link_by", [["checkout_session"], EVERY_LINK], ids=["sessions_only", "with_payment_intents"])
def test_checkout_session_states_for_pending_orders(cli, shop, db, link_by):
    expired = shop.order(None, amount=8800)
    shop.checkout(expired, amount=8800, status="expired", payment_status="unpaid", intent_status=None)
    abandoned_after_decline = shop.order(None, amount=8900)  # Checkout cancels the PaymentIntent on expiry
    shop.checkout(
        abandoned_after_decline,
        amount=8900,
        status="expired",
        payment_status="unpaid",
        intent_status="canceled",
        charge=None,
    )
    still_open = shop.order(None, amount=9100)
    shop.checkout(still_open, amount=9100, status="open", payment_status="unpaid", intent_status=None)
    settling = shop.order(None, amount=7300)
    shop.checkout(settling, amount=7300, payment_status="unpaid", intent_status="processing", charge=None)
    cli.configure(matching={"link_by": link_by})
    result = cli(*WINDOW)
    for order in (expired, abandoned_after_decline):
        assert outcome_of(result, order) == c.STALE_PENDING
        assert "expired, the customer abandoned the checkout" in row_of(result, order)["detail"]
    assert outcome_of(result, still_open) == c.IN_FLIGHT and "still open" in row_of(result, still_open)["detail"]
    assert outcome_of(result, settling) == c.IN_FLIGHT
    assert result.summary["marked_failed"] == [] and result.exit_code == 0
    assert {status_of(db, o) for o in (expired, abandoned_after_decline, still_open, settling)} == {"created"}


def test_session_older_than_the_window_is_found_by_its_payment_intent(cli, shop, store, db, now, stripe_server):
    stuck = shop.order(None, amount=3900, age=timedelta(hours=2))
    intent = store.create_payment_intent(amount=3900, created=to_unix(now - timedelta(hours=2)))
    store.create_checkout_session(
        created=to_unix(now - timedelta(hours=23, minutes=50)),
        client_reference_id=str(stuck),
        payment_intent=intent["id"],
    )
    shop.charge(None, amount=3900, metadata={}, payment_intent=intent["id"])
    cli.configure(matching={"link_by": ["checkout_session"]})
    result = cli("--since", "3h")
    assert result.summary["repaired"] == [str(stuck)], rows(result)
    lookups = [q for m, p, q in stripe_server.request_log if p == "/v1/checkout/sessions" and "payment_intent" in q]
    assert [q["payment_intent"] for q in lookups] == [intent["id"]]


# --------------------------------------------------------------------------- ids stored on the order


def test_ids_stored_on_the_order(cli, shop, store, db):
    intent = shop.intent(None, amount=5600)
    by_intent = shop.order(None, amount=5600, payment_intent_id=intent["id"])
    session = shop.checkout(None, amount=4700)
    by_session = shop.order(None, status="accepted", amount=4700, checkout_session_id=session["id"])
    charge = shop.charge(None, amount=1500, metadata={})
    by_charge = shop.order(None, status="accepted", amount=1500, charge_id=charge["id"])
    expired = store.create_checkout_session(
        created=to_unix(shop.now - timedelta(hours=2)), status="expired", payment_status="unpaid"
    )
    abandoned = shop.order(None, amount=1234, checkout_session_id=expired["id"])
    cli.configure(matching={"link_by": ["order_fields"]}, orders=ORDER_FIELDS)
    result = cli(*WINDOW)
    assert result.summary["repaired"] == [str(by_intent)]
    assert row_of(result, by_intent)["linked_by"] == "order fields"
    audit = db["reconcile_audit"].find_one({"order_key": str(by_intent)})
    assert audit["previous_charge_id"] is None and "charge_id" in audit["undo"]["unset"]
    assert outcome_of(result, by_session) == c.OK and outcome_of(result, by_charge) == c.OK
    assert outcome_of(result, abandoned) == c.STALE_PENDING and "expired" in row_of(result, abandoned)["detail"]
    assert result.exit_code == 0


def test_stored_payment_intent_id_outside_the_window_is_retrieved(cli, shop, store, db, now):
    intent = store.create_payment_intent(amount=2100, created=to_unix(now - timedelta(days=3)), status="processing")
    order = shop.order(None, amount=2100, payment_intent_id=intent["id"], age=timedelta(hours=5))
    cli.configure(matching={"link_by": ["order_fields"]}, orders=ORDER_FIELDS)
    result = cli(*WINDOW)
    assert outcome_of(result, order) == c.IN_FLIGHT, rows(result)
    assert intent["id"] in row_of(result, order)["detail"]


# --------------------------------------------------------------------------- several at once


def test_each_charge_is_matched_once_by_the_strongest_link(cli, shop, store, db):
    stuck = shop.order(None, amount=2600)
    intent = store.create_payment_intent(
        amount=2600, created=to_unix(shop.now - timedelta(hours=2)), metadata={"order_id": str(stuck)}
    )
    session = store.create_checkout_session(
        created=to_unix(shop.now - timedelta(hours=2)), client_reference_id=str(stuck), payment_intent=intent["id"]
    )
    charge = shop.charge(stuck, amount=2600, payment_intent=intent["id"])
    db["orders"].update_one({"_id": stuck}, {"$set": {"checkout_session_id": session["id"]}})
    every_link(cli)
    result = cli("--dry-run")
    assert nonzero(result) == {c.REPAIRED: 1}
    assert row_of(result, stuck, charge["id"])["linked_by"] == "charge metadata"
    every_link(cli, link_by=["checkout_session", "payment_intent_metadata", "charge_metadata", "order_fields"])
    result = cli("--dry-run")
    assert nonzero(result) == {c.REPAIRED: 1}
    assert row_of(result, stuck)["linked_by"] == "checkout session"


def test_links_naming_different_orders_are_a_conflict_and_nothing_is_repaired(cli, shop, store, db):
    old_style = shop.order(None, amount=2900)
    new_style = shop.order(None, amount=2900)
    intent = store.create_payment_intent(
        amount=2900, created=to_unix(shop.now - timedelta(hours=2)), metadata={"order_id": str(new_style)}
    )
    charge = shop.charge(old_style, amount=2900, payment_intent=intent["id"])
    every_link(cli)
    result = cli(*WINDOW)
    assert result.exit_code == 1
    assert nonzero(result) == {c.LINK_CONFLICT: 2}
    for order in (old_style, new_style):
        detail = row_of(result, order)["detail"]
        assert charge["id"] in detail and str(old_style) in detail and str(new_style) in detail
        assert "charge metadata" in detail and "PaymentIntent metadata" in detail
        assert status_of(db, order) == "created"
    assert result.summary["repaired"] == []
    assert {d["outcome"] for d in result.summary["discrepancies"]} == {c.LINK_CONFLICT}


def test_a_session_and_a_stored_session_id_disagreeing_is_a_conflict(cli, shop, store, db):
    named = shop.order(None, amount=1700)
    session = shop.checkout(named, amount=1700, status="expired", payment_status="unpaid", intent_status=None)
    storing = shop.order(None, amount=1700, checkout_session_id=session["id"])
    every_link(cli)
    result = cli(*WINDOW)
    assert nonzero(result) == {c.LINK_CONFLICT: 2}
    assert "Checkout Session " + session["id"] in row_of(result, storing)["detail"]


# --------------------------------------------------------------------------- money details


def test_partial_capture_is_compared_with_what_was_captured(cli, shop, store, db):
    stuck = shop.order(None, amount=4000)
    shop.charge(stuck, amount=5000, amount_captured=4000)
    paid = shop.order(None, status="accepted", amount=3000)
    shop.charge(paid, amount=3500, amount_captured=3000)
    short = shop.order(None, status="accepted", amount=5000)
    shop.charge(short, amount=5000, amount_captured=4500)
    result = cli(*WINDOW)
    assert result.summary["repaired"] == [str(stuck)]
    assert outcome_of(result, paid) == c.OK  # the released 5.00 is not a refund to the customer
    assert outcome_of(result, short) == c.AMOUNT_MISMATCH
    assert row_of(result, short)["detail"] == "order 50.00 USD, charge captured 45.00 USD of 50.00 USD authorized"


def test_partial_refunds_compare_the_orders_expected_net_with_what_the_customer_paid(cli, shop, store, db):
    recorded = shop.order(None, status="accepted", amount=6000, refunded_amount=1000)
    store.create_refund(shop.charge(recorded, amount=6000)["id"], amount=1000)
    unrecorded = shop.order(None, status="accepted", amount=3600)
    store.create_refund(shop.charge(unrecorded, amount=3600)["id"], amount=600)
    only_on_order = shop.order(None, status="accepted", amount=2000, refunded_amount=500)
    shop.charge(only_on_order, amount=2000)
    captured_then_refunded = shop.order(None, status="accepted", amount=4000, refunded_amount=400)
    store.create_refund(shop.charge(captured_then_refunded, amount=5000, amount_captured=4000)["id"], amount=400)
    failed_and_refunded = shop.order(None, status="failed", amount=1500)
    store.create_refund(shop.charge(failed_and_refunded, amount=1500)["id"])
    cli.configure(orders={"refunded_amount_field": "refunded_amount"})
    result = cli(*WINDOW)
    assert outcome_of(result, recorded) == c.OK
    assert outcome_of(result, captured_then_refunded) == c.OK
    assert outcome_of(result, failed_and_refunded) == c.OK  # nothing owed either way
    assert outcome_of(result, unrecorded) == c.REFUNDED_OR_DISPUTED
    assert row_of(result, unrecorded)["detail"] == (
        "refunded 6.00 USD while the order is accepted; the order expects net 36.00 USD, the customer paid net 30.00 USD"
    )
    assert outcome_of(result, only_on_order) == c.REFUNDED_OR_DISPUTED
    assert row_of(result, only_on_order)["detail"] == (
        "no refund in Stripe while the order is accepted; the order expects net 15.00 USD, after 5.00 USD refunded "
        "on the order, the customer paid net 20.00 USD"
    )


def test_without_a_refunded_field_any_refund_on_a_paid_order_needs_a_person(cli, shop, store, db):
    order = shop.order(None, status="accepted", amount=6000, refunded_amount=1000)
    store.create_refund(shop.charge(order, amount=6000)["id"], amount=1000)
    result = cli(*WINDOW)
    assert outcome_of(result, order) == c.REFUNDED_OR_DISPUTED


def test_presentment_is_compared_and_settlement_is_totalled_and_both_shown(cli, shop, store, db):
    ok = shop.order(None, status="accepted", amount=2500, currency="eur")
    shop.charge(ok, amount=2500, currency="eur", settlement_currency="usd", exchange_rate="1.0843")
    wrong = shop.order(None, status="accepted", amount=3000, currency="eur")
    charge = shop.charge(wrong, amount=2500, currency="eur", settlement_currency="usd", exchange_rate="1.0843")
    settled_same = shop.order(None, status="accepted", amount=2711, currency="usd")  # = the settled amount
    shop.charge(settled_same, amount=2500, currency="eur", settlement_currency="usd", exchange_rate="1.0843")
    result = cli(*WINDOW)
    assert outcome_of(result, ok) == c.OK
    assert outcome_of(result, settled_same) == c.AMOUNT_MISMATCH  # the order is compared with what was presented
    row = row_of(result, wrong)
    assert (row["charge_amount"], row["charge_currency"], row["settlement_amount"], row["settlement_currency"]) == (
        "25.00",
        "eur",
        "27.11",
        "usd",
    )
    assert set(result.summary["totals"]) == {"usd"} and result.summary["totals"]["usd"]["gross"] == 3 * 2711
    html = Path(result.summary["report"]["html"]).read_text()
    assert "25.00 EUR" in html and "settled 27.11 USD" in html and charge["id"] in html


def test_zero_and_three_decimal_currencies_are_shown_in_their_units(cli, shop, db):
    yen = shop.order(None, status="accepted", amount=4980, currency="jpy")
    shop.charge(yen, amount=4890, currency="jpy")
    dinar = shop.order(None, status="accepted", amount=12500, currency="kwd")
    shop.charge(dinar, amount=12050, currency="kwd")
    result = cli(*WINDOW)
    assert row_of(result, yen)["detail"] == "order 4,980 JPY, charge captured 4,890 JPY"
    assert (row_of(result, yen)["order_amount"], row_of(result, yen)["charge_amount"]) == ("4980", "4890")
    assert row_of(result, dinar)["detail"] == "order 12.500 KWD, charge captured 12.050 KWD"
    assert row_of(result, dinar)["order_amount"] == "12.500"
    html = Path(result.summary["report"]["html"]).read_text()
    assert "4,980 JPY" in html and "12.050 KWD" in html


def test_amount_tolerance_applies_to_paid_orders_and_to_repairs_only_when_asked(cli, shop, db):
    paid = shop.order(None, status="accepted", amount=1001)
    shop.charge(paid, amount=1000)
    stuck = shop.order(None, amount=1001)
    shop.charge(stuck, amount=1000)
    far = shop.order(None, status="accepted", amount=1010)
    shop.charge(far, amount=1000)
    cli.configure(orders={"amount_tolerance": 2})
    result = cli("--dry-run")
    assert outcome_of(result, paid) == c.OK
    assert outcome_of(result, far) == c.AMOUNT_MISMATCH
    assert outcome_of(result, stuck) == c.AMOUNT_MISMATCH
    assert "repair_within_tolerance" in row_of(result, stuck)["detail"]
    cli.configure(orders={"amount_tolerance": 2, "repair_within_tolerance": True})
    result = cli(*WINDOW)
    assert result.summary["repaired"] == [str(stuck)] and status_of(db, stuck) == "accepted"


def test_default_tolerance_is_exact(cli, shop, db):
    paid = shop.order(None, status="accepted", amount=1001)
    shop.charge(paid, amount=1000)
    assert outcome_of(cli(*WINDOW), paid) == c.AMOUNT_MISMATCH


# --------------------------------------------------------------------------- probable matches


def crashed_checkout(
    shop,
    *,
    amount: int = 3150,
    order_age: timedelta = timedelta(hours=3),
    charge_after: timedelta = timedelta(minutes=4),
    same_email: bool = True,
    **order: Any,
):
    """An order left pending and a charge with no reference: the checkout died before writing either."""
    oid = shop.order(None, amount=amount, age=order_age, **order)
    email = shop.orders.find_one({"_id": oid})["email"] if same_email else None
    charge = shop.charge(None, amount=amount, age=order_age - charge_after, metadata={}, billing_email=email)
    return oid, charge


def test_a_probable_match_is_proposed_as_one_item_and_never_repaired(cli, shop, db):
    oid, charge = crashed_checkout(shop)
    result = cli(*WINDOW)
    assert result.exit_code == 1
    assert nonzero(result) == {c.PROBABLE_MATCH: 1}
    [item] = result.summary["discrepancies"]
    assert (item["outcome"], item["order_id"], item["charge_id"]) == (c.PROBABLE_MATCH, str(oid), charge["id"])
    assert item["detail"].startswith("probable match (high confidence)")
    assert "same email" in item["detail"] and "charged 4m after the order" in item["detail"]
    assert status_of(db, oid) == "created" and db["reconcile_audit"].count_documents({}) == 0
    html = Path(result.summary["report"]["html"]).read_text()
    assert "Probable matches to confirm" in html


def test_probable_matches_are_ranked_by_confidence(cli, shop, db):
    unknown_email, _ = crashed_checkout(shop, amount=1111, same_email=False)
    known_email, _ = crashed_checkout(shop, amount=2222, charge_after=timedelta(minutes=20))
    result = cli(*WINDOW)
    items = [d for d in result.summary["discrepancies"] if d["outcome"] == c.PROBABLE_MATCH]
    assert [d["order_id"] for d in items] == [str(known_email), str(unknown_email)]
    assert "(medium confidence)" in items[1]["detail"] and "same email" not in items[1]["detail"]


def test_a_pending_order_with_a_failed_charge_is_not_marked_failed_when_a_probable_match_exists(cli, shop, db):
    oid, charge = crashed_checkout(shop)
    shop.charge(oid, amount=3150, status="failed", age=timedelta(hours=2, minutes=58))  # the first card was declined
    result = cli(*WINDOW)
    assert nonzero(result) == {c.PROBABLE_MATCH: 1}
    assert result.summary["marked_failed"] == [] and status_of(db, oid) == "created"


@pytest.mark.parametrize(
    "case",
    [
        "different_amount",
        "different_currency",
        "outside_the_drift",
        "different_emails",
        "charge_names_a_missing_order",
        "order_still_in_flight",
        "order_paid_by_its_own_charge",
    ],
)
def test_no_probable_match_where_the_evidence_does_not_hold(cli, shop, db, case):
    order_kwargs: dict[str, Any] = {}
    if case == "order_still_in_flight":
        order_kwargs = {"order_age": timedelta(minutes=5), "charge_after": timedelta(minutes=1)}
    oid, charge = crashed_checkout(shop, **order_kwargs)
    if case == "different_amount":
        shop.store.update_charge(charge["id"], amount=3151, amount_captured=3151)
    elif case == "different_currency":
        shop.store.update_charge(charge["id"], currency="eur")
    elif case == "outside_the_drift":
        shop.store.update(charge["id"], created=charge["created"] + 40 * 60)
    elif case == "different_emails":
        shop.store.update_charge(
            charge["id"],
            billing_details={"email": "somebody.else@example.com"},
            receipt_email="somebody.else@example.com",
        )
    elif case == "charge_names_a_missing_order":
        shop.store.update_charge(charge["id"], metadata={"order_id": "ord_gone"})
    elif case == "order_paid_by_its_own_charge":
        shop.charge(oid, amount=3150)
    result = cli("--dry-run")
    assert result.summary["counts"][c.PROBABLE_MATCH] == 0, rows(result)
    assert result.summary["counts"][c.ORPHAN_CHARGE] == 1
    assert "none picked" not in " ".join(r["detail"] for r in rows(result))


def test_two_equally_likely_orders_are_named_and_neither_is_picked(cli, shop, db, now):
    first = shop.order(None, amount=4200, age=timedelta(hours=4))
    second = shop.order(None, amount=4200, age=timedelta(hours=4, minutes=10))
    charge = shop.charge(None, amount=4200, age=timedelta(hours=3, minutes=55), metadata={}, billing_email=None)
    result = cli(*WINDOW)
    assert nonzero(result) == {c.STALE_PENDING: 2, c.ORPHAN_CHARGE: 1}
    orphan = row_of(result, charge_id=charge["id"])["detail"]
    assert "2 unpaid orders fit this charge equally well" in orphan and str(first) in orphan and str(second) in orphan
    for oid in (first, second):
        assert (
            f"charge {charge['id']} fits this order and another equally well: none picked"
            in row_of(result, oid)["detail"]
        )


def test_two_equally_likely_charges_are_named_and_neither_is_picked(cli, shop, db):
    oid = shop.order(None, amount=4300, age=timedelta(hours=4))
    email = shop.orders.find_one({"_id": oid})["email"]
    one = shop.charge(None, amount=4300, age=timedelta(hours=3, minutes=58), metadata={}, billing_email=email)
    two = shop.charge(None, amount=4300, age=timedelta(hours=3, minutes=50), metadata={}, billing_email=email)
    result = cli(*WINDOW)
    assert nonzero(result) == {c.STALE_PENDING: 1, c.ORPHAN_CHARGE: 2}
    detail = row_of(result, oid)["detail"]
    assert (
        "2 unreferenced charges fit this order equally well" in detail and one["id"] in detail and two["id"] in detail
    )


def test_a_better_candidate_settles_what_would_otherwise_be_a_tie(cli, shop, db):
    with_email = shop.order(None, amount=4200, age=timedelta(hours=4))
    shop.order(None, amount=4200, age=timedelta(hours=4, minutes=1), email=None)
    charge = shop.charge(
        None,
        amount=4200,
        age=timedelta(hours=3, minutes=55),
        metadata={},
        billing_email=shop.orders.find_one({"_id": with_email})["email"],
    )
    result = cli(*WINDOW)
    items = [d for d in result.summary["discrepancies"] if d["outcome"] == c.PROBABLE_MATCH]
    assert [(d["order_id"], d["charge_id"]) for d in items] == [(str(with_email), charge["id"])]


def test_drift_is_configurable_and_proposals_can_be_turned_off(cli, shop, db):
    crashed_checkout(shop, charge_after=timedelta(minutes=50))
    assert cli(*WINDOW).summary["counts"][c.PROBABLE_MATCH] == 0
    cli.configure(matching={"probable_match_drift": "1h"})
    assert cli(*WINDOW).summary["counts"][c.PROBABLE_MATCH] == 1
    cli.configure(matching={"probable_match_drift": "1h", "probable_matches": False})
    assert nonzero(cli(*WINDOW)) == {c.STALE_PENDING: 1, c.ORPHAN_CHARGE: 1}


# --------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    "sections, message",
    [
        (
            {"matching": {"link_by": ["charge_metadata", "payment_intent_metdata"]}},
            "unknown link kind 'payment_intent_metdata' (did you mean 'payment_intent_metadata'?)",
        ),
        ({"matching": {"link_by": []}}, "matching.link_by must name at least one link kind"),
        (
            {"matching": {"link_by": ["charge_metadata"]}, "orders": {"payment_intent_id_field": "pi"}},
            'orders.payment_intent_id_field is set but matching.link_by does not include "order_fields"',
        ),
        ({"matching": {"probable_matches": "yes"}}, "matching.probable_matches must be true or false"),
    ],
)
def test_bad_matching_config_exits_2_with_one_line(cli, sections, message):
    cli.configure(**sections)
    result = cli(*WINDOW)
    assert result.exit_code == 2
    assert message in result.output.strip().splitlines()[-1]


# --------------------------------------------------------------------------- the pure parts


def test_propose_needs_the_pair_to_be_each_others_unique_best():
    orders = pd.DataFrame(
        {
            "order_key": ["o1", "o2"],
            "amount": [100, 100],
            "currency": ["usd", "usd"],
            "created": [1000, 1100],
            "email": ["a@x.io", None],
        }
    )
    charges = pd.DataFrame(
        {"charge_id": ["ch_1"], "amount": [100], "currency": ["usd"], "created": [1200], "email": ["A@X.io "]}
    )
    proposals = match.propose(orders, charges, drift_seconds=1800)
    assert proposals.pairs[["order", "charge", "confidence"]].values.tolist() == [[0, 0, "high"]]
    assert proposals.order_notes == {} and proposals.charge_notes == {}


def test_propose_accepts_amounts_within_the_tolerance_at_lower_confidence():
    orders = pd.DataFrame(
        {"order_key": ["o1"], "amount": [101], "currency": ["usd"], "created": [1000], "email": [None]}
    )
    charges = pd.DataFrame(
        {"charge_id": ["ch_1"], "amount": [100], "currency": ["usd"], "created": [1000], "email": [None]}
    )
    assert match.propose(orders, charges, 1800).pairs.empty
    [row] = match.propose(orders, charges, 1800, tolerance=1).pairs.itertuples()
    assert row.confidence == "low" and "amount within the tolerance" in row.detail


def test_too_many_possible_pairings_propose_nothing_and_say_why(monkeypatch):
    monkeypatch.setattr(match, "MAX_PAIRS", 3)
    now = 1_800_000_000
    orders = [
        {
            "order_id": f"o{i}",
            "order_key": f"o{i}",
            "status": "created",
            "amount": 500,
            "currency": "usd",
            "created": now - 7200 + i,
            "stored_charge_id": None,
            "email": None,
            "problem": None,
        }
        for i in range(3)
    ]
    charges = [
        {
            "charge_id": f"ch_{i}",
            "created": now - 7000 + i,
            "status": "succeeded",
            "captured": True,
            "amount": 500,
            "amount_captured": 500,
            "amount_refunded": 0,
            "refunded": False,
            "disputed": False,
            "currency": "usd",
            "order_ref": None,
            "payment_intent": None,
            "description": None,
            "email": None,
            "livemode": False,
            "failure_code": None,
            "settlement_currency": "usd",
            "settlement_amount": 500,
            "exchange_rate": None,
            "in_window": True,
        }
        for i in range(2)
    ]
    rules = c.Rules(
        pending_status="created", paid_statuses=("accepted",), failed_status="failed", grace_seconds=900, now=now
    )
    result = wording.worded(c.classify(c.orders_frame(orders), c.charges_frame(charges), rules), rules)
    assert sorted(result["outcome"]) == [c.ORPHAN_CHARGE] * 2 + [c.STALE_PENDING] * 3
    orphans = result.loc[result["outcome"] == c.ORPHAN_CHARGE, "detail"]
    assert all(
        "too many possible pairings (6) to propose probable matches: check matching.link_by" in d for d in orphans
    )
