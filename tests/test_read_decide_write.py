"""Read, decide, write: a window run reads everything before its first write (issue 11, item 1).

Refunds and disputes used to be pulled after the repairs: a 403, 401 or 500 on /v1/disputes or
/v1/refunds then left orders changed and no report listing them. Now every Stripe read of the run
comes first: such a failure ends the run with nothing changed. The CLI runs end to end against the
stand-in over HTTP and nx-27017.
"""

from __future__ import annotations

import pytest
import stripe
from faultkit import FAST, assert_error_summary, assert_run_recorded

from reconcile.decide import classify as c


@pytest.fixture(autouse=True)
def fast_sdk_retries(monkeypatch):
    monkeypatch.setattr(stripe.HTTPClient, "INITIAL_DELAY", 0.001)
    monkeypatch.setattr(stripe.HTTPClient, "MAX_DELAY", 0.005)


def snapshot(db) -> dict:
    return {name: sorted(map(repr, db[name].find())) for name in ("orders", "reconcile_audit")}


def seed_stuck(shop, count: int = 12) -> None:
    """A window of stuck orders (paid in Stripe, `created` in the shop) and a few to mark failed."""
    for i in range(count):
        shop.charge(shop.order(c.REPAIRED, amount=1000 + i), amount=1000 + i)
    for _ in range(3):
        shop.charge(shop.order(c.MARKED_FAILED), status="failed")


@pytest.mark.parametrize(
    "path, fault, code, line",
    [
        ("/v1/disputes", "403", 2, "may not read /v1/disputes (HTTP 403"),
        ("/v1/disputes", "500", 3, "Stripe unavailable at /v1/disputes"),
        ("/v1/refunds", "401", 2, "HTTP 401"),
    ],
)
def test_refunds_or_disputes_failing_end_the_run_before_any_order_changes(
    cli, stripe_server, shop, db, tmp_path, path, fault, code, line
):
    cli.configure(**FAST)
    seed_stuck(shop)
    before = snapshot(db)
    stripe_server.inject(path, fault, times=None)  # past every retry
    result = cli()
    assert result.exit_code == code, result.output
    assert line in result.stderr.strip().splitlines()[-1]
    assert snapshot(db) == before  # not one order changed, no audit record
    assert_error_summary(result.summary, code, result.stderr)
    assert_run_recorded(db, result.summary, "failed")
    assert db["reconcile_state"].find_one({"_id": "watermark"}) is None
    assert not (tmp_path / "reports").exists() or not any((tmp_path / "reports").iterdir())
    # Stripe answers again: the next run repairs them all and reports them.
    stripe_server.clear_faults()
    again = cli()
    assert again.exit_code in (0, 1), again.output
    assert len(again.summary["repaired"]) == 12 and len(again.summary["marked_failed"]) == 3


def test_restricted_key_without_dispute_read_changes_nothing(cli, stripe_server, store, shop, db, monkeypatch):
    """A restricted key that may read charges and balance but not disputes: exit 2 naming the permission."""
    cli.configure(**FAST)
    seed_stuck(shop)
    restricted = "rk_test_51Hnodisputes0keyQQ7yEnd"
    store.restricted_keys[restricted] = {"/v1/disputes"}
    monkeypatch.setenv("STRIPE_API_KEY", restricted)
    before = snapshot(db)
    result = cli()
    assert result.exit_code == 2, result.output
    line = result.stderr.strip().splitlines()[-1]
    assert "may not read /v1/disputes (HTTP 403" in line and "rak_dispute_read" in line
    assert snapshot(db) == before
    assert_error_summary(result.summary, 2, result.stderr)


def test_audit_records_owed_by_a_dead_run_are_written_only_after_every_read(cli, stripe_server, shop, db):
    """An order a killed run changed without its audit record: healing it is a write, so it waits for the
    reads too; a failing read leaves it flagged, and the next run heals and reports it."""
    cli.configure(**FAST)
    seed_stuck(shop, 2)
    owed = shop.order(None, status="accepted")
    marker = {"action": c.REPAIRED, "run_id": "20261130T000000Z-dead00", "at": shop.now, "audit": "pending"}
    db["orders"].update_one({"_id": owed}, {"$set": {"reconcile": marker, "charge_id": "ch_owed"}})
    before = snapshot(db)
    stripe_server.inject("/v1/disputes", "403", times=None)
    assert cli().exit_code == 2
    assert snapshot(db) == before  # still flagged, no record written
    stripe_server.clear_faults()
    again = cli()
    assert again.exit_code in (0, 1), again.output
    assert again.summary["audit_healed"] == [str(owed)]
    assert [e["order_id"] for e in again.summary["earlier_changes"]] == [str(owed)]
    assert db["reconcile_audit"].count_documents({"order_key": str(owed)}) == 1
