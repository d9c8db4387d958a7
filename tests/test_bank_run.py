"""The bank leg in a run (issue 24): statements read first, matched to the payouts in the decide step, items
for a person, the outputs. The pure parts table-driven first; then the wiring end to end through the
`reconcile` command against the Stripe stand-in and nx-27017 (the matching rules themselves are
tests/test_bank_match.py's, the readers tests/test_bank_statements.py's)."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from test_bank_statements import FIXTURES, MALFORMED

from reconcile.decide import bank as b
from reconcile.decide.bank import BankRules, Deposit, Statement, StatementLine
from reconcile.report import wording
from reconcile.timeutil import to_unix

D = date(2026, 12, 7)  # a Monday


def deposit(booked: date = D, amount: int = 25_000, file: str = "a.csv", line: int = 2, **kw: object) -> Deposit:
    fields: dict[str, object] = {
        "booked": booked,
        "amount": amount,
        "currency": "usd",
        "reference": "ST-1",
        "description": "STRIPE TRANSFER",
        "file": file,
        "line": line,
        "payout_id": None,
    }
    fields.update(kw)
    return Deposit(**fields)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- pure


def test_a_deposit_is_named_by_what_it_is_not_where_it_was_read() -> None:
    one = b.deposit_ids([deposit(file="/x/november.csv", line=9)])
    other = b.deposit_ids([deposit(file="december.ofx", line=40)])
    assert list(one.values()) == list(other.values())
    (key,) = one.values()
    assert key.startswith("2026-12-07:25000:usd:") and "csv" not in key
    # Two identical lines are two deposits; another reference is another deposit.
    twice = b.deposit_ids([deposit(line=2), deposit(line=3)])
    assert len(set(twice.values())) == 2
    assert b.deposit_id(deposit(reference="ST-2")) != b.deposit_id(deposit())


@pytest.mark.parametrize(
    "case,arrivals,until,expected",
    [
        ("none_known_covers_no_day", [], D, (D + timedelta(days=1), D)),
        # Arrived Monday 30 Nov: its window closes Thursday 3 Dec; deposits from Friday on are explained.
        ("after_the_first_window", [date(2026, 11, 30), date(2026, 12, 4)], D, (date(2026, 12, 4), D)),
        # Arrived Thursday 3 Dec: three business days later is Tuesday 8 Dec (the weekend skipped).
        ("across_a_weekend", [date(2026, 12, 3)], date(2026, 12, 10), (date(2026, 12, 9), date(2026, 12, 10))),
    ],
)
def test_payouts_cover(case: str, arrivals: list[date], until: date, expected: tuple[date, date]) -> None:
    assert b.payouts_cover(arrivals, until, 3) == expected


def _result(check: b.PayoutCheck, dep: Deposit | None, extra: tuple[Deposit, ...] = ()) -> b.BankResult:
    match = b.PayoutMatch("po_1", check, dep, D - timedelta(days=1), D + timedelta(days=3), D)
    return b.BankResult((match,), (), tuple(x for x in (dep, *extra) if x is not None))


@pytest.mark.parametrize(
    "case,result,live,cleared,checked",
    [
        (
            "payout_found_clears",
            _result(b.PayoutCheck.MATCHED, deposit(payout_id="po_1")),
            ["payout_not_in_bank:po_1"],
            {"payout_not_in_bank:po_1": "deposit found: 2026-12-07 on a.csv"},
            ["payout_not_in_bank:po_1"],
        ),
        (
            "payout_still_missing_stays",
            _result(b.PayoutCheck.NOT_IN_BANK, None),
            ["payout_not_in_bank:po_1"],
            {},
            ["payout_not_in_bank:po_1"],
        ),
        (
            "statements_end_early_cannot_tell",
            _result(b.PayoutCheck.NOT_COVERED, None),
            ["payout_not_in_bank:po_1"],
            {},
            ["payout_not_in_bank:po_1"],
        ),
        (
            "payout_no_longer_paid_clears",
            _result(b.PayoutCheck.NOT_EXPECTED, None),
            ["payout_not_in_bank:po_1"],
            {"payout_not_in_bank:po_1": "payout no longer paid"},
            ["payout_not_in_bank:po_1"],
        ),
        (
            "another_payout_not_looked_at",
            _result(b.PayoutCheck.MATCHED, deposit(payout_id="po_1")),
            ["payout_not_in_bank:po_2"],
            {},
            [],
        ),
        (
            "deposit_now_explained_clears",
            _result(b.PayoutCheck.MATCHED, deposit(payout_id="po_1")),
            ["bank_deposit_unmatched:" + b.deposit_id(deposit())],
            {"bank_deposit_unmatched:" + b.deposit_id(deposit()): "payout po_1 explains it"},
            ["bank_deposit_unmatched:" + b.deposit_id(deposit())],
        ),
        (
            "deposit_still_unexplained_stays",
            _result(b.PayoutCheck.NOT_EXPECTED, None, (deposit(),)),
            ["bank_deposit_unmatched:" + b.deposit_id(deposit())],
            {},
            ["bank_deposit_unmatched:" + b.deposit_id(deposit())],
        ),
        (
            "deposit_not_on_these_statements",
            _result(b.PayoutCheck.NOT_EXPECTED, None),
            ["bank_deposit_unmatched:" + b.deposit_id(deposit())],
            {},
            [],
        ),
    ],
)
def test_settle(case: str, result: b.BankResult, live: list[str], cleared: dict[str, str], checked: list[str]) -> None:
    settled = b.settle(result, b.deposit_ids(result.deposits), live)
    assert (settled.cleared, settled.checked) == (cleared, checked)


def test_kept_payouts_match_like_payouts_read_now() -> None:
    doc = {
        "_id": "po_9",
        "status": "paid",
        "amount": 4200,
        "currency": "USD",
        "arrival_date": to_unix(datetime(2026, 12, 3)),
        "trace_id": "TRACE123",
    }
    known = b.known_payout(doc)
    assert known == b.KnownPayout("po_9", "paid", 4200, "usd", date(2026, 12, 3), "TRACE123")
    assert b.known_payout({"_id": "po_x"}) is None
    line = StatementLine(date(2026, 12, 4), 4200, "usd", "STRIPE TRACE123", "", 2)
    statement = Statement("s.csv", "csv", None, date(2026, 12, 1), date(2026, 12, 10), "usd", (line,))
    result = b.match_payouts([known], [statement], BankRules(), D)
    assert result.payouts[0].check is b.PayoutCheck.MATCHED


def test_every_bank_outcome_has_words_a_next_step_and_a_stable_key() -> None:
    for outcome in b.BankOutcome:
        assert outcome.needs_person
        assert wording.item_title(outcome) != outcome.replace("_", " ")
        assert wording.next_step({"kind": outcome}) != "look into it"
        assert outcome in wording.PAYOUT_SHORT
    missing = b.BankFinding(
        b.PAYOUT_NOT_IN_BANK,
        123_456,
        "usd",
        D,
        payout_id="po_1",
        window_from=D,
        window_to=D,
        files=("/secret/path/bank.csv",),
    )
    assert b.item_key(missing, {}) == "payout_not_in_bank:po_1"
    detail = wording.bank_detail(missing)
    assert "1,234.56 USD" in detail and "bank.csv" in detail and "/secret/path" not in detail


# --------------------------------------------------------------------------- end to end

STATEMENT_CSV = {"currency": "USD", "reference_column": "Reference"}
HEADER = "Date,Description,Reference,Amount"


def write_statement(path: Path, rows: list[tuple[date, str, str, str]]) -> Path:
    lines = [HEADER, *(f"{day.isoformat()},{text},{ref},{amount}" for day, text, ref, amount in sorted(rows))]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def paid_payout(store, shop, now: datetime, arrived_days_ago: int, amount: int | None = None) -> dict:
    """A paid payout created in the run's window whose arrival date is `arrived_days_ago` days back."""
    created = to_unix(now - timedelta(hours=3))
    arrival = to_unix(now - timedelta(days=arrived_days_ago))
    if amount is not None:
        return store.create_payout(amount, created=created, arrival_date=arrival, automatic=False)
    order = shop.order(None, status="accepted", amount=2500)
    charge = shop.charge(order, amount=2500)
    txn = charge["balance_transaction"]
    net = store.get(txn)["net"]
    return store.create_payout(net, created=created, arrival_date=arrival, transactions=[txn])


def money(minor: int) -> str:
    return f"{minor // 100}.{minor % 100:02d}"


def bank_items(db) -> dict[str, dict]:
    return {d["_id"]: d for d in db["reconcile_items"].find({"source": "bank"})}


def test_both_outcomes_a_match_in_every_output_and_the_item_resolved_later(cli, store, db, shop, now, tmp_path):
    cli.configure(bank=STATEMENT_CSV)
    today = now.date()
    found = paid_payout(store, shop, now, 8)
    missing = paid_payout(store, shop, now, 8, amount=77_777)
    failed = store.create_payout(7000, created=to_unix(now - timedelta(hours=3)), status="failed")
    rows = [
        (today - timedelta(days=10), "Rent to IBAN GB33BUKB20201555555555", "RENT", "-1500.00"),
        (
            found_day := datetime.fromtimestamp(found["arrival_date"], now.tzinfo).date(),
            "STRIPE PAYOUT",
            "PO-FOUND",
            money(found["amount"]),
        ),
        (today - timedelta(days=1), "STRIPE TRANSFER", "ST-7731", "250.00"),
        (today, "Account fee", "FEE", "-2.00"),
    ]
    statement = write_statement(tmp_path / "december.csv", rows)
    before = statement.read_bytes(), statement.stat().st_mtime_ns

    result = cli("--bank-statement", str(statement))
    assert result.exit_code == 1, result.output
    assert (statement.read_bytes(), statement.stat().st_mtime_ns) == before  # input only
    by_id = {p["id"]: p for p in result.summary["payouts"]}
    assert by_id[found["id"]]["bank"] == {
        "date": found_day.isoformat(),
        "amount": found["amount"],
        "currency": "usd",
        "reference": "PO-FOUND",
        "file": "december.csv",
    }
    assert by_id[found["id"]]["bank_check"] == "matched"
    assert by_id[missing["id"]]["bank"] is None and by_id[missing["id"]]["bank_check"] == "not_in_bank"
    assert by_id[failed["id"]]["bank_check"] == "not_expected"
    outcomes = sorted(
        d["outcome"] for d in result.summary["discrepancies"] if d["outcome"].startswith(("payout_not", "bank_"))
    )
    assert outcomes == ["bank_deposit_unmatched", "payout_not_in_bank"]
    line = next(x for x in result.stdout.splitlines() if x.startswith("payouts: "))
    assert "1 not on the bank statement" in line and "1 deposit without payout" in line, line

    items = bank_items(db)
    deposit_key = next(k for k in items if k.startswith("bank_deposit_unmatched:"))
    assert set(items) == {f"payout_not_in_bank:{missing['id']}", deposit_key}
    assert items[f"payout_not_in_bank:{missing['id']}"]["at_stake"] == 77_777
    assert items[deposit_key]["at_stake"] == 25_000 and "ST-7731" in items[deposit_key]["detail"]
    assert str(tmp_path) not in json.dumps([items[k]["detail"] for k in items])  # base names only

    # The payouts CSV: the deposit's day and reference on the found payout's rows.
    run_id = result.summary["run_id"]
    text = (Path(result.summary["report"]["csv"]).parent / f"payouts-{run_id}.csv").read_text()
    assert text.splitlines()[0].endswith(",net,bank_date,bank_reference")
    payout_rows = [r for r in csv.DictReader(io.StringIO(text)) if r["payout_id"] == found["id"]]
    assert payout_rows and all(
        (r["bank_date"], r["bank_reference"]) == (found_day.isoformat(), "PO-FOUND") for r in payout_rows
    )
    html = Path(result.summary["report"]["html"]).read_text()
    assert "on the bank " in html and "NOT on the bank statements" in html and "december.csv (csv" in html
    assert "Payout not on the bank statement" in html and "Stripe deposit no payout explains" in html
    assert "GB33BUKB20201555555555" not in html and "Rent" not in html and "Account fee" not in html
    assert "0150 0155" not in html and str(tmp_path) not in html

    # The next export holds the missing payout's deposit (a day late) and the same unexplained line: the
    # payout's item resolves; the deposit's, read from another file, is the same item.
    missing_day = datetime.fromtimestamp(missing["arrival_date"], now.tzinfo).date()
    rows.append((missing_day + timedelta(days=1), "STRIPE PAYOUT", "PO-LATE", money(missing["amount"])))
    (tmp_path / "december.csv").unlink()
    later = write_statement(tmp_path / "december-2.csv", rows)
    again = cli("--since", "2h", "--bank-statement", str(later))
    items = bank_items(db)
    assert items[f"payout_not_in_bank:{missing['id']}"]["state"] == "resolved"
    assert "deposit found" in items[f"payout_not_in_bank:{missing['id']}"]["resolution"]
    assert items[deposit_key]["state"] == "open" and items[deposit_key]["times_seen"] == 2
    assert again.exit_code == 1
    # A run without statements can tell nothing of them: the open item stays as it is (and no window's
    # re-check of order items takes it up).
    (tmp_path / "december-2.csv").unlink()
    quiet = cli("--since", "1h")
    assert {d["outcome"] for d in quiet.summary["discrepancies"]} == {"payout_failed"}  # its item is still open
    assert all(p["bank"] is None and p["bank_check"] is None for p in quiet.summary["payouts"])
    assert bank_items(db)[deposit_key]["state"] == "open"


def test_a_statement_that_ends_before_the_window_closes_proves_nothing(cli, store, db, shop, now, tmp_path):
    cli.configure(bank={**STATEMENT_CSV, "statements": str(tmp_path / "bank" / "*.csv")})
    (tmp_path / "bank").mkdir()
    po = paid_payout(store, shop, now, 2)
    write_statement(
        tmp_path / "bank" / "nov.csv",
        [
            (now.date() - timedelta(days=20), "Rent", "R", "-1.00"),
            (now.date() - timedelta(days=3), "Fee", "F", "-1.00"),
        ],
    )
    assert cli().exit_code == 0  # an earlier run saw the payout (its window still open then)
    result = cli("--now", (now + timedelta(days=6)).isoformat(), "--since", "1d")
    assert result.exit_code == 0, result.output
    (j,) = result.summary["payouts"]
    assert (j["id"], j["bank"], j["bank_check"]) == (po["id"], None, "not_covered")
    assert bank_items(db) == {}
    assert "not provable yet: the statements end" in Path(result.summary["report"]["html"]).read_text()


FORMATS = {m[0]: m for m in reversed(MALFORMED)}  # one malformed file of each format


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_a_malformed_statement_stops_the_run_before_anything(name, cli, store, db, shop, now, tmp_path, stripe_server):
    _, bank, old, new, line, _ = FORMATS[name]
    order = shop.order(None, amount=2500)  # a stuck order the run would repair
    shop.charge(order)
    cli.configure(bank={k: v for k, v in dataclasses.asdict(bank).items() if v is not None})
    bad = tmp_path / name
    bad.write_text((FIXTURES / name).read_text(encoding="utf-8").replace(old, new, 1), encoding="utf-8")
    digest = hashlib.sha256(bad.read_bytes()).hexdigest()
    before = {n: sorted(map(repr, db[n].find())) for n in db.list_collection_names()}
    asked = stripe_server.requests
    result = cli("--bank-statement", str(bad))
    assert result.exit_code == 2, result.output
    assert result.stderr.strip().splitlines()[-1].startswith(f"reconcile: error: bank statement {bad}, line {line}: ")
    assert {n: sorted(map(repr, db[n].find())) for n in db.list_collection_names()} == before
    assert stripe_server.requests == asked  # no pull wasted
    assert not (tmp_path / "reports").exists() or not list((tmp_path / "reports").iterdir())
    assert hashlib.sha256(bad.read_bytes()).hexdigest() == digest


def test_a_statement_that_is_not_there_or_of_no_known_format(cli, tmp_path):
    missing = cli("--bank-statement", str(tmp_path / "nope.csv"))
    assert missing.exit_code == 2 and f"bank statement {tmp_path / 'nope.csv'}: no such file" in missing.stderr
    odd = tmp_path / "export.dat"
    odd.write_text("hello, world\n")
    unknown = cli("payouts", "--bank-statement", str(odd))
    assert unknown.exit_code == 2 and "not a statement format the job reads" in unknown.stderr


def test_dry_run_matches_and_writes_nothing(cli, store, db, shop, now, tmp_path):
    cli.configure(bank=STATEMENT_CSV)
    paid_payout(store, shop, now, 8, amount=77_777)
    statement = write_statement(
        tmp_path / "s.csv",
        [
            (now.date() - timedelta(days=12), "Rent", "R", "-1.00"),
            (now.date() - timedelta(days=1), "STRIPE", "X", "9.99"),
        ],
    )
    before = {n: sorted(map(repr, db[n].find())) for n in ("reconcile_items", "reconcile_payouts")}
    result = cli("--dry-run", "--bank-statement", str(statement))
    assert result.exit_code == 1, result.output
    assert result.summary["payouts"][0]["bank_check"] == "not_in_bank"
    assert {d["outcome"] for d in result.summary["discrepancies"]} >= {"payout_not_in_bank", "bank_deposit_unmatched"}
    assert {n: sorted(map(repr, db[n].find())) for n in ("reconcile_items", "reconcile_payouts")} == before


def test_reconcile_payouts_shows_each_payouts_deposit(cli, store, db, shop, now, tmp_path):
    cli.configure(bank=STATEMENT_CSV)
    found = paid_payout(store, shop, now, 8)
    day = datetime.fromtimestamp(found["arrival_date"], now.tzinfo).date()
    statement = write_statement(
        tmp_path / "s.csv",
        [
            (now.date() - timedelta(days=12), "Rent", "R", "-1.00"),
            (day + timedelta(days=1), "STRIPE PAYOUT", "PO-1", money(found["amount"])),
            (now.date() - timedelta(days=1), "STRIPE TRANSFER", "ST-9", "12.00"),
        ],
    )
    before = db.list_collection_names()
    table = cli("payouts", "--bank-statement", str(statement))
    assert table.exit_code == 0, table.output
    assert f"on the bank {wording.iso_day(day + timedelta(days=1))}, ref PO-1 (s.csv)" in table.stdout
    assert "not explained by a payout listed: deposit of 12.00 USD" in table.stdout
    listed = cli("payouts", "--json", "--bank-statement", str(statement))
    (j,) = [json.loads(x) for x in listed.stdout.splitlines()]
    assert j["bank"]["reference"] == "PO-1" and j["bank"]["file"] == "s.csv" and j["bank_check"] == "matched"
    as_csv = cli("payouts", "--csv", "--bank-statement", str(statement))
    (row,) = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert (row["bank_date"], row["bank_reference"]) == ((day + timedelta(days=1)).isoformat(), "PO-1")
    plain = cli("payouts", "--json")
    assert json.loads(plain.stdout.splitlines()[0])["bank_check"] is None  # no statement: nothing said
    assert db.list_collection_names() == before


def test_statements_need_payouts(cli, tmp_path):
    cli.configure(bank=STATEMENT_CSV, payouts={"enabled": False})
    statement = write_statement(tmp_path / "s.csv", [(date(2026, 12, 1), "STRIPE", "X", "1.00")])
    result = cli("--bank-statement", str(statement))
    assert result.exit_code == 2 and "set payouts.enabled = true" in result.stderr
