"""The whole job with mongomock as the database: exact MongoDB id-type semantics, which nx-27017 blurs."""

from __future__ import annotations

from datetime import timedelta

import mongomock
from bson import ObjectId
from conftest import API_KEY

from reconcile.config import parse_config
from reconcile.run import window as job
from reconcile.stripe import pull as stripe_pull
from reconcile.timeutil import to_unix


def test_repairs_use_the_order_ids_own_type(store, stripe_server, now, tmp_path):
    db = mongomock.MongoClient(tz_aware=True).shop
    oid = ObjectId()
    created = (now - timedelta(hours=2)).replace(tzinfo=None)
    db.orders.insert_many(
        [
            {"_id": oid, "status": "created", "amount": 2500, "currency": "usd", "created_at": created},
            # A different order whose string id happens to be another ObjectId's hex: must not be touched.
            {"_id": str(ObjectId()), "status": "created", "amount": 2500, "currency": "usd", "created_at": created},
            {"_id": "ord-7", "status": "created", "amount": 990, "currency": "jpy", "created_at": created},
        ]
    )
    for ref, amount, currency in ((str(oid), 2500, "usd"), ("ord-7", 990, "jpy")):
        store.create_charge(
            amount=amount, currency=currency, created=to_unix(now - timedelta(hours=2)), metadata={"order_id": ref}
        )
    config = parse_config({"stripe": {"api_base": stripe_server.url}, "mongodb": {"database": "shop"}})
    client = stripe_pull.make_client(API_KEY, config.stripe)
    request = job.RunRequest(since=now - timedelta(days=1), until=now, now=now, report_dir=tmp_path)
    result = job.run(config, client, db, request)
    assert sorted(result.summary.repaired) == sorted([str(oid), "ord-7"])
    assert db.orders.find_one({"_id": oid})["status"] == "accepted"
    assert db.orders.find_one({"_id": str(oid)}) is None
    assert db.orders.count_documents({"status": "created"}) == 1  # the stale one, untouched
    audit = db.reconcile_audit.find_one({"order_key": str(oid)})
    assert audit["order_id"] == oid and audit["undo"]["filter"]["_id"] == oid


def test_payment_intent_and_session_references_keep_the_id_type(store, stripe_server, now, tmp_path):
    db = mongomock.MongoClient(tz_aware=True).shop
    by_intent, by_session = ObjectId(), ObjectId()
    created = (now - timedelta(hours=2)).replace(tzinfo=None)
    db.orders.insert_many(
        [
            {"_id": by_intent, "status": "created", "amount": 2500, "currency": "usd", "created_at": created},
            {
                "_id": str(by_intent),
                "status": "created",
                "amount": 2500,
                "currency": "usd",
                "created_at": created,
                "note": "a string id with the same hex: a different order",
            },
            {"_id": by_session, "status": "created", "amount": 1800, "currency": "usd", "created_at": created},
        ]
    )
    at = to_unix(now - timedelta(hours=2))
    intent = store.create_payment_intent(amount=2500, created=at, metadata={"order_id": str(by_intent)})
    store.create_charge(amount=2500, created=at, payment_intent=intent["id"])
    paid = store.create_payment_intent(amount=1800, created=at)
    store.create_checkout_session(created=at, client_reference_id=str(by_session), payment_intent=paid["id"])
    store.create_charge(amount=1800, created=at, payment_intent=paid["id"])
    config = parse_config(
        {
            "stripe": {"api_base": stripe_server.url},
            "mongodb": {"database": "shop"},
            "matching": {"link_by": ["payment_intent_metadata", "checkout_session"]},
        }
    )
    client = stripe_pull.make_client(API_KEY, config.stripe)
    request = job.RunRequest(since=now - timedelta(days=1), until=now, now=now, report_dir=tmp_path)
    result = job.run(config, client, db, request)
    # Two documents print as the same id: Stripe cannot tell them apart, so neither is touched.
    assert result.counts["data_problem"] == 2 and str(by_intent) not in result.summary.repaired
    assert result.summary.repaired == [str(by_session)]
    assert db.orders.find_one({"_id": by_session})["status"] == "accepted"
    assert db.orders.count_documents({"status": "created"}) == 2


def test_a_window_too_big_to_read_beside_the_pull_is_read_after_it_with_the_same_result(
    store, stripe_server, now, tmp_path, monkeypatch, caplog
):
    """Past job.ORDERS_BESIDE_PULL orders the load beside the pull stops and the window is read after
    it (so a backfill's order columns never share memory with the pull's): same orders, same outcomes."""
    from reconcile.demo.shop import seed_demo_shop
    from reconcile.store import orders as order_store

    shop = mongomock.MongoClient(tz_aware=True).shop
    seed_demo_shop(store, shop.orders, now)
    twin = mongomock.MongoClient(tz_aware=True).shop
    twin.orders.insert_many(list(shop.orders.find()))
    config = parse_config(
        {
            "stripe": {"api_base": stripe_server.url},
            "mongodb": {"database": "shop"},
            "matching": {"link_by": ["charge_metadata", "payment_intent_metadata", "checkout_session", "order_fields"]},
            "orders": {
                "payment_intent_id_field": "payment_intent_id",
                "checkout_session_id_field": "checkout_session_id",
            },
        }
    )
    client = stripe_pull.make_client(API_KEY, config.stripe)
    request = job.RunRequest(since=now - timedelta(days=2), until=now, now=now, dry_run=True, report_dir=tmp_path)

    def run(db) -> tuple[job.RunResult, object]:
        caplog.clear()
        with caplog.at_level("INFO", logger="reconcile.run.window"):
            result = job.run(config, client, db, request)
        [pulled] = [r for r in caplog.records if r.getMessage() == "pull.done"]
        return result, pulled.orders_in_window

    beside, beside_count = run(shop)
    monkeypatch.setattr(order_store, "BATCH", 1)  # chunks of 5 documents...
    monkeypatch.setattr(job, "ORDERS_BESIDE_PULL", 3)  # ...so the limit is passed after the first
    after, after_count = run(twin)
    assert beside_count > 3  # read beside the pull, more orders than the patched limit allows
    assert after_count is None  # not read beside the pull
    assert after.counts == beside.counts and sum(after.counts.values()) > 10
    assert after.summary.discrepancies == beside.summary.discrepancies
