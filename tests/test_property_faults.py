"""Property: whatever faults hit a run, the run after it leaves the database as one clean run would.

Hypothesis draws a shop (orders of every kind, ObjectId and string ids, three currencies,
orphan charges), a repair batch size, and a set of faults for the first run: Stripe errors,
resets, hangs and 429s from the stand-in, and MongoDB connections cut at a chosen command by
the wire-protocol proxy. The first run may fail (exit 3) anywhere; a second, clean run follows.
Its final orders and audit records must equal those of a single clean run on a twin database
holding the same orders, every change must have exactly one audit record, and nothing may be
changed twice.
"""

from __future__ import annotations

import itertools
from datetime import timedelta

import pymongo
import pytest
import stripe
from conftest import API_KEY, Cli
from faultkit import (
    FAST,
    SHORT_LEASE,
    TAKEOVER_WAIT,
    assert_audit_complete,
    assert_changed_summary,
    assert_error_summary,
    copy_orders,
    final_state,
)
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from mongoproxy import MongoProxy

from reconcile.demo.shop import ShopSeeder
from reconcile.demo.standin import StandinStore, serve
from reconcile.timeutil import utcnow

KINDS = (
    "stuck",
    "failed_only",
    "ok",
    "mismatch",
    "stale",
    "young",
    "paid_no_charge",
    "duplicate",
    "failed_but_charged",
)
STRIPE_FAULTS = ("500", "503", "drop", "429", "429_retry_after", "hang")
MONGO_POINTS = (("update", "orders"), ("find", "orders"), ("insert", "reconcile_audit"))

orders_strategy = st.lists(
    st.tuples(st.sampled_from(KINDS), st.booleans(), st.integers(1, 99_999), st.sampled_from(["usd", "jpy", "eur"])),
    min_size=1,
    max_size=10,
)
stripe_fault = st.tuples(
    st.just("stripe"),
    st.sampled_from(["/v1/charges", "/v1/balance_transactions"]),
    st.sampled_from(STRIPE_FAULTS),
    st.integers(1, 4),
)
mongo_fault = st.tuples(st.just("mongo"), st.sampled_from(MONGO_POINTS), st.integers(1, 3))
faults_strategy = st.lists(st.one_of(stripe_fault, mongo_fault), min_size=1, max_size=3)
MIXED = [
    ("stuck", True, 2500, "usd"),
    ("stuck", False, 990, "jpy"),
    ("failed_only", True, 1200, "eur"),
    ("ok", False, 4000, "usd"),
    ("mismatch", True, 700, "usd"),
    ("stale", False, 100, "usd"),
]

_examples = itertools.count()
WINDOW = ("--since", "24h")  # every seeded order and charge is at most a few hours old


def seed(shop: ShopSeeder, orders, orphans: int) -> None:
    for kind, object_id, amount, currency in orders:
        status = {
            "ok": "accepted",
            "paid_no_charge": "accepted",
            "duplicate": "accepted",
            "failed_but_charged": "failed",
        }.get(kind, "created")
        age = timedelta(minutes=3) if kind == "young" else timedelta(hours=2)
        oid = shop.order(None, status=status, amount=amount, currency=currency, age=age, object_id=object_id)
        if kind in ("stuck", "ok", "young", "failed_but_charged"):
            shop.charge(oid, amount=amount, currency=currency, age=age)
        elif kind == "failed_only":
            shop.charge(oid, amount=amount, currency=currency, status="failed")
        elif kind == "mismatch":
            shop.charge(oid, amount=amount + 1, currency=currency)
        elif kind == "duplicate":
            shop.charge(oid, amount=amount, currency=currency, age=timedelta(hours=2, minutes=1))
            shop.charge(oid, amount=amount, currency=currency)
    for i in range(orphans):
        shop.charge(None, amount=100 + i)


@pytest.fixture(autouse=True)
def fast_sdk_retries(monkeypatch):
    monkeypatch.setattr(stripe.HTTPClient, "INITIAL_DELAY", 0.001)
    monkeypatch.setattr(stripe.HTTPClient, "MAX_DELAY", 0.005)


@settings(
    max_examples=8,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(orders=orders_strategy, orphans=st.integers(0, 2), batch=st.integers(1, 4), faults=faults_strategy)
# Always tried as well: each point of a repair batch cut, and a Stripe page that fails past its retries.
@example(orders=MIXED, orphans=1, batch=2, faults=[("mongo", ("insert", "reconcile_audit"), 2)])
@example(orders=MIXED, orphans=0, batch=1, faults=[("mongo", ("find", "orders"), 3)])
@example(orders=MIXED, orphans=0, batch=2, faults=[("mongo", ("update", "orders"), 2)])
@example(orders=MIXED, orphans=1, batch=4, faults=[("stripe", "/v1/balance_transactions", "drop", 4)])
def test_a_faulted_run_then_a_clean_run_equals_one_clean_run(
    mongo_server, tmp_path, monkeypatch, orders, orphans, batch, faults
):
    n = next(_examples)
    client = pymongo.MongoClient(mongo_server.uri, tz_aware=True)
    store = StandinStore(api_key=API_KEY)
    db, twin = client[f"prop{n}"], client[f"prop{n}_twin"]
    seed(ShopSeeder(store, db["orders"], utcnow()), orders, orphans)
    copy_orders(db["orders"], twin["orders"])
    sections = {k: dict(v) for k, v in FAST.items()}
    sections["mongodb"]["repair_batch_size"] = batch

    def cli(name: str, database: str, uri: str, api_base: str, selection: str = "10s", timeout: str = "60s") -> Cli:
        folder = tmp_path / f"{n}-{name}"
        folder.mkdir()
        runner = Cli(folder, api_base, database, uri, monkeypatch)
        # A first run cut off from MongoDB cannot give its lease back: short ttl, and the next run waits for it.
        runner.configure(
            stripe=dict(sections["stripe"], timeout=timeout),
            mongodb=dict(sections["mongodb"], server_selection_timeout=selection),
            **SHORT_LEASE,
        )
        return runner

    try:
        with serve(store) as stripe_server, MongoProxy(mongo_server.port) as proxy:
            # One fixed window for all three runs (the comparison is of one window's work, not of a watermark).
            clean = cli("twin", twin.name, mongo_server.uri, stripe_server.url)(*WINDOW)
            assert clean.exit_code in (0, 1), clean.output

            for fault in faults:
                if fault[0] == "stripe":
                    _, path, kind, times = fault
                    stripe_server.inject(path, kind, times=times, retry_after=0)
                else:
                    _, (command, collection), nth = fault
                    proxy.on(command, collection, nth=nth)
            # Only the faulted run has short timeouts (a hang must time out; any outcome of it is allowed);
            # the clean runs, held to exit 0 or 1, have generous ones.
            first = cli("faulted", db.name, proxy.uri, stripe_server.url, selection="250ms", timeout="200ms")(*WINDOW)
            assert first.exit_code in (0, 1, 3), first.output
            if first.exit_code == 3:  # failed: it says so, counts nothing as done, lists what it changed
                changed = len(first.summary.get("repaired", [])) + len(first.summary.get("marked_failed", []))
                if changed:
                    assert_changed_summary(first.summary, 3, first.stderr, changed)
                else:
                    assert_error_summary(first.summary, 3, first.stderr)
            stripe_server.clear_faults()

            second = cli("after", db.name, mongo_server.uri, stripe_server.url)(*WINDOW, *TAKEOVER_WAIT)
            assert second.exit_code == clean.exit_code, second.output
        assert_audit_complete(db)
        assert final_state(db) == final_state(twin)
        changed_twice = set(first.summary.get("repaired", [])) & set(second.summary["repaired"])
        assert not changed_twice
        # Every change is listed: by the run that made it, or by the next run's report.
        listed = {
            *first.summary.get("repaired", []),
            *first.summary.get("marked_failed", []),
            *second.summary["repaired"],
            *second.summary["marked_failed"],
            *(e["order_id"] for e in second.summary["earlier_changes"]),
        }
        assert {r["order_key"] for r in db["reconcile_audit"].find()} <= listed
    finally:
        client.drop_database(db.name)
        client.drop_database(twin.name)
        client.close()
