"""MongoDB faults: down at start, lost mid-repair (connection cut or the real server killed), and the next run.

The database is lost at a precise command by a proxy on loopback (tests/mongoproxy.py) that
reads the wire protocol, or by SIGKILL of the nx-27017 process itself, which is then restarted
on the same port with the same data file. After the fault, the next run must converge to the
state one clean run reaches on a twin database holding the same orders.

nx-27017 gap: `$set` of a datetime stores a string (reconcile.at, reconcile.paid_at); the
comparisons below leave run times out and compare both databases under the same server.
"""

from __future__ import annotations

import json
import threading

import pymongo
import pytest
import stripe
from conftest import Cli
from faultkit import (
    FAST,
    SHORT_LEASE,
    TAKEOVER_WAIT,
    TOOK_OVER,
    assert_audit_complete,
    assert_changed_summary,
    assert_error_summary,
    copy_orders,
    earlier_ids,
    final_state,
    seed_small_shop,
)

from reconcile.decide import classify as c
from reconcile.demo.embedded_mongo import free_port


@pytest.fixture(autouse=True)
def fast_sdk_retries(monkeypatch):
    monkeypatch.setattr(stripe.HTTPClient, "INITIAL_DELAY", 0.001)
    monkeypatch.setattr(stripe.HTTPClient, "MAX_DELAY", 0.005)


def make_cli(tmp_path, name, stripe_server, db_name, uri, monkeypatch, **sections) -> Cli:
    folder = tmp_path / name
    folder.mkdir()
    cli = Cli(folder, stripe_server.url, db_name, uri, monkeypatch)
    merged = {k: dict(v) for k, v in FAST.items()}
    for section, values in sections.items():
        merged.setdefault(section, {}).update(values)
    cli.configure(**merged)
    return cli


def snapshot(db) -> dict:
    """The shop's orders and the audit trail (run history, open items and the watermark are the job's own
    bookkeeping: a failed run is recorded there on purpose)."""
    return {name: sorted(map(repr, db[name].find())) for name in ("orders", "reconcile_audit")}


def clean_twin_state(tmp_path, stripe_server, client, source_db, monkeypatch, uri) -> dict:
    """Copy the seeded orders to a twin database, run once without faults, return its final state."""
    twin = client[source_db.name + "_twin"]
    copy_orders(source_db["orders"], twin["orders"])
    result = make_cli(tmp_path, "twin", stripe_server, twin.name, uri, monkeypatch)()
    assert result.exit_code in (0, 1), result.output
    state = final_state(twin)
    client.drop_database(twin.name)
    return state


# --------------------------------------------------------------------------- down at start


def test_mongodb_down_at_start_exits_3_within_the_selection_timeout(tmp_path, stripe_server, shop, db, monkeypatch):
    shop.charge(shop.order(c.REPAIRED))
    before = snapshot(db)
    port = free_port()
    uri = f"mongodb://reconcile:hunter2secret@127.0.0.1:{port}/shop?directConnection=true"
    cli = make_cli(
        tmp_path, "run", stripe_server, db.name, uri, monkeypatch, mongodb={"server_selection_timeout": "300ms"}
    )
    result = cli()
    assert result.exit_code == 3, result.output
    assert result.stderr.strip().splitlines()[-1] == (
        f"reconcile: error: MongoDB unavailable while connecting: 127.0.0.1:{port}: connection refused; "
        "no server answered within 0.3s "
        "(mongodb.server_selection_timeout); nothing was changed"
    )
    assert "hunter2secret" not in result.output
    assert stripe_server.request_log == []  # it stopped before asking Stripe for anything
    assert snapshot(db) == before
    assert_error_summary(result.summary, 3, result.stderr)  # monitoring sees the failure, not the last success
    assert result.summary["run_id"] is None and "hunter2secret" not in json.dumps(result.summary)
    assert not (tmp_path / "run" / "reports").exists()


def test_killed_server_then_restarted_the_next_run_completes(
    tmp_path, stripe_server, store, file_mongo, now, monkeypatch
):
    from reconcile.demo.shop import ShopSeeder

    client = pymongo.MongoClient(file_mongo.uri, tz_aware=True)
    shop = ShopSeeder(store, client.shop["orders"], now)
    seed_small_shop(shop)
    file_mongo.kill()
    cli = make_cli(tmp_path, "run", stripe_server, "shop", file_mongo.uri, monkeypatch)
    down = cli()
    assert down.exit_code == 3 and "MongoDB unavailable while connecting" in down.stderr
    file_mongo.restart()
    up = cli()
    assert up.exit_code == 1, up.output
    assert len(up.summary["repaired"]) == 3 and len(up.summary["marked_failed"]) == 1
    assert_audit_complete(client.shop)


# --------------------------------------------------------------------------- the window's orders, read beside the pull


def test_the_windows_orders_are_read_while_stripe_is_still_answering(
    tmp_path, stripe_server, shop, db, proxy, monkeypatch
):
    """Balance transactions hang until the window's orders query reaches MongoDB: a job that read
    orders only after the pull would wait out its Stripe timeouts (1s, 2 retries) and exit 3."""
    seed_small_shop(shop)
    reached_mongo = threading.Event()
    stripe_server.inject("/v1/balance_transactions", "hang", times=None, release=reached_mongo)
    rule = proxy.on("find", "orders", nth=1, action=reached_mongo.set)  # --dry-run: no audit-healing find before it
    cli = make_cli(tmp_path, "run", stripe_server, db.name, proxy.uri, monkeypatch)
    result = cli("--dry-run")
    assert rule.hit.is_set()
    assert result.exit_code == 1, result.output
    assert result.summary["counts"][c.REPAIRED] == 3 and result.summary["counts"][c.ORPHAN_CHARGE] == 1
    assert result.summary["totals"]  # the balance transactions did arrive, once the orders were asked for


def test_mongodb_lost_while_reading_the_window_beside_the_pull_exits_3_and_changes_nothing(
    tmp_path, stripe_server, shop, db, proxy, mongo_server, monkeypatch
):
    seed_small_shop(shop)
    expected = clean_twin_state(tmp_path, stripe_server, db.client, db, monkeypatch, mongo_server.uri)
    before = snapshot(db)
    cli = make_cli(tmp_path, "run", stripe_server, db.name, proxy.uri, monkeypatch, **SHORT_LEASE)
    rule = proxy.on("find", "orders", nth=2)  # the first find is the audit-healing check; the second reads the window
    lost = cli()
    assert rule.hit.is_set()
    assert lost.exit_code == 3, lost.output
    assert "reconcile: error: MongoDB unavailable while loading orders" in lost.stderr
    assert_error_summary(lost.summary, 3, lost.stderr)
    assert snapshot(db) == before
    proxy.restore()
    again = cli(*TAKEOVER_WAIT)
    assert again.exit_code == 1, again.output
    assert final_state(db) == expected


def test_the_string_dated_query_is_bounded_by_scan_timeout(tmp_path, stripe_server, shop, db, proxy, monkeypatch):
    """The window's queries may read much of the collection before answering (the string-dated one
    on a server that cannot use the created_at index for it; nx-27017 builds any result whole before
    its first batch), so they have their own timeout instead of the socket timeout."""
    seed_small_shop(shop)
    before = snapshot(db)
    rule = proxy.on("find", "orders", nth=2, action="hold")  # --dry-run: the window's dates, then this one
    cli = make_cli(tmp_path, "run", stripe_server, db.name, proxy.uri, monkeypatch, mongodb={"scan_timeout": "1s"})
    try:
        result = cli("--dry-run")
    finally:
        proxy.release()
    assert rule.hit.is_set()
    assert result.exit_code == 3, result.output
    assert result.stderr.strip().splitlines()[-1] == (
        "reconcile: error: MongoDB unavailable while loading orders: no answer to the window's orders query "
        "within 1s (mongodb.scan_timeout)"
    )
    assert snapshot(db) == before


# --------------------------------------------------------------------------- lost mid-repair


@pytest.mark.parametrize(
    "command, collection, nth",
    [
        ("update", "orders", 1),  # the compare-and-set batch itself never arrives
        ("insert", "reconcile_audit", 1),  # the orders changed; their audit records never arrive
        ("update", "orders", 2),  # changed and audited; clearing the orders' pending flags is cut
    ],
)
def test_connection_lost_mid_repair_then_the_next_run_completes(
    tmp_path, stripe_server, shop, db, proxy, mongo_server, monkeypatch, command, collection, nth
):
    # (When every compare-and-set takes effect the job reads nothing back between the batch and its
    # audit records, so there is no `find` to cut there.)
    seed_small_shop(shop)
    expected = clean_twin_state(tmp_path, stripe_server, db.client, db, monkeypatch, mongo_server.uri)
    cli = make_cli(tmp_path, "run", stripe_server, db.name, proxy.uri, monkeypatch, **SHORT_LEASE)
    rule = proxy.on(command, collection, nth=nth)
    lost = cli()
    assert rule.hit.is_set()
    assert lost.exit_code == 3, lost.output
    # The error that ended the run, not a later one from recording it in the history (MongoDB is gone for that too).
    assert "reconcile: error: MongoDB unavailable while repairing orders" in lost.stderr
    assert_error_summary(lost.summary, 3, lost.stderr)
    changed = db["orders"].count_documents({"reconcile": {"$exists": True}})
    owed = db["orders"].count_documents({"reconcile.audit": "pending"})
    assert changed == (0 if nth == 1 and collection == "orders" else 4)  # one unordered batch: all or none here
    # The next run heals what is owed; records already written (the flags' clearing was cut) are kept as they are.
    assert owed == changed and db["reconcile_audit"].count_documents({}) == (4 if nth == 2 else 0)

    proxy.restore()
    # The lost run could neither give its lease back nor finish its history record: the next run takes the
    # lease over once it expires, and marks that run abandoned.
    again = cli(*TAKEOVER_WAIT)
    assert again.exit_code == 1, again.output
    assert TOOK_OVER in again.output
    assert db["reconcile_runs"].find_one({"_id": lost.summary["run_id"]})["status"] == "abandoned"
    assert len(again.summary["audit_healed"]) == owed
    assert len(again.summary["repaired"]) + len(again.summary["marked_failed"]) == 4 - changed
    # What the lost run changed (it could list none: MongoDB was gone mid-batch) is in this run's report.
    assert len(earlier_ids(again.summary)) == changed
    assert_audit_complete(db)
    assert final_state(db) == expected


@pytest.mark.parametrize(
    "nth, flagged",
    [
        (2, 4),  # the first batch's audit records were written, clearing their flags on the orders is cut
        (3, 0),  # the second batch's compare-and-set is cut: the first batch is complete
    ],
)
def test_server_killed_between_repair_batches_keeps_the_first_batch(
    tmp_path, stripe_server, store, file_mongo, now, monkeypatch, nth, flagged
):
    """Six changes in batches of four. The real server dies at the n-th `update` on orders, and comes back.

    Per batch the job sends: update orders (compare-and-set), insert reconcile_audit (the records),
    update orders (clear the records' flags); a find of what changed only when some compare-and-set
    did not take effect.
    """
    from mongoproxy import MongoProxy

    from reconcile.demo.shop import ShopSeeder

    client = pymongo.MongoClient(file_mongo.uri, tz_aware=True)
    shop = ShopSeeder(store, client.shop["orders"], now)
    seed_small_shop(shop, stuck=5)
    expected = clean_twin_state(tmp_path, stripe_server, client, client.shop, monkeypatch, file_mongo.uri)
    with MongoProxy(file_mongo.port) as proxy:
        rule = proxy.on("update", "orders", nth=nth, action=file_mongo.kill)
        cli = make_cli(
            tmp_path,
            "run",
            stripe_server,
            "shop",
            proxy.uri,
            monkeypatch,
            mongodb={"repair_batch_size": 4},
            **SHORT_LEASE,
        )
        lost = cli()
        assert rule.hit.is_set() and lost.exit_code == 3, lost.output
        assert "reconcile: error: MongoDB unavailable while repairing orders" in lost.stderr
        # A finished first batch is listed by the lost run itself (its summary, its plain report); a batch
        # cut off before its orders' flags were cleared is not: the next run reports it.
        listed = assert_changed_summary(lost.summary, 3, lost.stderr, 4) if flagged == 0 else []
        if flagged:
            assert_error_summary(lost.summary, 3, lost.stderr)
        file_mongo.restart()
        orders = client.shop["orders"]
        assert orders.count_documents({"reconcile": {"$exists": True}}) == 4  # the first batch stayed...
        assert client.shop["reconcile_audit"].count_documents({}) == 4  # ...with its audit records
        assert orders.count_documents({"reconcile.audit": "pending"}) == flagged
        again = cli(*TAKEOVER_WAIT)  # the killed server took the lost run's lease release with it
    assert again.exit_code == 1, again.output
    assert TOOK_OVER in again.output
    assert len(again.summary["repaired"]) + len(again.summary["marked_failed"]) == 2
    assert len(again.summary["audit_healed"]) == flagged
    # The lost run could not record that its report listed them (MongoDB was gone): the next run lists
    # the first batch too, once.
    first_batch = sorted(
        r["order_key"] for r in client.shop["reconcile_audit"].find({"run_id": lost.summary["run_id"]})
    )
    assert sorted(earlier_ids(again.summary)) == first_batch and len(first_batch) == 4
    assert not listed or sorted(listed) == first_batch
    assert_audit_complete(client.shop)
    assert final_state(client.shop) == expected
