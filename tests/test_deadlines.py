"""Each payment judged by its own deadline (docs/deadlines.md): the config, the order field, and a deadline
passing between two runs, through the real command with the Stripe stand-in and nx-27017.

The rules themselves are table-driven on the pure classify step (tests/test_classify.py, "deadlines").
"""

from __future__ import annotations

import csv
import json
import typing
from datetime import timedelta

import mongomock
import pandas as pd
import pytest
import stripe
from conftest import at

from reconcile.config import DEFAULT_SETTLE_WITHIN, PAYMENT_METHOD_TYPES, OrdersConfig, parse_config
from reconcile.decide import classify as c
from reconcile.decide import deadlines as deadline_rules
from reconcile.errors import ConfigError
from reconcile.store import deadlines as deadline_store
from reconcile.store import orders as order_store
from reconcile.timeutil import fmt, from_unix, to_unix

MINIMAL = {"mongodb": {"database": "shop"}}
DAY = timedelta(days=1)
H = timedelta(hours=1)


# --------------------------------------------------------------------------- config


def test_settle_within_defaults_and_a_table_laid_over_them():
    assert parse_config(MINIMAL).orders.settle_within == DEFAULT_SETTLE_WITHIN
    table = parse_config(MINIMAL | {"orders": {"settle_within": {"sepa_debit": "10d", "boleto": "4d"}}})
    seconds = table.orders.settle_seconds()
    assert seconds["sepa_debit"] == 10 * 86400 and seconds["boleto"] == 4 * 86400
    assert seconds["us_bank_account"] == 7 * 86400  # the defaults not named stay
    assert "card" not in seconds  # a card falls back to grace_period


def test_unknown_methods_are_each_named_at_once_with_a_suggestion():
    raw = {"mongodb": {"database": "shop"}, "orders": {"settle_within": {"sepa_debt": "21d", "wire": "2d"}}}
    with pytest.raises(ConfigError) as refused:
        parse_config(raw)
    message = str(refused.value)
    assert "unknown payment method type 'sepa_debt' (did you mean 'sepa_debit'?)" in message
    assert "unknown payment method type 'wire'" in message


@pytest.mark.parametrize("value", ["0s", "soon", 3])
def test_a_settle_time_must_be_a_duration_longer_than_zero(value):
    with pytest.raises(ConfigError, match="orders.settle_within.sepa_debit"):
        parse_config(MINIMAL | {"orders": {"settle_within": {"sepa_debit": value}}})


def test_the_known_method_types_are_the_installed_sdks():
    hint = stripe.PaymentMethod.__annotations__["type"]
    literals = [a for a in typing.get_args(hint) if typing.get_origin(a) is typing.Literal]
    assert set(PAYMENT_METHOD_TYPES) == {v for lit in literals for v in typing.get_args(lit)}
    assert {m for m, _ in DEFAULT_SETTLE_WITHIN} <= set(PAYMENT_METHOD_TYPES)


def test_an_unknown_method_in_the_config_exits_2_naming_it(cli, stripe_server, db):
    cli.configure()
    cli.config.write_text(cli.config.read_text() + '[orders.settle_within]\nsepa_direct = "21d"\n')
    result = cli("--since", "1h")
    assert result.exit_code == 2, result.output
    [line] = result.stderr.splitlines()
    assert line.startswith("reconcile: error: ") and "unknown payment method type 'sepa_direct'" in line, line
    assert stripe_server.request_log == []


# --------------------------------------------------------------------------- the order field


@pytest.mark.parametrize(
    "value, expected, problem",
    [
        (None, None, None),
        ("2026-12-14T09:00:00Z", 1797238800, None),
        ("date", 1797238800, None),  # a BSON date: the load's fast path
        ("next week", None, "expected end 'next week' is not a date"),
        (12, None, "expected end has type int, expected a date"),
    ],
)
def test_the_expected_end_field_is_read_checked(value, expected, problem):
    from datetime import datetime

    if value == "date":
        value = datetime(2026, 12, 14, 9)
    orders = mongomock.MongoClient()["shop"]["orders"]
    doc = {"_id": "o1", "status": "created", "amount": 100, "currency": "eur", "created_at": datetime(2026, 12, 1)}
    if value is not None:
        doc["pay_by"] = value
    orders.insert_one(doc)
    config = OrdersConfig(expected_end_field="pay_by")
    [record] = order_store.load_orders(orders, config, datetime(2026, 11, 30), datetime(2026, 12, 2))
    assert (record["expected_end"], record["problem"]) == (expected, problem)


# --------------------------------------------------------------------------- the watch list

NOW = 1_800_000_000
WATCHED = deadline_rules.Watch("o1", NOW + 86400, ("ch_old",), NOW - 3600, NOW - 600)
COLUMNS = ["order_key", "outcome", "expected_end", "charge_ids"]


D = 86400


@pytest.mark.parametrize(
    ("outcome", "expected_end", "watched_until", "waits"),
    [
        (c.IN_FLIGHT, NOW + 2 * D, NOW + D, NOW + 2 * D),  # still processing before its deadline: watched on
        (c.IN_FLIGHT, None, NOW + D, NOW + D),  # no deadline on the row: the watch's own
        (c.IN_FLIGHT, NOW, NOW, None),  # in flight past its deadline (an open checkout): judged, as at the deadline
        # Nothing found by the read before the watch's deadline (classify's, the grace period's, is earlier):
        (c.STALE_PENDING, NOW - 1, NOW + D, NOW + D),
        (c.OVERDUE_PROCESSING, NOW - 1, NOW + D, NOW + D),
        (c.PAID_WITHOUT_CHARGE, None, NOW + D, NOW + D),
        (c.STALE_PENDING, NOW - 1, NOW - 1, None),  # past its deadline: judged
        (c.OVERDUE_PROCESSING, NOW - 1, NOW - 1, None),
        (c.REPAIRED, NOW + D, NOW + D, None),  # its debit succeeded: judged now
        (c.MARKED_FAILED, NOW + D, NOW + D, None),  # it failed
        (c.AMOUNT_MISMATCH, NOW + D, NOW + D, None),  # an answer, for a person
        (None, None, NOW + D, None),  # no row: ok now (the shop settled it), judged
    ],
)
def test_a_watched_order_read_again_waits_only_without_an_answer_before_its_deadline(
    outcome, expected_end, watched_until, waits
):
    watch = WATCHED._replace(deadline=watched_until)
    rows = [{"order_key": "o1", "outcome": outcome, "expected_end": expected_end, "charge_ids": ["ch_2", "ch_1"]}]
    outcomes = pd.DataFrame(rows if outcome else [], columns=COLUMNS).assign(facts=None)
    got = deadline_rules.sort_rechecked([watch], ["o1"], outcomes, NOW)
    if waits:
        assert got.waiting == (deadline_rules.Watch("o1", waits, ("ch_1", "ch_2"), watch.anchor, NOW),)
        assert (got.judged, got.found, len(got.outcomes)) == ((), 0, 0)  # no row, not counted
    else:
        assert (got.waiting, got.judged, got.found) == ((), ("o1",), 1)
        assert list(got.outcomes["outcome"]) == ([outcome] if outcome else [])


def test_a_watched_order_not_found_any_more_is_forgotten_and_not_counted():
    empty = pd.DataFrame([], columns=[*COLUMNS, "facts"])
    got = deadline_rules.sort_rechecked([WATCHED], [], empty, NOW)
    assert (got.waiting, got.judged, got.found) == ((), ("o1",), 0)


def test_the_watched_orders_a_run_reads_past_deadline_first_then_the_longest_unchecked():
    state = mongomock.MongoClient().db.reconcile_state
    state.insert_one({"_id": "watermark", "until": NOW})  # not a watch
    for key, deadline, checked in [
        ("late", NOW - 10, NOW - 60),
        ("later", NOW - 5, NOW - 60),
        ("seen", NOW + 100, NOW - 60),
        ("seen_long_ago", NOW + 900, NOW - 6000),
        ("never", NOW + 500, None),  # a watch from before `checked` existed
    ]:
        doc = {"_id": f"deadline:{key}", "kind": "deadline", "order_key": key, "deadline": deadline, "charge_ids": []}
        state.insert_one(doc | ({"checked": checked} if checked else {}))
    order = ["late", "later", "never", "seen_long_ago", "seen"]
    for limit in (1, 2, 4, 5, 9):
        watched = deadline_store.to_check(state, NOW, limit)
        assert [w.order_key for w in watched.watches] == order[:limit]
        assert (watched.total, watched.left()) == (5, 5 - min(limit, 5))
    assert deadline_store.to_check(state, NOW, 0) == deadline_rules.WatchList((), 0)  # no re-check in this window


# --------------------------------------------------------------------------- a deadline passing between runs


def _rows(result) -> dict[str, dict[str, str]]:
    with open(result.summary["report"]["csv"], newline="") as handle:
        return {r["order_id"]: r for r in csv.DictReader(handle) if r["order_id"]}


def test_a_deadline_passing_between_two_runs_is_judged_by_the_next_run(cli, shop, store, db, now):
    """Run 1 sees three slow payments in flight; between the runs the ACH debit settles and the SEPA one does
    not; run 2, whose window holds none of their orders, judges each at its deadline: the ACH order repaired,
    the SEPA debit an item for a person, the order with its own expected end and no payment stale. Run 3
    judges the overdue debit again, and once it settles, repairs it and resolves its item."""
    first, second = now - 4 * DAY, now
    cli.configure(orders={"expected_end_field": "pay_by"})
    cli.config.write_text(
        cli.config.read_text() + '[orders.settle_within]\nsepa_debit = "2d"\nus_bank_account = "2d"\n'
    )
    shop.now = first
    sepa = shop.order(None, amount=4900, currency="eur", age=2 * H)
    ach = shop.order(None, amount=2100, age=3 * H)
    waiting = shop.order(None, amount=700, age=5 * H, pay_by=(first + DAY).replace(tzinfo=None))
    unreadable = shop.order(None, amount=300, age=4 * H, pay_by="next week")
    created = to_unix(first - 2 * H)
    store.create_delayed_payment(
        4900, "eur", "sepa_debit", created, settles_at=to_unix(now + 10 * DAY), charge_metadata={"order_id": str(sepa)}
    )
    store.create_delayed_payment(
        2100,
        "usd",
        "us_bank_account",
        to_unix(first - 3 * H),
        settles_at=to_unix(first + DAY),
        charge_metadata={"order_id": str(ach)},
    )

    one = cli("--now", at(first), "--since", "24h")
    assert one.exit_code == 1, one.output  # the unreadable order is for a person
    rows = _rows(one)
    assert {rows[str(o)]["outcome"] for o in (sepa, ach, waiting)} == {c.IN_FLIGHT}
    assert (rows[str(unreadable)]["outcome"], rows[str(unreadable)]["detail"]) == (
        c.DATA_PROBLEM,
        "expected end 'next week' is not a date",
    )  # that order alone: the rest of the run goes on
    assert (
        rows[str(sepa)]["detail"] == f"charge still processing (SEPA debit); judged after {_day(created + 2 * 86400)}"
    )
    ends = {d["order_id"]: d["expected_end"] for d in one.summary["discrepancies"]}
    assert ends[str(sepa)] == fmt(from_unix(created + 2 * 86400))
    assert ends[str(waiting)] == fmt(first + DAY)
    assert {o: rows[o]["expected_end"] for o in ends if o} == {o: e or "" for o, e in ends.items() if o}  # CSV too
    assert rows[str(sepa)]["expected_end"] != ""

    assert store.settle_due(to_unix(first + DAY)) != []  # the bank answers the ACH debit, not the SEPA one
    two = cli("--now", at(second), "--since", "1h")
    assert two.exit_code == 1, two.output
    window = two.summary
    found = {d["order_id"]: d for d in window["discrepancies"]}
    assert found[str(sepa)]["outcome"] == c.OVERDUE_PROCESSING and found[str(sepa)]["needs_person"]
    assert found[str(sepa)]["detail"] == (
        "SEPA debit still processing 4 days after the order; Stripe settles these within 2 days"
    )
    assert found[str(ach)]["outcome"] == c.REPAIRED and str(ach) in window["repaired"]
    assert found[str(waiting)]["outcome"] == c.STALE_PENDING
    assert db["orders"].find_one({"_id": ach})["status"] == "accepted"
    item = db["reconcile_items"].find_one({"kind": c.OVERDUE_PROCESSING})
    assert item["order_key"] == str(sepa) and item["expected_end"] == created + 2 * 86400 and item["state"] == "open"

    # Still processing: judged again, still an item; then it settles and the next run repairs it.
    three = cli("--now", at(second + H), "--since", "1h")
    assert {d["order_id"]: d["outcome"] for d in three.summary["discrepancies"]} == {str(sepa): c.OVERDUE_PROCESSING}
    assert store.settle_due(to_unix(now + 10 * DAY)) != []
    four = cli("--now", at(second + 2 * H), "--since", "1h")
    assert four.exit_code == 0, four.output
    assert four.summary["repaired"] == [str(sepa)]
    assert db["orders"].find_one({"_id": sepa})["status"] == "accepted"
    assert db["reconcile_items"].find_one({"_id": item["_id"]})["state"] == "resolved"
    assert db["reconcile_state"].count_documents({"kind": "deadline"}) == 0  # nothing left to watch


def _outcomes(result) -> dict[str, str]:
    return {d["order_id"]: d["outcome"] for d in result.summary["discrepancies"]}


def _watched(db) -> dict[str, dict]:
    return {d["order_key"]: d for d in db["reconcile_state"].find({"kind": "deadline"})}


def test_a_debit_with_an_answer_before_its_deadline_is_judged_by_the_next_run(cli, shop, store, db, now):
    """Three SEPA debits (21 days to settle by default): one succeeds on day 5, one fails then, one is still
    processing. The run after day 5 repairs the first order and marks the second failed, weeks before their
    deadline, though its window holds neither; the third is looked at and left in flight: no row, no item,
    not counted (the run whose window held it listed it), still watched. When it succeeds, the next run
    repairs it and the watch list is empty."""
    first = now - 12 * DAY
    day5, day10 = first + 5 * DAY, first + 10 * DAY
    shop.now = first
    paid = shop.order(None, amount=4900, currency="eur", age=2 * H)
    refused = shop.order(None, amount=3100, currency="eur", age=2 * H)
    slow = shop.order(None, amount=1500, currency="eur", age=2 * H)
    for order, amount, answer, settles in (
        (paid, 4900, "succeeded", day5),
        (refused, 3100, "failed", day5),
        (slow, 1500, "succeeded", day10),
    ):
        store.create_delayed_payment(
            amount,
            "eur",
            "sepa_debit",
            to_unix(first - 2 * H),
            settles_at=to_unix(settles),
            outcome=answer,
            charge_metadata={"order_id": str(order)},
        )

    one = cli("--now", at(first), "--since", "24h")
    assert one.exit_code == 0, one.output
    assert _outcomes(one) == {str(o): c.IN_FLIGHT for o in (paid, refused, slow)}
    assert set(_watched(db)) == {str(paid), str(refused), str(slow)}

    assert len(store.settle_due(to_unix(day5))) == 2  # the bank answers two debits on day 5
    two = cli("--now", at(day5 + H), "--since", "1h")
    assert two.exit_code == 0, two.output
    assert two.summary["repaired"] == [str(paid)] and two.summary["marked_failed"] == [str(refused)]
    assert _outcomes(two) == {str(paid): c.REPAIRED, str(refused): c.MARKED_FAILED}
    counts = two.summary["counts"]
    assert (counts[c.REPAIRED], counts[c.MARKED_FAILED], counts[c.IN_FLIGHT], counts[c.OK]) == (1, 1, 0, 0)
    assert db["orders"].find_one({"_id": paid})["status"] == "accepted"
    assert db["orders"].find_one({"_id": refused})["status"] == "failed"
    assert db["reconcile_items"].count_documents({}) == 0
    watched = _watched(db)
    assert set(watched) == {str(slow)} and watched[str(slow)]["checked"] == to_unix(day5 + H)

    # Still processing: looked at again, nothing to say, nothing counted.
    three = cli("--now", at(day5 + 2 * H), "--since", "1h")
    assert three.exit_code == 0, three.output
    assert _outcomes(three) == {} and three.summary["counts"][c.OK] == 0
    assert db["reconcile_items"].count_documents({}) == 0
    assert _watched(db)[str(slow)]["checked"] == to_unix(day5 + 2 * H)

    assert len(store.settle_due(to_unix(day10))) == 1
    four = cli("--now", at(day10 + H), "--since", "1h")
    assert four.exit_code == 0, four.output
    assert four.summary["repaired"] == [str(slow)]
    assert db["orders"].find_one({"_id": slow})["status"] == "accepted"
    assert _watched(db) == {}


def test_a_run_looks_at_most_at_recheck_limit_watched_orders_past_deadline_first_then_longest_unchecked(
    cli, shop, store, db, now
):
    """With report.recheck_limit = 2 and four watched debits: the one past its deadline is looked at on every
    run (overdue, an item); the other slot goes to the watched order least recently looked at, so each
    waits its turn and is repaired in it; the rest wait for the next run."""
    first = now - 6 * DAY
    later = first + 3 * DAY
    cli.configure(orders={"expected_end_field": "pay_by"}, report={"recheck_limit": 2})
    shop.now = first
    soon = (first + 2 * DAY).replace(tzinfo=None)
    weeks = (first + 20 * DAY).replace(tzinfo=None)
    late = shop.order(None, amount=900, currency="eur", age=2 * H, pay_by=soon)
    waiting, paid_c, paid_d = (
        shop.order(None, amount=1000 + n, currency="eur", age=2 * H, pay_by=weeks) for n in range(3)
    )
    assert sorted([str(waiting), str(paid_c), str(paid_d)]) == [str(waiting), str(paid_c), str(paid_d)]
    for order, amount, settles in (
        (late, 900, now + 30 * DAY),
        (waiting, 1000, now + 30 * DAY),
        (paid_c, 1001, first + DAY),
        (paid_d, 1002, first + DAY),
    ):
        store.create_delayed_payment(
            amount,
            "eur",
            "sepa_debit",
            to_unix(first - 2 * H),
            settles_at=to_unix(settles),
            charge_metadata={"order_id": str(order)},
        )
    one = cli("--now", at(first), "--since", "24h")
    assert _outcomes(one) == {str(o): c.IN_FLIGHT for o in (late, waiting, paid_c, paid_d)}
    assert len(_watched(db)) == 4
    assert len(store.settle_due(to_unix(first + DAY))) == 2

    # Past its deadline first; then, all looked at last by run one, the first by id: still processing.
    two = cli("--now", at(later), "--since", "1h")
    assert _outcomes(two) == {str(late): c.OVERDUE_PROCESSING}
    assert two.summary["repaired"] == [] and two.summary["counts"][c.OK] == 0
    lines = {d["step"]: d for d in map(json.loads, two.stderr.splitlines()) if d["step"].startswith("deadlines.")}
    assert lines["deadlines.left"]["left"] == 2 and lines["deadlines.left"]["level"] == "info"  # for the next runs
    assert (lines["deadlines.checked"]["read"], lines["deadlines.checked"]["waiting"]) == (2, 1)
    # The one looked at least recently now: paid_c (run one), not waiting (run two), though its id is later.
    three = cli("--now", at(later + H), "--since", "1h")
    assert _outcomes(three) == {str(late): c.OVERDUE_PROCESSING, str(paid_c): c.REPAIRED}
    four = cli("--now", at(later + 2 * H), "--since", "1h")
    assert _outcomes(four) == {str(late): c.OVERDUE_PROCESSING, str(paid_d): c.REPAIRED}
    assert set(_watched(db)) == {str(late), str(waiting)}
    assert db["reconcile_items"].count_documents({"state": "open"}) == 1  # the overdue debit's


def test_a_watched_checkout_is_read_again_with_its_session(cli, shop, store, db, now):
    """A Checkout Session paid by SEPA debit, its PaymentIntent processing and no charge yet, links to its order
    only by the session's client_reference_id: the watch keeps the session, so the runs that read the order
    again see it still processing (in flight, then overdue), never an order with no payment at all, and
    by its PaymentIntent (read with the session) a SEPA debit."""
    first = now - 3 * DAY
    cli.configure(
        matching={"link_by": ["charge_metadata", "payment_intent_metadata", "checkout_session", "order_fields"]}
    )
    cli.config.write_text(cli.config.read_text() + '[orders.settle_within]\nsepa_debit = "2d"\n')
    shop.now = first
    order = shop.order(None, amount=7300, currency="eur", age=2 * H)
    session = shop.checkout(
        order,
        amount=7300,
        currency="eur",
        payment_status="unpaid",
        intent_status="processing",
        charge=None,
        methods=("sepa_debit",),
    )
    assert _outcomes(cli("--now", at(first), "--since", "24h")) == {str(order): c.IN_FLIGHT}
    assert _watched(db)[str(order)]["attempts"] == [["checkout_session", session["id"]]]

    two = cli("--now", at(first + 2 * H), "--since", "1h")
    assert _outcomes(two) == {} and db["reconcile_items"].count_documents({}) == 0
    three = cli("--now", at(first + 2 * DAY), "--since", "1h")
    found = {d["order_id"]: d for d in three.summary["discrepancies"]}
    assert found[str(order)]["outcome"] == c.OVERDUE_PROCESSING, found
    # Its PaymentIntent read with the session says SEPA: not "no charge at all", nor the grace period's words.
    assert (
        found[str(order)]["detail"]
        == "SEPA debit still processing 2 days after the order; Stripe settles these within 2 days"
    )


def _day(unix: int) -> str:
    from reconcile.report import wording

    return wording.day_text(unix)
