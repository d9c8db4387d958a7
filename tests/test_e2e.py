"""End to end: the `reconcile` command against the Stripe stand-in (HTTP, official SDK) and nx-27017.

nx-27017 gaps (MongoDB differs; the job stays correct for real MongoDB):
- an ObjectId `_id` also matches a string `_id` with the same hex, so id-type precision is
  checked again with mongomock in test_job_mongomock.py;
- `$set` of a datetime stores a string: assertions here do not read `reconcile.paid_at` as a date.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import mongomock
import pandas as pd
import pytest
from bson import ObjectId

from reconcile.config import parse_config
from reconcile.decide import classify as c
from reconcile.demo.shop import demo_sections, seed_demo_shop
from reconcile.run.settings import repair_store
from reconcile.store.orders import load_orders
from reconcile.store.repair import apply_repairs, heal_audit
from reconcile.timeutil import to_unix


def snapshot(db) -> dict:
    """The shop's data and the audit trail (the job's run history and items change on every run)."""
    return {name: sorted(map(repr, db[name].find())) for name in ("orders", "reconcile_audit")}


def test_every_outcome_end_to_end(cli, store, db, now):
    expected = seed_demo_shop(store, db["orders"], now)
    cli.configure(**demo_sections())  # the demo shop uses every Stripe integration style
    result = cli()
    assert result.exit_code == 1, result.output
    counts = result.summary["counts"]
    assert {k: v for k, v in counts.items() if v} == dict(expected)
    assert "needs attention: " in result.output

    # Repairs are exactly the stuck orders, no more.
    repaired = set(result.summary["repaired"])
    assert len(repaired) == expected[c.REPAIRED]
    changed = {str(d["_id"]) for d in db["orders"].find({"reconcile": {"$exists": True}})}
    assert changed == repaired | set(result.summary["marked_failed"])
    for doc in db["orders"].find({"reconcile.action": "repaired"}):
        assert doc["status"] == "accepted"
        assert doc["charge_id"] == doc["reconcile"]["charge_id"]
        assert doc["reconcile"]["run_id"] == result.summary["run_id"]
    audit = list(db["reconcile_audit"].find())
    assert sorted(a["order_key"] for a in audit) == sorted(repaired | set(result.summary["marked_failed"]))
    assert all(a["undo"]["set"]["status"] == "created" for a in audit)

    # Hostile metadata is escaped; JPY totals are whole yen.
    html = Path(result.summary["report"]["html"]).read_text()
    assert "<script>alert" not in html and "&lt;script&gt;" in html
    assert result.summary["totals"]["jpy"]["gross"] == 4980
    assert "4,980 JPY" in html


def test_second_run_changes_nothing(cli, store, db, now):
    seed_demo_shop(store, db["orders"], now)
    cli.configure(**demo_sections())
    first = cli()
    before = snapshot(db)
    second = cli("--since", "24h")  # the same window again (without --since it would start at the watermark)
    assert second.summary["repaired"] == [] and second.summary["marked_failed"] == []
    mended = len(first.summary["repaired"]) + len(first.summary["marked_failed"])
    assert second.summary["counts"]["ok"] == first.summary["counts"]["ok"] + mended
    assert snapshot(db) == before


def test_dry_run_changes_nothing_and_lists_what_it_would_do(cli, store, db, now):
    expected = seed_demo_shop(store, db["orders"], now)
    cli.configure(**demo_sections())
    before = snapshot(db)
    result = cli("--dry-run")
    assert snapshot(db) == before
    assert len(result.summary["repaired"]) == expected[c.REPAIRED] and result.summary["dry_run"] is True
    assert "DRY RUN" in result.output
    assert "Dry run:" in Path(result.summary["report"]["html"]).read_text()


def test_order_updated_between_load_and_repair_is_left_alone(store, db, now, shop):
    config = parse_config({"mongodb": {"database": db.name}})
    oid = shop.order(c.REPAIRED)
    ch = shop.charge(oid)
    from reconcile.run.settings import rules_for

    records = load_orders(db["orders"], config.orders, now - timedelta(days=1), now)
    charge_row = {
        **{k: None for k in c.CHARGE_COLUMNS},
        "charge_id": ch["id"],
        "created": ch["created"],
        "status": "succeeded",
        "captured": True,
        "amount": 2500,
        "amount_captured": 2500,
        "amount_refunded": 0,
        "refunded": False,
        "disputed": False,
        "currency": "usd",
        "order_ref": str(oid),
        "in_window": True,
    }
    outcomes = c.classify(c.orders_frame(records), c.charges_frame([charge_row]), rules_for(config, now))
    assert outcomes.loc[0, "outcome"] == c.REPAIRED
    # Meanwhile the live checkout finally writes its own answer.
    db["orders"].update_one({"_id": oid}, {"$set": {"status": "failed"}})
    done = apply_repairs(repair_store(db, config), outcomes, "run-race", now)
    assert done.lost_race == [str(oid)] and done.repaired == []
    assert db["orders"].find_one({"_id": oid})["status"] == "failed"
    assert db["reconcile_audit"].count_documents({}) == 0


@pytest.mark.parametrize("server", ["nx-27017", "mongomock"])
def test_healing_keeps_audit_records_already_written(db, now, server):
    """A run stopped after inserting its audit records but before clearing the orders' flags: the next
    run's healing inserts only what is missing (one unordered insert; a record already there is a
    duplicate key, not an error) and clears every flag."""
    if server == "mongomock":
        db = mongomock.MongoClient(tz_aware=True).shop
    config = parse_config({"mongodb": {"database": db.name}})
    ids = [ObjectId(), "ord-2", ObjectId()]
    db["orders"].insert_many(
        [
            {
                "_id": i,
                "status": "created",
                "amount": 1000 + n,
                "currency": "usd",
                "created_at": now - timedelta(hours=2),
            }
            for n, i in enumerate(ids)
        ]
    )
    outcomes = pd.DataFrame(
        {
            "outcome": c.REPAIRED,
            "order_key": [str(i) for i in ids],
            "order_id": ids,
            "charge_id": [f"ch_{n}" for n in range(3)],
            "charge_created": to_unix(now - timedelta(hours=2)),
            "stored_charge_id": None,
            "amount": [1000, 1001, 1002],
            "currency": "usd",
        }
    )
    done = apply_repairs(repair_store(db, config), outcomes, "run-1", now)
    assert len(done.repaired) == 3
    written = sorted(map(repr, db["reconcile_audit"].find()))
    # As if the clearing of the flags never arrived, and one record was lost as well.
    db["orders"].update_many({}, {"$set": {"reconcile.audit": "pending"}})
    db["reconcile_audit"].delete_one({"order_key": "ord-2"})
    healed = heal_audit(repair_store(db, config))
    assert sorted(healed) == sorted(str(i) for i in ids)
    assert sorted(map(repr, db["reconcile_audit"].find())) == written  # the same records, one each
    assert db["orders"].count_documents({"reconcile.audit": "pending"}) == 0
    assert heal_audit(repair_store(db, config)) == []  # nothing owed any more


def test_pagination_across_many_pages(cli, store, db, now, stripe_server, shop):
    for i in range(250):
        oid = shop.order(None, status="accepted", amount=100 + i, age=timedelta(hours=1, seconds=i))
        shop.charge(oid, amount=100 + i, age=timedelta(hours=1, seconds=i))
    result = cli()
    assert result.exit_code == 0, result.output
    assert result.summary["counts"]["ok"] == 250
    charge_pages = [q for m, p, q in stripe_server.request_log if p == "/v1/charges"]
    # What the first page leaves is walked by cursor and in time slices.
    assert any("starting_after" in q for q in charge_pages)
    assert len({(q["created[gte]"], q["created[lt]"]) for q in charge_pages}) > 1


def test_charge_just_after_the_window_is_found(cli, store, db, now, shop):
    until = now - timedelta(hours=1)
    oid = shop.order(None, status="accepted", age=timedelta(hours=1, seconds=5))
    shop.charge(oid, age=timedelta(minutes=59))  # landed 1 minute after --until
    result = cli("--until", until.strftime("%Y-%m-%dT%H:%M:%S"))
    assert result.summary["counts"]["ok"] == 1, result.summary
    assert result.summary["counts"]["orphan_charge"] == 0
    assert result.exit_code == 0


def test_stored_charge_id_outside_the_window_is_retrieved(cli, store, db, now, shop):
    ch = shop.charge(None, metadata={}, age=timedelta(days=3))
    shop.order(None, status="accepted", charge_id=ch["id"], age=timedelta(hours=2))
    result = cli()
    assert result.summary["counts"]["ok"] == 1, result.summary
    assert result.exit_code == 0


def test_objectid_and_string_ids_are_repaired_with_their_own_type(cli, store, db, now, shop):
    oid = shop.order(c.REPAIRED, object_id=True)
    sid = shop.order(c.REPAIRED, object_id=False)
    shop.charge(oid)
    shop.charge(sid)
    result = cli()
    assert result.exit_code == 0, result.output
    assert sorted(result.summary["repaired"]) == sorted([str(oid), sid])
    assert isinstance(db["orders"].find_one({"_id": oid})["_id"], ObjectId)
    assert db["orders"].find_one({"_id": sid})["status"] == "accepted"


def test_mongodb_down_exits_3_with_one_line(cli, monkeypatch):
    monkeypatch.setenv("MONGODB_URI", "mongodb://127.0.0.1:9/?directConnection=true")
    cli.configure(mongodb={"server_selection_timeout": "1s"})
    result = cli()
    assert result.exit_code == 3
    assert result.output.strip().splitlines()[-1].startswith("reconcile: error: MongoDB unavailable while connecting")


def test_stripe_unreachable_exits_3(cli, store, db, now, shop, monkeypatch):
    from reconcile.demo.embedded_mongo import free_port

    cli.api_base = f"http://127.0.0.1:{free_port()}"
    cli.configure(stripe={"max_network_retries": 0})
    result = cli()
    assert result.exit_code == 3
    # The window's lists are pulled side by side: whichever is refused first names the path.
    assert re.search(r"Stripe unavailable at /v1/(charges|balance_transactions): cannot reach ", result.output)


def test_bad_stripe_key_exits_2_without_showing_it(cli, monkeypatch):
    monkeypatch.setenv("STRIPE_API_KEY", "sk_test_wrongwrongwrong12345")
    result = cli()
    assert result.exit_code == 2
    assert "Stripe rejected the API key" in result.output
    assert "wrongwrongwrong12345" not in result.output


def test_audit_of_a_repair_without_a_stored_charge_id_among_orders_with_one(cli, store, db, now, shop):
    """A frame column mixing charge ids and missing ones holds NaN for the missing: never written as one."""
    paid = shop.order(c.OK, status="accepted", amount=1200)
    charge = shop.charge(paid, amount=1200)
    db["orders"].update_one({"_id": paid}, {"$set": {"charge_id": charge["id"]}})
    stuck = shop.order(c.REPAIRED, amount=3100)
    shop.charge(stuck, amount=3100)
    result = cli()
    assert result.summary["repaired"] == [str(stuck)], result.output
    [audit] = list(db["reconcile_audit"].find())
    assert audit["previous_charge_id"] is None
    assert audit["undo"]["set"] == {"status": "created"}
    assert audit["undo"]["unset"] == ["reconcile", "charge_id"]


def charge_list_ranges(stripe_server) -> list[tuple[int, int]]:
    return [
        (int(q["created[gte]"]), int(q["created[lt]"]))
        for _, p, q in stripe_server.request_log
        if p == "/v1/charges" and "created[gte]" in q
    ]


def test_edge_look_reaches_only_as_far_past_the_window_as_its_orders_need(cli, store, db, now, shop, stripe_server):
    shop.order(c.STALE_PENDING, age=timedelta(hours=5))  # mid-window: a charge of it would be inside
    result = cli("--since", "24h")  # both runs over the same day (a watermark would start the second later)
    assert result.summary["counts"]["stale_pending"] == 1
    window = charge_list_ranges(stripe_server)[0]  # the first request asks for the whole window
    assert all(window[0] <= lo and hi <= window[1] for lo, hi in charge_list_ranges(stripe_server))

    stripe_server.request_log.clear()
    shop.order(c.STALE_PENDING, age=timedelta(hours=23, minutes=50))  # 10 minutes after the window opens
    result = cli("--since", "24h")
    assert result.summary["counts"]["stale_pending"] == 2
    ranges = charge_list_ranges(stripe_server)
    since = ranges[0][0]
    outside = [(lo, hi) for lo, hi in ranges if hi <= since]
    assert len(outside) == 1 and 19 * 60 <= outside[0][1] - outside[0][0] <= 21 * 60  # 30 min slack - 10 min
    assert all(lo >= since for lo, hi in ranges if (lo, hi) not in outside)  # nothing looked at after the window
