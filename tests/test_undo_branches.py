"""The dangerous branches of `reconcile undo` and `reconcile items confirm`, end to end through the CLI
against nx-27017 (tests/mongoproxy.py between them, to interleave a rival write or lose MongoDB at a
chosen command).

- a compare-and-set that misses at write time: another writer changes (or deletes) the order after
  the undo or confirm read it, just before its update arrives; the order is left alone and reported;
- the order deleted before the undo or confirm looks at it;
- MongoDB lost in the middle of an undo: what was put back is said, no order is half put back, and
  the same undo again finishes the job (its owed audit records too);
- the undo of a run that changed no orders;
- the audit records of changes people asked for (an undo, a confirm) that were never written,
  healed by the next run from the markers left on the orders.

Already covered elsewhere (not repeated here): tests/test_items_loop.py (confirm writes the charge;
confirm refuses an order that already has one; confirm/dismiss only on probable matches; undo of a
whole run, twice, of one order, of an order changed since, dry run, an undo undone, the lease, an
unknown run), tests/test_decisions_rules.py (the undo plan's rules, table-driven), tests/test_e2e.py
(healing a stopped run's repair records), tests/test_faults_mongo.py (MongoDB lost mid-repair).

nx-27017 gaps met here (the job stays correct for real MongoDB): `$set` of a datetime stores a
string (the markers' `at`; not compared below); an ObjectId _id also matches its hex string (each
scenario mixes ObjectId and string ids, whose texts never collide).
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from conftest import Cli

from reconcile.decide import classify as c

# A lost undo cannot give its lease back: a short ttl, and the next undo waits (a bound, not a pause).
FAST = {"mongodb": {"server_selection_timeout": "1s"}, "lease": {"ttl": "1s"}}
TAKEOVER_WAIT = ("--wait", "30s")


@pytest.fixture
def cli(tmp_path, stripe_server, db_name, proxy, monkeypatch, db) -> Cli:
    """The real CLI, talking to nx-27017 through the proxy (which passes everything until told otherwise)."""
    through = Cli(tmp_path, stripe_server.url, db_name, proxy.uri, monkeypatch)
    through.configure(**FAST)
    return through


def run(cli):
    return cli("--since", "24h")


@pytest.fixture
def repaired_run(cli, shop, db):
    """A run that repaired two stuck orders (an ObjectId and a string _id) and marked one failed."""
    stuck = []
    for amount, object_id in ((3999, True), (4100, False)):
        oid = shop.order(c.REPAIRED, amount=amount, object_id=object_id)
        shop.charge(oid, amount=amount)
        stuck.append(oid)
    failed = shop.order(c.MARKED_FAILED)
    shop.charge(failed, status="failed")
    result = run(cli)
    assert len(result.summary["repaired"]) == 2 and len(result.summary["marked_failed"]) == 1, result.output
    return result.summary["run_id"], [*stuck, failed]


@pytest.fixture
def probable(cli, shop, db):
    """A probable match found by a run: (the item key, the order, the charge id)."""
    order = shop.order(c.PROBABLE_MATCH, amount=3150, age=timedelta(hours=3))
    email = db["orders"].find_one({"_id": order})["email"]
    charge = shop.charge(None, amount=3150, age=timedelta(hours=2, minutes=56), metadata={}, billing_email=email)
    assert run(cli).summary["counts"][c.PROBABLE_MATCH] == 1
    (line,) = cli("items", "--json").output.splitlines()
    return json.loads(line)["key"], order, charge["id"]


def order(db, oid) -> dict:
    return db["orders"].find_one({"_id": oid})


def undo_records(db, undo_id: str | None = None) -> dict[str, dict]:
    query = {"action": "undo"} if undo_id is None else {"run_id": undo_id}
    return {r["order_key"]: r for r in db["reconcile_audit"].find(query)}


def undo_id_of(output: str) -> str:
    return output.split("`reconcile undo ")[1].split("`")[0]


def as_the_run_left_it(doc: dict, run_id: str) -> bool:
    return doc["reconcile"]["run_id"] == run_id and doc["status"] in ("accepted", "failed")


def put_back(doc: dict, run_id: str) -> bool:
    """Wholly put back: status, charge id and marker together (a repair's charge id gone with it)."""
    m = doc["reconcile"]
    return (m["action"], m["undid_run"], doc["status"], doc.get("charge_id")) == ("undo", run_id, "created", None)


# --------------------------------------------------------------------------- a rival write between check and write

RIVALS = {
    "status": lambda orders, oid: orders.update_one({"_id": oid}, {"$set": {"status": "shipped"}}),
    "charge": lambda orders, oid: orders.update_one({"_id": oid}, {"$set": {"charge_id": "ch_rival"}}),
    "deleted": lambda orders, oid: orders.delete_one({"_id": oid}),
}


@pytest.mark.parametrize("rival", RIVALS)
def test_undo_leaves_alone_an_order_changed_between_its_check_and_its_write(cli, repaired_run, db, proxy, rival):
    run_id, (first, second, failed) = repaired_run
    before = order(db, second)
    # Runs just before the undo's compare-and-set reaches the server, after the undo read the orders.
    rule = proxy.on("update", "orders", nth=1, action=lambda: RIVALS[rival](db["orders"], second))
    undone = cli("undo", run_id, "--by", "alice")
    assert rule.hit.is_set()
    assert undone.exit_code == 1, undone.output
    assert (
        f"LEFT ALONE order {second}: changed since run {run_id} (changed by another writer during this undo)"
        in undone.output
    )
    assert "2 put back, 1 left alone, 0 already undone" in undone.output
    assert f"put back order {second}" not in undone.output
    now = order(db, second)
    if rival == "deleted":
        assert now is None
    else:  # the rival's write stands; the undo wrote nothing on it
        assert now["reconcile"] == before["reconcile"]
        assert (now["status"], now["charge_id"]) == {
            "status": ("shipped", before["charge_id"]),
            "charge": ("accepted", "ch_rival"),
        }[rival]
    assert put_back(order(db, first), run_id) and put_back(order(db, failed), run_id)
    undo_id = undo_id_of(undone.output)
    assert sorted(undo_records(db, undo_id)) == sorted([str(first), str(failed)])  # no record for the lost one
    assert db["orders"].count_documents({"reconcile.audit": "pending"}) == 0


@pytest.mark.parametrize("rival", RIVALS)
def test_confirm_leaves_alone_an_order_changed_between_its_check_and_its_write(cli, probable, db, proxy, rival):
    key, oid, _ = probable
    rule = proxy.on("update", "orders", nth=1, action=lambda: RIVALS[rival](db["orders"], oid))
    refused = cli("items", "confirm", key, "--by", "erin")
    assert rule.hit.is_set()
    assert refused.exit_code == 2, refused.output
    assert f"order {oid} changed while confirming: left alone, nothing confirmed" in refused.output
    now = order(db, oid)
    if rival == "deleted":
        assert now is None
    else:
        assert "reconcile" not in now
        assert (now["status"], now.get("charge_id")) == {
            "status": ("shipped", None),
            "charge": ("created", "ch_rival"),
        }[rival]
    assert db["reconcile_audit"].count_documents({}) == 0
    assert db["reconcile_decisions"].count_documents({"action": "confirm"}) == 0
    assert db["reconcile_items"].find_one({"_id": key})["state"] == "open"


# --------------------------------------------------------------------------- the order deleted before the check


def test_undo_of_a_run_one_of_whose_orders_was_deleted_since(cli, repaired_run, db):
    run_id, (first, second, failed) = repaired_run
    db["orders"].delete_one({"_id": first})
    undone = cli("undo", run_id, "--by", "alice")
    assert undone.exit_code == 1, undone.output
    assert f"LEFT ALONE order {first}: changed since run {run_id} (the order no longer exists)" in undone.output
    assert "2 put back, 1 left alone, 0 already undone" in undone.output
    assert order(db, first) is None  # not re-created by an upsert
    assert put_back(order(db, second), run_id) and put_back(order(db, failed), run_id)
    assert sorted(undo_records(db)) == sorted([str(second), str(failed)])


def test_confirm_of_an_order_deleted_since_the_run(cli, probable, db):
    key, oid, _ = probable
    db["orders"].delete_one({"_id": oid})
    refused = cli("items", "confirm", key, "--by", "erin")
    assert refused.exit_code == 2, refused.output
    assert f"order {oid} no longer exists: nothing confirmed" in refused.output
    assert db["orders"].count_documents({}) == 0
    assert db["reconcile_audit"].count_documents({}) == 0
    assert db["reconcile_items"].find_one({"_id": key})["state"] == "open"


# --------------------------------------------------------------------------- MongoDB lost mid-undo


@pytest.mark.parametrize(
    "command, collection, nth, changed",
    [
        ("update", "orders", 1, False),  # the put-back never arrives
        ("insert", "reconcile_audit", 1, True),  # the orders put back; their audit records never arrive
        ("update", "orders", 2, True),  # put back and audited; clearing the orders' pending flags is cut
    ],
)
def test_mongodb_lost_mid_undo_then_the_same_undo_finishes_the_job(
    cli, repaired_run, db, proxy, command, collection, nth, changed
):
    run_id, orders = repaired_run
    rule = proxy.on(command, collection, nth=nth)
    lost = cli("undo", run_id, "--by", "alice")
    assert rule.hit.is_set()
    assert lost.exit_code == 3, lost.output
    # The lost undo's id is on every order it put back (none, when its write never arrived).
    marks = {d["reconcile"]["run_id"] for d in db["orders"].find() if d["reconcile"]["action"] == "undo"}
    lost_id = marks.pop() if changed else None
    assert not marks and (lost_id is not None) == changed
    error = lost.output.strip().splitlines()[-1]
    if changed:  # what was put back is said, by order
        assert error.startswith("reconcile: error: MongoDB unavailable while writing audit records: ")
        assert f"3 order(s) were put back by {lost_id} before this ({', '.join(sorted(map(str, orders)))})" in error
    else:
        assert error.startswith("reconcile: error: MongoDB unavailable while undoing changes: ")
        assert "the 3 order(s) being put back by undo-" in error and "may have changed" in error
    # No order half put back: each is wholly as the run left it, or wholly put back.
    for oid in orders:
        doc = order(db, oid)
        assert put_back(doc, run_id) if changed else as_the_run_left_it(doc, run_id), doc
    assert len(undo_records(db)) == (3 if nth == 2 and collection == "orders" else 0)

    proxy.restore()
    again = cli("undo", run_id, "--by", "bob", *TAKEOVER_WAIT)
    assert again.exit_code == 0, again.output
    if changed:  # says who put them back, and writes what that undo owed
        assert "0 put back, 0 left alone, 3 already undone" in again.output
        for oid in orders:
            assert (
                f"order {oid}: already undone (" in again.output and f"last changed by undo {lost_id})" in again.output
            )
        assert again.output.count("its audit record, owed by that undo, written now") == 3
        assert "(undo this undo" not in again.output
    else:
        assert "3 put back, 0 left alone, 0 already undone" in again.output
        lost_id = undo_id_of(again.output)
    for oid in orders:
        assert put_back(order(db, oid), run_id)
    records = undo_records(db)
    assert sorted(records) == sorted(map(str, orders)) and {r["run_id"] for r in records.values()} == {lost_id}
    assert db["orders"].count_documents({"reconcile.audit": "pending"}) == 0
    # The whole undo is undoable in turn at once (its records are there): every repair comes back.
    back = cli("undo", lost_id, "--by", "carol")
    assert back.exit_code == 0 and "3 put back" in back.output, back.output
    assert {order(db, oid)["status"] for oid in orders} == {"accepted", "failed"}
    assert all(order(db, oid).get("charge_id") for oid in orders[:2])


# --------------------------------------------------------------------------- a run that changed nothing


@pytest.fixture
def quiet_run(cli, shop, db):
    """A run that found a discrepancy and changed no order: its run id."""
    ok = shop.order(c.OK, status="accepted", amount=700)
    shop.charge(ok, amount=700)
    mismatch = shop.order(c.AMOUNT_MISMATCH, status="accepted", amount=5000, object_id=False)
    shop.charge(mismatch, amount=4500)
    result = run(cli)
    assert result.exit_code == 1 and result.summary["repaired"] == result.summary["marked_failed"] == []
    return result.summary["run_id"]


@pytest.mark.parametrize("dry_run", [(), ("--dry-run",)], ids=["undo", "dry-run"])
def test_undo_of_a_run_that_changed_no_orders(cli, quiet_run, db, dry_run):
    before = sorted(map(repr, db["orders"].find()))
    for run_text in (quiet_run, quiet_run[:12]):  # the run id, or a unique prefix of it
        nothing = cli("undo", run_text, *dry_run)
        assert nothing.exit_code == 0, nothing.output
        assert nothing.output.splitlines()[-1] == f"run {quiet_run} changed no orders: nothing to undo"
        assert "put back" not in nothing.output and "reconcile undo undo-" not in nothing.output
    assert sorted(map(repr, db["orders"].find())) == before
    assert db["reconcile_audit"].count_documents({}) == 0
    assert db["reconcile_state"].find_one({"_id": "lease"}) is None  # the undo gave its lease back


# --------------------------------------------------------------------------- healing people's owed audit records


def test_the_next_run_heals_the_audit_records_a_lost_undo_owed(cli, repaired_run, db, proxy):
    run_id, orders = repaired_run
    charges = {oid: order(db, oid).get("charge_id") for oid in orders}
    proxy.on("insert", "reconcile_audit", nth=1)
    assert cli("undo", run_id, "--by", "alice").exit_code == 3
    (lost_id,) = {order(db, oid)["reconcile"]["run_id"] for oid in orders}
    assert db["orders"].count_documents({"reconcile.audit": "pending"}) == 3
    proxy.restore()
    refused = cli("undo", lost_id, *TAKEOVER_WAIT)  # no records of it yet: not undoable until healed
    assert refused.exit_code == 2 and f"no run {lost_id!r}" in refused.output, refused.output

    healing = cli("--since", "24h", *TAKEOVER_WAIT)
    assert healing.exit_code in (0, 1), healing.output
    assert sorted(healing.summary["audit_healed"]) == sorted(map(str, orders))
    assert {e["run_id"] for e in healing.summary["earlier_changes"]} == {lost_id}
    records = undo_records(db, lost_id)
    for oid in orders:  # rebuilt as the undo would have written it: who, which run, the hold, the charges
        r = records[str(oid)]
        assert (r["action"], r["by"], r["undid_run"], r["hold"]) == ("undo", "alice", run_id, True)
        assert (r["from_status"], r["to_status"]) == (("failed" if oid == orders[2] else "accepted"), "created")
        assert (r["previous_charge_id"], r["charge_id"], r["charge_changed"]) == (
            charges[oid],
            None,
            oid != orders[2],
        )
    assert db["orders"].count_documents({"reconcile.audit": "pending"}) == 0
    # The healing run held the undone orders (it did not repair them again); the undo is now undoable.
    assert healing.summary["repaired"] == [] and healing.summary["counts"][c.REPAIR_UNDONE] == 3
    back = cli("undo", lost_id, "--by", "bob")
    assert back.exit_code == 0 and "3 put back" in back.output, back.output
    assert {oid: order(db, oid).get("charge_id") for oid in orders} == charges


def test_the_next_run_heals_the_audit_record_a_lost_confirm_owed(cli, probable, db, proxy):
    key, oid, charge = probable
    proxy.on("insert", "reconcile_audit", nth=1)
    lost = cli("items", "confirm", key, "--reason", "same basket", "--by", "erin")
    assert lost.exit_code == 3, lost.output
    assert "MongoDB unavailable while writing audit records" in lost.output
    doc = order(db, oid)
    assert doc["charge_id"] == charge and doc["reconcile"]["audit"] == "pending"
    confirm_id = doc["reconcile"]["run_id"]

    proxy.restore()
    healing = run(cli)
    assert healing.exit_code in (0, 1), healing.output
    assert healing.summary["audit_healed"] == [str(oid)]
    (record,) = db["reconcile_audit"].find({"run_id": confirm_id})
    assert (record["action"], record["by"], record["reason"]) == ("confirmed", "erin", "same basket")
    assert (record["charge_id"], record["previous_charge_id"], record["charge_changed"]) == (charge, None, True)
    assert record["undo"]["unset"] == ["reconcile", "charge_id"]  # undoing it takes the charge id off again
    # The same run repaired the order with the confirmed charge (its own marker and record replace the flag).
    assert healing.summary["repaired"] == [str(oid)]
    assert db["orders"].count_documents({"reconcile.audit": "pending"}) == 0
