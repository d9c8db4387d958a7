"""The outcome rules, on plain records: no I/O."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from bson import ObjectId

from reconcile.config import LINK_KINDS
from reconcile.decide import classify as c
from reconcile.decide import match
from reconcile.report import wording

NOW = 1_800_000_000
HOUR = 3600
RULES = c.Rules(
    pending_status="created",
    paid_statuses=("accepted", "shipped"),
    failed_status="failed",
    grace_seconds=15 * 60,
    now=NOW,
)


def order(
    key: str = "o1",
    status: str = "created",
    amount: Any = 2500,
    currency: str = "usd",
    age: int = 2 * HOUR,
    **extra: Any,
) -> dict[str, Any]:
    record = {
        "order_id": key,
        "order_key": str(key),
        "status": status,
        "amount": amount,
        "currency": currency,
        "created": NOW - age,
        "stored_charge_id": None,
        "email": None,
        "problem": None,
    }
    record.update(extra)
    return record


def charge(
    cid: str = "ch_1",
    ref: str | None = "o1",
    status: str = "succeeded",
    amount: int = 2500,
    currency: str = "usd",
    captured: bool = True,
    age: int = 2 * HOUR,
    **extra: Any,
) -> dict[str, Any]:
    row = {
        "charge_id": cid,
        "created": NOW - age,
        "status": status,
        "captured": captured and status == "succeeded",
        "amount": amount,
        "amount_captured": amount if captured and status == "succeeded" else 0,
        "amount_refunded": 0,
        "refunded": False,
        "disputed": False,
        "currency": currency,
        "order_ref": ref,
        "payment_intent": None,
        "description": None,
        "email": None,
        "livemode": False,
        "failure_code": None,
        "settlement_currency": currency,
        "settlement_amount": amount,
        "exchange_rate": None,
        "in_window": True,
    }
    row.update(extra)
    return row


def outcomes(orders: list[dict], charges: list[dict], rules: c.Rules = RULES) -> dict[str, str]:
    """Each order's outcome (ok when classify gives it no row) and each orphan charge's."""
    result = c.classify(c.orders_frame(orders), c.charges_frame(charges), rules)
    rows = {(row.order_key if row.order_id is not None else row.charge_id): row.outcome for row in result.itertuples()}
    return {o["order_key"]: c.OK for o in orders} | rows


@pytest.mark.parametrize(
    "scenario, orders, charges, expected",
    [
        ("paid_order_with_its_charge", [order(status="accepted")], [charge()], {"o1": c.OK}),
        ("later_paid_status_counts_as_paid", [order(status="shipped")], [charge()], {"o1": c.OK}),
        ("stuck_paid_order", [order()], [charge()], {"o1": c.REPAIRED}),
        ("stuck_but_young", [order(age=60)], [charge(age=50)], {"o1": c.IN_FLIGHT}),
        (
            "only_failed_charges",
            [order()],
            [charge(status="failed"), charge("ch_2", status="failed")],
            {"o1": c.MARKED_FAILED},
        ),
        (
            "debit_still_pending",
            [order()],
            [charge(status="pending", payment_method_type="sepa_debit")],
            {"o1": c.IN_FLIGHT},
        ),
        ("abandoned_checkout", [order()], [], {"o1": c.STALE_PENDING}),
        ("paid_without_charge", [order(status="accepted")], [charge(status="failed")], {"o1": c.PAID_WITHOUT_CHARGE}),
        ("amount_differs", [order(status="accepted", amount=3000)], [charge()], {"o1": c.AMOUNT_MISMATCH}),
        ("currency_differs", [order(status="accepted", currency="eur")], [charge()], {"o1": c.AMOUNT_MISMATCH}),
        ("stuck_with_wrong_amount_is_not_repaired", [order(amount=2400)], [charge()], {"o1": c.AMOUNT_MISMATCH}),
        ("duplicate_charges", [order(status="accepted")], [charge(), charge("ch_2")], {"o1": c.DUPLICATE_CHARGE}),
        ("stuck_with_duplicates_is_not_repaired", [order()], [charge(), charge("ch_2")], {"o1": c.DUPLICATE_CHARGE}),
        ("orphan_without_metadata", [], [charge(ref=None)], {"ch_1": c.ORPHAN_CHARGE}),
        (
            "orphan_naming_missing_order",
            [order("o2", status="accepted")],
            [charge(ref="gone"), charge("ch_2", ref="o2")],
            {"ch_1": c.ORPHAN_CHARGE, "o2": c.OK},
        ),
        (
            "refunded_while_paid",
            [order(status="accepted")],
            [charge(amount_refunded=2500, refunded=True)],
            {"o1": c.REFUNDED_OR_DISPUTED},
        ),
        (
            "partly_refunded_while_paid",
            [order(status="accepted")],
            [charge(amount_refunded=500)],
            {"o1": c.REFUNDED_OR_DISPUTED},
        ),
        ("disputed_while_paid", [order(status="accepted")], [charge(disputed=True)], {"o1": c.REFUNDED_OR_DISPUTED}),
        (
            "refunded_charge_on_stuck_order_is_not_repaired",
            [order()],
            [charge(amount_refunded=2500, refunded=True)],
            {"o1": c.REFUNDED_OR_DISPUTED},
        ),
        ("uncaptured", [order()], [charge(captured=False)], {"o1": c.UNCAPTURED}),
        ("failed_order_but_charge_succeeded", [order(status="failed")], [charge()], {"o1": c.FAILED_BUT_CHARGED}),
        ("failed_order_failed_charge", [order(status="failed")], [charge(status="failed")], {"o1": c.OK}),
        (
            "unreadable_amount",
            [order(amount=None, problem="amount '19.99' is a str")],
            [charge()],
            {"o1": c.DATA_PROBLEM},
        ),
        ("unknown_status", [order(status="teleported")], [charge()], {"o1": c.DATA_PROBLEM}),
        ("linked_by_stored_charge_id", [order(stored_charge_id="ch_1")], [charge(ref=None)], {"o1": c.REPAIRED}),
        (
            "zero_decimal_amounts",
            [order(amount=4980, currency="jpy")],
            [charge(amount=4980, currency="jpy")],
            {"o1": c.REPAIRED},
        ),
    ],
)
def test_outcome_rules(scenario, orders, charges, expected):
    assert outcomes(orders, charges) == expected


def test_each_order_gets_exactly_one_outcome_and_orphans_count_once():
    orders = [order("a", status="accepted"), order("b"), order("c", status="accepted", amount=1)]
    charges = [
        charge("ch_a", "a"),
        charge("ch_b", "b"),
        charge("ch_c", "c"),
        charge("ch_x", None),
        charge("ch_f", None, status="failed"),
    ]
    result = c.classify(c.orders_frame(orders), c.charges_frame(charges), RULES)
    # The ok order has no row: it is counted, not carried.
    assert sorted(result["outcome"]) == sorted([c.REPAIRED, c.AMOUNT_MISMATCH, c.ORPHAN_CHARGE])
    counts = c.outcome_counts(result, len(orders))
    assert list(counts) == list(c.OUTCOMES)
    assert {o: n for o, n in counts.items() if n} == {
        c.OK: 1,
        c.REPAIRED: 1,
        c.AMOUNT_MISMATCH: 1,
        c.ORPHAN_CHARGE: 1,
    }


def test_stored_charge_id_and_metadata_naming_different_orders_is_a_conflict_for_both():
    orders = [order("a", stored_charge_id="ch_1"), order("b")]
    assert outcomes(orders, [charge("ch_1", ref="b")]) == {"a": c.LINK_CONFLICT, "b": c.LINK_CONFLICT}


def test_metadata_link_wins_over_stored_charge_id_of_the_same_order():
    orders = [order("a", stored_charge_id="ch_1")]
    result = c.classify(c.orders_frame(orders), c.charges_frame([charge("ch_1", ref="a")]), RULES)
    assert result.loc[0, "outcome"] == c.REPAIRED and result.loc[0, "link_kind"] == "charge_metadata"


def test_objectid_orders_match_their_hex_in_metadata():
    oid = ObjectId()
    assert outcomes([order(oid)], [charge(ref=str(oid))]) == {str(oid): c.REPAIRED}


def test_tolerance_applies_to_paid_orders_but_never_to_repairs():
    rules = c.Rules(**{**RULES.__dict__, "amount_tolerance": 2})
    assert outcomes([order(status="accepted", amount=2501)], [charge()], rules) == {"o1": c.OK}
    assert outcomes([order(amount=2501)], [charge()], rules) == {"o1": c.AMOUNT_MISMATCH}


def test_charges_outside_the_window_are_never_orphans():
    assert outcomes([], [charge(ref=None, in_window=False)]) == {}


def test_details_say_what_is_wrong():
    result = wording.worded(
        c.classify(c.orders_frame([order(status="accepted", amount=3000)]), c.charges_frame([charge()]), RULES), RULES
    )
    assert result.loc[0, "detail"] == "order 30.00 USD, charge captured 25.00 USD"


def test_empty_columns_make_the_same_frames_as_empty_rows():
    """A piece of a window with no orders or no charges still joins (empty columns are not floats)."""
    rules = c.Rules(
        pending_status="created",
        paid_statuses=("accepted",),
        failed_status="failed",
        grace_seconds=900,
        now=1_763_700_000,
    )
    orders_empty = c.orders_frame({name: [] for name in c.ORDER_COLUMNS})
    charges_empty = c.charges_frame({name: [] for name in c.CHARGE_COLUMNS})
    assert orders_empty.dtypes.to_dict() == c.orders_frame([]).dtypes.to_dict()
    assert charges_empty.dtypes.to_dict() == c.charges_frame([]).dtypes.to_dict()
    assert c.classify(orders_empty, charges_empty, rules).empty
    charge = {
        "charge_id": "ch_1",
        "created": 1_763_690_000,
        "status": "succeeded",
        "captured": True,
        "amount": 500,
        "amount_captured": 500,
        "amount_refunded": 0,
        "refunded": False,
        "disputed": False,
        "currency": "usd",
        "order_ref": None,
    }
    out = c.classify(orders_empty, c.charges_frame({k: [v] for k, v in charge.items()}), rules)
    assert list(out["outcome"]) == [c.ORPHAN_CHARGE]


def test_uncaptured_order_names_its_authorized_charge():
    result = c.classify(
        c.orders_frame([order()]), c.charges_frame([charge("ch_auth", captured=False, amount=2500)]), RULES
    )
    row = result.iloc[0]
    assert (row["outcome"], row["charge_id"], row["charge_amount"], row["charge_currency"]) == (
        c.UNCAPTURED,
        "ch_auth",
        2500,
        "usd",
    )


def test_amounts_past_2_53_stay_exact_when_some_orders_have_no_paid_charge():
    """The paid charge's columns are taken for every order by position, as Int64: an order with no
    paid charge beside it must not turn them into floats (2**53 + 1 would read as 2**53)."""
    big = 2**53 + 1
    result = c.classify(
        c.orders_frame(
            [
                order("o1", status="accepted", amount=big),
                order("o2", status="created", amount=big),
                order("o3", status="accepted", amount=500),  # no charge at all
                order("o4", status="created", amount=500),  # only a failed charge
            ]
        ),
        c.charges_frame(
            [
                charge("ch_1", "o1", amount=big),
                charge("ch_2", "o2", amount=big),
                charge("ch_4", "o4", status="failed", amount=500),
            ]
        ),
        RULES,
    )
    by_key = result.set_index("order_key")
    assert "o1" not in by_key.index  # ok
    assert by_key.loc["o2", "outcome"] == c.REPAIRED
    assert int(by_key.loc["o2", "charge_amount"]) == big and int(by_key.loc["o2", "settlement_amount"]) == big
    assert by_key.loc["o3", "outcome"] == c.PAID_WITHOUT_CHARGE
    assert by_key.loc["o4", "outcome"] == c.MARKED_FAILED


def test_result_gives_each_order_its_id_type_back_from_the_loaders_columns():
    """The loader holds an ObjectId _id as None (store/orders.py); the result rows a repair writes by
    carry the ObjectId again, and a string _id stays a string (pandas types that column as text, its
    None as NaN)."""
    oid = ObjectId()
    columns = {name: [None, None] for name in c.ORDER_COLUMNS}
    columns.update(
        order_id=[None, "ord-2"],
        order_key=[str(oid), "ord-2"],
        status=["created", "created"],
        amount=[2500, 2500],
        currency=["usd", "usd"],
        created=[NOW - 2 * HOUR, NOW - 2 * HOUR],
        refunded_amount=[0, 0],
    )
    result = c.classify(
        c.orders_frame(columns), c.charges_frame([charge("ch_1", str(oid)), charge("ch_2", "ord-2")]), RULES
    )
    assert list(result["outcome"]) == [c.REPAIRED, c.REPAIRED]
    assert list(result["order_id"]) == [oid, "ord-2"] and type(result["order_id"][0]) is ObjectId


def test_links_numbers_say_what_the_charges_columns_say():
    """classify reads which charges belong to an order, and which name one, from link's arrays
    rather than scanning the id columns: they must agree with those columns row for row."""
    orders = c.orders_frame([order("a"), order("b", stored_charge_id="ch_stored"), order("c", status="accepted")])
    charges = c.charges_frame(
        [
            charge("ch_meta", "a"),  # names an order that exists
            charge("ch_gone", "zz"),  # names one that does not
            charge("ch_stored", None),  # named by the order that stores its id
            charge("ch_none", None),  # names nothing
            charge("ch_c", "c"),
        ]
    )
    links = match.link(charges, orders, match.intents_frame([]), match.sessions_frame([]), LINK_KINDS)
    linked = links.charges
    assert list(links.charge_codes >= 0) == list(linked["order_key"].notna()) == [True, False, True, False, True]
    assert list(links.charge_refs) == list(linked["order_ref"].notna()) == [True, True, True, False, True]
    keys = orders["order_key"].to_numpy()
    assert [keys[list(links.order_codes).index(code)] for code in links.charge_codes if code >= 0] == ["a", "b", "c"]


@pytest.mark.parametrize(
    "scenario, charges, step",
    [
        ("disputed_not_refunded", [charge(disputed=True)], "hold the order until the dispute is decided"),
        (
            "disputed_and_refunded",
            [charge(disputed=True, amount_refunded=500)],
            wording.NEXT_STEPS[c.REFUNDED_OR_DISPUTED],
        ),
        ("refunded_not_disputed", [charge(amount_refunded=500)], wording.NEXT_STEPS[c.REFUNDED_OR_DISPUTED]),
    ],
)
def test_a_disputed_orders_next_step_comes_from_its_facts(scenario, charges, step):
    """The finding carries `disputed` (a fact), and the next step reads it, never the detail's words."""
    from reconcile.decide import items as item_rules

    result = wording.worded(
        c.classify(c.orders_frame([order(status="accepted")]), c.charges_frame(charges), RULES), RULES
    )
    (finding,) = item_rules.core_findings(result)
    assert finding["kind"] == c.REFUNDED_OR_DISPUTED
    assert finding["disputed"] is any(ch["disputed"] for ch in charges)
    assert wording.next_step(finding) == step
    # The words may change: the next step does not follow them.
    reworded = {**finding, "detail": "the customer's bank reversed the payment"}
    assert wording.next_step(reworded) == step


# --------------------------------------------------------------------------- deadlines (docs/deadlines.md)

DAY = 24 * HOUR
# Each default of orders.settle_within (config.DEFAULT_SETTLE_WITHIN), in days.
DEFAULT_DAYS = {
    "sepa_debit": 21,
    "us_bank_account": 7,
    "bacs_debit": 12,
    "au_becs_debit": 6,
    "acss_debit": 8,
    "nz_bank_account": 5,
}


def deadline_rows(orders: list[dict], charges: list[dict], rules: c.Rules = RULES) -> dict[str, tuple[str, Any]]:
    """Each order's (outcome, expected_end) as classify gives them (ok orders: no row, no deadline shown)."""
    result = c.classify(c.orders_frame(orders), c.charges_frame(charges), rules)
    rows = {
        row.order_key: (
            row.outcome,
            None if row.expected_end is None or row.expected_end != row.expected_end else int(row.expected_end),
        )
        for row in result.itertuples()
    }
    return {o["order_key"]: (c.OK, None) for o in orders} | rows


def pending_debit(method: str | None, age: int, **extra: Any) -> tuple[list[dict], list[dict]]:
    """A pending order created `age` seconds ago and its charge still pending, paid by `method`."""
    return [order(age=age, **extra)], [charge(status="pending", age=age - 60, payment_method_type=method)]


@pytest.mark.parametrize(
    "orders, charges, expected",
    [
        # each default method: in flight before its settle time, overdue after it
        *[
            pytest.param(
                *pending_debit(method, days * DAY - HOUR),
                {"o1": (c.IN_FLIGHT, NOW - (days * DAY - HOUR) + days * DAY)},
                id=f"{method}_before_its_{days}_days",
            )
            for method, days in DEFAULT_DAYS.items()
        ],
        *[
            pytest.param(
                *pending_debit(method, days * DAY + HOUR),
                {"o1": (c.OVERDUE_PROCESSING, NOW - HOUR)},
                id=f"{method}_past_its_{days}_days",
            )
            for method, days in DEFAULT_DAYS.items()
        ],
        # a method with no entry (cards among them) falls back to the grace period
        pytest.param(
            *pending_debit("card", 2 * HOUR),
            {"o1": (c.OVERDUE_PROCESSING, NOW - 2 * HOUR + 15 * 60)},
            id="card_still_pending_past_the_grace_period",
        ),
        pytest.param(
            *pending_debit(None, 2 * HOUR),
            {"o1": (c.OVERDUE_PROCESSING, NOW - 2 * HOUR + 15 * 60)},
            id="unknown_method_falls_back_to_the_grace_period",
        ),
        pytest.param(
            *pending_debit("card", 10 * 60),
            {"o1": (c.IN_FLIGHT, NOW - 10 * 60 + 15 * 60)},
            id="card_still_pending_within_the_grace_period",
        ),
        # the order's own expected end comes first, either way
        pytest.param(
            *pending_debit("sepa_debit", 2 * DAY, expected_end=NOW - HOUR),
            {"o1": (c.OVERDUE_PROCESSING, NOW - HOUR)},
            id="own_expected_end_passed_before_the_method_s",
        ),
        pytest.param(
            *pending_debit("card", 2 * DAY, expected_end=NOW + DAY),
            {"o1": (c.IN_FLIGHT, NOW + DAY)},
            id="own_expected_end_later_than_the_grace_period",
        ),
        # no payment at all: stale at its expected end, not at the grace period
        pytest.param(
            [order(age=2 * DAY, expected_end=NOW + HOUR)],
            [],
            {"o1": (c.IN_FLIGHT, NOW + HOUR)},
            id="no_payment_before_its_expected_end",
        ),
        pytest.param(
            [order(age=2 * DAY, expected_end=NOW - HOUR)],
            [],
            {"o1": (c.STALE_PENDING, NOW - HOUR)},
            id="no_payment_past_its_expected_end",
        ),
        pytest.param(
            [order(age=2 * DAY)],
            [],
            {"o1": (c.STALE_PENDING, NOW - 2 * DAY + 15 * 60)},
            id="no_payment_no_expected_end_uses_the_grace_period",
        ),
        # a succeeded charge is repaired after the grace period, whatever its deadline
        pytest.param(
            [order(age=2 * HOUR, expected_end=NOW + 10 * DAY)],
            [charge(payment_method_type="sepa_debit")],
            {"o1": (c.REPAIRED, NOW + 10 * DAY)},
            id="succeeded_debit_repaired_before_its_deadline",
        ),
        # only failed charges: a final answer, marked failed as today
        pytest.param(
            [order(age=2 * HOUR, expected_end=NOW + 10 * DAY)],
            [charge(status="failed", payment_method_type="sepa_debit")],
            {"o1": (c.MARKED_FAILED, NOW + 10 * DAY)},
            id="failed_debit_marked_failed_before_its_deadline",
        ),
        # a paid order whose debit never settled
        pytest.param(
            *pending_debit("us_bank_account", 3 * DAY, status="accepted"),
            {"o1": (c.IN_FLIGHT, NOW - 3 * DAY + 7 * DAY)},
            id="paid_order_debit_in_flight",
        ),
        pytest.param(
            *pending_debit("us_bank_account", 8 * DAY, status="accepted"),
            {"o1": (c.OVERDUE_PROCESSING, NOW - DAY)},
            id="paid_order_debit_overdue",
        ),
        # an expected end the store could not read: the order is a data problem, the rest goes on
        pytest.param(
            [order(problem="expected end 'next week' is not a date"), order("o2", status="accepted")],
            [charge(status="pending", payment_method_type="sepa_debit"), charge("ch_2", "o2")],
            {"o1": (c.DATA_PROBLEM, NOW - 2 * HOUR + 21 * DAY), "o2": (c.OK, None)},
            id="unreadable_expected_end_is_a_data_problem",
        ),
    ],
)
def test_deadline_rules(orders, charges, expected):
    assert deadline_rows(orders, charges) == expected


def test_a_settle_within_table_changes_the_deadline():
    rules = replace(RULES, settle_seconds=(("sepa_debit", 3 * DAY),))
    orders, charges = pending_debit("sepa_debit", 4 * DAY)
    assert deadline_rows(orders, charges, rules) == {"o1": (c.OVERDUE_PROCESSING, NOW - DAY)}


@pytest.mark.parametrize(
    "orders, charges, words",
    [
        (
            *pending_debit("sepa_debit", 22 * DAY),
            "SEPA debit still processing 22 days after the order; Stripe settles these within 21 days",
        ),
        (
            *pending_debit("bacs_debit", 2 * DAY),
            "charge still processing (Bacs debit); judged after " + wording.day_text(NOW - 2 * DAY + 12 * DAY),
        ),
        (
            *pending_debit("card", 5 * HOUR, expected_end=NOW - HOUR),
            "card payment still processing 5 hours after the order; the order expected it settled by "
            + wording.day_text(NOW - HOUR, with_time=True),
        ),
        (
            *pending_debit("card", 2 * HOUR),
            "card payment still processing 2 hours after the order; longer than orders.grace_period (15 minutes),"
            " and no orders.settle_within entry for it",
        ),
        (
            [order(age=3 * HOUR, expected_end=NOW + 5 * HOUR)],
            [],
            "no answer from its payment yet, before the order's own expected end; judged after "
            + wording.day_text(NOW + 5 * HOUR, with_time=True),
        ),
    ],
)
def test_deadline_words(orders, charges, words):
    result = wording.worded(c.classify(c.orders_frame(orders), c.charges_frame(charges), RULES), RULES)
    assert result["detail"].tolist() == [words]


def test_an_overdue_debit_names_its_pending_charge_for_the_recheck():
    orders, charges = pending_debit("sepa_debit", 30 * DAY)
    result = c.classify(c.orders_frame(orders), c.charges_frame(charges), RULES)
    assert result["charge_ids"].tolist() == [["ch_1"]]
