"""Reports to look at: the demo shop's, and a backfill of the demo mix seeded many times (~65 charges each).

Used by tests/test_report_browser.py and by scripts/report_screens.py (screenshots for review). Each call
starts its own Stripe stand-in and embedded nx-27017 on loopback, seeds them, and runs the whole invocation.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

from reconcile.config import parse_config
from reconcile.demo.embedded_mongo import EmbeddedMongo
from reconcile.demo.shop import DEMO_KEY, KEY_ENV, URI_ENV, demo_config, seed_demo_shop
from reconcile.demo.standin import StandinStore, serve
from reconcile.run import invocation as orchestrate
from reconcile.store import mongo
from reconcile.stripe import pull as stripe_pull
from reconcile.timeutil import utcnow

ORDER_URL = "https://admin.shop.example/orders/{order_id}"
BACKFILL_COPIES = 38  # ~2,500 charges


def shop_report(report_dir: Path, copies: int = 1, order_url: str | None = ORDER_URL) -> Path:
    """Seed the demo mix `copies` times (each a few minutes earlier), run the job over the day, return the HTML."""
    now = utcnow()
    store = StandinStore(api_key=DEMO_KEY)
    saved = {name: os.environ.get(name) for name in (KEY_ENV, URI_ENV)}
    try:
        with EmbeddedMongo() as server, serve(store, log_requests=False) as stripe_server:
            raw = demo_config(stripe_server.url)
            raw["report"] = {"order_url": order_url} if order_url else {}
            config = parse_config(raw, "report pages")
            os.environ[KEY_ENV], os.environ[URI_ENV] = DEMO_KEY, server.uri
            db = mongo.connect(config.mongodb_uri(), config.mongodb)
            for copy in range(copies):
                seed_demo_shop(
                    store, db[config.mongodb.orders_collection], now - timedelta(minutes=7 * copy), 100 * copy
                )
            client = stripe_pull.make_client(config.stripe_api_key(), config.stripe)
            inv = orchestrate.Invocation(
                now=utcnow(), since=now - timedelta(days=1), report_dir=report_dir, trigger="test"
            )
            scan_db = mongo.connect_for_scans(config.mongodb_uri(), config.mongodb)
            result = orchestrate.run_windows(config, client, db, inv, scan_db=scan_db).runs[-1].result
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return result.report.html
