"""The bank leg's rules, table-driven on the pure decision (decide/bank.match_payouts): no files, no servers.

December 2026: Tue 1, Wed 2, Thu 3, Fri 4, Sat 5, Sun 6, Mon 7, Tue 8, Wed 9. A payout arriving Tue 1 may be
booked from Mon 30 Nov to Fri 4 (3 business days); one arriving Thu 3, from Wed 2 to Tue 8 (across the weekend).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import pytest

from reconcile.config import BankConfig
from reconcile.decide.bank import (
    BankOutcome,
    BankRules,
    PayoutCheck,
    Statement,
    StatementLine,
    add_business_days,
    match_payouts,
    matching_window,
)


def day(n: int) -> date:
    return date(2026, 11, 30) if n == 0 else date(2026, 11, 29) if n == -1 else date(2026, 12, n)


@dataclass(frozen=True)
class Payout:
    """A payout as the payouts work hands it (any object with these attributes will do)."""

    id: str
    arrival_date: date = day(1)
    amount: int = 125050
    currency: str = "eur"
    status: str = "paid"
    trace_id: str | None = None


def line(on: int, amount: int = 125050, description: str = "STRIPE PAYOUT", n: int = 0, **more: str) -> StatementLine:
    return StatementLine(
        day(on), amount, more.get("currency", "eur"), description, more.get("reference", ""), n or on + 10
    )


def statement(
    *lines: StatementLine, start: int = -1, end: int = 9, currency: str | None = "eur", file: str = "s.sta"
) -> Statement:
    return Statement(file, "mt940", "3000", day(start), day(end), currency, tuple(lines))


RULES = BankRules()
TODAY = day(9)  # every window in the table has closed, unless a row says otherwise

M, MISSING, OPEN, UNCOVERED, NOT_EXPECTED = (
    PayoutCheck.MATCHED,
    PayoutCheck.NOT_IN_BANK,
    PayoutCheck.WINDOW_OPEN,
    PayoutCheck.NOT_COVERED,
    PayoutCheck.NOT_EXPECTED,
)

# id: (payouts, statements, today, {payout: (check, booked day of its deposit or None)},
#      findings as (outcome, payout id or the unexplained deposit's line number))
CASES = {
    "booked on the arrival date": ([Payout("po_1")], [statement(line(1))], TODAY, {"po_1": (M, 1)}, []),
    "window edge: the day before arrival": ([Payout("po_1")], [statement(line(0))], TODAY, {"po_1": (M, 0)}, []),
    "two days before arrival: outside": (
        [Payout("po_1")],
        [statement(line(-1))],
        TODAY,
        {"po_1": (MISSING, None)},
        [(BankOutcome.PAYOUT_NOT_IN_BANK, "po_1"), (BankOutcome.BANK_DEPOSIT_UNMATCHED, 9)],
    ),
    "window edge: the last business day": ([Payout("po_1")], [statement(line(4))], TODAY, {"po_1": (M, 4)}, []),
    "one day past the window (Saturday)": (
        [Payout("po_1")],
        [statement(line(5))],
        TODAY,
        {"po_1": (MISSING, None)},
        [(BankOutcome.PAYOUT_NOT_IN_BANK, "po_1"), (BankOutcome.BANK_DEPOSIT_UNMATCHED, 15)],
    ),
    "across a weekend: Tuesday is the 3rd business day after Thursday": (
        [Payout("po_1", arrival_date=day(3))],
        [statement(line(8))],
        TODAY,
        {"po_1": (M, 8)},
        [],
    ),
    "across a weekend: Wednesday is past it": (
        [Payout("po_1", arrival_date=day(3))],
        [statement(line(9), end=9)],
        day(10),
        {"po_1": (MISSING, None)},
        [(BankOutcome.PAYOUT_NOT_IN_BANK, "po_1"), (BankOutcome.BANK_DEPOSIT_UNMATCHED, 19)],
    ),
    "two payouts of one amount: each trace id finds its own deposit": (
        [Payout("po_a", trace_id="TRACE-A"), Payout("po_b", trace_id="TRACE-B")],
        [statement(line(1, description="STRIPE TRACE-B", n=1), line(1, description="STRIPE TRACE-A", n=2))],
        TODAY,
        {"po_a": (M, 1), "po_b": (M, 1)},
        [],
    ),
    "two payouts of one amount, one deposit: used once": (
        [Payout("po_a", trace_id="TRACE-A"), Payout("po_b", trace_id="TRACE-B")],
        [statement(line(1, description="STRIPE TRACE-B"))],
        TODAY,
        {"po_a": (MISSING, None), "po_b": (M, 1)},
        [(BankOutcome.PAYOUT_NOT_IN_BANK, "po_a")],
    ),
    "a trace id too short to tell breaks no tie": (
        [Payout("po_1", trace_id="12")],
        # "12" is in line 2's description; were it a trace id, line 2 would win over line 1 (first in the file).
        [statement(line(1, n=1), line(1, n=2, description="STRIPE 12"))],
        TODAY,
        {"po_1": (M, 1)},
        [(BankOutcome.BANK_DEPOSIT_UNMATCHED, 2)],
    ),
    "the trace id in the reference counts too": (
        [Payout("po_a", trace_id="091000019876543"), Payout("po_b", trace_id="091000011111111")],
        [statement(line(1, n=1, reference="0910 0001 1111 111"), line(1, n=2, reference="091000019876543"))],
        TODAY,
        {"po_a": (M, 1), "po_b": (M, 1)},
        [],
    ),
    "same amount and day: the description pattern breaks the tie": (
        [Payout("po_1")],
        [statement(line(1, description="ACME REFUND", n=1), line(1, description="Stripe Payments", n=2))],
        TODAY,
        {"po_1": (M, 1)},
        [],
    ),
    "same amount: the nearer day wins, the other Stripe deposit is unexplained": (
        [Payout("po_1", arrival_date=day(2))],
        [statement(line(1, n=1), line(2, n=2))],
        TODAY,
        {"po_1": (M, 2)},
        [(BankOutcome.BANK_DEPOSIT_UNMATCHED, 1)],
    ),
    "a deposit in another currency is not the payout's": (
        [Payout("po_1")],
        [statement(), statement(line(1, currency="usd", n=30), currency="usd", file="usd.sta")],
        TODAY,
        {"po_1": (MISSING, None)},
        [(BankOutcome.PAYOUT_NOT_IN_BANK, "po_1"), (BankOutcome.BANK_DEPOSIT_UNMATCHED, 30)],
    ),
    "a debit of the amount is not a deposit": (
        [Payout("po_1")],
        [statement(line(1, amount=-125050))],
        TODAY,
        {"po_1": (MISSING, None)},
        [(BankOutcome.PAYOUT_NOT_IN_BANK, "po_1")],
    ),
    "a statement that ends before the window closes proves nothing": (
        [Payout("po_1")],
        [statement(end=3)],
        TODAY,
        {"po_1": (UNCOVERED, None)},
        [],
    ),
    "a statement that starts after the window opens proves nothing": (
        [Payout("po_1")],
        [statement(start=1, end=9)],
        TODAY,
        {"po_1": (UNCOVERED, None)},
        [],
    ),
    "two statements that join cover the window": (
        [Payout("po_1")],
        [statement(start=-1, end=2, file="a.sta"), statement(start=3, end=9, file="b.sta")],
        TODAY,
        {"po_1": (MISSING, None)},
        [(BankOutcome.PAYOUT_NOT_IN_BANK, "po_1")],
    ),
    "a statement of another currency covers nothing of this one": (
        [Payout("po_1")],
        [statement(currency="usd")],
        TODAY,
        {"po_1": (UNCOVERED, None)},
        [],
    ),
    "no statement at all": ([Payout("po_1")], [], TODAY, {"po_1": (UNCOVERED, None)}, []),
    "the window has not closed yet": ([Payout("po_1")], [statement()], day(4), {"po_1": (OPEN, None)}, []),
    "in transit: matched when its deposit is there": (
        [Payout("po_1", status="in_transit")],
        [statement(line(1))],
        TODAY,
        {"po_1": (M, 1)},
        [],
    ),
    "in transit, failed or of no amount without a deposit: nothing to prove": (
        [Payout("po_1", status="in_transit"), Payout("po_2", status="failed", amount=5), Payout("po_3", amount=0)],
        [statement()],
        TODAY,
        {"po_1": (NOT_EXPECTED, None), "po_2": (NOT_EXPECTED, None), "po_3": (NOT_EXPECTED, None)},
        [],
    ),
    "a failed payout's amount arriving is unexplained": (
        [Payout("po_1", status="failed")],
        [statement(line(1))],
        TODAY,
        {"po_1": (NOT_EXPECTED, None)},
        [(BankOutcome.BANK_DEPOSIT_UNMATCHED, 11)],
    ),
    "an unexplained Stripe deposit; other unmatched lines are ignored": (
        [],
        [statement(line(2, amount=7700, n=1), line(2, amount=990, description="ACME LTD INVOICE 4411", n=2))],
        TODAY,
        {},
        [(BankOutcome.BANK_DEPOSIT_UNMATCHED, 1)],
    ),
    "every payout that can be matched is: the earlier payout gives way to one with no other deposit": (
        # po_early prefers the Stripe-labelled Wednesday deposit, but it is po_late's only one: po_early
        # takes Monday's instead (an augmenting path), so both payouts are matched.
        [Payout("po_early", arrival_date=day(1)), Payout("po_late", arrival_date=day(3))],
        [statement(line(0, n=1, description="ACME"), line(2, n=2))],
        TODAY,
        {"po_early": (M, 0), "po_late": (M, 2)},
        [],
    ),
    "the same deposit in two overlapping exports counts once": (
        [Payout("po_1")],
        [statement(line(1), file="week.sta"), statement(line(1), file="month.sta")],
        TODAY,
        {"po_1": (M, 1)},
        [],
    ),
    "a CSV of several currencies covers only those on its lines": (
        [Payout("po_1", currency="usd")],
        [statement(line(1, amount=5, description="ACME"), currency=None)],
        TODAY,
        {"po_1": (UNCOVERED, None)},
        [],
    ),
}


@pytest.mark.parametrize("name", CASES)
def test_matching_rules(name: str) -> None:
    payouts, statements, today, expected, findings = CASES[name]
    result = match_payouts(payouts, statements, RULES, today)
    got = {r.payout_id: (r.check, r.deposit.booked if r.deposit else None) for r in result.payouts}
    assert got == {k: (check, day(on) if on is not None else None) for k, (check, on) in expected.items()}
    assert [(f.outcome, f.payout_id or (f.deposit.line if f.deposit else None)) for f in result.findings] == findings
    used = [(r.deposit.file, r.deposit.line) for r in result.payouts if r.deposit]
    assert len(used) == len(set(used)), "a deposit matched two payouts"


def test_only_matched_and_stripe_looking_lines_are_kept() -> None:
    statements = [
        statement(
            line(1, n=1),
            line(2, amount=990, description="ACME LTD INVOICE 4411", n=2),
            line(2, amount=-500, description="STRIPE FEE", n=3),
            line(3, amount=125050, description="JOHN SMITH RENT", n=4),
        )
    ]
    result = match_payouts([Payout("po_1", arrival_date=day(3)), Payout("po_2")], statements, RULES, TODAY)
    assert [(d.line, d.payout_id) for d in result.deposits] == [(1, "po_2"), (3, None), (4, "po_1")]
    # The Stripe-looking debit is kept (shown), but an item is made only of an unexplained credit.
    assert result.findings == ()


def test_a_matched_deposit_carries_what_the_summary_shows() -> None:
    statements = [statement(line(2, reference="BR123", n=7), file="bank/dec.sta")]
    (match,) = match_payouts([Payout("po_1")], statements, RULES, TODAY).payouts
    assert match.deposit is not None
    assert (match.deposit.booked, match.deposit.amount, match.deposit.currency) == (day(2), 125050, "eur")
    assert (match.deposit.reference, match.deposit.file, match.deposit.line) == ("BR123", "bank/dec.sta", 7)
    assert (match.window_from, match.window_to, match.covered_to) == (day(0), day(4), day(9))


def test_payout_not_in_bank_facts() -> None:
    statements = [statement(file="a.sta"), statement(currency="usd", file="usd.sta")]
    result = match_payouts([Payout("po_1")], statements, RULES, TODAY)
    (finding,) = result.findings
    assert finding.outcome.needs_person
    assert (finding.payout_id, finding.amount, finding.currency, finding.day) == ("po_1", 125050, "eur", day(1))
    assert (finding.window_from, finding.window_to, finding.files) == (day(0), day(4), ("a.sta",))


def test_not_covered_says_how_far_the_statements_reach() -> None:
    (match,) = match_payouts([Payout("po_1")], [statement(end=3)], RULES, TODAY).payouts
    assert (match.check, match.covered_to, match.window_to) == (PayoutCheck.NOT_COVERED, day(3), day(4))
    assert not match.check.proven


def test_a_stripe_deposit_outside_the_payouts_read_is_no_item() -> None:
    statements = [statement(line(1, n=1), line(8, n=2))]
    result = match_payouts([], statements, RULES, TODAY, payouts_cover=(day(2), day(9)))
    assert [f.deposit.line for f in result.findings if f.deposit] == [2]


def test_match_days_and_pattern_come_from_the_rules() -> None:
    rules = BankRules.from_config(BankConfig(match_days=1, description_pattern="(?i)payout ltd"))
    statements = [statement(line(3, description="XYZ PAYOUT LTD", n=1))]
    result = match_payouts([Payout("po_1")], statements, rules, TODAY)
    assert [r.check for r in result.payouts] == [PayoutCheck.NOT_IN_BANK]  # window ends Wed 2 with 1 business day
    assert [f.outcome for f in result.findings] == [BankOutcome.PAYOUT_NOT_IN_BANK, BankOutcome.BANK_DEPOSIT_UNMATCHED]


@pytest.mark.parametrize(
    "arrival,days,end",
    [
        (day(1), 3, day(4)),  # Tue + 3 -> Fri
        (day(3), 3, day(8)),  # Thu + 3 -> Tue (weekend skipped)
        (day(4), 1, day(7)),  # Fri + 1 -> Mon
        (day(5), 1, day(7)),  # Sat + 1 -> Mon
        (day(1), 0, day(1)),
    ],
)
def test_business_days(arrival: date, days: int, end: date) -> None:
    assert add_business_days(arrival, days) == end
    assert matching_window(arrival, days) == (date.fromordinal(arrival.toordinal() - 1), end)


def test_outcomes_know_about_themselves() -> None:
    assert [o.value for o in BankOutcome] == ["payout_not_in_bank", "bank_deposit_unmatched"]
    assert all(o.needs_person and o.label_key == o.value for o in BankOutcome)
    assert {c for c in PayoutCheck if c.proven} == {PayoutCheck.MATCHED, PayoutCheck.NOT_IN_BANK}
