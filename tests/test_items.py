"""Open items across runs (wire-protocol MongoDB) and the movement rules (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

from reconcile.decide import classify as c
from reconcile.decide import items as item_rules
from reconcile.decide import movements
from reconcile.store import items
from reconcile.timeutil import to_unix

T = datetime(2026, 11, 18, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def finding(key: str, anchor: datetime, **kw) -> dict:
    return {
        "key": key,
        "kind": kw.pop("kind", c.PAID_WITHOUT_CHARGE),
        "source": "order",
        "order_key": key,
        "charge_id": None,
        "charge_ids": [],
        "object_id": None,
        "anchor": to_unix(anchor),
        "amount": 2500,
        "currency": "usd",
        "detail": "x",
        "livemode": False,
        "email": None,
        **kw,
    }


def test_buckets():
    assert [item_rules.bucket(d) for d in (0, 1, 2, 7, 8, 30, 31, 400)] == [
        "0-1 day",
        "0-1 day",
        "2-7 days",
        "2-7 days",
        "8-30 days",
        "8-30 days",
        "over 30 days",
        "over 30 days",
    ]


def test_an_item_seen_again_is_the_same_item_and_ages(db):
    col = db["reconcile_items"]
    a = finding("a", T - timedelta(hours=2))
    first = items.sync(col, [a], since=T - DAY, until=T, run_id="r1", now=T)
    assert first.new == 1 and first.open[0]["age_days"] == 0 and first.open[0]["is_new"]
    # Nine days later, a run whose window does not cover it re-checks it and still finds it.
    later = T + 9 * DAY
    second = items.sync(col, [], since=later - DAY, until=later, run_id="r2", now=later, confirmed=[a], checked=["a"])
    assert second.new == 0 and len(second.open) == 1 and col.count_documents({}) == 1
    doc = second.open[0]
    assert doc["age_days"] == 9 and doc["bucket"] == "8-30 days" and not doc["is_new"]
    assert doc["first_seen"] == to_unix(T) and doc["last_seen"] == to_unix(later) and doc["times_seen"] == 2
    assert second.buckets == {"0-1 day": 0, "2-7 days": 0, "8-30 days": 1, "over 30 days": 0}


def test_items_are_resolved_only_when_a_run_proves_them_gone(db):
    col = db["reconcile_items"]
    old, inside, cleared = (
        finding("old", T - 5 * DAY),
        finding("inside", T - timedelta(hours=3)),
        finding("fixed", T - 6 * DAY),
    )
    items.sync(col, [old, inside, cleared], since=T - 7 * DAY, until=T, run_id="r1", now=T)
    # The next window covers `inside`'s order and does not find it; `old` nobody could check; `fixed` was re-checked.
    result = items.sync(
        col,
        [],
        since=T - timedelta(hours=4),
        until=T + timedelta(hours=1),
        run_id="r2",
        now=T + timedelta(hours=1),
        cleared={"fixed": "re-checked: order is now ok"},
        checked=["fixed"],
    )
    assert sorted(d["_id"] for d in result.resolved) == ["fixed", "inside"]
    assert [d["_id"] for d in result.open] == ["old"]
    fixed = col.find_one({"_id": "fixed"})
    assert (
        fixed["state"] == "resolved" and fixed["resolved_run"] == "r2" and fixed["resolution"].startswith("re-checked")
    )
    # It comes back: the same item reopens as a new occurrence.
    again = items.sync(col, [cleared], since=T, until=T + DAY, run_id="r3", now=T + DAY)
    assert again.new == 1 and col.find_one({"_id": "fixed"})["reopened"] == 1


def test_dry_run_changes_no_items(db):
    col = db["reconcile_items"]
    result = items.sync(col, [finding("a", T)], since=T - DAY, until=T + DAY, run_id="r1", now=T, dry_run=True)
    assert len(result.open) == 1 and col.count_documents({}) == 0


def test_core_findings_have_stable_keys_and_every_charge_named():
    frame = pd.DataFrame(
        [
            {col: None for col in c.RESULT_COLUMNS}
            | {
                "outcome": c.DUPLICATE_CHARGE,
                "order_key": "o1",
                "charge_id": "ch_aaaaaaaa",
                "order_created": 100,
                "detail": "2 succeeded charges: ch_aaaaaaaa, ch_bbbbbbbb",
                "charge_ids": ["ch_aaaaaaaa", "ch_bbbbbbbb"],
                "amount": 1800,
                "currency": "usd",
            }
        ]
    )
    (f,) = item_rules.core_findings(frame)
    assert f["key"] == "duplicate_charge:o1:ch_aaaaaaaa" and f["charge_ids"] == ["ch_aaaaaaaa", "ch_bbbbbbbb"]
    assert f["anchor"] == 100 and f["source"] == "order"


def charge(**kw) -> dict:
    return {
        "charge_id": "ch_1",
        "order_ref": "o1",
        "amount_captured": 5000,
        "amount_refunded": 5000,
        "refunded": True,
        "currency": "usd",
        "created": 1,
        "livemode": False,
        "email": None,
        **kw,
    }


def move(obj: str, status: str, **kw) -> dict:
    return {
        "object": obj,
        "object_id": f"{obj[:2]}_1",
        "created": 10,
        "status": status,
        "amount": 5000,
        "currency": "usd",
        "reason": "fraudulent" if obj == "dispute" else None,
        "failure_reason": None,
        "due_by": None,
        "charge_id": "ch_1",
        "charge": charge(),
        **kw,
    }


ORDER = {
    "order_key": "o1",
    "status": "accepted",
    "amount": 5000,
    "currency": "usd",
    "stored_charge_id": None,
    "email": None,
}


def judged(row, order=ORDER, flagged=()):
    (f,) = movements.evaluate([row], [order] if order else [], ("accepted",), flagged)
    return f.kind, f.needs_person


def test_movement_rules():
    assert judged(move("refund", "succeeded")) == (movements.REFUNDED_ORDER_STILL_PAID, True)
    assert judged(move("refund", "succeeded"), ORDER | {"status": "refunded"}) == (movements.REFUND, False)
    assert judged(move("refund", "succeeded"), flagged={"o1"}) == (movements.REFUND, False)  # listed once
    partial = move("refund", "succeeded", amount=1000, charge=charge(amount_refunded=1000, refunded=False))
    assert judged(partial) == (movements.PARTIAL_REFUND, False)
    assert judged(move("refund", "failed", failure_reason="expired_or_canceled_card")) == (
        movements.REFUND_FAILED,
        True,
    )
    assert judged(move("dispute", "needs_response", due_by=1_800_000_000)) == (movements.DISPUTE_OPEN, True)
    assert judged(move("dispute", "lost")) == (movements.DISPUTE_LOST, True)
    assert judged(move("dispute", "lost"), ORDER | {"status": "refunded"}) == (movements.DISPUTE_CLOSED, False)
    assert judged(move("dispute", "won")) == (movements.DISPUTE_CLOSED, False)
    # The order is found by its stored charge id when the charge's metadata names none.
    row = move("refund", "succeeded", charge=charge(order_ref=None))
    (f,) = movements.evaluate([row], [ORDER | {"stored_charge_id": "ch_1"}], ("accepted",))
    assert f.order_key == "o1" and f.kind == movements.REFUNDED_ORDER_STILL_PAID
