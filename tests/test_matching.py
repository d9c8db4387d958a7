"""Matching end to end: the wiring from Stripe and MongoDB to the decision and from it to the report.

The real `reconcile` command runs against the Stripe stand-in (HTTP, official SDK) and nx-27017.
Outcomes are read from the summary JSON and the CSV of discrepancies (every outcome but `ok`).
The rules themselves (each link kind, conflicts, attempts, amounts, probable matches) are table
rows on the pure decide step in tests/test_match_rules.py; here: each link kind reaching MongoDB
and the report, the look for objects outside the window, the words in the report, the options.
"""

from __future__ import annotations

import csv
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

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
    return found[0] if found else "ok"


def status_of(db, order_id: Any) -> str:
    return db["orders"].find_one({"_id": order_id})["status"]


def nonzero(result) -> dict[str, int]:
    return {k: v for k, v in result.summary["counts"].items() if v}


# --------------------------------------------------------------------------- each link kind, end to end


def test_every_link_kind_repairs_through_mongodb_and_reaches_the_report(cli, shop, store, db):
    by_charge = shop.order(None, amount=1500)
    shop.charge(by_charge, amount=1500)
    by_intent = shop.order(None, amount=4100)
    shop.intent(by_intent, amount=4100)
    by_session = shop.order(None, amount=2350, object_id=False)
    shop.checkout(by_session, amount=2350)
    intent = shop.intent(None, amount=5600)
    by_field = shop.order(None, amount=5600, payment_intent_id=intent["id"])
    every_link(cli)
    result = cli(*WINDOW)
    assert result.exit_code == 0, result.output
    assert nonzero(result) == {"repaired": 4}
    assert sorted(result.summary["repaired"]) == sorted(str(o) for o in (by_charge, by_intent, by_session, by_field))
    assert {status_of(db, o) for o in (by_charge, by_intent, by_session, by_field)} == {"accepted"}
    assert [row_of(result, o)["linked_by"] for o in (by_charge, by_intent, by_session, by_field)] == [
        "charge metadata",
        "payment intent metadata",
        "checkout session",
        "order fields",
    ]
    audit = db["reconcile_audit"].find_one({"order_key": str(by_field)})
    assert audit["previous_charge_id"] is None and "charge_id" in audit["undo"]["unset"]


# --------------------------------------------------------------------------- PaymentIntents


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
    assert nonzero(result) == {"ok": 1}, rows(result)
    assert result.exit_code == 0


def test_charge_of_a_stored_payment_intent_is_fetched_when_only_the_intent_is_known(
    cli, shop, store, db, now, stripe_server
):
    intent = store.create_payment_intent(amount=3100, created=to_unix(now - timedelta(days=3)))
    charge = shop.charge(None, amount=3100, metadata={}, payment_intent=intent["id"], age=timedelta(days=3))
    order = shop.order(None, status="accepted", amount=3100, payment_intent_id=intent["id"], age=timedelta(hours=1))
    cli.configure(matching={"link_by": ["order_fields"]}, orders=ORDER_FIELDS)
    result = cli(*WINDOW)
    assert nonzero(result) == {"ok": 1}, rows(result)
    assert ("GET", f"/v1/payment_intents/{intent['id']}") in [(m, p) for m, p, q in stripe_server.request_log]
    assert [q.get("payment_intent") for m, p, q in stripe_server.request_log if p == "/v1/charges"][-1] == intent["id"]
    assert charge["id"] not in str(result.summary["discrepancies"]) and status_of(db, order) == "accepted"


# --------------------------------------------------------------------------- Checkout Sessions


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


def test_stored_payment_intent_id_outside_the_window_is_retrieved(cli, shop, store, db, now):
    intent = store.create_payment_intent(
        amount=2100,
        created=to_unix(now - timedelta(days=3)),
        status="processing",
        payment_method_types=["us_bank_account"],
    )
    order = shop.order(None, amount=2100, payment_intent_id=intent["id"], age=timedelta(hours=5))
    cli.configure(matching={"link_by": ["order_fields"]}, orders=ORDER_FIELDS)
    result = cli(*WINDOW)
    assert outcome_of(result, order) == "in_flight", rows(result)
    assert intent["id"] in row_of(result, order)["detail"]


# --------------------------------------------------------------------------- the words a person reads


def test_details_reach_the_csv_and_the_report_in_words(cli, shop, store, db):
    old_style = shop.order(None, amount=2900)
    new_style = shop.order(None, amount=2900)
    intent = store.create_payment_intent(
        amount=2900, created=to_unix(shop.now - timedelta(hours=2)), metadata={"order_id": str(new_style)}
    )
    conflicting = shop.charge(old_style, amount=2900, payment_intent=intent["id"])
    named = shop.order(None, amount=1700)
    session = shop.checkout(named, amount=1700, status="expired", payment_status="unpaid", intent_status=None)
    storing = shop.order(None, amount=1700, checkout_session_id=session["id"])
    processing = shop.order(None, amount=5200, age=timedelta(days=2) - timedelta(hours=1))  # loaded as named
    shop.intent(processing, amount=5200, status="processing", charge=None, methods=("sepa_debit",))
    canceled = shop.order(None, amount=2700)
    shop.intent(canceled, amount=2700, status="canceled", charge=None)
    no_card = shop.order(None, amount=1900)
    shop.intent(no_card, amount=1900, status="requires_payment_method", charge=None)
    expired = shop.order(None, amount=8800)
    shop.checkout(expired, amount=8800, status="expired", payment_status="unpaid", intent_status=None)
    still_open = shop.order(None, amount=9100)
    shop.checkout(still_open, amount=9100, status="open", payment_status="unpaid", intent_status=None)
    short = shop.order(None, status="accepted", amount=5000)
    shop.charge(short, amount=5000, amount_captured=4500)
    unrecorded = shop.order(None, status="accepted", amount=3600)
    store.create_refund(shop.charge(unrecorded, amount=3600)["id"], amount=600)
    only_on_order = shop.order(None, status="accepted", amount=2000, refunded_amount=500)
    shop.charge(only_on_order, amount=2000)
    yen = shop.order(None, status="accepted", amount=4980, currency="jpy")
    shop.charge(yen, amount=4890, currency="jpy")
    dinar = shop.order(None, status="accepted", amount=12500, currency="kwd")
    shop.charge(dinar, amount=12050, currency="kwd")
    cli.configure(
        matching={"link_by": EVERY_LINK}, orders={"email_field": "email", **ORDER_FIELDS}, window={"lookback": "3d"}
    )
    result = cli(*WINDOW)
    assert result.exit_code == 1

    for order in (old_style, new_style):
        detail = row_of(result, order)["detail"]
        assert conflicting["id"] in detail and str(old_style) in detail and str(new_style) in detail
        assert "charge metadata" in detail and "PaymentIntent metadata" in detail
        assert status_of(db, order) == "created"
    assert "Checkout Session " + session["id"] in row_of(result, storing)["detail"]

    assert "payment processing" in row_of(result, processing)["detail"]
    assert "canceled" in row_of(result, canceled)["detail"] and status_of(db, canceled) == "failed"
    assert "never completed" in row_of(result, no_card)["detail"]
    assert "expired, the customer abandoned the checkout" in row_of(result, expired)["detail"]
    assert "still open" in row_of(result, still_open)["detail"]

    assert row_of(result, short)["detail"] == "order 50.00 USD, charge captured 45.00 USD of 50.00 USD authorized"
    assert row_of(result, unrecorded)["detail"] == (
        "refunded 6.00 USD while the order is accepted; the order expects net 36.00 USD, the customer paid net 30.00 USD"
    )
    assert row_of(result, only_on_order)["detail"] == (
        "no refund in Stripe while the order is accepted; the order expects net 15.00 USD, after 5.00 USD refunded "
        "on the order, the customer paid net 20.00 USD"
    )

    assert row_of(result, yen)["detail"] == "order 4,980 JPY, charge captured 4,890 JPY"
    assert (row_of(result, yen)["order_amount"], row_of(result, yen)["charge_amount"]) == ("4980", "4890")
    assert row_of(result, dinar)["detail"] == "order 12.500 KWD, charge captured 12.050 KWD"
    assert row_of(result, dinar)["order_amount"] == "12.500"
    html = Path(result.summary["report"]["html"]).read_text()
    assert "4,980 JPY" in html and "12.050 KWD" in html


# --------------------------------------------------------------------------- money details


def test_without_a_refunded_field_any_refund_on_a_paid_order_needs_a_person(cli, shop, store, db):
    order = shop.order(None, status="accepted", amount=6000, refunded_amount=1000)
    store.create_refund(shop.charge(order, amount=6000)["id"], amount=1000)
    result = cli(*WINDOW)
    assert outcome_of(result, order) == "refunded_or_disputed"


def test_presentment_is_compared_and_settlement_is_totalled_and_both_shown(cli, shop, store, db):
    ok = shop.order(None, status="accepted", amount=2500, currency="eur")
    shop.charge(ok, amount=2500, currency="eur", settlement_currency="usd", exchange_rate="1.0843")
    wrong = shop.order(None, status="accepted", amount=3000, currency="eur")
    charge = shop.charge(wrong, amount=2500, currency="eur", settlement_currency="usd", exchange_rate="1.0843")
    result = cli(*WINDOW)
    assert outcome_of(result, ok) == "ok"
    row = row_of(result, wrong)
    assert (row["charge_amount"], row["charge_currency"], row["settlement_amount"], row["settlement_currency"]) == (
        "25.00",
        "eur",
        "27.11",
        "usd",
    )
    assert set(result.summary["totals"]) == {"usd"} and result.summary["totals"]["usd"]["gross"] == 2 * 2711
    html = Path(result.summary["report"]["html"]).read_text()
    assert "25.00 EUR" in html and "settled 27.11 USD" in html and charge["id"] in html


def test_amount_tolerance_options_reach_the_rules(cli, shop, db):
    paid = shop.order(None, status="accepted", amount=1001)
    shop.charge(paid, amount=1000)
    stuck = shop.order(None, amount=1001)
    shop.charge(stuck, amount=1000)
    crashed = shop.order(None, amount=2001, age=timedelta(hours=3))
    shop.charge(None, amount=2000, age=timedelta(hours=2, minutes=56), metadata={}, billing_email=None)
    cli.configure(orders={"amount_tolerance": 2})
    result = cli("--dry-run")
    assert outcome_of(result, paid) == "ok"
    assert outcome_of(result, stuck) == "amount_mismatch"
    assert "repair_within_tolerance" in row_of(result, stuck)["detail"]
    pair = row_of(result, crashed)
    assert pair["outcome"] == "probable_match"
    assert pair["detail"].startswith("probable match (low confidence)")
    assert "same currency, amount within the tolerance" in pair["detail"]
    cli.configure(orders={"amount_tolerance": 2, "repair_within_tolerance": True})
    result = cli(*WINDOW)
    assert result.summary["repaired"] == [str(stuck)] and status_of(db, stuck) == "accepted"


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


def test_probable_matches_are_proposed_ranked_never_repaired_and_ties_named(cli, shop, db):
    oid, charge = crashed_checkout(shop)
    unknown_email, _ = crashed_checkout(shop, amount=1111, same_email=False)
    first = shop.order(None, amount=4200, age=timedelta(hours=4))
    second = shop.order(None, amount=4200, age=timedelta(hours=4, minutes=10))
    tied = shop.charge(None, amount=4200, age=timedelta(hours=3, minutes=55), metadata={}, billing_email=None)
    torn = shop.order(None, amount=4300, age=timedelta(hours=4))
    email = shop.orders.find_one({"_id": torn})["email"]
    one = shop.charge(None, amount=4300, age=timedelta(hours=3, minutes=58), metadata={}, billing_email=email)
    two = shop.charge(None, amount=4300, age=timedelta(hours=3, minutes=50), metadata={}, billing_email=email)
    result = cli(*WINDOW)
    assert result.exit_code == 1
    assert nonzero(result) == {"probable_match": 2, "stale_pending": 3, "orphan_charge": 3}

    items = [d for d in result.summary["discrepancies"] if d["outcome"] == "probable_match"]
    assert [(d["order_id"], d["charge_id"]) for d in items][:1] == [(str(oid), charge["id"])]
    assert [d["order_id"] for d in items] == [str(oid), str(unknown_email)]
    assert items[0]["detail"].startswith("probable match (high confidence)")
    assert "same email" in items[0]["detail"] and "charged 4m after the order" in items[0]["detail"]
    assert "(medium confidence)" in items[1]["detail"] and "same email" not in items[1]["detail"]
    assert status_of(db, oid) == "created" and db["reconcile_audit"].count_documents({}) == 0
    html = Path(result.summary["report"]["html"]).read_text()
    assert "Probable matches to confirm" in html

    orphan = row_of(result, charge_id=tied["id"])["detail"]
    assert "2 unpaid orders fit this charge equally well" in orphan and str(first) in orphan and str(second) in orphan
    for order in (first, second):
        assert (
            f"charge {tied['id']} fits this order and another equally well: none picked"
            in row_of(result, order)["detail"]
        )
    detail = row_of(result, torn)["detail"]
    assert (
        "2 unreferenced charges fit this order equally well" in detail and one["id"] in detail and two["id"] in detail
    )


def test_drift_is_configurable_and_proposals_can_be_turned_off(cli, shop, db):
    crashed_checkout(shop, charge_after=timedelta(minutes=50))
    assert cli(*WINDOW).summary["counts"]["probable_match"] == 0
    cli.configure(matching={"probable_match_drift": "1h"})
    assert cli(*WINDOW).summary["counts"]["probable_match"] == 1
    cli.configure(matching={"probable_match_drift": "1h", "probable_matches": False})
    assert nonzero(cli(*WINDOW)) == {"stale_pending": 1, "orphan_charge": 1}


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
