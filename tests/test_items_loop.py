"""Closing the loop with finance, end to end through the CLI (stand-in over HTTP, nx-27017): `reconcile
items` and its decisions, the reopen rules, confirm and dismiss of probable matches, severity in the
report and the email, and `reconcile undo`.

nx-27017 gaps met here (the job stays correct for real MongoDB): `$set` of a datetime stores a
string, so the undo marker's date is read as text (store/orders.undone_text reads both).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reconcile.decide import classify as c
from reconcile.decide import items as item_rules
from reconcile.report import mailer
from reconcile.run.lease import Lease
from tests.conftest import at


def run(cli, *args: str):
    """A run over the last day (the same window each time: every seeded order is covered again)."""
    return cli("--since", "24h", *args)


def items_json(cli, *args: str) -> list[dict]:
    result = cli("items", "--json", *args)
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.output.splitlines()]


def key_of(cli, outcome: str, state: str = "all") -> str:
    (row,) = [r for r in items_json(cli, "--state", state) if r["outcome"] == outcome]
    return str(row["key"])


def item(db, key: str) -> dict:
    """An item by its key or the start of it (`outcome:order`, the charge left off)."""
    (doc,) = [d for d in db["reconcile_items"].find() if str(d["_id"]).startswith(key)]
    return doc


@pytest.fixture
def finance_queue(shop, db):
    """Three kinds of item a person must look at, one of them with a lot of money at stake."""
    dup = shop.order(c.DUPLICATE_CHARGE, status="accepted", amount=1800)
    shop.charge(dup, amount=1800, age=timedelta(hours=2, minutes=1))
    shop.charge(dup, amount=1800)
    mismatches = []
    for amount in (5000, 5100):
        oid = shop.order(c.AMOUNT_MISMATCH, status="accepted", amount=amount)
        shop.charge(oid, amount=4500)
        mismatches.append(oid)
    big = shop.order(c.PAID_WITHOUT_CHARGE, status="accepted", amount=250_000)  # 2,500.00 USD
    return {"dup": dup, "mismatches": mismatches, "big": big}


def test_items_list_filters_and_show(cli, finance_queue, now):
    first = run(cli)
    assert first.exit_code == 1, first.output
    rows = items_json(cli)
    assert sorted(r["outcome"] for r in rows) == sorted(
        [c.DUPLICATE_CHARGE, c.AMOUNT_MISMATCH, c.AMOUNT_MISMATCH, c.PAID_WITHOUT_CHARGE]
    )
    by_outcome = {r["outcome"]: r for r in rows}
    # Severity by money: 2,500 USD is critical, 18 USD medium (new items: age adds nothing yet).
    assert by_outcome[c.PAID_WITHOUT_CHARGE]["severity"] == "critical"
    assert (by_outcome[c.PAID_WITHOUT_CHARGE]["amount"], by_outcome[c.PAID_WITHOUT_CHARGE]["currency"]) == (
        250_000,
        "usd",
    )  # 2,500.00 USD in minor units
    assert by_outcome[c.DUPLICATE_CHARGE]["severity"] == "medium"
    # Each order's deadline (docs/deadlines.md), ISO-8601 UTC: here the grace period after its creation.
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", r["expected_end"]) for r in rows)
    assert rows[0]["outcome"] == c.PAID_WITHOUT_CHARGE  # most severe first

    assert [r["outcome"] for r in items_json(cli, "--min-amount", "100")] == [c.PAID_WITHOUT_CHARGE]
    assert len(items_json(cli, "--outcome", c.AMOUNT_MISMATCH)) == 2
    assert items_json(cli, "--older-than", "3d") == []
    # Four days later every item is at least 3 days old, and age alone makes them high.
    aged = cli("--now", at(now + timedelta(days=4)), "items", "--json", "--older-than", "3d")
    aged_rows = [json.loads(line) for line in aged.output.splitlines()]
    assert len(aged_rows) == 4 and {r["severity"] for r in aged_rows} == {"critical", "high"}

    table = cli("items", "--csv")
    assert (
        table.output.splitlines()[0]
        == "key,outcome,order,charge,amount,currency,age,severity,state,last_note,expected_end"
    )
    assert len(table.output.splitlines()) == 5

    shown = cli("items", "show", "duplicate_charge")  # a unique prefix
    assert shown.exit_code == 0, shown.output
    assert str(finance_queue["dup"]) in shown.output and "state open" in shown.output
    assert f"run {first.summary['run_id']}" in shown.output
    assert f"seen by     {first.summary['run_id']}" in shown.output
    ambiguous = cli("items", "show", "amount_mismatch")
    assert ambiguous.exit_code == 2 and "ambiguous: 2 items match" in ambiguous.output
    missing = cli("items", "show", "nothing_like_this")
    assert missing.exit_code == 2 and "no item 'nothing_like_this'" in missing.output


def test_ack_and_accept_leave_the_queue_and_show_in_the_report(cli, finance_queue, db, smtp_sink):
    run(cli)
    dup = key_of(cli, c.DUPLICATE_CHARGE)
    mismatch = f"{c.AMOUNT_MISMATCH}:{finance_queue['mismatches'][0]}"
    note = cli("items", "note", dup, "looking at the customer's history", "--by", "dana")
    assert note.exit_code == 0, note.output
    ack = cli("items", "ack", dup, "--note", "refunding the second charge", "--by", "alice")
    assert ack.exit_code == 0 and "is now acknowledged" in ack.output
    accept = cli("items", "accept", mismatch, "--reason", "customer used a coupon", "--by", "bob")
    assert accept.exit_code == 0, accept.output
    again = cli("items", "accept", mismatch, "--reason", "twice", "--by", "bob")
    assert again.exit_code == 2 and "is accepted" in again.output  # closed: nothing changed

    cli.configure(
        email={
            "send": "always",
            "host": "127.0.0.1",
            "port": smtp_sink.port,
            "security": "none",
            "from_addr": "reconcile@shop.example",
            "to": ["finance@shop.example"],
        }
    )
    second = run(cli)
    # Still found by the run, but out of the queue: acknowledged stays acknowledged, accepted stays closed.
    assert item(db, dup)["state"] == "acknowledged"
    assert item(db, mismatch)["state"] == "accepted" and item(db, mismatch)["times_seen"] == 2
    summary = second.summary["items"]
    assert summary["open"] == 2 and summary["being_handled"] == 1
    assert summary["severity"]["critical"] == 1
    assert [d["decision"] for d in summary["closed_by_people"]] == ["accept"]
    html = Path(second.summary["report"]["html"]).read_text()
    handled = html.split('id="being-handled"')[1].split('id="closed-by-people"')[0]
    assert "refunding the second charge" in handled and "alice" in handled
    closed = html.split('id="closed-by-people"')[1]
    assert "customer used a coupon" in closed and "bob" in closed
    # The queue's money at stake: the critical item and the other mismatch, never the handled or accepted ones.
    queue = html.split('id="severity"')[1].split('id="being-handled"')[0]
    assert "2,506.00 USD" in queue  # 2,500.00 + the other mismatch's difference (51.00 - 45.00)
    (message,) = smtp_sink.messages
    assert "1 CRITICAL" in message["Subject"]

    decided = cli("items", "show", dup)
    assert "note      by dana" in decided.output and "ack       by alice" in decided.output


def test_subject_names_critical_items_first():
    moment = datetime(2026, 11, 18, 9, tzinfo=UTC)
    line = mailer.subject("[reconcile]", moment, moment + timedelta(hours=6), 3, 1, 5, 0, critical=2)
    assert line == "[reconcile] 2026-11-18 09:00 to 15:00 UTC: 2 CRITICAL, 3 need attention (1 new), 5 open items"


@pytest.mark.parametrize(
    "amount,currency,age_days,level",
    [
        (100_000, "usd", 0, "critical"),  # 1,000.00 USD
        (99_999, "usd", 0, "high"),
        (1_000, "jpy", 0, "critical"),  # zero-decimal: 1,000 JPY is 1,000 units
        (999, "jpy", 0, "high"),
        (1_000_000, "kwd", 0, "critical"),  # 1,000.000 KWD
        (999_999, "kwd", 0, "high"),
        (999, "usd", 0, "low"),
        (1_000, "usd", 0, "medium"),
        (None, None, 5, "critical"),
        (5, "usd", 3, "high"),
        (5, "usd", 1, "medium"),
    ],
)
def test_severity_is_exact_in_minor_units(amount, currency, age_days, level):
    assert item_rules.severity(amount, currency, age_days * item_rules.DAY) == level


def test_accepted_item_reopens_when_its_facts_change(cli, finance_queue, db):
    run(cli)
    mismatch = f"{c.AMOUNT_MISMATCH}:{finance_queue['mismatches'][0]}"
    cli("items", "accept", mismatch, "--reason", "customer used a coupon", "--by", "bob")
    db["orders"].update_one({"_id": finance_queue["mismatches"][0]}, {"$set": {"amount": 5200}})
    run(cli)
    doc = item(db, mismatch)
    assert doc["state"] == "open"
    assert doc["flag"] == "reopened: facts changed since accepted by bob: amount 5000 -> 5200"
    rows = {r["key"]: r for r in items_json(cli)}
    assert "amount 5000 -> 5200" in rows[item(db, mismatch)["_id"]]["last_note"]
    shown = cli("items", "show", mismatch).output
    assert "accept    by bob" in shown and "reopen    by reconcile" in shown


def test_resolved_item_reopens_flagged_when_still_present_and_is_verified_when_gone(cli, finance_queue, db):
    run(cli)
    big = f"{c.PAID_WITHOUT_CHARGE}:{finance_queue['big']}"
    fixed = f"{c.AMOUNT_MISMATCH}:{finance_queue['mismatches'][1]}"
    assert cli("items", "resolve", big, "--reason", "charged by hand", "--by", "carol").exit_code == 0
    db["orders"].update_one({"_id": finance_queue["mismatches"][1]}, {"$set": {"amount": 4500}})
    assert cli("items", "resolve", fixed, "--reason", "order amount corrected", "--by", "carol").exit_code == 0
    assert item(db, big)["state"] == "resolved"
    second = run(cli)
    doc = item(db, big)
    assert doc["state"] == "open" and doc["flag"] == "still present after being marked resolved by carol"
    assert doc["first_seen"] == item(db, big)["first_seen"]  # the same item, ageing on
    gone = item(db, fixed)
    assert gone["state"] == "resolved" and gone["verified_at"] and gone["verified_run"] == second.summary["run_id"]
    assert gone["resolution"].startswith("verified: ")


@pytest.fixture
def probable(shop, db):
    """A checkout that crashed before writing any reference: an order and a charge, same email and amount."""
    order = shop.order(c.PROBABLE_MATCH, amount=3150, age=timedelta(hours=3))
    email = db["orders"].find_one({"_id": order})["email"]
    charge = shop.charge(None, amount=3150, age=timedelta(hours=2, minutes=56), metadata={}, billing_email=email)
    return order, charge["id"]


def test_confirm_writes_the_charge_and_the_next_run_repairs_the_order(cli, probable, db):
    order, charge = probable
    first = run(cli)
    assert first.summary["counts"][c.PROBABLE_MATCH] == 1
    key = key_of(cli, c.PROBABLE_MATCH)
    done = cli("items", "confirm", key, "--reason", "same customer, same basket", "--by", "erin")
    assert done.exit_code == 0, done.output
    doc = db["orders"].find_one({"_id": order})
    assert doc["charge_id"] == charge and doc["status"] == "created"
    (audit,) = list(db["reconcile_audit"].find({"action": "confirmed"}))
    assert audit["by"] == "erin" and audit["charge_id"] == charge and audit["undo"]["unset"][-1] == "charge_id"
    assert "audit" not in doc["reconcile"]  # the record was written

    second = run(cli)
    assert second.summary["repaired"] == [str(order)]
    assert db["orders"].find_one({"_id": order})["status"] == "accepted"
    assert item(db, key)["verified_at"]


def test_confirm_leaves_an_order_that_already_has_a_charge_alone(cli, probable, db):
    order, _ = probable
    run(cli)
    key = key_of(cli, c.PROBABLE_MATCH)
    db["orders"].update_one({"_id": order}, {"$set": {"charge_id": "ch_written_meanwhile"}})
    refused = cli("items", "confirm", key, "--by", "erin")
    assert refused.exit_code == 2 and "already has charge ch_written_meanwhile" in refused.output
    assert db["orders"].find_one({"_id": order})["charge_id"] == "ch_written_meanwhile"
    assert item(db, key)["state"] == "open" and db["reconcile_audit"].count_documents({}) == 0


def test_dismissed_pair_is_never_proposed_again(cli, probable, db):
    order, charge = probable
    run(cli)
    key = key_of(cli, c.PROBABLE_MATCH)
    assert cli("items", "dismiss", key, "--reason", "different customers", "--by", "erin").exit_code == 0
    for _ in range(2):
        later = run(cli)
        assert later.summary["counts"][c.PROBABLE_MATCH] == 0
        assert later.summary["counts"][c.ORPHAN_CHARGE] == 1
    assert item(db, key)["state"] == "resolved" and item(db, key)["verified_at"]
    assert db["orders"].find_one({"_id": order}).get("charge_id") is None
    dismissed = db["reconcile_decisions"].find_one({"action": "dismiss"})
    assert (dismissed["order_key"], dismissed["charge_id"], dismissed["by"]) == (str(order), charge, "erin")


def test_confirm_and_dismiss_apply_only_to_probable_matches(cli, finance_queue):
    run(cli)
    refused = cli("items", "dismiss", key_of(cli, c.DUPLICATE_CHARGE))
    assert refused.exit_code == 2 and "apply to probable_match items" in refused.output


# --------------------------------------------------------------------------- undo


@pytest.fixture
def repaired_run(cli, shop, db):
    """A run that repaired two stuck orders and marked one failed; returns (run id, [the three orders])."""
    stuck = []
    for amount in (3999, 4100):
        oid = shop.order(c.REPAIRED, amount=amount)
        shop.charge(oid, amount=amount)
        stuck.append(oid)
    failed = shop.order(c.MARKED_FAILED)
    shop.charge(failed, status="failed")
    result = run(cli)
    assert len(result.summary["repaired"]) == 2 and len(result.summary["marked_failed"]) == 1
    return result.summary["run_id"], [*stuck, failed]


def orders_snapshot(db) -> list[str]:
    return sorted(repr(d) for d in db["orders"].find())


def test_undo_of_a_whole_run_puts_every_order_back_and_holds_it(cli, repaired_run, db):
    run_id, orders = repaired_run
    undone = cli("undo", run_id, "--by", "alice")
    assert undone.exit_code == 0, undone.output
    assert "3 put back, 0 left alone" in undone.output
    for oid in orders:
        doc = db["orders"].find_one({"_id": oid})
        assert doc["status"] == "created" and "charge_id" not in doc
        assert doc["reconcile"]["hold"] is True and doc["reconcile"]["by"] == "alice"
    records = list(db["reconcile_audit"].find({"action": "undo"}))
    assert len(records) == 3 and {r["undid_run"] for r in records} == {run_id}
    assert all(r["by"] == "alice" and r["hold"] for r in records)

    # Undo twice: nothing changes.
    before = orders_snapshot(db)
    twice = cli("undo", run_id)
    assert twice.exit_code == 0 and "0 put back, 0 left alone, 3 already undone" in twice.output
    assert orders_snapshot(db) == before and db["reconcile_audit"].count_documents({"action": "undo"}) == 3

    # The next run leaves them alone and says why, until a person clears the marker.
    after = run(cli)
    assert after.summary["repaired"] == [] and after.summary["marked_failed"] == []
    assert after.summary["counts"][c.REPAIR_UNDONE] == 3
    details = [d["detail"] for d in after.summary["discrepancies"] if d["outcome"] == c.REPAIR_UNDONE]
    assert all(d.startswith("repair undone by alice on ") for d in details)
    key = f"{c.REPAIR_UNDONE}:{orders[0]}"  # a unique prefix of the item's key
    cleared = cli("items", "clear", key, "--reason", "the config is fixed", "--by", "alice")
    assert cleared.exit_code == 0, cleared.output
    last = run(cli)
    assert last.summary["repaired"] == [str(orders[0])]
    assert last.summary["counts"][c.REPAIR_UNDONE] == 2


def test_undo_of_one_order_and_of_an_order_changed_since(cli, repaired_run, db):
    run_id, (first, second, failed) = repaired_run
    one = cli("undo", run_id, "--order", str(second))
    assert one.exit_code == 0 and "1 put back" in one.output
    assert db["orders"].find_one({"_id": second})["status"] == "created"
    assert db["orders"].find_one({"_id": first})["status"] == "accepted"

    db["orders"].update_one({"_id": first}, {"$set": {"status": "shipped"}})  # the shop moved on
    rest = cli("undo", run_id)
    assert rest.exit_code == 1, rest.output
    assert f"LEFT ALONE order {first}: changed since run {run_id} (status 'shipped'" in rest.output
    assert f"order {second}: already undone" in rest.output
    assert "1 put back, 1 left alone, 1 already undone" in rest.output
    assert db["orders"].find_one({"_id": first})["status"] == "shipped"
    assert db["orders"].find_one({"_id": failed})["status"] == "created"

    unknown = cli("undo", run_id, "--order", "no_such_order")
    assert unknown.exit_code == 2 and "did not change order(s) no_such_order" in unknown.output


def test_undo_dry_run_changes_nothing(cli, repaired_run, db):
    run_id, _ = repaired_run
    before = orders_snapshot(db), db["reconcile_audit"].count_documents({})
    dry = cli("undo", run_id, "--dry-run")
    assert dry.exit_code == 0 and dry.output.count("DRY RUN: would put back order") == 3
    assert (orders_snapshot(db), db["reconcile_audit"].count_documents({})) == before


def test_an_undo_is_undone_in_turn(cli, repaired_run, db):
    run_id, (first, *_) = repaired_run
    repaired = db["orders"].find_one({"_id": first})
    undone = cli("undo", run_id, "--by", "alice")
    undo_id = undone.output.split("`reconcile undo ")[1].split("`")[0]
    back = cli("undo", undo_id, "--by", "bob")
    assert back.exit_code == 0 and "3 put back" in back.output, back.output
    doc = db["orders"].find_one({"_id": first})
    assert doc["status"] == "accepted" and doc["charge_id"] == repaired["charge_id"]
    assert doc["reconcile"]["hold"] is False  # the job may go on judging it
    assert run(cli).summary["counts"][c.REPAIR_UNDONE] == 0


def test_undo_waits_for_the_lease_like_a_run(cli, repaired_run, db):
    run_id, orders = repaired_run
    held = Lease.acquire(db["reconcile_state"], "run-in-progress", timedelta(minutes=2), info={"trigger": "cron"})
    try:
        refused = cli("undo", run_id)
        assert refused.exit_code == 4, refused.output
        assert "another run holds the lease" in refused.output and "run-in-progress" in refused.output
        assert db["orders"].find_one({"_id": orders[0]})["status"] == "accepted"
    finally:
        held.release()
    assert cli("undo", run_id).exit_code == 0


def test_undo_of_an_unknown_run_is_a_usage_error(cli, db):
    result = cli("undo", "20990101T000000Z-ffffff")
    assert result.exit_code == 2 and "no run '20990101T000000Z-ffffff'" in result.output


def test_the_undo_marker_reads_a_real_date_and_a_wire_servers_string():
    # Real MongoDB returns the marker's `at` as a datetime; nx-27017 stores a $set datetime as a string.
    from reconcile.store.orders import undone_text

    real = {"hold": True, "by": "alice", "at": datetime(2026, 11, 30, 22, 5, tzinfo=UTC)}
    assert undone_text(real) == "by alice on 2026-11-30"
    assert undone_text(dict(real, at="2026-11-30T22:05:00+00:00")) == "by alice on 2026-11-30"
    assert undone_text(dict(real, hold=False)) is None and undone_text(None) is None


def test_the_worked_example_on_the_demo_shop(cli, store, db, now):
    """The worked example (docs/items-and-undo.md) on the demo's shop: its report -> ack / accept / resolve /
    confirm -> the next run reflects each decision; then the demo's run undone, restoring every order it changed,
    and undone twice."""
    from reconcile.demo.shop import demo_sections, seed_demo_shop

    seed_demo_shop(store, db["orders"], now)
    cli.configure(**demo_sections())
    before = {str(d["_id"]): (d.get("status"), d.get("charge_id")) for d in db["orders"].find()}
    first = cli()
    assert first.exit_code == 1, first.output
    changed = set(first.summary["repaired"]) | set(first.summary["marked_failed"])

    for args in (
        ("ack", "duplicate_charge:", "--note", "refunding the second charge", "--by", "alice"),
        ("accept", "amount_mismatch:", "--reason", "customer used a coupon", "--by", "bob"),
        ("resolve", "paid_without_charge:", "--reason", "charged by hand", "--by", "carol"),
        ("confirm", "probable_match:", "--by", "erin"),
    ):
        done = cli("items", *args)
        assert done.exit_code == 0, done.output

    second = cli("--since", "24h")
    states = {d["kind"]: d for d in db["reconcile_items"].find()}
    assert states[c.DUPLICATE_CHARGE]["state"] == "acknowledged"
    assert states[c.AMOUNT_MISMATCH]["state"] == "accepted"
    assert states[c.PAID_WITHOUT_CHARGE]["flag"] == "still present after being marked resolved by carol"
    assert second.summary["counts"][c.PROBABLE_MATCH] == 0 and len(second.summary["repaired"]) == 1
    html = Path(second.summary["report"]["html"]).read_text()
    assert "refunding the second charge" in html and "customer used a coupon" in html

    undone = cli("undo", first.summary["run_id"], "--by", "alice")
    assert undone.exit_code == 0, undone.output
    for key in changed:
        doc = next(d for d in db["orders"].find() if str(d["_id"]) == key)
        assert (doc.get("status"), doc.get("charge_id")) == before[key]
    records = list(db["reconcile_audit"].find({"action": "undo"}))
    assert sorted(r["order_key"] for r in records) == sorted(changed)
    snapshot = orders_snapshot(db), db["reconcile_audit"].count_documents({})
    again = cli("undo", first.summary["run_id"])
    assert again.exit_code == 0 and f"{len(changed)} already undone" in again.output
    assert (orders_snapshot(db), db["reconcile_audit"].count_documents({})) == snapshot


def test_items_people_took_do_not_need_attention(cli, finance_queue, db, smtp_sink):
    """Acknowledged (being handled) and accepted (closed) items leave the run's "need attention", its exit
    code and the email: an hourly cron run does not mail every hour about what a person has taken."""
    first = run(cli)
    assert first.exit_code == 1 and first.summary["needs_attention"] == 4, first.output
    dup = key_of(cli, c.DUPLICATE_CHARGE)
    big = key_of(cli, c.PAID_WITHOUT_CHARGE)
    assert cli("items", "ack", dup, "--by", "alice").exit_code == 0
    assert cli("items", "ack", big, "--by", "alice").exit_code == 0
    for oid in finance_queue["mismatches"]:
        taken = cli("items", "accept", f"{c.AMOUNT_MISMATCH}:{oid}", "--reason", "coupon", "--by", "bob")
        assert taken.exit_code == 0, taken.output
    cli.configure(
        email={
            "send": "on_discrepancy",
            "host": "127.0.0.1",
            "port": smtp_sink.port,
            "security": "none",
            "from_addr": "reconcile@shop.example",
            "to": ["finance@shop.example"],
        }
    )
    quiet = run(cli)  # the same window: every item is found again
    assert quiet.exit_code == 0, quiet.output
    assert quiet.summary["needs_attention"] == 0
    assert quiet.summary["items"]["open"] == 0 and quiet.summary["items"]["being_handled"] == 2
    assert smtp_sink.messages == []  # on_discrepancy: nothing needs a person, no mail
    html = Path(quiet.summary["report"]["html"]).read_text()
    assert "Nothing needs a person." in html and " at stake" not in html.split('id="severity"')[0]

    # Marked resolved by a person but still there: it reopens and counts again.
    assert cli("items", "resolve", big, "--reason", "paid by bank transfer", "--by", "carol").exit_code == 0
    again = run(cli)
    assert again.exit_code == 1 and again.summary["needs_attention"] == 1, again.output
    (message,) = smtp_sink.messages
    assert "1 needs attention" in message["Subject"] and "2,500.00 USD at stake" in message["Subject"]
