"""Reports to look at: the demo shop's, and a backfill of the demo mix seeded many times (~65 charges each).

Used by tests/test_report_browser.py and by scripts/report_screens.py (screenshots for review). Each call
starts its own Stripe stand-in and embedded nx-27017 on loopback, seeds them, and runs the whole invocation.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

from bson import ObjectId

from reconcile.config import parse_config
from reconcile.demo.embedded_mongo import EmbeddedMongo
from reconcile.demo.shop import (
    DEMO_KEY,
    KEY_ENV,
    URI_ENV,
    demo_config,
    seed_demo_bank,
    seed_demo_payouts,
    seed_demo_shop,
)
from reconcile.demo.standin import StandinStore, serve
from reconcile.run import bank as bank_run
from reconcile.run import invocation as orchestrate
from reconcile.store import items as item_store
from reconcile.store import mongo
from reconcile.stripe import pull as stripe_pull
from reconcile.timeutil import utcnow

ORDER_URL = "https://admin.shop.example/orders/{order_id}"
BACKFILL_COPIES = 38  # ~2,500 charges


def _resolve_and_unreport(db, config, items) -> None:
    """The orders of the open "paid without a charge" items gone (the next run resolves those items), and every
    run's changes unreported (the next report lists them as changes made by earlier runs)."""
    orders = db[config.mongodb.orders_collection]
    for doc in items.find({"kind": "paid_without_charge", "state": "open"}):
        key = doc["order_key"]
        orders.delete_one({"_id": ObjectId(key) if ObjectId.is_valid(key) else key})
    db[config.mongodb.runs_collection].update_many({}, {"$set": {"changes_reported": False}})


def shop_report(
    report_dir: Path,
    copies: int = 1,
    order_url: str | None = ORDER_URL,
    decided: int = 0,
    trend_days: int | None = None,
    every_section: bool = False,
) -> Path:
    """Seed the demo mix `copies` times (each a few minutes earlier), run the job over the day, return the HTML.

    `decided`: after a first run, that many of its items are acknowledged and accepted by people (alternately,
    through store/items.decide as `reconcile items` does) and the day is run again: the report of that run.
    `every_section`: the same, and before the second run the orders of the first run's "paid without a charge"
    items are deleted (the second run resolves them) and the first run's changes are marked unreported (the second
    report lists them as earlier changes): a report with every section filled."""
    now = utcnow()
    store = StandinStore(api_key=DEMO_KEY)
    saved = {name: os.environ.get(name) for name in (KEY_ENV, URI_ENV)}
    try:
        with EmbeddedMongo() as server, serve(store, log_requests=False) as stripe_server:
            # Every section: the bank statement too (a payout on it, one missing, a deposit no payout explains).
            statement = report_dir.parent / f"{report_dir.name}-statement.csv" if every_section else None
            raw = demo_config(stripe_server.url, statement)
            raw["report"] = {"order_url": order_url} if order_url else {}
            if trend_days is not None:
                raw["report"]["trend_days"] = trend_days
            config = parse_config(raw, "report pages")
            os.environ[KEY_ENV], os.environ[URI_ENV] = DEMO_KEY, server.uri
            db = mongo.connect(config.mongodb_uri(), config.mongodb)
            for copy in range(copies):
                seed_demo_shop(
                    store, db[config.mongodb.orders_collection], now - timedelta(minutes=7 * copy), 100 * copy
                )
            if every_section:  # payouts too: a paid one itemized and a failed one in the queue
                seed_demo_payouts(store, db[config.mongodb.orders_collection], now)
                assert statement is not None
                seed_demo_bank(
                    store, db[config.mongodb.orders_collection], db[config.payouts.collection], statement, now
                )
            statements = bank_run.statements_of(config.bank)
            client = stripe_pull.make_client(config.stripe_api_key(), config.stripe)
            inv = orchestrate.Invocation(
                now=utcnow(),
                since=now - timedelta(days=1),
                report_dir=report_dir,
                trigger="test",
                statements=statements,
            )
            scan_db = mongo.connect_for_scans(config.mongodb_uri(), config.mongodb)
            result = orchestrate.run_windows(config, client, db, inv, scan_db=scan_db).runs[-1].result
            if decided or every_section:
                items, decisions = db[config.mongodb.items_collection], db[config.mongodb.decisions_collection]
                if every_section:
                    _resolve_and_unreport(db, config, items)
                # Order items only: the payout and bank items stay open, for the queue the "full" report checks
                # (which items list first among those seen together depends on their random ids).
                open_items = item_store.list_items(items, ("open",))
                taken = [d for d in open_items if d.get("source") not in ("payout", "bank")][:decided]
                # Where every decided item is: the test checks the report's CSV has each one.
                (report_dir / "decided-keys.txt").write_text("".join(f"{d['_id']}\n" for d in taken))
                for n, doc in enumerate(taken):
                    if n % 2:
                        item_store.decide(items, decisions, doc, "accept", "bob", f"explained {n}", utcnow())
                    else:
                        item_store.decide(items, decisions, doc, "ack", "alice", f"on it {n}", utcnow())
                inv = orchestrate.Invocation(
                    now=utcnow(),
                    since=now - timedelta(days=1),
                    report_dir=report_dir,
                    trigger="test",
                    statements=statements,
                )
                result = orchestrate.run_windows(config, client, db, inv, scan_db=scan_db).runs[-1].result
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return result.report.html
