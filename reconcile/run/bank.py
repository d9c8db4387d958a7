"""The bank leg of a run: statement files read at the start of an invocation (before Stripe or MongoDB is
touched: a file the job cannot read ends it with nothing done), then matched, in the window that re-checks
(the invocation's last), to every payout that can explain a deposit: those the window looked at and those
earlier runs saw (store/payouts.py keeps each). run/payouts.py calls `judge` in its read; the findings go
to the items collection with the window's own. Statement files are only ever read.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from pymongo.collection import Collection

from reconcile.bank.read import read_statements, statement_paths
from reconcile.config import BankConfig
from reconcile.decide import bank as rules
from reconcile.decide.bank import BankFinding, BankRules, Deposit, PayoutMatch, Statement
from reconcile.decide.findings import Finding
from reconcile.decide.payouts import Payout
from reconcile.report import wording
from reconcile.store import bank as bank_store

log = logging.getLogger(__name__)


def statements_of(bank: BankConfig, files: Iterable[str | Path] = ()) -> tuple[Statement, ...] | None:
    """Every statement the run reads (`--bank-statement` files, then `bank.statements`), read and checked
    now; None when the run reads none (no file given, no pattern set). StatementError names file and line."""
    files = list(files)
    if not files and not bank.statements:
        return None
    paths = statement_paths(bank, files)
    statements = tuple(read_statements(paths, bank))
    log.info(
        "bank.statements",
        extra={"files": len(paths), "statements": len(statements), "lines": sum(len(s.lines) for s in statements)},
    )
    return statements


@dataclass
class BankRead:
    """The statements against the payouts, judged, before the run's first write."""

    statements: tuple[Statement, ...]
    checks: dict[str, PayoutMatch] = field(default_factory=dict)  # by payout id
    findings: list[Finding] = field(default_factory=list)
    found: list[tuple[BankFinding, str]] = field(default_factory=list)  # each finding with its detail
    cleared: dict[str, str] = field(default_factory=dict)
    checked: list[str] = field(default_factory=list)

    def deposit_of(self, payout_id: str) -> Deposit | None:
        m = self.checks.get(payout_id)
        return m.deposit if m is not None else None


# A payout whose arrival date is this many days before a statement's first day can still have its deposit on
# it (match_days business days, weekends between them), or the day after its last (a day early).
def _reach(match_days: int) -> timedelta:
    return timedelta(days=match_days + 2 * (match_days // 5 + 1))


def judge(
    statements: tuple[Statement, ...],
    looked_at: Sequence[Payout],
    kept: Collection,
    items: Collection,
    bank_rules: BankRules,
    today: date,
    until: date,
) -> BankRead:
    """The payouts looked at and those kept whose deposits the statements may hold, matched; the items."""
    out = BankRead(statements)
    candidates: dict[str, rules.Payout] = {}
    span = rules.statements_span(statements)
    if span is not None:
        first, last = span[0] - _reach(bank_rules.match_days), span[1] + timedelta(days=1)
        for doc in bank_store.payouts_arriving(kept, first, last):
            known = rules.known_payout(doc)
            if known is not None:
                candidates[known.id] = known
    for p in looked_at:  # as read now, not as an earlier run saw it
        candidates[p.id] = p
    arrivals = [p.arrival_date for p in looked_at]
    first_kept = bank_store.first_arrival(kept)
    if first_kept is not None:
        arrivals.append(first_kept)
    cover = rules.payouts_cover(arrivals, until, bank_rules.match_days)
    result = rules.match_payouts(list(candidates.values()), statements, bank_rules, today, cover)
    ids = rules.deposit_ids(result.deposits)
    livemode = looked_at[0].livemode if looked_at else None
    for f in result.findings:
        detail = wording.bank_detail(f)
        out.findings.append(rules.finding(f, rules.item_key(f, ids), detail, livemode))
        out.found.append((f, detail))
    out.checks = {m.payout_id: m for m in result.payouts}
    settled = rules.settle(result, ids, bank_store.live_items(items))
    out.cleared, out.checked = settled.cleared, settled.checked
    log.info(
        "bank.matched",
        extra={
            "payouts": len(candidates),
            "matched": sum(1 for m in result.payouts if m.check is rules.PayoutCheck.MATCHED),
            "findings": len(result.findings),
            "cleared": len(out.cleared),
        },
    )
    return out
