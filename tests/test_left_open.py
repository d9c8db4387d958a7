"""What earlier notes left open: the decisions' indexes, a duplicate charge's money at stake, exit 70 after
a repair, and an authorization found by a stored charge id on a re-check.

The real `reconcile` command runs in-process against the Stripe stand-in (HTTP, official SDK) and
nx-27017; runs are placed with the hidden `--now` option, never by sleeping.
"""

from __future__ import annotations

from datetime import timedelta

from conftest import at

from reconcile.decide import classify as c
from reconcile.timeutil import to_unix

H = timedelta(hours=1)
DAY = timedelta(days=1)


def test_init_indexes_the_decisions_and_check_only_warns_when_an_install_lacks_them(cli, db, store):
    created = cli("init")
    assert created.exit_code == 0, created.output
    assert "reconcile_decisions {item: 1}" in created.output and "reconcile_decisions {action: 1}" in created.output
    assert cli("check").exit_code == 0
    # An install that ran `init` before these indexes existed: `check` warns and names the fix, and passes.
    db.drop_collection("reconcile_decisions")
    result = cli("check")
    assert result.exit_code == 0, result.output  # not 2: the job works without them
    assert "index advised reconcile_decisions {item: 1}" in result.output
    assert "reconcile: check: warning: 2 advised index(es) missing: `reconcile init` creates them" in result.stderr
    assert "all checks passed" in result.stdout and "MISSING" not in result.output
    cli("init")
    assert "warning" not in cli("check").output


def test_a_duplicate_charges_money_at_stake_is_what_the_extra_charge_took(cli, db, seed, t0):
    order = seed.order(None, status="accepted", amount=5000, age=3 * H)
    first = seed.charge(order, amount=5000, age=3 * H)
    seed.charge(order, amount=1200, age=2 * H)  # charged again, a smaller sum: 12.00 to give back, not 50.00
    result = cli("--now", at(t0))
    assert result.exit_code == 1, result.output
    [item] = db["reconcile_items"].find()
    assert item["_id"] == f"{c.DUPLICATE_CHARGE}:{order}:{first['id']}"
    assert (item["at_stake"], item["amount"], item["currency"]) == (1200, 5000, "usd")  # was 5000: the order's


def test_an_unexpected_error_after_a_repair_exits_70_on_one_line_recorded_failed_with_the_change_reported(
    cli, db, seed, t0
):
    """A real internal error, no code patched: an open item a person edited by hand (its `first_seen` a
    word, not unix seconds) breaks the items step, which comes after the repairs."""
    stuck = seed.order(c.REPAIRED, age=2 * H)
    seed.charge(stuck, age=2 * H)
    db["reconcile_items"].insert_one(
        {
            "_id": f"{c.PAID_WITHOUT_CHARGE}:hand-edited:-",
            "state": "open",
            "kind": c.PAID_WITHOUT_CHARGE,
            "source": "order",
            "order_key": "hand-edited",
            "charge_ids": [],
            "anchor": to_unix(t0 - 5 * DAY),  # outside the window: neither judged nor resolved by it
            "first_seen": "yesterday",
        }
    )
    cli.configure(report={"recheck_limit": 0})
    result = cli("--now", at(t0))
    assert result.exit_code == 70, result.output
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr
    assert lines[-1].startswith(
        "reconcile: error: internal error: ValueError: invalid literal for int() with base 10: 'yesterday'; "
        "1 order(s) were changed before this"
    ), lines[-1]
    assert db["orders"].find_one({"_id": stuck})["status"] != "created"  # the repair stands, audited
    assert db["reconcile_audit"].count_documents({"order_key": str(stuck)}) == 1
    run = db["reconcile_runs"].find_one({"_id": result.summary["run_id"]})
    assert (run["status"], run["exit_code"]) == ("failed", 70)
    assert run["error"] == lines[-1].removeprefix("reconcile: error: ")
    assert run["repaired_ids"] == [str(stuck)]
    assert result.summary["exit_code"] == 70 and result.summary["repaired"] == [str(stuck)]


def test_a_recheck_asks_for_the_payment_intent_of_an_authorization_found_by_a_stored_charge_id(
    cli, db, store, seed, t0
):
    """As the window does: a released authorization is no charge, so the paid order stays paid without one
    (was: its PaymentIntent never read, the authorization looked held and the item turned `uncaptured`)."""
    order = seed.order(None, status="accepted", amount=3000, age=3 * H)
    assert cli("--now", at(t0)).exit_code == 1
    key = f"{c.PAID_WITHOUT_CHARGE}:{order}:-"
    assert [d["_id"] for d in db["reconcile_items"].find()] == [key]
    # Later the shop stores an authorization's charge id on the order (nothing on the charge names the
    # order), and the authorization is released.
    intent = store.create_payment_intent(
        amount=3000, created=to_unix(t0 - 3 * H), status="requires_capture", capture_method="manual", metadata={}
    )
    held = seed.charge(None, amount=3000, age=3 * H, captured=False, payment_intent=intent["id"], metadata={})
    db["orders"].update_one({"_id": order}, {"$set": {"charge_id": held["id"]}})
    store.cancel_payment_intent(intent["id"], "requested_by_customer", at=to_unix(t0 - H))
    # Two days on (before the authorization would lapse by itself), a run whose window misses the order.
    later = cli("--now", at(t0 + 2 * DAY), "--since", at(t0 + 2 * DAY - 6 * H))
    assert later.exit_code == 0, later.output  # the item is open, from an earlier window
    items = {d["_id"]: d for d in db["reconcile_items"].find()}
    assert list(items) == [key], items  # no `uncaptured` item
    assert items[key]["state"] == "open" and items[key]["times_seen"] == 2
    assert "authorization was released uncaptured" in items[key]["detail"]


def test_a_refund_seen_pending_is_rechecked_until_final_and_its_failure_becomes_an_item(cli, db, store, seed, t0):
    """A refund judged in its window while `pending` may still fail: it stays an item, re-checked by the runs
    after (was: a pending partial refund needed no one, so its later failure was never seen)."""
    order = seed.order(None, status="accepted", amount=5000, age=3 * H, refunded_amount=1000)
    charge = seed.charge(order, amount=5000, age=3 * H)
    refund = store.create_refund(charge["id"], amount=1000, status="pending", created=to_unix(t0 - 2 * H))
    cli.configure(orders={"email_field": "email", "refunded_amount_field": "refunded_amount"})
    key = f"refund:{refund['id']}"
    cli("--now", at(t0))
    [item] = db["reconcile_items"].find()
    assert (item["_id"], item["state"], item["object_status"]) == (key, "open", "pending")

    def later(moment):  # a run whose window (six hours before it) misses the refund: only a re-check sees it
        return cli("--now", at(moment), "--since", at(moment - 6 * H))

    later(t0 + DAY)  # still pending: still an item, checked again
    [item] = db["reconcile_items"].find()
    assert (item["state"], item["times_seen"], item["last_checked"]) == ("open", 2, to_unix(t0 + DAY))
    store.update(refund["id"], status="failed", failure_reason="expired_or_canceled_card")
    failed = later(t0 + 2 * DAY)
    assert failed.exit_code == 0, failed.output  # the item is open, from an earlier window
    [item] = db["reconcile_items"].find()
    assert (item["_id"], item["kind"], item["state"], item["object_status"]) == (key, "refund_failed", "open", "failed")
    assert item["detail"].startswith("refund of 10.00 USD failed (expired_or_canceled_card)")


def test_a_refund_seen_pending_resolves_itself_when_it_succeeds(cli, db, store, seed, t0):
    order = seed.order(None, status="accepted", amount=5000, age=3 * H, refunded_amount=1000)
    charge = seed.charge(order, amount=5000, age=3 * H)
    refund = store.create_refund(charge["id"], amount=1000, status="pending", created=to_unix(t0 - 2 * H))
    cli.configure(orders={"email_field": "email", "refunded_amount_field": "refunded_amount"})
    cli("--now", at(t0))
    store.update(refund["id"], status="succeeded")
    done = cli("--now", at(t0 + DAY), "--since", at(t0 + DAY - 6 * H))
    assert done.exit_code == 0, done.output
    [item] = db["reconcile_items"].find()
    assert (item["state"], item["resolution"]) == (
        "resolved",
        f"re-checked: partial refund of 10.00 USD (succeeded); order {order} is accepted",
    )
