"""A window run's payouts, through the run's own steps (run/window.py calls `read` in its read phase and
`write` in its write phase; their findings go to the items collection with the window's own).

Read: the payouts created in the window; on the invocation's last window (the one that re-checks open
items) also those earlier runs saw that are not final yet (store/payouts.py) and those with an open
item; each automatic payout whose reconciliation is complete and that no run itemized yet has its
balance transactions listed, every page, folded into its totals and the payouts CSV as they arrive
(orders joined by the charge's metadata, else by the charge id stored on the order). Decide: pure
(decide/payouts.py), worded by report/wording.py. Write: the watched payouts kept, the CSV put in place.
Also `payouts` and `payouts show` (read-only: Stripe, and the orders to join; nothing written).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import stripe
from pymongo.collection import Collection
from pymongo.database import Database

from reconcile.config import ORDER_FIELDS, Config, OrdersConfig
from reconcile.decide import bank as bank_match
from reconcile.decide import payouts as rules
from reconcile.decide.bank import BankRules, PayoutMatch, Statement
from reconcile.decide.findings import Finding
from reconcile.decide.payouts import Itemization, Itemized, Payout, PayoutTxn, WatchDoc
from reconcile.report import payouts as words
from reconcile.report import wording
from reconcile.report.payouts import PayoutCsv, PayoutLine
from reconcile.report.records import PayoutJson
from reconcile.report.summary import Discrepancy
from reconcile.run import bank as bank_run
from reconcile.run import settings
from reconcile.run.settings import WindowSettings
from reconcile.runtime import interrupt
from reconcile.store import payouts as payout_store
from reconcile.stripe import payouts as stripe_payouts
from reconcile.stripe import pull as stripe_pull
from reconcile.stripe.payments import Linking
from reconcile.stripe.pull import RetryPolicy
from reconcile.timeutil import to_unix

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Scope:
    """What the payouts are read through and judged by."""

    client: stripe.StripeClient
    policy: RetryPolicy
    db: Database
    collection: str  # the watched payouts (payouts.collection)
    items: str  # the items collection
    orders: str  # the orders collection
    fields: OrdersConfig
    linking: Linking
    rules: rules.PayoutRules
    bank: BankRules = field(default_factory=BankRules)

    def order_lookup(self) -> Callable[[Sequence[str]], dict[str, str]] | None:
        """charge ids -> order keys, by the charge id stored on the order (None: that link is not used)."""
        field_name = self.fields.charge_id_field
        if not field_name or ORDER_FIELDS not in self.linking.link_by:
            return None
        orders = self.db[self.orders]
        return lambda ids: payout_store.orders_by_charge(orders, field_name, ids)


@dataclass
class PayoutsRead:
    """The payouts a window run looked at, judged, before its first write."""

    lines: list[PayoutLine] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)  # for the items collection
    cleared: dict[str, str] = field(default_factory=dict)  # open payout items gone (key -> why)
    checked: list[str] = field(default_factory=list)  # open payout items looked at
    watch: list[WatchDoc] = field(default_factory=list)  # for store/payouts.record
    csv: PayoutCsv | None = None  # the CSV rows written so far (put in place by `write`)
    bank: bank_run.BankRead | None = None  # the statements against the payouts (None: the run read none)

    def summary(self) -> list[PayoutJson]:
        return [words.payout_json(line.payout, line.itemized, line.bank) for line in self.lines]

    @property
    def statements(self) -> tuple[Statement, ...] | None:
        return self.bank.statements if self.bank is not None else None

    def discrepancies(self) -> list[Discrepancy]:
        """The payouts' outcomes, as the summary's `discrepancies` lists them (with `payout_id`)."""
        return [
            Discrepancy(
                outcome=str(line.outcome),
                order_id=None,
                charge_id=None,
                detail=line.detail,
                needs_person=line.outcome.needs_person,
                payout_id=line.payout.id,
            )
            for line in self.lines
            if line.outcome is not None
        ] + [
            Discrepancy(
                outcome=str(f.outcome),
                order_id=None,
                charge_id=None,
                detail=detail,
                needs_person=f.outcome.needs_person,
                payout_id=f.payout_id,
            )
            for f, detail in (self.bank.found if self.bank is not None else [])
        ]


def scope_for(ws: WindowSettings, client: stripe.StripeClient, policy: RetryPolicy, db: Database) -> Scope | None:
    """The payouts' scope of a window run with these settings (None: `payouts.enabled` is false)."""
    p = ws.payouts
    if p is None:
        return None
    c = ws.collections
    return Scope(client, policy, db, p.collection, c.items, c.orders, ws.orders, ws.linking, p.rules, p.bank)


def command_scope(config: Config, db: Database) -> Scope:
    """The scope of `reconcile payouts` (payouts are read even when the runs do not read them)."""
    ws = settings.window_settings(
        dataclasses.replace(config, payouts=dataclasses.replace(config.payouts, enabled=True))
    )
    client = stripe_pull.make_client(config.stripe_api_key(), config.stripe)
    scope = scope_for(ws, client, ws.retry(), db)
    assert scope is not None  # enabled above
    return scope


def joined(txns: list[PayoutTxn], lookup: Callable[[Sequence[str]], dict[str, str]] | None) -> list[PayoutTxn]:
    """Transactions whose charge names no order, given the order that stores the charge's id (if any)."""
    missing = [t.charge_id for t in txns if t.charge_id and not t.order_ref]
    if not missing or lookup is None:
        return txns
    found = lookup(missing)
    return [
        dataclasses.replace(t, order_ref=found[t.charge_id]) if t.charge_id in found and not t.order_ref else t
        for t in txns
    ]


def itemize(scope: Scope, payouts: Sequence[Payout], csv: PayoutCsv | None) -> dict[str, Itemized]:
    """Each payout's transactions folded into its totals (and the CSV) as the pages arrive; a payout's fold
    (the ids it has seen) is dropped for its totals as soon as its last page is in."""
    folds = {p.id: Itemization() for p in payouts}
    done: dict[str, Itemized] = {}
    lookup = scope.order_lookup()

    def fold(payout: Payout, txns: list[PayoutTxn]) -> None:
        counted = folds[payout.id].add(joined(txns, lookup))  # one list per payout: only its thread folds it
        if csv is not None:
            csv.write(payout, counted)

    def finished(payout: Payout) -> None:
        done[payout.id] = folds.pop(payout.id).done()

    stripe_payouts.itemize(scope.client, payouts, scope.linking.metadata_key, scope.policy, fold, finished)
    return {p.id: done[p.id] for p in payouts if p.id in done}


def read(
    scope: Scope,
    since: datetime,
    until: datetime,
    now: datetime,
    run_id: str,
    report_dir: Path,
    recheck: bool,
    statements: tuple[Statement, ...] | None = None,
) -> PayoutsRead:
    """The window's payouts (and, with `recheck`, the watched ones and those with a live item) read and judged;
    with `statements`, matched to the deposits on them (run/bank.py) before the CSV gets its rows."""
    coll, items_coll = scope.db[scope.collection], scope.db[scope.items]
    payouts = stripe_payouts.fetch_payouts(scope.client, since, until, scope.policy)
    if recheck:
        have = {p.id for p in payouts}
        again = payout_store.watched(coll) + payout_store.with_live_items(items_coll)
        wanted = [i for i in dict.fromkeys(again) if i not in have]
        payouts += stripe_payouts.retrieve_payouts(scope.client, wanted, scope.policy)
    interrupt.checkpoint("pull")
    looked_at = {p.id for p in payouts}
    items = payout_store.items_of(items_coll, looked_at)
    kept = payout_store.known(coll, looked_at)
    done = {p.id: i for p in payouts if (i := Itemized.from_doc(kept.get(p.id))) is not None}
    todo = [p for p in payouts if p.itemizable and p.id not in done]
    bank = None
    if statements is not None:
        today = now.date()
        bank = bank_run.judge(statements, payouts, coll, items_coll, scope.bank, today, min(until.date(), today))
    csv = PayoutCsv(report_dir, run_id, bank.deposit_of if bank else None) if todo else None
    try:
        done |= itemize(scope, todo, csv)
        interrupt.checkpoint("pull")
    except BaseException:
        if csv is not None:
            csv.discard()
        raise
    # Only the items about payouts looked at are judged again (the others wait for a run that reads them).
    judged = rules.judge_all([(p, done.get(p.id)) for p in payouts], items, to_unix(now), scope.rules)
    result = _worded(judged, to_unix(now), scope.rules, run_id)
    result.checked = sorted(items)
    result.csv = csv
    if bank is not None:
        result.bank = bank
        result.lines = [dataclasses.replace(line, bank=bank.checks.get(line.payout.id)) for line in result.lines]
        result.findings += bank.findings
        result.cleared |= bank.cleared
        result.checked += bank.checked
    log.info(
        "payouts.done",
        extra={
            "payouts": len(payouts),
            "itemized": len(todo),
            "csv_rows": csv.rows if csv else 0,
            "findings": len(result.findings),
        },
    )
    return result


def _worded(judged: rules.Judged, now: int, payout_rules: rules.PayoutRules, run_id: str) -> PayoutsRead:
    out = PayoutsRead(cleared=dict(judged.cleared))
    settled = set(judged.settled)
    for payout, itemized, outcome in judged.payouts:
        detail = wording.payout_detail(payout, outcome, itemized, now) if outcome is not None else None
        out.lines.append(PayoutLine(payout, itemized, outcome, detail))
        if outcome is not None and rules.key(outcome, payout.id) not in settled:
            out.findings.append(rules.finding(payout, outcome, detail))
        out.watch.append(rules.watch_doc(payout, itemized, now, payout_rules, run_id))
    return out


def write(watched: Collection, read: PayoutsRead, dry_run: bool) -> Path | None:
    """The watched payouts kept (not in a dry run), the payouts CSV put in place; its path."""
    if not dry_run:
        payout_store.record(watched, read.watch)
    return read.csv.finish() if read.csv is not None else None


def discard(read: PayoutsRead | None) -> None:
    """A run that stopped before writing its report leaves no half CSV."""
    if read is not None and read.csv is not None:
        read.csv.discard()


# --------------------------------------------------------------------------- `reconcile payouts` (read-only)


@dataclass
class PayoutList:
    """`reconcile payouts`: the payouts as they are itemized, and (with statements) the Stripe deposits on
    them that no payout listed explains, in words."""

    rows: Iterator[tuple[Payout, Itemized | None, PayoutMatch | None]]
    unexplained: list[str] = field(default_factory=list)


def list_payouts(
    scope: Scope, since: datetime, until: datetime, now: datetime, statements: tuple[Statement, ...] | None = None
) -> PayoutList:
    """Payouts created in [since, until) from Stripe, each itemized when Stripe can, and with `statements`
    where each stands against them (nothing stored, no item)."""
    payouts = stripe_payouts.fetch_payouts(scope.client, since, until, scope.policy)
    checks: dict[str, PayoutMatch] = {}
    unexplained: list[str] = []
    if statements is not None:
        today = now.date()
        arrivals = [p.arrival_date for p in payouts]
        cover = bank_match.payouts_cover(arrivals, min(until.date(), today), scope.bank.match_days)
        result = bank_match.match_payouts(payouts, statements, scope.bank, today, cover)
        checks = {m.payout_id: m for m in result.payouts}
        unexplained = [
            wording.bank_detail(f) for f in result.findings if f.outcome is bank_match.BANK_DEPOSIT_UNMATCHED
        ]

    def rows() -> Iterator[tuple[Payout, Itemized | None, PayoutMatch | None]]:
        done = itemize(scope, [p for p in payouts if p.itemizable], None)
        for p in payouts:
            yield p, done.get(p.id), checks.get(p.id)

    return PayoutList(rows(), unexplained)


def show_payout(
    scope: Scope, payout_id: str, on_rows: Callable[[Payout, list[PayoutTxn]], None]
) -> tuple[Payout, Itemized | None] | None:
    """One payout and its every transaction (handed to `on_rows` page by page, joined to charge and order);
    None when Stripe has no such payout."""
    found = stripe_payouts.retrieve_payouts(scope.client, [payout_id], scope.policy)
    if not found:
        return None
    payout = found[0]
    if not payout.itemizable:
        return payout, None
    fold = Itemization()
    lookup = scope.order_lookup()

    def page(p: Payout, txns: list[PayoutTxn]) -> None:
        on_rows(p, fold.add(joined(txns, lookup)))

    stripe_payouts.itemize(scope.client, [payout], scope.linking.metadata_key, scope.policy, page)
    return payout, fold.done()
