"""The job against Stripe as the pinned API version (2026-10-28.endive, what stripe-python 16 sends).

Stripe's changelog, 2025-03-31.basil ("Partially capturing or canceling payments no longer creates
a Refund", still true in endive): partial capture and cancellation create no Refund and leave
`amount_refunded` alone; a cancellation leaves the charge `captured: false`, `amount_captured: 0`,
`refunded: false`; PaymentIntent `cancellation_reason` `expired` marks an authorization that lapsed.
Disputes have ten statuses (stripe-python 16's `Dispute.status`). Each test runs the real command
against the stand-in answering as that version, through the SDK, with nx-27017.
"""

from __future__ import annotations

import csv
import random
import typing
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import stripe
from conftest import at

from reconcile.decide import classify as c
from reconcile.decide import match, movements
from reconcile.demo.standin import StandinStore, serve
from reconcile.report import wording
from reconcile.stripe import pull as stripe_pull
from reconcile.timeutil import from_unix, to_unix

WINDOW = ("--since", "24h")
T0 = 1_763_700_000
H = timedelta(hours=1)
DAY = timedelta(days=1)


def rows(result) -> list[dict[str, str]]:
    with open(result.summary["report"]["csv"], newline="") as handle:
        return list(csv.DictReader(handle))


def outcome_of(result, order_id: Any) -> str:
    found = [r["outcome"] for r in rows(result) if r["order_id"] == str(order_id)]
    assert len(found) <= 1, found
    return found[0] if found else c.OK


def detail_of(result, order_id: Any) -> str:
    [found] = [r["detail"] for r in rows(result) if r["order_id"] == str(order_id)]
    return found


def authorization(shop, store, order_id: Any, amount: int, *, on: str = "charge", age: timedelta = 2 * H) -> tuple:
    """A manual-capture PaymentIntent and its authorized, uncaptured charge naming `order_id` (on the
    charge's metadata or the PaymentIntent's)."""
    ref = {"order_id": str(order_id)} if order_id is not None else {}
    intent = store.create_payment_intent(
        amount=amount,
        created=to_unix(shop.now - age),
        status="requires_capture",
        capture_method="manual",
        metadata=ref if on == "intent" else {},
    )
    charge = shop.charge(
        None, amount=amount, age=age - timedelta(seconds=5), captured=False, payment_intent=intent["id"], metadata=ref
    )
    if on == "intent":
        store.update_charge(charge["id"], metadata={})
    return intent, charge


# --------------------------------------------------------------------------- observations 1 and 2


def test_partial_capture_then_a_refund_is_judged_on_money_returned_to_the_customer(cli, shop, store):
    """Authorized 50.00, captured 40.00 for a 40.00 order: the released 10.00 is not a refund."""
    recorded = shop.order(None, status="accepted", amount=4000, refunded_amount=400)
    store.create_refund(shop.charge(recorded, amount=5000, amount_captured=4000)["id"], amount=400)
    unrecorded = shop.order(None, status="accepted", amount=4000)
    store.create_refund(shop.charge(unrecorded, amount=5000, amount_captured=4000)["id"], amount=900)
    untouched = shop.order(None, status="accepted", amount=4000)
    shop.charge(untouched, amount=5000, amount_captured=4000)
    cli.configure(orders={"email_field": "email", "refunded_amount_field": "refunded_amount"})
    result = cli(*WINDOW)
    assert outcome_of(result, recorded) == c.OK  # was refunded_or_disputed, "no refund in Stripe"
    assert outcome_of(result, untouched) == c.OK
    assert outcome_of(result, unrecorded) == c.REFUNDED_OR_DISPUTED  # was ok: the 9.00 refund was missed
    assert detail_of(result, unrecorded) == (
        "refunded 9.00 USD while the order is accepted; the order expects net 40.00 USD, the customer paid net 31.00 USD"
    )


# --------------------------------------------------------------------------- observations 3 and 4


@pytest.mark.parametrize("reason", ["requested_by_customer", "expired", "abandoned"])
@pytest.mark.parametrize("on", ["charge", "intent"])
def test_a_released_authorization_marks_its_pending_order_failed(cli, shop, store, db, reason, on):
    order = shop.order(None, amount=5000)
    intent, _ = authorization(shop, store, order, 5000, on=on)
    store.cancel_payment_intent(intent["id"], reason, at=to_unix(shop.now - H))
    if on == "intent":
        cli.configure(matching={"link_by": ["charge_metadata", "payment_intent_metadata"]})
    result = cli(*WINDOW)
    assert result.exit_code == 0, result.output  # was 1: `uncaptured`, a person, forever
    assert result.summary["marked_failed"] == [str(order)]
    assert db["orders"].find_one({"_id": order})["status"] == "failed"
    assert f"PaymentIntent canceled: {wording.CANCELLATION_WORDS[reason]}" in detail_of(result, order)


def test_an_authorization_past_its_window_is_released_and_a_live_one_is_still_uncaptured(cli, shop, store, db):
    lapsed = shop.order(None, amount=3000, age=8 * DAY)
    authorization(shop, store, lapsed, 3000, age=8 * DAY)  # capture_before: 7 days after the charge
    live = shop.order(None, amount=3000)
    authorization(shop, store, live, 3000)
    cli.configure(window={"max_span": "10d"})  # one window, one report
    result = cli("--since", "9d")
    assert result.summary["marked_failed"] == [str(lapsed)]
    assert "the authorization window passed" in detail_of(result, lapsed)
    assert outcome_of(result, live) == c.UNCAPTURED


def test_a_paid_order_whose_only_charge_is_a_released_authorization_is_paid_without_charge(cli, shop, store):
    order = shop.order(None, status="accepted", amount=2000)
    intent, _ = authorization(shop, store, order, 2000)
    store.cancel_payment_intent(intent["id"], "expired")
    result = cli(*WINDOW)
    assert outcome_of(result, order) == c.PAID_WITHOUT_CHARGE
    assert "authorization was released uncaptured" in detail_of(result, order)


def test_a_released_authorization_just_past_the_window_marks_its_pending_order_failed(cli, shop, store, db):
    """The edge look finds the authorization after --until; that it was released shows on its PaymentIntent,
    which the edge look asks for as the window's pull does."""
    until = shop.now - H
    order = shop.order(None, amount=5000, age=H + timedelta(seconds=5))
    intent, _ = authorization(shop, store, order, 5000, age=H - timedelta(minutes=1))  # a minute after --until
    store.cancel_payment_intent(intent["id"], "requested_by_customer", at=to_unix(shop.now - H / 2))
    result = cli("--until", at(until))
    assert result.summary["marked_failed"] == [str(order)]  # was `uncaptured`, until a later window covered it
    assert db["orders"].find_one({"_id": order})["status"] == "failed"
    assert "PaymentIntent canceled" in detail_of(result, order)


def test_a_released_authorization_naming_no_order_is_no_item(cli, shop, store, db):
    intent, charge = authorization(shop, store, None, 1500)
    store.cancel_payment_intent(intent["id"], "requested_by_customer")
    named_gone = store.create_payment_intent(amount=1500, status="requires_capture", created=to_unix(shop.now - H))
    shop.charge(None, amount=1500, captured=False, payment_intent=named_gone["id"], metadata={"order_id": "ord_gone"})
    store.cancel_payment_intent(named_gone["id"], "expired")
    result = cli(*WINDOW)
    assert result.exit_code == 0, result.output  # was 1: two orphan_charge items, forever
    assert not [r for r in rows(result) if r["outcome"] == c.ORPHAN_CHARGE]
    assert db["reconcile_items"].count_documents({}) == 0


# --------------------------------------------------------------------------- observation 5


@pytest.mark.parametrize("status", ["appeal_needs_response", "appeal_under_review", "warning_needs_response"])
def test_an_open_dispute_in_any_open_status_needs_a_person_with_its_respond_by_date(cli, shop, store, status):
    order = shop.order(None, status="accepted", amount=7400)
    charge = shop.charge(order, amount=7400, age=3 * H)
    dispute = store.create_dispute(charge["id"], created=to_unix(shop.now - H), status=status)
    result = cli(*WINDOW)
    [found] = [m for m in result.summary["movements"] if m["object_id"] == dispute["id"]]
    assert found["kind"] == movements.DISPUTE_OPEN and found["needs_person"] is True  # was dispute_closed
    assert "respond by" in found["detail"] and status.replace("_", " ") in found["detail"]
    assert result.exit_code == 1


def test_a_recheck_keeps_a_dispute_open_through_its_appeal(cli, db, store, seed, t0):
    order = seed.order(None, status="accepted", amount=7400, age=4 * H)
    charge = seed.charge(order, amount=7400, age=4 * H)
    dispute = store.create_dispute(charge["id"], created=to_unix(t0 - 2 * H))
    first = cli("--now", at(t0))
    key = f"dispute:{dispute['id']}"
    assert db["reconcile_items"].find_one({"_id": key})["state"] == "open", first.output
    store.update(dispute["id"], status="appeal_needs_response")
    later = cli("--now", at(t0 + 2 * DAY), "--since", at(t0 + 2 * DAY - 6 * H))
    item = db["reconcile_items"].find_one({"_id": key})
    assert item["state"] == "open", later.output  # was resolved: "re-checked: dispute ... appeal needs response"
    store.update(dispute["id"], status="won")
    cli("--now", at(t0 + 3 * DAY), "--since", at(t0 + 3 * DAY - 6 * H))
    assert db["reconcile_items"].find_one({"_id": key})["state"] == "resolved"


# --------------------------------------------------------------------------- the job's status tables


def _literal(cls: type, field: str) -> set[str]:
    """The values of a field's Literal in the installed SDK's type annotations.

    stripe-python evaluates its annotations (no `from __future__ import annotations`), so the
    class's own `__annotations__` hold the types; `typing.get_type_hints` would also have to
    resolve every TYPE_CHECKING-only name of the module.
    """
    hint = cls.__annotations__[field]
    literals = [arg for arg in typing.get_args(hint) if typing.get_origin(arg) is typing.Literal]
    assert literals, (cls, field, hint)
    return {value for lit in literals for value in typing.get_args(lit)}


def test_the_jobs_status_tables_cover_every_value_of_the_installed_sdk():
    """An SDK upgrade that adds a status fails here until the job knows what the status means."""
    assert _literal(stripe.Dispute, "status") == set(movements.DISPUTE_OPEN_STATUSES) | set(
        movements.DISPUTE_CLOSED_STATUSES
    )
    assert not set(movements.DISPUTE_OPEN_STATUSES) & set(movements.DISPUTE_CLOSED_STATUSES)
    assert _literal(stripe.PaymentIntent, "status") == set(match.INTENT_STATUS_STATES)
    assert _literal(stripe.PaymentIntent, "cancellation_reason") == set(match.CANCELLATION_REASONS)
    assert _literal(stripe.checkout.Session, "status") == set(match.SESSION_STATUS_STATES)
    assert _literal(stripe.checkout.Session, "payment_status") == set(match.SESSION_PAYMENT_STATES)


# --------------------------------------------------------------------------- the version itself


def test_the_job_sends_its_configured_version_and_a_version_stripe_refuses_stops_the_run(cli, shop, stripe_server):
    shop.charge(shop.order(None, status="accepted"))
    assert cli(*WINDOW).exit_code == 0
    assert stripe_server.request_log  # every request went out with the pinned version (else refused)
    cli.configure(stripe={"api_version": "2099-01-01.nonesuch"})
    refused = cli(*WINDOW)
    assert refused.exit_code == 2, refused.output
    assert "Invalid Stripe API version: 2099-01-01.nonesuch" in refused.output


# --------------------------------------------------------------------------- observation 9: list order


def _unordered_world(count: int, since: int, until: int) -> StandinStore:
    store = StandinStore(api_key="sk_test_unordered")
    rng = random.Random(11)
    for n in range(count):
        store.create_payment_intent(amount=100 + n, created=rng.randrange(since, until), status="canceled")
    store.unordered.add("payment_intent")
    return store


@pytest.mark.parametrize("workers", [1, 4, 10])
def test_a_list_in_no_promised_order_is_pulled_whole_by_cursor(workers):
    since, until = T0, T0 + 6 * 3600
    store = _unordered_world(460, since, until)
    with serve(store) as srv:
        client = stripe.StripeClient("sk_test_unordered", base_addresses={"api": srv.url}, max_network_retries=0)
        policy = stripe_pull.RetryPolicy(concurrency=workers)
        rows = stripe_pull.fetch_window(
            client, "/v1/payment_intents", from_unix(since), from_unix(until), lambda o: {"id": o["id"]}, policy
        )
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)) == 460  # was 345 of 460 with PaymentIntents out of order


def test_canceled_payment_intents_listed_out_of_order_all_mark_their_orders_failed(cli, shop, store, db):
    orders = []
    for n in range(240):
        order = shop.order(None, amount=1000 + n, age=2 * H + timedelta(seconds=37 * n))
        store.create_payment_intent(
            amount=1000 + n,
            created=to_unix(shop.now - 2 * H - timedelta(seconds=37 * n)),
            status="canceled",
            metadata={"order_id": str(order)},
        )
        orders.append(str(order))
    store.unordered.add("payment_intent")
    cli.configure(matching={"link_by": ["charge_metadata", "payment_intent_metadata"]})
    result = cli(*WINDOW)
    assert result.exit_code == 0, result.output
    assert sorted(result.summary["marked_failed"]) == sorted(orders)  # was: some stale_pending, exit 0
    assert result.summary["counts"][c.STALE_PENDING] == 0


# --------------------------------------------------------------------------- observation 6: totals


def stripe_reporting_categories() -> list[str]:
    """Every balance-transaction reporting category, as the installed SDK types it (report run params)."""
    from stripe.params.reporting._report_run_create_params import ReportRunCreateParamsParameters

    (ref,) = typing.get_args(ReportRunCreateParamsParameters.__annotations__["reporting_category"])
    hint = eval(ref.__forward_arg__, {"Literal": typing.Literal})  # "Literal[...]|str"
    return sorted(v for arg in typing.get_args(hint) if typing.get_origin(arg) is typing.Literal for v in arg.__args__)


def test_totals_add_up_on_their_face_for_a_window_holding_every_reporting_category(cli, shop, store):
    categories = stripe_reporting_categories()
    assert len(categories) >= 30 and {"charge", "fee", "network_cost", "other_adjustment"} <= set(categories)
    created = to_unix(shop.now - 2 * H)
    shop.charge(shop.order(None, status="accepted", amount=10000), amount=10000)  # fee 3.20 on its transaction
    store.create_balance_transaction("stripe_fee", -500, created=created, reporting_category="fee")
    store.create_balance_transaction("network_cost", -30, created=created, reporting_category="network_cost")
    store.create_balance_transaction("adjustment", 100, created=created, reporting_category="other_adjustment")
    for currency in ("usd", "eur"):
        for n, category in enumerate(categories):
            kind = {"fee": "stripe_fee", "network_cost": "network_cost", "payout": "payout"}.get(category, "adjustment")
            amount = (n + 1) * 101 * (-1 if n % 3 else 1)
            store.create_balance_transaction(
                kind, amount, currency, created=created + n, fee=7 * (n % 4), reporting_category=category
            )
    result = cli(*WINDOW)
    totals = result.summary["totals"]
    assert set(totals) == {"usd", "eur"}
    for t in totals.values():
        assert set(t["by_category"]) == set(categories)  # none dropped
        assert t["gross"] + t["refunds"] + t["disputes"] + t["other"] - t["fees"] == t["net"]
    eur = totals["eur"]
    payouts = {"payout", "payout_reversal"}
    assert eur["net"] == sum(c["net"] for name, c in eur["by_category"].items() if name not in payouts)
    assert eur["payouts"] == sum(c["amount"] for name, c in eur["by_category"].items() if name in payouts)
    # The fees are every fee paid: the fee column, and the fee-type transactions (stripe_fee, network_cost).
    usd_fee_rows = totals["usd"]["by_category"]
    fee_column = sum(c["fee"] for name, c in usd_fee_rows.items() if name not in payouts)
    fee_transactions = -(usd_fee_rows["fee"]["amount"] + usd_fee_rows["network_cost"]["amount"])
    assert totals["usd"]["fees"] == fee_column + fee_transactions
    html = Path(result.summary["report"]["html"]).read_text()
    assert "= Net" in html and "+ Other" in html and "Payouts (beside)" in html


def test_the_pages_totals_in_the_issue_add_up(cli, shop, store):
    """Observation 6: stripe_fee -5.00, network_cost -0.30 and other_adjustment +1.00 beside a charge."""
    created = to_unix(shop.now - 2 * H)
    shop.charge(shop.order(None, status="accepted", amount=10000), amount=10000, fee=320)
    store.create_balance_transaction("stripe_fee", -500, created=created, reporting_category="fee")
    store.create_balance_transaction("network_cost", -30, created=created, reporting_category="network_cost")
    store.create_balance_transaction("adjustment", 100, created=created, reporting_category="other_adjustment")
    store.create_balance_transaction("payout", -2000, created=created)
    usd = cli(*WINDOW).summary["totals"]["usd"]
    assert (usd["gross"], usd["other"], usd["fees"], usd["net"], usd["payouts"]) == (10000, 100, 850, 9250, -2000)


# --------------------------------------------------------------------------- observation 8: reconcile check


def test_check_probes_payment_intents_and_sessions_when_link_by_needs_them(cli, store, monkeypatch):
    key = "rk_test_nointents_0123456789"
    store.restricted_keys[key] = {"/v1/payment_intents", "/v1/checkout/sessions"}
    monkeypatch.setenv("STRIPE_API_KEY", key)
    cli("init")
    assert cli("check").exit_code == 0  # charge metadata only: PaymentIntents are never read
    cli.configure(matching={"link_by": ["payment_intent_metadata", "checkout_session", "order_fields"]})
    result = cli("check")
    assert result.exit_code == 2, result.output  # was 0, then the run stopped with exit 2
    assert "DENIED: the key needs 'PaymentIntents: read'" in result.output
    assert "DENIED: the key needs 'Checkout Sessions: read'" in result.output
    assert "reconcile init" not in result.output and "nointents_0123456789" not in result.output


def test_check_exits_3_when_stripe_is_unreachable_and_never_hints_init(cli, stripe_server):
    cli("init")
    stripe_server.close()
    cli.configure(stripe={"max_network_retries": 0})
    result = cli("check")
    assert result.exit_code == 3, result.output  # was 2, with "`reconcile init` creates missing indexes"
    assert "UNREACHABLE" in result.output and "init" not in result.output
