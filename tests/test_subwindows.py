"""Long windows in pieces: the same outcomes as one piece, each order once, repairs once."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest

from reconcile import classify as c
from reconcile.subwindows import Merge, add_totals, pieces
from reconcile.timeutil import to_unix

T = datetime(2026, 11, 20, tzinfo=timezone.utc)
DAY = timedelta(days=1)


def test_pieces_cover_the_window_exactly():
    assert pieces(T, T + 2 * DAY + timedelta(hours=5), DAY) == [
        (T, T + DAY), (T + DAY, T + 2 * DAY), (T + 2 * DAY, T + 2 * DAY + timedelta(hours=5)),
    ]
    assert pieces(T, T + timedelta(hours=1), DAY) == [(T, T + timedelta(hours=1))]
    assert pieces(T, T, DAY) == []


def rows(*items: tuple[str, str | None, datetime | None]) -> pd.DataFrame:
    """(outcome, order key or None for a charge-only row, order created)."""
    frame = pd.DataFrame({
        "outcome": [o for o, _, _ in items],
        "order_key": [k for _, k, _ in items],
        "order_id": [k for _, k, _ in items],
        "order_created": pd.array([to_unix(t) if t else None for _, _, t in items], dtype="Int64"),
        "charge_id": [f"ch_{n}" for n in range(len(items))],
    })
    return frame


def test_each_order_counts_once_and_a_later_piece_fills_in_a_missing_charge():
    merge = Merge()
    first = rows(
        (c.OK, "a", T + timedelta(hours=1)),
        (c.STALE_PENDING, "late", T + timedelta(hours=23)),  # its charge comes in the next piece
        (c.REPAIRED, "edge", T + timedelta(hours=23, minutes=59)),  # found by the edge look
        (c.ORPHAN_CHARGE, None, None),
    )
    admitted = merge.admit(first, T, T + DAY)
    assert len(admitted) == 4
    merge.keep(admitted)

    second = rows(
        (c.REPAIRED, "late", T + timedelta(hours=23)),  # replaces stale_pending
        (c.OK, "edge", T + timedelta(hours=23, minutes=59)),  # repaired by the first piece: ignored
        (c.OK, "a", T + timedelta(hours=1)),  # a second look at an ok order: ignored
        (c.OK, "b", T + DAY + timedelta(hours=2)),
        (c.ORPHAN_CHARGE, None, None),
    )
    admitted = merge.admit(second, T + DAY, T + 2 * DAY)
    assert list(admitted["order_key"].fillna("-")) == ["late", "b", "-"]
    merge.keep(admitted)

    assert {k: v for k, v in merge.outcome_counts().items() if v} == {
        c.OK: 2, c.REPAIRED: 2, c.ORPHAN_CHARGE: 2,
    }
    listed = merge.outcomes()
    assert sorted(listed["order_key"].dropna()) == ["edge", "late"]
    assert set(listed.loc[listed["order_key"] == "late", "outcome"]) == {c.REPAIRED}


def test_order_outside_the_window_belongs_to_the_first_piece_naming_it():
    merge = Merge()
    old = T - timedelta(days=3)
    merge.keep(merge.admit(rows((c.OK, "old", old)), T, T + DAY))
    assert merge.admit(rows((c.REPAIRED, "old", old)), T + DAY, T + 2 * DAY).empty
    assert merge.outcome_counts()[c.OK] == 1 and merge.outcome_counts()[c.REPAIRED] == 0


def test_order_named_before_its_own_piece_is_not_counted_again_there():
    merge = Merge()
    later = T + DAY + timedelta(hours=1)  # created in the second piece, its charge came earlier
    merge.keep(merge.admit(rows((c.OK, "early-charge", later)), T, T + DAY))
    assert merge.admit(rows((c.OK, "early-charge", later)), T + DAY, T + 2 * DAY).empty


def test_a_replaced_finding_is_not_replaced_twice():
    merge = Merge()
    created = T + timedelta(hours=20)
    merge.keep(merge.admit(rows((c.PAID_WITHOUT_CHARGE, "p", created)), T, T + DAY))
    merge.keep(merge.admit(rows((c.OK, "p", created)), T + DAY, T + 2 * DAY))
    assert merge.admit(rows((c.OK, "p", created)), T + 2 * DAY, T + 3 * DAY).empty
    counts = merge.outcome_counts()
    assert counts[c.OK] == 1 and counts[c.PAID_WITHOUT_CHARGE] == 0
    assert merge.outcomes().empty


def test_totals_of_pieces_add_up():
    a = {"usd": {"gross": 100, "fees": 3, "by_category": {"charge": {"amount": 100, "fee": 3, "net": 97, "count": 1}}}}
    b = {"usd": {"gross": 50, "fees": 2, "by_category": {"charge": {"amount": 50, "fee": 2, "net": 48, "count": 1},
                                                          "refund": {"amount": -10, "fee": 0, "net": -10, "count": 1}}},
         "eur": {"gross": 7, "fees": 0, "by_category": {}}}
    total = add_totals(add_totals({}, a), b)
    assert total["usd"]["gross"] == 150 and total["usd"]["by_category"]["charge"]["count"] == 2
    assert total["usd"]["by_category"]["refund"]["net"] == -10 and total["eur"]["gross"] == 7
    assert add_totals({}, a) == a


# --------------------------------------------------------------------------- end to end


def seed_three_days(shop, now):
    """Healthy orders spread over three days, stuck ones, and stuck orders whose charge landed in
    the next day's piece (just after midnight, and hours later)."""
    for n in range(12):
        age = timedelta(hours=6 * n + 3)
        oid = shop.order(None, status="accepted", amount=1000 + n, age=age)
        shop.charge(oid, amount=1000 + n, age=age - timedelta(seconds=2))
    for n in range(3):
        oid = shop.order(None, amount=2000 + n, age=timedelta(hours=20 * n + 5))
        shop.charge(oid, amount=2000 + n, age=timedelta(hours=20 * n + 5) - timedelta(seconds=5))


def test_a_window_in_pieces_reports_what_one_piece_reports(cli, store, db, now, shop):
    seed_three_days(shop, now)
    since = now - 3 * DAY  # pieces of one day are cut at since + 1 day and since + 2 days
    edge = shop.order(None, amount=3000, age=(now - (since + DAY)) + timedelta(seconds=20))  # 20 s before a cut
    shop.charge(edge, amount=3000, age=(now - (since + DAY)) - timedelta(seconds=40))  # 40 s after it
    late = shop.order(None, amount=3100, age=(now - (since + DAY)) + timedelta(hours=2))
    shop.charge(late, amount=3100, age=(now - (since + DAY)) - timedelta(hours=3))  # 5 h later, next piece
    orphan = shop.charge(None, amount=990, age=timedelta(hours=30))

    args = ("--since", since.strftime("%Y-%m-%dT%H:%M:%S"), "--dry-run")
    cli.configure(window={"sub_window": "4d"})
    whole = cli(*args)
    cli.configure(window={"sub_window": "1d"})
    split = cli(*args)
    assert split.summary and whole.summary, split.output + whole.output
    assert split.summary["counts"] == whole.summary["counts"], (split.summary["counts"], whole.summary["counts"])
    assert sorted(split.summary["repaired"]) == sorted(whole.summary["repaired"])
    assert str(edge) in split.summary["repaired"] and str(late) in split.summary["repaired"]
    assert split.summary["totals"] == whole.summary["totals"]
    assert [d["charge_id"] for d in split.summary["discrepancies"]] == [orphan["id"]]

    cli.configure(window={"sub_window": "1d"})
    repaired = cli("--since", since.strftime("%Y-%m-%dT%H:%M:%S"))
    assert sorted(repaired.summary["repaired"]) == sorted(whole.summary["repaired"])
    audit = list(db["reconcile_audit"].find())
    assert sorted(a["order_key"] for a in audit) == sorted(whole.summary["repaired"])  # each repaired once


def test_sub_window_must_be_at_least_a_minute(cli):
    cli.configure(window={"sub_window": "30s"})
    result = cli()
    assert result.exit_code == 2 and "window.sub_window must be at least 1m" in result.output
