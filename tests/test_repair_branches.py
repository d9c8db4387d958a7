"""The repair's branches that a clean run never takes: another writer winning the race between the run's
read and its compare-and-set, an audit insert failing for a reason other than a duplicate key, and
markers owed an audit record that name no run.

Each runs the real command against nx-27017. The rival writer is the proxy (tests/mongoproxy.py):
at the run's first `update` of the orders (the compare-and-set batch) it first writes to MongoDB
directly, as the shop would, then forwards the batch, so the run's filter meets the shop's write
with MongoDB's own semantics; nothing of the job is patched.

nx-27017 gaps (MongoDB differs; the job stays correct for real MongoDB):
- an ObjectId `_id` also matches a string `_id` with the same hex: the orders here have one id type each;
- `$set` of a datetime stores a string: nothing here reads `reconcile.at` or `reconcile.paid_at` as a date;
- `update_many` with `$in` over mixed id types may modify only some matches: the orders here are all ObjectIds;
- a collection validator is not enforced, so the audit insert's non-duplicate-key error is the proxy's
  answer (a bulk write reply carrying the server's `writeErrors`), not a real validation failure.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from faultkit import assert_audit_complete

from reconcile.decide import classify as c
from reconcile.timeutil import fmt


def _discrepancy(summary: dict[str, Any], key: Any) -> dict[str, Any]:
    [found] = [d for d in summary["discrepancies"] if d["order_id"] == str(key)]
    return found


def _rival(proxy, monkeypatch, write) -> Any:
    """The run talks to MongoDB through the proxy; `write` runs just before its compare-and-set batch."""
    monkeypatch.setenv("MONGODB_URI", proxy.uri)
    return proxy.on("update", "orders", action=write)


# --------------------------------------------------------------------------- the charge id compared (issue 25, 4)


def test_a_charge_id_the_shop_writes_between_read_and_write_is_kept_and_reported(cli, shop, db, proxy, monkeypatch):
    """The order is read pending with no charge id; before the run writes, the shop's own checkout writes
    its charge id (the order still pending). The compare-and-set compares the charge id it would
    overwrite: the order keeps the shop's, and the run lists it as a lost race naming what it is now."""
    oid = shop.order(c.REPAIRED)
    charge = shop.charge(oid)
    rival = _rival(
        proxy, monkeypatch, lambda: db["orders"].update_one({"_id": oid}, {"$set": {"charge_id": "ch_shop_own"}})
    )
    result = cli()
    assert rival.hit.is_set()
    assert result.exit_code == 0, result.output
    doc = db["orders"].find_one({"_id": oid})
    assert (doc["status"], doc["charge_id"]) == ("created", "ch_shop_own")
    assert "reconcile" not in doc  # no marker: nothing of this run on it
    assert db["reconcile_audit"].count_documents({}) == 0
    assert result.summary["repaired"] == []
    assert _discrepancy(result.summary, oid) == {
        "outcome": c.IN_FLIGHT,
        "order_id": str(oid),
        "charge_id": charge["id"],
        "order_amount": 2500,
        "order_currency": "usd",
        "charge_amount": 2500,
        "charge_currency": "usd",
        "detail": "changed by another writer during this run (now status 'created', charge ch_shop_own); left alone",
        "needs_person": False,
        # Its deadline: created two hours ago, judged at the grace period (docs/deadlines.md).
        "expected_end": fmt(shop.now - timedelta(hours=2) + timedelta(minutes=15)),
    }


@pytest.mark.parametrize("dated", ["date", "iso_string"])  # the load's fast path, and order_record's
@pytest.mark.parametrize("stored", ["", "   ", "padded"], ids=["empty", "spaces", "padded"])
def test_a_blank_or_padded_charge_id_is_compared_as_stored(cli, shop, db, stored, dated):
    """The load reads a blank charge id as none and a padded one stripped; the compare-and-set still
    compares the value stored, so such an order is repaired (not a lost race every run)."""
    extra: dict[str, Any] = {}
    if dated == "iso_string":
        extra["created_at"] = (shop.now - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    oid = shop.order(c.REPAIRED, **extra)
    charge = shop.charge(oid)
    raw = f"  {charge['id']} " if stored == "padded" else stored
    db["orders"].update_one({"_id": oid}, {"$set": {"charge_id": raw}})
    result = cli()
    assert result.exit_code == 0, result.output
    assert result.summary["repaired"] == [str(oid)], result.summary["discrepancies"]
    doc = db["orders"].find_one({"_id": oid})
    assert (doc["status"], doc["charge_id"]) == ("accepted", charge["id"])
    assert_audit_complete(db)


# --------------------------------------------------------------------------- some of a batch lose (issue 25, 3)


def test_a_batch_where_some_orders_lose_the_race(cli, shop, db, proxy, monkeypatch):
    """One unordered batch of four: the shop pays one order itself and deletes another between the
    run's read and its write. Those two are left alone and listed as lost races, each as it is now;
    the other two are changed, each with its audit record."""
    repaired = shop.order(c.REPAIRED, amount=1100)
    shop.charge(repaired, amount=1100)
    failed = shop.order(c.MARKED_FAILED, amount=1200)
    shop.charge(failed, amount=1200, status="failed")
    paid_meanwhile = shop.order(c.REPAIRED, amount=1300)
    paid_charge = shop.charge(paid_meanwhile, amount=1300)
    gone_meanwhile = shop.order(c.MARKED_FAILED, amount=1400)
    shop.charge(gone_meanwhile, amount=1400, status="failed")

    def shop_writes() -> None:
        db["orders"].update_one(
            {"_id": paid_meanwhile}, {"$set": {"status": "accepted", "charge_id": paid_charge["id"]}}
        )
        db["orders"].delete_one({"_id": gone_meanwhile})

    rival = _rival(proxy, monkeypatch, shop_writes)
    result = cli()
    assert rival.hit.is_set()
    assert result.exit_code == 0, result.output
    summary = result.summary
    assert (summary["repaired"], summary["marked_failed"]) == ([str(repaired)], [str(failed)])
    assert summary["counts"][c.IN_FLIGHT] == 2
    lost = {key: _discrepancy(summary, key) for key in (paid_meanwhile, gone_meanwhile)}
    assert {k: (d["outcome"], d["detail"]) for k, d in lost.items()} == {
        paid_meanwhile: (
            c.IN_FLIGHT,
            f"changed by another writer during this run (now status 'accepted', charge {paid_charge['id']}); "
            "left alone",
        ),
        gone_meanwhile: (
            c.IN_FLIGHT,
            "changed by another writer during this run (now the order no longer exists); left alone",
        ),
    }
    # The shop's write stands; the run's marker is on the two it changed only, each audited.
    doc = db["orders"].find_one({"_id": paid_meanwhile})
    assert (doc["status"], doc["charge_id"], "reconcile" in doc) == ("accepted", paid_charge["id"], False)
    assert db["orders"].find_one({"_id": gone_meanwhile}) is None
    assert_audit_complete(db)
    records = {r["order_key"]: r for r in db["reconcile_audit"].find()}
    assert {k: (r["action"], r["run_id"]) for k, r in records.items()} == {
        str(repaired): (c.REPAIRED, summary["run_id"]),
        str(failed): (c.MARKED_FAILED, summary["run_id"]),
    }


# --------------------------------------------------------------------------- an audit insert failing (issue 25, 3)


def test_an_audit_insert_failing_other_than_a_duplicate_key_stops_the_run(cli, shop, db, proxy, monkeypatch):
    """Of the batch's two audit records one is a duplicate key (kept as it was: not an error) and one
    fails validation: that is not swallowed. The run stops with MongoDB's error, saying the batch may
    have changed; its orders keep their pending flags, and the next run writes their records and
    reports them as an earlier run's changes."""
    orders = [shop.order(c.REPAIRED, amount=2100 + n) for n in range(2)]
    for n, oid in enumerate(orders):
        shop.charge(oid, amount=2100 + n)
    monkeypatch.setenv("MONGODB_URI", proxy.uri)
    refused = proxy.on(
        "insert",
        "reconcile_audit",
        action={
            "ok": 1,
            "n": 0,
            "writeErrors": [
                {"index": 0, "code": 11000, "codeName": "DuplicateKey", "errmsg": "E11000 duplicate key error"},
                {"index": 1, "code": 121, "codeName": "DocumentValidationFailure", "errmsg": "failed validation"},
            ],
        },
    )
    stopped = cli()
    assert refused.hit.is_set()
    assert stopped.exit_code == 3, stopped.output
    error = stopped.summary["error"]
    assert error.startswith("MongoDB failed while repairing orders: BulkWriteError (code 65)"), error
    assert "the 2 order(s) of the batch being written may have changed" in error
    assert stopped.stderr.strip().splitlines()[-1] == f"reconcile: error: {error}"
    assert db["orders"].count_documents({"reconcile.audit": "pending"}) == 2  # owed, not forgotten
    assert db["reconcile_audit"].count_documents({}) == 0

    proxy.restore()
    again = cli("--since", "24h")
    assert again.exit_code == 0, again.output
    assert sorted(again.summary["audit_healed"]) == sorted(map(str, orders))
    assert sorted(e["order_id"] for e in again.summary["earlier_changes"]) == sorted(map(str, orders))
    assert_audit_complete(db)


# --------------------------------------------------------------------------- markers naming no run (issue 25, 3)


@pytest.mark.parametrize(
    "marker",
    [
        {"action": c.REPAIRED},  # no run id at all
        {"action": c.REPAIRED, "run_id": None},
        {"action": c.MARKED_FAILED, "run_id": ""},
        {"run_id": "run-without-action"},  # a run id but no action
    ],
    ids=["no_run_id", "null_run_id", "empty_run_id", "no_action"],
)
def test_an_owed_marker_naming_no_run_is_skipped_not_fatal(cli, shop, db, marker):
    """Orders flagged as owing an audit record whose marker names no run (or no action): a record
    cannot be keyed or worded for them, so the run skips them (they stay as they are) and heals the
    rest."""
    old = timedelta(days=5)  # outside the run's window: only the healing reads them
    odd = shop.order(None, status="accepted", age=old, reconcile={**marker, "audit": "pending"})
    owed = shop.order(
        None,
        status="accepted",
        age=old,
        charge_id="ch_owed",
        reconcile={
            "action": c.REPAIRED,
            "run_id": "20240101T000000Z-abcdef",
            "at": shop.now - old,
            "from_status": "created",
            "to_status": "accepted",
            "charge_id": "ch_owed",
            "previous_charge_id": None,
            "audit": "pending",
        },
    )
    odd_before = db["orders"].find_one({"_id": odd})
    result = cli()
    assert result.exit_code == 0, result.output
    assert result.summary["audit_healed"] == [str(owed)]
    assert [r["order_key"] for r in db["reconcile_audit"].find()] == [str(owed)]
    assert db["orders"].find_one({"_id": odd}) == odd_before
    assert "audit" not in db["orders"].find_one({"_id": owed})["reconcile"]
