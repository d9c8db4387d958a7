"""Re-checks of open items from earlier windows, in shops linked through PaymentIntents and Checkout.

The real `reconcile` command runs against the Stripe stand-in (HTTP, official SDK) and nx-27017.
A window run opens an item; a run days later, whose window no longer covers the item's order,
re-checks it against Stripe and the orders as they are now. The re-check must link the charge
to its order the way the window run did (PaymentIntent metadata, Checkout Session, ids stored on
the order), or it misjudges the item (an accepted order seems to have no charge at all).

Time: runs are placed with the hidden `--now` option, never by sleeping; the data are seeded ten
days in the past.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from conftest import at

from reconcile.decide import classify as c
from reconcile.timeutil import to_unix

H = timedelta(hours=1)
DAY = timedelta(days=1)
ORDER_FIELDS = {"payment_intent_id_field": "payment_intent_id", "checkout_session_id_field": "checkout_session_id"}


def later_run(cli, moment: datetime) -> Any:
    """A run at `moment` whose window (the six hours before it) covers none of the seeded orders."""
    return cli("--now", at(moment), "--since", at(moment - 6 * H))


def items_of(db) -> dict[str, dict[str, Any]]:
    return {d["_id"]: d for d in db["reconcile_items"].find()}


def open_kinds(db) -> list[str]:
    return sorted(d["kind"] for d in items_of(db).values() if d["state"] == "open")


def charge_of_intent(store, intent_id: str) -> str:
    return store.get(intent_id)["latest_charge"]


def mismatch_stays_open_then_resolves(cli, db, t0, order: Any, charge_id: str) -> None:
    """The amount_mismatch item of `order` and `charge_id`: opened by the window run, confirmed by a
    re-check while nothing changed, resolved by the re-check after the order is corrected."""
    key = f"{c.AMOUNT_MISMATCH}:{order}:{charge_id}"
    first = cli("--now", at(t0))
    assert first.exit_code == 1, first.output
    assert first.summary["counts"][c.AMOUNT_MISMATCH] == 1 and first.summary["items"]["new"] == 1
    assert list(items_of(db)) == [key]

    # Nine days later nothing changed: the re-check finds the same item, and nothing else.
    same = later_run(cli, t0 + 9 * DAY)
    assert same.summary["items"]["resolved"] == [], same.summary["items"]
    assert same.summary["items"]["open"] == 1 and same.summary["items"]["new"] == 0
    item = items_of(db)[key]
    assert item["state"] == "open" and item["kind"] == c.AMOUNT_MISMATCH and item["times_seen"] == 2
    assert item["last_seen"] == to_unix(t0 + 9 * DAY)
    assert list(items_of(db)) == [key]  # no paid_without_charge (or any other) item beside it

    # Someone corrects the order's amount: the next re-check resolves the item for that reason.
    db["orders"].update_one({"_id": order}, {"$set": {"amount": 4500}})
    fixed = later_run(cli, t0 + 9 * DAY + H)
    assert fixed.exit_code == 0, fixed.output
    assert fixed.summary["items"]["resolved"] == [
        {"key": key, "kind": c.AMOUNT_MISMATCH, "resolution": "re-checked: order is now ok"}
    ]
    assert fixed.summary["items"]["open"] == 0 and open_kinds(db) == []
    assert list(items_of(db)) == [key]


def test_recheck_links_through_checkout_sessions(cli, db, store, seed, t0):
    order = seed.order(None, status="accepted", amount=5000, age=3 * H)
    session = seed.checkout(order, amount=4500, age=3 * H)  # only the session names the order
    cli.configure(matching={"link_by": ["checkout_session"]})
    mismatch_stays_open_then_resolves(cli, db, t0, order, charge_of_intent(store, session["payment_intent"]))


def test_recheck_links_through_checkout_session_metadata(cli, db, store, seed, t0):
    order = seed.order(None, status="accepted", amount=5000, age=3 * H)
    intent = seed.intent(None, amount=4500, age=3 * H)
    store.create_checkout_session(
        created=to_unix(t0 - 3 * H),
        status="complete",
        payment_status="paid",
        payment_intent=intent["id"],
        amount_total=4500,
        currency="usd",
        metadata={"order_id": str(order)},
    )
    cli.configure(matching={"link_by": ["checkout_session"]})
    mismatch_stays_open_then_resolves(cli, db, t0, order, charge_of_intent(store, intent["id"]))


def test_recheck_links_through_payment_intent_metadata(cli, db, store, seed, t0):
    order = seed.order(None, status="accepted", amount=5000, age=3 * H)
    intent = seed.intent(order, amount=4500, age=3 * H)  # only the PaymentIntent names the order
    cli.configure(matching={"link_by": ["payment_intent_metadata"]})
    mismatch_stays_open_then_resolves(cli, db, t0, order, charge_of_intent(store, intent["id"]))


def test_recheck_links_through_a_session_id_stored_on_the_order(cli, db, store, seed, t0):
    session = seed.checkout(None, amount=4500, age=3 * H)
    order = seed.order(None, status="accepted", amount=5000, age=3 * H, checkout_session_id=session["id"])
    cli.configure(matching={"link_by": ["order_fields"]}, orders=ORDER_FIELDS)
    mismatch_stays_open_then_resolves(cli, db, t0, order, charge_of_intent(store, session["payment_intent"]))


def test_recheck_follows_a_payment_intent_id_stored_on_the_order_later(cli, db, store, seed, t0):
    order = seed.order(None, status="accepted", amount=4200, age=3 * H)  # paid, but no charge found
    intent = seed.intent(None, amount=4200, age=3 * H, charge=None)
    # Its charge came an hour after the window: no run ever pulls it, only the PaymentIntent leads to it.
    charge = seed.charge(None, amount=4200, age=-H, metadata={}, payment_intent=intent["id"])
    cli.configure(matching={"link_by": ["order_fields"]}, orders=ORDER_FIELDS)
    key = f"{c.PAID_WITHOUT_CHARGE}:{order}:-"
    first = cli("--now", at(t0))
    assert first.exit_code == 1, first.output
    assert list(items_of(db)) == [key]

    still = later_run(cli, t0 + 9 * DAY)
    assert still.summary["items"]["resolved"] == [] and open_kinds(db) == [c.PAID_WITHOUT_CHARGE]

    # Someone stores the PaymentIntent's id on the order: the re-check follows it to its charge.
    db["orders"].update_one({"_id": order}, {"$set": {"payment_intent_id": intent["id"]}})
    fixed = later_run(cli, t0 + 9 * DAY + H)
    assert fixed.exit_code == 0, fixed.output
    assert fixed.summary["items"]["resolved"] == [
        {"key": key, "kind": c.PAID_WITHOUT_CHARGE, "resolution": "re-checked: order is now ok"}
    ]
    assert open_kinds(db) == [] and list(items_of(db)) == [key]
    assert store.get(charge["id"])["payment_intent"] == intent["id"]
