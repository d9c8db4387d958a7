"""Payouts (issue 22): the rules table-driven on the pure decide step (decide/payouts.py), then the wiring
end to end through the `reconcile` command against the Stripe stand-in and nx-27017."""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta
from pathlib import Path

import pytest

from reconcile.decide import payouts as p
from reconcile.decide.payouts import Itemization, Itemized, Payout, PayoutRules, PayoutTxn
from reconcile.report import payouts as words
from reconcile.timeutil import to_unix

DAY = 86400
NOW = 1_800_000_000
RULES = PayoutRules(overdue_after=3 * DAY, watch_paid_for=10 * DAY)


def payout(status: str = "paid", *, arrival: int = NOW - DAY, amount: int = 10_000, **kw: object) -> Payout:
    fields: dict[str, object] = {
        "id": "po_1",
        "status": status,
        "amount": amount,
        "currency": "usd",
        "arrival_date": p.arrival_day(arrival),
        "arrival": arrival,
        "created": arrival - 2 * DAY,
        "automatic": True,
        "reconciliation_status": "completed",
        "failure_code": "account_closed" if status == "failed" else None,
        "trace_id": None,
    }
    fields.update(kw)
    return Payout(**fields)  # type: ignore[arg-type]


def itemized(net: int) -> Itemized:
    return Itemized(3, 2, 2, {"gross": net, "refunds": 0, "disputes": 0, "fees": 0, "other": 0, "net": net})


# --------------------------------------------------------------------------- the rules (pure)


@pytest.mark.parametrize(
    "case,status,arrival,items,expected",
    [
        ("paid_adds_up", "paid", NOW - DAY, itemized(10_000), None),
        ("paid_not_itemized_yet", "paid", NOW - DAY, None, None),
        ("paid_does_not_add_up", "paid", NOW - DAY, itemized(9_999), p.PAYOUT_MISMATCH),
        ("failed", "failed", NOW - DAY, None, p.PAYOUT_FAILED),
        ("failed_after_paid_itemized", "failed", NOW - DAY, itemized(10_000), p.PAYOUT_FAILED),
        ("canceled", "canceled", NOW + DAY, None, p.PAYOUT_CANCELED),
        ("pending_before_arrival", "pending", NOW + DAY, None, None),
        ("in_transit_within_grace", "in_transit", NOW - 3 * DAY + 1, None, None),
        ("in_transit_at_overdue_after", "in_transit", NOW - 3 * DAY, None, p.PAYOUT_OVERDUE),
        ("pending_long_past_arrival", "pending", NOW - 9 * DAY, None, p.PAYOUT_OVERDUE),
        ("paid_long_ago_is_never_overdue", "paid", NOW - 30 * DAY, None, None),
    ],
)
def test_judge(case: str, status: str, arrival: int, items: Itemized | None, expected: p.PayoutOutcome | None) -> None:
    assert p.judge(payout(status, arrival=arrival), items, NOW, RULES) == expected


@pytest.mark.parametrize(
    "case,status,arrival,expected",
    [
        ("pending", "pending", NOW + DAY, True),
        ("in_transit_overdue", "in_transit", NOW - 20 * DAY, True),
        ("paid_recently", "paid", NOW - 9 * DAY, True),
        ("paid_past_the_watch", "paid", NOW - 10 * DAY, False),
        ("failed_is_final", "failed", NOW - DAY, False),
        ("canceled_is_final", "canceled", NOW + DAY, False),
    ],
)
def test_watching(case: str, status: str, arrival: int, expected: bool) -> None:
    assert p.watching(payout(status, arrival=arrival), NOW, RULES) is expected


def test_every_outcome_needs_a_person_and_has_words() -> None:
    from reconcile.report import wording

    for outcome in p.OUTCOMES:
        assert outcome.needs_person
        assert wording.PAYOUT_TITLES[outcome.label_key]
        assert outcome in wording.NEXT_STEPS
    assert {o for o in p.OUTCOMES if o.stays_until_decided} == {p.PAYOUT_FAILED, p.PAYOUT_CANCELED}


def txn(tid: str, category: str, amount: int, fee: int = 0, order: str | None = None) -> PayoutTxn:
    return PayoutTxn(tid, category, category, None, None, order, "usd", amount, fee, amount - fee)


def test_itemization_uses_the_balance_totals_categories_and_leaves_the_payout_out() -> None:
    fold = Itemization()
    fold.add([txn("t1", "charge", 10_000, 320, "o1"), txn("t2", "refund", -2_000, 0, "o1")])
    fold.add(
        [
            txn("t3", "dispute", -3_000, 1_500, "o2"),
            txn("t4", "fee", -500),
            txn("t5", "other_adjustment", 100),
            txn("t6", "payout", -10_000),  # the payout's own: left out
            txn("t1", "charge", 10_000, 320, "o1"),  # listed again on a later page: counted once
        ]
    )
    done = fold.done()
    assert done.totals == {
        "gross": 10_000,
        "refunds": -2_000,
        "disputes": -3_000,
        "fees": 2_320,
        "other": 100,
        "net": 2_780,
    }
    t = done.totals
    assert t["gross"] + t["refunds"] + t["disputes"] + t["other"] - t["fees"] == t["net"]
    assert (done.transactions, done.orders, done.charges) == (5, 2, 1)
    assert done.adds_up(2_780) and not done.adds_up(2_781)


def test_judge_all_clears_live_items_that_no_longer_hold_and_settles_final_ones_a_person_resolved() -> None:
    paid = payout("paid", arrival=NOW - 5 * DAY)
    failed = payout("failed", id="po_2")
    canceled = payout("canceled", id="po_3")
    items = {
        "payout_overdue:po_1": {"source": "payout", "object_id": "po_1", "state": "open"},
        "payout_mismatch:po_1": {"source": "payout", "object_id": "po_1", "state": "accepted"},  # not live
        "payout_failed:po_2": {"source": "payout", "object_id": "po_2", "state": "resolved", "resolved_by": "ann"},
        "payout_canceled:po_3": {
            "source": "payout",
            "object_id": "po_3",
            "state": "resolved",
            "resolved_by": "bob",
            "verified_at": NOW - DAY,
        },
        "payout_overdue:po_9": {"source": "payout", "object_id": "po_9", "state": "open"},  # not looked at
    }
    judged = p.judge_all([(paid, None), (failed, None), (canceled, None)], items, NOW, RULES)
    assert judged.cleared == {
        "payout_overdue:po_1": "re-checked: payout is paid",
        "payout_failed:po_2": "re-checked: payout is failed",  # the person's resolution, verified
    }
    assert judged.settled == ["payout_failed:po_2", "payout_canceled:po_3"]
    assert [o for _, _, o in judged.payouts] == [None, p.PAYOUT_FAILED, p.PAYOUT_CANCELED]


def test_failure_codes_are_said_in_plain_words() -> None:
    from reconcile.report import wording

    detail = wording.payout_detail(payout("failed"), p.PAYOUT_FAILED, None, NOW)
    assert "the bank account has been closed (account_closed)" in detail
    assert "returned the money to the balance" in detail
    assert wording.failure_words("no_account").startswith("the bank could not find the account")
    assert wording.failure_words("something_new") == "something new"


def test_json_of_a_payout_has_exactly_the_issues_fields() -> None:
    j = words.payout_json(payout("paid", trace_id="T1"), itemized(10_000))
    assert list(j) == [
        "id",
        "status",
        "amount",
        "currency",
        "arrival_date",
        "automatic",
        "reconciliation_status",
        "failure_code",
        "transactions",
        "orders",
        "totals",
        "adds_up",
        "bank",
        "bank_check",
    ]
    assert j["adds_up"] is True and j["arrival_date"] == p.arrival_day(NOW - DAY).isoformat()
    manual = words.payout_json(payout("paid", automatic=False, reconciliation_status="not_applicable"), None)
    assert (manual["transactions"], manual["orders"], manual["totals"], manual["adds_up"]) == (None, None, None, None)


def test_payout_record_keeps_the_names_the_bank_matcher_reads() -> None:
    one = payout("paid", trace_id="TRACE1")
    assert (one.id, one.status, one.amount, one.currency, one.trace_id) == ("po_1", "paid", 10_000, "usd", "TRACE1")
    assert isinstance(one.arrival_date, date)


# --------------------------------------------------------------------------- end to end

PAYOUTS_CSV_HEADER = (
    "payout_id,payout_status,arrival_date,balance_transaction_id,type,reporting_category,source_id,"
    "charge_id,order_id,currency,gross,fee,net,bank_date,bank_reference"
)


def paid_orders(shop, n: int, amount: int = 2500, currency: str = "usd") -> list[tuple[object, dict]]:
    out = []
    for _ in range(n):
        order = shop.order(None, status="accepted", amount=amount, currency=currency)
        charge = shop.charge(order, amount=amount, currency=currency)
        shop.orders.update_one({"_id": order}, {"$set": {"charge_id": charge["id"]}})
        out.append((order, charge))
    return out


def net_of(store, txn_ids: list[str]) -> int:
    return sum(store.get(t)["net"] for t in txn_ids)


def payout_csv_rows(result) -> list[dict[str, str]]:
    path = Path(result.summary["report"]["csv"]).with_name(f"payouts-{result.summary['run_id']}.csv")
    text = path.read_text()
    assert text.splitlines()[0] == PAYOUTS_CSV_HEADER
    return list(csv.DictReader(io.StringIO(text)))


def test_every_payout_outcome_through_the_cli(cli, store, db, shop, now):
    created = to_unix(now - timedelta(hours=3))
    past = to_unix(now - timedelta(days=6))
    orders = paid_orders(shop, 3)
    refund = store.create_refund(orders[0][1]["id"], amount=500, created=created)
    good_txns = [c["balance_transaction"] for _, c in orders] + [refund["balance_transaction"]]
    good = store.create_payout(net_of(store, good_txns), created=created, arrival_date=past, transactions=good_txns)
    short = paid_orders(shop, 2)
    short_txns = [c["balance_transaction"] for _, c in short]
    mismatch = store.create_payout(net_of(store, short_txns) + 1, created=created, transactions=short_txns)
    failed = store.create_payout(7000, created=created, status="failed", failure_code="no_account")
    canceled = store.create_payout(400, created=created, status="canceled")
    overdue = store.create_payout(
        900, created=created, status="in_transit", arrival_date=past, reconciliation_status="in_progress"
    )
    manual = store.create_payout(500, created=created, automatic=False, status="paid", arrival_date=past)

    result = cli()
    assert result.exit_code == 1, result.output
    by_id = {x["id"]: x for x in result.summary["payouts"]}
    assert set(by_id) == {good["id"], mismatch["id"], failed["id"], canceled["id"], overdue["id"], manual["id"]}
    line = next(x for x in result.stdout.splitlines() if x.startswith("payouts: "))
    assert line.startswith("payouts: 6 looked at, 2 itemized; ")
    assert all(f"1 {w}" in line for w in ("failed", "canceled", "overdue", "not adding up")), line
    g = by_id[good["id"]]
    assert (g["transactions"], g["orders"], g["adds_up"], g["status"]) == (4, 3, True, "paid")
    assert g["totals"]["gross"] == 7500 and g["totals"]["refunds"] == -500 and g["totals"]["net"] == good["amount"]
    assert by_id[mismatch["id"]]["adds_up"] is False
    assert by_id[manual["id"]]["totals"] is None and by_id[manual["id"]]["automatic"] is False
    assert by_id[failed["id"]]["failure_code"] == "no_account"
    outcomes = {d["payout_id"]: d["outcome"] for d in result.summary["discrepancies"] if "payout_id" in d}
    assert outcomes == {
        mismatch["id"]: "payout_mismatch",
        failed["id"]: "payout_failed",
        canceled["id"]: "payout_canceled",
        overdue["id"]: "payout_overdue",
    }
    items = {d["_id"]: d for d in db["reconcile_items"].find({"source": "payout"})}
    assert set(items) == {f"{o}:{pid}" for pid, o in outcomes.items()}
    assert items[f"payout_failed:{failed['id']}"]["at_stake"] == 7000
    assert "could not find the account" in items[f"payout_failed:{failed['id']}"]["detail"]

    rows = payout_csv_rows(result)
    assert {r["payout_id"] for r in rows} == {good["id"], mismatch["id"]}
    refund_row = next(r for r in rows if r["reporting_category"] == "refund")
    assert refund_row["charge_id"] == orders[0][1]["id"] and refund_row["order_id"] == str(orders[0][0])
    assert refund_row["gross"] == "-5.00"
    html = Path(result.summary["report"]["html"]).read_text()
    assert 'id="payouts"' in html and "Payout failed" in html and f"payouts/{failed['id']}" in html

    # The report's CSV and the payouts CSV both go with the email.
    from reconcile.report import mailer

    files = [(Path(result.summary["report"]["html"]), Path(result.summary["report"]["csv"]))]
    message = mailer.message_from_files(__import__("reconcile.config").config.EmailConfig(), "s", files, "t")
    names = {part.get_filename() for part in message.iter_attachments()}
    assert f"payouts-{result.summary['run_id']}.csv" in names

    # A person accepts the failed payout: the next run leaves it closed; the canceled one stays open.
    assert cli("items", "accept", f"payout_failed:{failed['id']}", "--reason", "bank details fixed").exit_code == 0
    again = cli("--since", "24h")
    states = {d["_id"]: d["state"] for d in db["reconcile_items"].find({"source": "payout"})}
    assert states[f"payout_failed:{failed['id']}"] == "accepted"
    assert states[f"payout_canceled:{canceled['id']}"] == "open"
    assert again.exit_code == 1

    # A person resolves the canceled one: the runs after (its window seen again) never reopen it.
    assert cli("items", "resolve", f"payout_canceled:{canceled['id']}", "--reason", "paid out again").exit_code == 0
    for _ in range(2):
        cli("--since", "24h")
        item = db["reconcile_items"].find_one({"_id": f"payout_canceled:{canceled['id']}"})
        assert item["state"] == "resolved" and item["resolved_by"]
    assert item["verified_at"]


def test_a_paid_payout_that_turns_failed_is_caught_by_a_later_run(cli, store, db, shop, now):
    orders = paid_orders(shop, 2)
    txns = [c["balance_transaction"] for _, c in orders]
    paid = store.create_payout(net_of(store, txns), created=to_unix(now - timedelta(hours=3)), transactions=txns)
    first = cli("--now", (now - timedelta(hours=1)).isoformat(), "--since", "24h")
    assert first.exit_code == 0, first.output
    assert db["reconcile_payouts"].find_one({"_id": paid["id"]})["watching"] is True
    store.fail_payout(paid["id"], "account_frozen", at=to_unix(now + timedelta(days=1)))
    served = store.get(paid["id"])
    assert (
        served["failure_balance_transaction"]
        and store.get(served["failure_balance_transaction"])["amount"] == paid["amount"]
    )
    later = cli("--now", (now + timedelta(days=2)).isoformat(), "--since", (now + timedelta(days=1)).isoformat())
    assert later.exit_code == 1, later.output
    assert [x["status"] for x in later.summary["payouts"]] == ["failed"]
    assert later.summary["payouts"][0]["transactions"] == 2  # itemized once, by the first run
    item = db["reconcile_items"].find_one({"_id": f"payout_failed:{paid['id']}"})
    assert item["state"] == "open" and "frozen" in item["detail"]
    assert db["reconcile_payouts"].find_one({"_id": paid["id"]})["watching"] is False


def test_an_overdue_payout_item_resolves_when_it_is_paid(cli, store, db, now):
    late = store.create_payout(
        900,
        created=to_unix(now - timedelta(hours=3)),
        status="in_transit",
        arrival_date=to_unix(now - timedelta(days=4)),
        reconciliation_status="in_progress",
    )
    assert cli().exit_code == 1
    store.update(late["id"], status="paid")
    again = cli("--now", (now + timedelta(days=1)).isoformat(), "--since", (now + timedelta(hours=12)).isoformat())
    item = db["reconcile_items"].find_one({"_id": f"payout_overdue:{late['id']}"})
    assert item["state"] == "resolved" and item["resolution"] == "re-checked: payout is paid"
    assert again.exit_code == 0, again.output


def test_a_payout_itemized_across_pages(cli, store, db, shop, now):
    orders = paid_orders(shop, 230)
    txns = [c["balance_transaction"] for _, c in orders]
    big = store.create_payout(net_of(store, txns), created=to_unix(now - timedelta(hours=3)), transactions=txns)
    result = cli()
    assert result.exit_code == 0, result.output
    (j,) = result.summary["payouts"]
    assert (j["id"], j["transactions"], j["orders"], j["adds_up"]) == (big["id"], 230, 230, True)
    rows = payout_csv_rows(result)
    assert len(rows) == 230 and len({r["balance_transaction_id"] for r in rows}) == 230


def test_a_jpy_payout_is_whole_yen(cli, store, db, shop, now):
    orders = paid_orders(shop, 2, amount=4980, currency="jpy")
    txns = [c["balance_transaction"] for _, c in orders]
    yen = store.create_payout(net_of(store, txns), "jpy", created=to_unix(now - timedelta(hours=3)), transactions=txns)
    result = cli()
    (j,) = result.summary["payouts"]
    assert j["currency"] == "jpy" and j["totals"]["gross"] == 9960 and j["amount"] == yen["amount"]
    assert {r["gross"] for r in payout_csv_rows(result)} == {"4980"}


def test_a_manual_payout_is_listed_not_itemized_and_not_an_error(cli, store, db, now):
    manual = store.create_payout(500, created=to_unix(now - timedelta(hours=3)), automatic=False)
    result = cli()
    assert result.exit_code == 0, result.output
    (j,) = result.summary["payouts"]
    assert j["id"] == manual["id"] and j["reconciliation_status"] == "not_applicable" and j["transactions"] is None
    assert "not itemized by Stripe" in Path(result.summary["report"]["html"]).read_text()


def test_dry_run_changes_nothing(cli, store, db, now):
    store.create_payout(7000, created=to_unix(now - timedelta(hours=3)), status="failed")
    before = {name: sorted(map(repr, db[name].find())) for name in ("reconcile_items", "reconcile_payouts")}
    result = cli("--dry-run")
    assert result.exit_code == 1 and result.summary["payouts"][0]["status"] == "failed"
    assert {name: sorted(map(repr, db[name].find())) for name in ("reconcile_items", "reconcile_payouts")} == before


def test_a_key_that_may_not_read_payouts_fails_before_any_write(cli, store, shop, db, monkeypatch):
    order = shop.order(None, amount=2500)  # a stuck order the run would repair
    shop.charge(order)
    restricted = "rk_test_51Hnopayouts0keyQQ7yEnd"
    store.restricted_keys[restricted] = {"/v1/payouts"}
    monkeypatch.setenv("STRIPE_API_KEY", restricted)
    before = sorted(map(repr, db["orders"].find()))
    result = cli()
    assert result.exit_code == 2, result.output
    line = result.stderr.strip().splitlines()[-1]
    assert "may not read /v1/payouts (HTTP 403" in line and "rak_payout_read" in line
    assert sorted(map(repr, db["orders"].find())) == before
    assert db["reconcile_audit"].count_documents({}) == 0


def test_reconcile_payouts_lists_and_shows_read_only(cli, store, db, shop, now):
    orders = paid_orders(shop, 2)
    txns = [c["balance_transaction"] for _, c in orders]
    po = store.create_payout(net_of(store, txns), created=to_unix(now - timedelta(hours=3)), transactions=txns)
    before = db.list_collection_names()
    listed = cli("payouts", "--json")
    assert listed.exit_code == 0, listed.output
    import json

    (j,) = [json.loads(line) for line in listed.stdout.splitlines()]
    assert j["id"] == po["id"] and j["adds_up"] is True and j["orders"] == 2
    table = cli("payouts", "--csv")
    assert table.stdout.splitlines()[0].startswith("id,status,amount,currency,arrival_date")
    shown = cli("payouts", "show", po["id"], "--csv")
    assert shown.exit_code == 0, shown.output
    rows = list(csv.DictReader(io.StringIO(shown.stdout)))
    assert {r["order_id"] for r in rows} == {str(o) for o, _ in orders}
    text = cli("payouts", "show", po["id"])
    assert "totals: gross 50.00 USD" in text.output
    missing = cli("payouts", "show", "po_nosuchpayout000000000")
    assert missing.exit_code == 2 and "no payout" in missing.stderr
    assert db.list_collection_names() == before
    assert db["reconcile_state"].count_documents({}) == 0  # no lease taken


def test_check_probes_payouts_and_names_the_permission(cli, store, monkeypatch):
    store.restricted_keys["rk_test_nopayouts_0123456789"] = {"/v1/payouts"}
    monkeypatch.setenv("STRIPE_API_KEY", "rk_test_nopayouts_0123456789")
    cli("init")
    result = cli("check")
    assert result.exit_code == 2
    assert "/v1/payouts" in result.output and "DENIED: the key needs 'Payouts: read'" in result.output


def test_payouts_under_a_steady_429_rate_are_whole(cli, store, db, shop, now, stripe_server):
    from faultkit import FAST

    cli.configure(**FAST)
    orders = paid_orders(shop, 150)
    txns = [c["balance_transaction"] for _, c in orders]
    created = to_unix(now - timedelta(hours=3))
    po = store.create_payout(net_of(store, txns), created=created, transactions=txns)
    failed = store.create_payout(700, created=created, status="failed")
    refused = iter(range(10**6))
    stripe_server.inject("/v1/", "429", times=None, when=lambda _q: next(refused) % 2 == 0, retry_after=0)
    result = cli()
    assert result.exit_code == 1, result.output
    by_id = {x["id"]: x for x in result.summary["payouts"]}
    assert by_id[po["id"]]["transactions"] == 150 and by_id[po["id"]]["adds_up"] is True
    assert by_id[failed["id"]]["status"] == "failed"
    assert len(payout_csv_rows(result)) == 150
    assert stripe_server.faults_served >= 3 and "stripe.rate_limited" in result.stderr


def test_a_month_of_payouts_over_many_pages_is_listed_whole_and_once(cli, store, now):
    """Stripe lists payouts newest first (the pull narrows by created, as for charges): 250 manual
    payouts, several a second in places, over 30 days and three pages, each listed exactly once."""
    start = to_unix(now - timedelta(days=30))
    made = [store.create_payout(100 + i, created=start + (i // 3) * 10_000, automatic=False) for i in range(250)]
    listed = cli("payouts", "--since", "31d", "--json")
    assert listed.exit_code == 0, listed.output
    import json

    ids = [json.loads(line)["id"] for line in listed.stdout.splitlines()]
    assert sorted(ids) == sorted(p["id"] for p in made)


def test_reconcile_payouts_with_nothing_to_list_says_so_in_the_table_only(cli, store):
    table = cli("payouts", "--since", "2026-01-01", "--until", "2026-01-02")
    assert table.exit_code == 0, table.output
    assert table.stdout == "no payouts created from 2026-01-01T00:00:00Z to 2026-01-02T00:00:00Z (UTC, end excluded)\n"
    lines = cli("payouts", "--since", "2026-01-01", "--until", "2026-01-02", "--json")
    assert lines.exit_code == 0 and lines.stdout == ""  # JSON Lines: no payout, no line
