"""`reconcile demo`: the whole job on a seeded shop, with nothing else installed.

A local Stripe stand-in and an embedded MongoDB wire-protocol server are started on loopback,
seeded with a mix that produces every outcome, and the real job runs against them. The shop is
kept in ./reconcile-demo/ with a config naming it, so the commands that follow work on it (kept_shop).
"""

from __future__ import annotations

import os
import textwrap
from collections import Counter
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import click
from bson import ObjectId
from pymongo.collection import Collection

from reconcile.decide import classify as c
from reconcile.demo.kept_shop import DEMO_KEY, FOLDER, KEY_ENV, URI_ENV, DemoFolder, write_configs
from reconcile.demo.standin import StandinStore, serve
from reconcile.exitcodes import ExitCode
from reconcile.timeutil import to_unix, utcnow


def demo_sections() -> dict[str, dict[str, Any]]:
    """The order fields and link kinds of the demo shop, which uses every Stripe integration style."""
    return {
        "orders": {
            "email_field": "email",
            "payment_intent_id_field": "payment_intent_id",
            "checkout_session_id_field": "checkout_session_id",
            "refunded_amount_field": "refunded_amount",
            "expected_end_field": "pay_by",  # the payment's deadline, where the shop set one
        },
        "matching": {"link_by": ["charge_metadata", "payment_intent_metadata", "checkout_session", "order_fields"]},
    }


def demo_config(api_base: str, statement: Path | None = None) -> dict[str, Any]:
    """The demo's config; `statement`: the bank statement it writes beside its shop (seed_demo_bank)."""
    bank = {"bank": {"statements": str(statement), "currency": "USD", "reference_column": "Reference"}}
    return {
        "stripe": {"api_key_env": KEY_ENV, "api_base": api_base},
        "mongodb": {"uri_env": URI_ENV, "database": "shop", "orders_collection": "orders"},
        **demo_sections(),
        "window": {"max_span": "2d"},  # the demo's day (plus the seconds seeding took) in one report
        **(bank if statement is not None else {}),
    }


class ShopSeeder:
    """Writes matching orders and charges; `expected` counts the outcome each seed should get."""

    def __init__(self, store: StandinStore, orders: Collection, now: datetime):
        self.store, self.orders, self.now = store, orders, now
        self.expected: Counter[str] = Counter()
        self._n = 0

    def order(
        self,
        outcome: str | None,
        *,
        status: str = "created",
        amount: Any = 2500,
        currency: str = "usd",
        age: timedelta = timedelta(hours=2),
        object_id: bool = True,
        **extra: Any,
    ) -> Any:
        self._n += 1
        order_id = ObjectId() if object_id else f"ord_{self._n:05d}"
        doc = {
            "_id": order_id,
            "status": status,
            "amount": amount,
            "currency": currency,
            "created_at": (self.now - age).replace(tzinfo=None),
            "email": f"customer{self._n}@example.com",
        }
        doc.update(extra)
        self.orders.insert_one(doc)
        if outcome:
            self.expected[outcome] += 1
        return order_id

    def charge(
        self,
        order_id: Any,
        *,
        amount: int = 2500,
        currency: str = "usd",
        age: timedelta = timedelta(hours=2),
        status: str = "succeeded",
        **kwargs: Any,
    ) -> dict[str, Any]:
        metadata = kwargs.pop("metadata", None)
        if metadata is None:
            metadata = {"order_id": str(order_id)} if order_id is not None else {}
        return self.store.create_charge(
            amount=amount,
            currency=currency,
            created=to_unix(self.now - age),
            status=status,
            metadata=metadata,
            billing_email=kwargs.pop("billing_email", "buyer@example.com"),
            **kwargs,
        )

    def intent(
        self,
        order_id: Any,
        *,
        amount: int = 2500,
        currency: str = "usd",
        age: timedelta = timedelta(hours=2),
        status: str = "succeeded",
        charge: str | None = "succeeded",
        metadata: dict[str, str] | None = None,
        methods: tuple[str, ...] = ("card",),
        **charge_kwargs: Any,
    ) -> dict[str, Any]:
        """A PaymentIntents integration: the order id in the PaymentIntent's metadata, none on the charge.
        `methods`: its payment_method_types (a bank debit's sets how long it may take to settle)."""
        if metadata is None:
            metadata = {"order_id": str(order_id)} if order_id is not None else {}
        intent = self.store.create_payment_intent(
            amount=amount,
            currency=currency,
            created=to_unix(self.now - age),
            status=status,
            metadata=metadata,
            payment_method_types=methods,
        )
        if charge:
            charge_kwargs.setdefault("metadata", {})
            self.charge(
                None,
                amount=amount,
                currency=currency,
                age=age - timedelta(seconds=5),
                status=charge,
                payment_intent=intent["id"],
                **charge_kwargs,
            )
        return intent

    def checkout(
        self,
        order_id: Any,
        *,
        amount: int = 2500,
        currency: str = "usd",
        age: timedelta = timedelta(hours=2),
        status: str = "complete",
        payment_status: str = "paid",
        intent_status: str | None = "succeeded",
        charge: str | None = "succeeded",
        client_reference_id: str | None = None,
        methods: tuple[str, ...] = ("card",),
        **charge_kwargs: Any,
    ) -> dict[str, Any]:
        """A Checkout integration: the order id in client_reference_id; nothing on the PaymentIntent or charge."""
        intent = None
        if intent_status:
            intent = self.intent(
                None,
                amount=amount,
                currency=currency,
                age=age - timedelta(seconds=30),
                status=intent_status,
                charge=charge,
                methods=methods,
                **charge_kwargs,
            )
        return self.store.create_checkout_session(
            created=to_unix(self.now - age),
            status=status,
            payment_status=payment_status,
            client_reference_id=client_reference_id or (str(order_id) if order_id is not None else None),
            payment_intent=intent["id"] if intent else None,
            amount_total=amount,
            currency=currency,
        )


def seed_demo_shop(store: StandinStore, orders: Collection, now: datetime, numbered_from: int = 0) -> Counter[str]:
    """A realistic day: mostly healthy orders, and at least one of every outcome.

    `numbered_from`: where string order ids and emails start counting (seeding the mix again, for a bigger shop).
    """
    s = ShopSeeder(store, orders, now)
    s._n = numbered_from
    _seed_healthy_orders(s)
    _seed_outcome_mix(s)
    _seed_intents_and_sessions(s)
    _seed_money_details(s)
    _seed_unclear_links(s)
    _seed_slow_debits(s)
    _seed_balance_movements(s)
    return s.expected


def _seed_healthy_orders(s: ShopSeeder) -> None:
    """Healthy orders: paid in several currencies (zero- and three-decimal, settled in another), one declined."""
    for i in range(12):  # healthy paid orders, some with string ids
        oid = s.order(c.OK, status="accepted", amount=1000 + 250 * i, object_id=i % 3 != 0, age=timedelta(hours=3 + i))
        s.charge(oid, amount=1000 + 250 * i, age=timedelta(hours=3 + i), description=f"Order of {i + 1} items")
    oid = s.order(c.OK, status="accepted", amount=4980, currency="jpy")  # zero-decimal
    s.charge(oid, amount=4980, currency="jpy")
    oid = s.order(c.OK, status="accepted", amount=2500, currency="eur")  # settled in USD
    s.charge(oid, amount=2500, currency="eur", settlement_currency="usd", exchange_rate="1.0843")
    oid = s.order(c.OK, status="accepted", amount=12500, currency="kwd")  # three-decimal
    s.charge(oid, amount=12500, currency="kwd")
    oid = s.order(c.OK, status="failed")  # checkout wrote failed after the declined charge
    s.charge(oid, status="failed")


def _seed_outcome_mix(s: ShopSeeder) -> None:
    """One order or charge for each outcome a person may have to look at; charges that name no order."""
    store, now = s.store, s.now
    # Stuck: the charge succeeded, the write of "accepted" was lost.
    for object_id in (True, False):
        oid = s.order(c.REPAIRED, amount=3999, object_id=object_id)
        s.charge(oid, amount=3999)
    oid = s.order(c.MARKED_FAILED)
    s.charge(oid, status="failed")
    s.order(c.STALE_PENDING, age=timedelta(hours=5))
    s.order(c.IN_FLIGHT, age=timedelta(minutes=3))
    s.order(c.PAID_WITHOUT_CHARGE, status="accepted")
    oid = s.order(c.AMOUNT_MISMATCH, status="accepted", amount=5000)
    s.charge(oid, amount=4500)
    oid = s.order(c.DUPLICATE_CHARGE, status="accepted", amount=1800)
    s.charge(oid, amount=1800, age=timedelta(hours=2, minutes=1))
    s.charge(oid, amount=1800)
    oid = s.order(c.REFUNDED_OR_DISPUTED, status="accepted", amount=2200)
    refunded = s.charge(oid, amount=2200)
    store.create_refund(refunded["id"], created=to_unix(now - timedelta(hours=1)))
    oid = s.order(c.REFUNDED_OR_DISPUTED, status="accepted", amount=7400)
    disputed = s.charge(oid, amount=7400)
    store.create_dispute(disputed["id"], created=to_unix(now - timedelta(minutes=50)))
    oid = s.order(c.UNCAPTURED, amount=6100)
    s.charge(oid, amount=6100, captured=False)
    oid = s.order(c.FAILED_BUT_CHARGED, status="failed", amount=1500)
    s.charge(oid, amount=1500)
    s.order(c.DATA_PROBLEM, status="accepted", amount="19.99")
    # Charges that name no order: one with no metadata, one naming a deleted order, one hostile.
    s.charge(None, amount=990)
    s.charge(None, amount=1200, metadata={"order_id": "ord_deleted_4711"})
    s.charge(
        None,
        amount=666,
        metadata={"order_id": '<script>alert("x")</script>'},
        description='<img src=x onerror=alert(1)> "gift"',
    )
    s.expected[c.ORPHAN_CHARGE] += 3


def _seed_intents_and_sessions(s: ShopSeeder) -> None:
    """Orders linked through PaymentIntents and Checkout Sessions, healthy and stuck."""
    # PaymentIntents integration: the order id lives in the PaymentIntent's metadata.
    oid = s.order(c.OK, status="accepted", amount=3300)
    s.intent(oid, amount=3300)
    oid = s.order(c.REPAIRED, amount=4100)
    s.intent(oid, amount=4100)
    oid = s.order(c.IN_FLIGHT, amount=5200)  # an ACH debit: processing for days, not failed
    s.intent(oid, amount=5200, status="processing", charge=None, methods=("us_bank_account",))
    oid = s.order(c.MARKED_FAILED, amount=2700)
    s.intent(oid, amount=2700, status="canceled", charge=None)
    oid = s.order(c.STALE_PENDING, amount=1900)  # the customer never entered a card
    s.intent(oid, amount=1900, status="requires_payment_method", charge=None)
    # Checkout integration: the order id is the session's client_reference_id.
    oid = s.order(c.OK, status="accepted", amount=6400)
    s.checkout(oid, amount=6400)
    oid = s.order(c.REPAIRED, amount=2350, object_id=False)
    s.checkout(oid, amount=2350)
    oid = s.order(c.STALE_PENDING, amount=8800)  # an expired session: abandoned
    s.checkout(oid, amount=8800, status="expired", payment_status="unpaid", intent_status=None)
    oid = s.order(c.IN_FLIGHT, amount=7300)  # complete but unpaid: a delayed payment method settling
    s.checkout(
        oid, amount=7300, payment_status="unpaid", intent_status="processing", charge=None, methods=("sepa_debit",)
    )
    # Ids stored on the order by the checkout: a PaymentIntent id, a Checkout Session id.
    pi = s.intent(None, amount=5600)
    s.order(c.OK, status="accepted", amount=5600, payment_intent_id=pi["id"])
    session = s.checkout(None, amount=4700)
    s.order(c.OK, status="accepted", amount=4700, checkout_session_id=session["id"])


def _seed_money_details(s: ShopSeeder) -> None:
    """Partial captures and refunds: those the order records, and one it does not."""
    store, now = s.store, s.now
    # Money details: a partial capture (the remainder released), a partial refund the order records.
    oid = s.order(c.OK, status="accepted", amount=4000)
    s.charge(oid, amount=5000, amount_captured=4000)
    oid = s.order(c.OK, status="accepted", amount=6000, refunded_amount=1000)
    part = s.charge(oid, amount=6000)
    store.create_refund(part["id"], amount=1000, created=to_unix(now - timedelta(minutes=40)))
    oid = s.order(c.REFUNDED_OR_DISPUTED, status="accepted", amount=3600)  # refunded in Stripe, not on the order
    part = s.charge(oid, amount=3600)
    store.create_refund(part["id"], amount=600, created=to_unix(now - timedelta(minutes=30)))


def _seed_unclear_links(s: ShopSeeder) -> None:
    """A charge and its PaymentIntent naming two orders; charges found only by amount, time and email."""
    store, now = s.store, s.now
    # A shop migrating to PaymentIntents: the charge names one order, its PaymentIntent another.
    first = s.order(c.LINK_CONFLICT, status="accepted", amount=2900)
    second = s.order(c.LINK_CONFLICT, amount=2900)
    intent = store.create_payment_intent(
        amount=2900, created=to_unix(now - timedelta(hours=2)), metadata={"order_id": str(second)}
    )
    s.charge(first, amount=2900, payment_intent=intent["id"])
    # A checkout that crashed before writing any reference: a probable match for a person...
    late = s.order(c.PROBABLE_MATCH, amount=3150, age=timedelta(hours=3))
    late_doc = s.orders.find_one({"_id": late})
    assert late_doc is not None  # inserted just above
    s.charge(
        None,
        amount=3150,
        age=timedelta(hours=2, minutes=56),
        metadata={},
        billing_email=late_doc["email"],
    )
    # ...and one whose two candidate orders are equally likely: said so, neither picked.
    s.order(c.STALE_PENDING, amount=4200, age=timedelta(hours=4))
    s.order(c.STALE_PENDING, amount=4200, age=timedelta(hours=4, minutes=10))
    s.charge(None, amount=4200, age=timedelta(hours=3, minutes=55), metadata={}, billing_email=None)
    s.expected[c.ORPHAN_CHARGE] += 1


def _seed_slow_debits(s: ShopSeeder) -> None:
    """Bank debits judged by their own deadline (docs/deadlines.md): a SEPA debit in flight, judged when
    Stripe's 14 business days are up; and one past the date the shop wrote on its order, for a person."""
    store, now = s.store, s.now
    slow = s.order(c.IN_FLIGHT, amount=8900, currency="eur", age=timedelta(hours=3))
    store.create_delayed_payment(
        8900,
        "eur",
        "sepa_debit",
        to_unix(now - timedelta(hours=3)),
        settles_at=to_unix(now + timedelta(days=9)),
        charge_metadata={"order_id": str(slow)},
        billing_email="buyer@example.com",
    )
    # The shop promised this one to ship today: its order says the debit should have settled an hour ago.
    late = s.order(
        c.OVERDUE_PROCESSING,
        amount=15400,
        currency="eur",
        age=timedelta(hours=6),
        pay_by=(now - timedelta(hours=1)).replace(tzinfo=None),
    )
    store.create_delayed_payment(
        15400,
        "eur",
        "sepa_debit",
        to_unix(now - timedelta(hours=6)),
        settles_at=to_unix(now + timedelta(days=2)),
        charge_metadata={"order_id": str(late)},
        billing_email="buyer@example.com",
    )


def _seed_balance_movements(s: ShopSeeder) -> None:
    """Money that moves without an order: a payout and a Stripe fee."""
    store, now = s.store, s.now
    # Money that moves without an order: a payout and a Stripe fee.
    store.create_balance_transaction(
        type="payout", amount=-25000, currency="usd", created=to_unix(now - timedelta(hours=6))
    )
    store.create_balance_transaction(
        type="stripe_fee",
        amount=-500,
        currency="usd",
        created=to_unix(now - timedelta(hours=7)),
        reporting_category="fee",
    )


PAID_PAYOUT = "po_1DemoPaidPayoutOfTheDay0"  # the day's paid payout: its deposit is on the demo's statement


def seed_demo_payouts(store: StandinStore, orders: Collection, now: datetime, numbered_from: int = 500) -> Counter[str]:
    """Payouts of the day: one paid and itemized (three orders' charges, traced to their orders) and one the
    bank returned (the account closed). Their orders are healthy (ok); the failed payout is an item."""
    s = ShopSeeder(store, orders, now)
    s._n = numbered_from
    txns: list[str] = []
    net = 0  # what the payout pays out: the charges' net
    for minute, amount in enumerate((4200, 1999, 12500)):
        age = timedelta(hours=20, minutes=minute)
        oid = s.order(c.OK, status="accepted", amount=amount, age=age)
        txn = s.charge(oid, amount=amount, age=age)["balance_transaction"]
        txns.append(txn)
        net += int((store.get(txn) or {})["net"])
    created = to_unix(now - timedelta(hours=5))
    arrival = to_unix(now - timedelta(hours=1))
    store.create_payout(net, created=created, arrival_date=arrival, transactions=txns, id=PAID_PAYOUT)
    store.create_payout(
        48_000, created=created + 60, arrival_date=arrival, status="failed", failure_code="account_closed"
    )
    return s.expected


STATEMENT = "bank-statement.csv"


def seed_demo_bank(
    store: StandinStore,
    orders: Collection,
    payouts: Collection,
    statement: Path,
    now: datetime,
    numbered_from: int = 600,
) -> Counter[str]:
    """The bank's side: a payout of last week an earlier run saw (kept in the payouts collection) whose deposit
    is not on the statement, and a CSV statement of the last two weeks with the day's paid payout on it, an
    unexplained Stripe deposit, and the account's other lines (rent, supplies: never shown)."""
    from reconcile.decide import bank

    today = now.date()
    week_ago = now - timedelta(days=9)
    # Its money: two orders of the week before, paid and accepted (outside the run's window, so not judged),
    # so that `reconcile payouts` itemizes it and it adds up.
    s = ShopSeeder(store, orders, now)
    s._n = numbered_from
    txns, net = [], 0
    for minute, amount in enumerate((86_500, 39_900)):
        age = (now - week_ago) + timedelta(days=3, minutes=minute)
        oid = s.order(None, status="accepted", amount=amount, age=age)
        txn = s.charge(oid, amount=amount, age=age)["balance_transaction"]
        txns.append(txn)
        net += int((store.get(txn) or {})["net"])
    missing = store.create_payout(
        net, created=to_unix(week_ago - timedelta(days=2)), arrival_date=to_unix(week_ago), transactions=txns
    )
    payouts.insert_one(
        {
            "_id": missing["id"],
            "status": "paid",
            "amount": missing["amount"],
            "currency": missing["currency"],
            "arrival_date": missing["arrival_date"],
            "created": missing["created"],
            "watching": False,  # final: no later run reads it again, only the statements prove it arrived
            "transactions": None,
            "orders": None,
            "charges": None,
            "totals": None,
            "last_seen": to_unix(week_ago),
            "last_run": "an-earlier-run",
            "trace_id": None,
        }
    )
    paid = store.get(PAID_PAYOUT)
    assert paid is not None, "seed_demo_payouts first"
    arrived = datetime.fromtimestamp(paid["arrival_date"], now.tzinfo).date()

    def row(day: date, description: str, reference: str, minor: int) -> tuple[date, str]:
        sign = "-" if minor < 0 else ""
        return day, f"{day.isoformat()},{description},{reference},{sign}{abs(minor) // 100}.{abs(minor) % 100:02d}"

    trace = (paid.get("trace_id") or {}).get("value") or "STRIPE"
    rows = sorted(
        [
            row(today - timedelta(days=13), "Rent to IBAN GB33BUKB20201555555555", "RENT-11", -150_000),
            row(today - timedelta(days=5), "Coffee beans wholesale", "INV-2231", -8_990),
            row(arrived, "STRIPE PAYOUT", trace, paid["amount"]),
            row(today - timedelta(days=1), "STRIPE TRANSFER", "ST-7731-UNKNOWN", 25_000),
            row(today, "Account fee", "FEE", -200),
        ]
    )
    lines = ["Date,Description,Reference,Amount", *(text for _, text in rows)]
    statement.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return Counter({bank.PAYOUT_NOT_IN_BANK: 1, bank.BANK_DEPOSIT_UNMATCHED: 1})


def run_demo(report_dir: Path, here: Path | None = None) -> ExitCode:
    """The demo, its shop kept in `here`/reconcile-demo/ (default: the current directory) for the commands after it."""
    from reconcile.config import parse_config
    from reconcile.demo.embedded_mongo import EmbeddedMongo
    from reconcile.run import bank as bank_run
    from reconcile.run import invocation as orchestrate
    from reconcile.runtime import progress
    from reconcile.store import indexes, mongo
    from reconcile.stripe import pull as stripe_pull

    here = Path.cwd() if here is None else here
    folder = DemoFolder(here / FOLDER)
    if folder.holds_a_shop():
        click.echo(f"demo: starting afresh: the shop an earlier demo kept in {FOLDER}/ is replaced", err=True)
    folder.start_afresh()
    now = utcnow()
    store = StandinStore(api_key=DEMO_KEY)
    click.echo("starting the Stripe stand-in and an embedded MongoDB server on loopback...", err=True)
    with EmbeddedMongo(db_path=str(folder.mongo_dir.resolve())) as server, serve(store) as stripe_server:
        statement = (folder.root / STATEMENT).resolve()
        config = parse_config(demo_config(stripe_server.url, statement), "demo config")
        os.environ[KEY_ENV] = DEMO_KEY
        os.environ[URI_ENV] = server.uri
        db = mongo.connect(config.mongodb_uri(), config.mongodb)
        # The demo's database is its own and new: it gets the indexes `reconcile init` would create,
        # so the run has no index warning a user could not act on.
        indexes.create(db, config.mongodb, config.orders)
        expected = seed_demo_shop(store, db[config.mongodb.orders_collection], now)
        expected += seed_demo_payouts(store, db[config.mongodb.orders_collection], now)
        bank_expected = seed_demo_bank(
            store, db[config.mongodb.orders_collection], db[config.payouts.collection], statement, now
        )
        store.save(folder.stripe_file)  # the stand-in is read-only: what the commands after it serve
        client = progress.wrap(stripe_pull.make_client(config.stripe_api_key(), config.stripe))
        # The whole invocation (lease, run history, refunds and disputes, open items), not only the window run.
        invocation = orchestrate.Invocation(
            now=utcnow(),
            since=now - timedelta(days=1),
            report_dir=report_dir,
            trigger="demo",
            statements=bank_run.statements_of(config.bank),
        )
        scan_db = mongo.connect_for_scans(config.mongodb_uri(), config.mongodb)
        result = orchestrate.run_windows(config, client, db, invocation, scan_db=scan_db).runs[-1].result
        for database in (db, scan_db):
            database.client.close()
    progress.stop()  # the summary below gets rows of its own
    kept = write_configs(folder, demo_config(stripe_server.url, statement), here)
    mismatched = [o for o in c.OUTCOMES if expected.get(o, 0) != result.counts.get(o, 0)]
    payout_problems = Counter(
        d.outcome for d in result.summary.discrepancies if d.payout_id or d.outcome in bank_expected
    )
    mismatched_bank = [o for o in bank_expected if payout_problems.get(o, 0) != bank_expected[o]]
    # Refunds and disputes for a person are items like the rest.
    others = payout_problems + Counter(m["kind"] for m in result.summary.movements if m["needs_person"])
    for line in demo_summary(result.counts, result.summary.needs_attention, sum(expected.values()), others):
        click.echo(line)
    click.echo(f"report: {result.report.html} (and its CSV)")
    click.echo(kept)
    if mismatched or mismatched_bank:
        click.echo(f"{'outcome':<24}{'seeded':>8}{'found':>8}")
        for outcome in mismatched:
            click.echo(f"{outcome:<24}{expected.get(outcome, 0):>8}{result.counts.get(outcome, 0):>8}")
        for bank_outcome in mismatched_bank:
            seeded, found = bank_expected[bank_outcome], payout_problems.get(bank_outcome, 0)
            click.echo(f"{bank_outcome:<24}{seeded:>8}{found:>8}")
        click.echo("demo: the counts differ from the seeded mix", err=True)
        return ExitCode.INTERNAL_ERROR
    click.echo("demo: every outcome matches the seeded mix")
    return ExitCode.OK


def demo_summary(
    counts: dict[str, int], needs_attention: int, seeded: int, others: Counter[str] | None = None
) -> list[str]:
    """A few lines a person reads at the end of the demo: what the job did and what it left for a person
    (`others`: the items beside the orders' outcomes, payouts, the bank, refunds and disputes, by kind; the
    kinds listed for a person add up to `needs_attention` when every item is new)."""
    name = {o: o.replace("_", " ") for o in c.OUTCOMES}
    handled = [
        f"{counts.get(c.REPAIRED, 0)} stuck orders repaired",
        f"{counts.get(c.MARKED_FAILED, 0)} marked failed (each change audited)",
        f"{counts.get(c.IN_FLIGHT, 0)} in flight left alone",
        f"{counts.get(c.STALE_PENDING, 0)} abandoned checkouts listed",
    ]
    people = [f"{counts[o]} {name[o]}" for o in c.NEEDS_PERSON if counts.get(o)]
    people += [f"{n} {o.replace('_', ' ')}" for o, n in sorted((others or {}).items())]
    lines = [f"demo: a shop of {seeded} seeded cases over the last day: {counts.get(c.OK, 0)} in agreement"]
    lines += textwrap.wrap(f"the job: {', '.join(handled)}", 78, initial_indent="  ", subsequent_indent="    ")
    needs = f"for a person ({needs_attention}): {', '.join(people) or 'nothing'}"
    lines += textwrap.wrap(needs, 78, initial_indent="  ", subsequent_indent="    ")
    return lines
