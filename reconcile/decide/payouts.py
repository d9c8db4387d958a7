"""Payouts: did every payout reach the bank, and which transactions and orders are in each.

Pure: typed records in (a payout as read, its balance transactions page by page), outcomes and
findings out. stripe/payouts.py reads the payouts and their transactions, store/payouts.py keeps
the payouts still to watch, report/wording.py words the outcomes, run/payouts.py wires them.

A payout is an item for a person when it failed or was canceled (the money went back to the Stripe
balance), when it is not paid `overdue_after` after its arrival date, or when the transactions
Stripe itemized for it do not add up to its amount. Totals use the reporting categories of the
balance totals (decide/totals.py); the payout's own `payout` transaction is left out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, NotRequired, TypedDict

from reconcile.decide import totals
from reconcile.decide.findings import Finding, ItemKind
from reconcile.decide.items import LIVE, RESOLVED, rechecked_note

DAY = 86400
PAYOUT_STATUSES = ("paid", "pending", "in_transit", "canceled", "failed")
FINAL_STATUSES = ("failed", "canceled")  # a payout in these never changes again
ON_THE_WAY = ("pending", "in_transit")
# Stripe itemizes a payout (GET /v1/balance_transactions?payout=) only when it is automatic and its
# reconciliation is `completed`; `in_progress` comes first, `not_applicable` is a manual payout.
COMPLETED = "completed"


class PayoutOutcome(ItemKind):
    """What a payout needs, as classify.Outcome is for orders: each member knows whether a person must act."""

    stays_until_decided: bool  # final: open until a person accepts or resolves it (never resolved by a run)

    def __new__(cls, code: str, needs_person: bool = True, stays_until_decided: bool = False) -> PayoutOutcome:
        member = str.__new__(cls, code)
        member._value_ = code
        member.needs_person = needs_person
        member.stays_until_decided = stays_until_decided
        return member

    PAYOUT_FAILED = "payout_failed", True, True
    PAYOUT_CANCELED = "payout_canceled", True, True
    PAYOUT_OVERDUE = "payout_overdue", True
    PAYOUT_MISMATCH = "payout_mismatch", True


PAYOUT_FAILED = PayoutOutcome.PAYOUT_FAILED
PAYOUT_CANCELED = PayoutOutcome.PAYOUT_CANCELED
PAYOUT_OVERDUE = PayoutOutcome.PAYOUT_OVERDUE
PAYOUT_MISMATCH = PayoutOutcome.PAYOUT_MISMATCH
OUTCOMES = tuple(PayoutOutcome)


@dataclass(frozen=True)
class PayoutRules:
    """From the config's [payouts] table (run/settings.py)."""

    overdue_after: int = 3 * DAY  # seconds after the arrival date a payout not paid is overdue
    watch_paid_for: int = 10 * DAY  # seconds after the arrival date a paid payout is still re-checked


@dataclass(frozen=True)
class Payout:
    """A payout as read from Stripe (the fields the job uses). The bank-statement matcher reads
    `id, status, amount, currency, arrival_date, trace_id` of it."""

    id: str
    status: str
    amount: int  # minor units, positive, as Stripe gives it
    currency: str  # lower case
    arrival_date: date  # the day Stripe expects the money in the bank (UTC)
    arrival: int  # the same, unix seconds as Stripe gives it
    created: int
    automatic: bool
    reconciliation_status: str
    failure_code: str | None
    trace_id: str | None  # the bank's trace id once Stripe has it (trace_id.value)
    livemode: bool = False
    failure_balance_transaction: str | None = None  # the transaction that returned the money

    @property
    def itemizable(self) -> bool:
        """Stripe can list the transactions this payout paid out, and they are worth listing: a failed or
        canceled payout paid nothing out (its money went back to the balance)."""
        return self.automatic and self.reconciliation_status == COMPLETED and not self.final

    @property
    def final(self) -> bool:
        return self.status in FINAL_STATUSES


def arrival_day(unix: int) -> date:
    return datetime.fromtimestamp(int(unix), UTC).date()


@dataclass(frozen=True)
class PayoutTxn:
    """One balance transaction of a payout, joined to its charge and order (None where there is none)."""

    id: str
    type: str
    reporting_category: str
    source_id: str | None
    charge_id: str | None  # the charge it is (a payment) or belongs to (a refund, a dispute)
    order_ref: str | None  # the order the charge's metadata names
    currency: str
    amount: int
    fee: int
    net: int


class PayoutTotalsJson(TypedDict):
    gross: int
    refunds: int
    disputes: int
    fees: int
    other: int
    net: int


NAMED = totals.GROSS_CATEGORIES + totals.REFUND_CATEGORIES + totals.DISPUTE_CATEGORIES + totals.FEE_CATEGORIES


@dataclass
class Itemization:
    """A payout's transactions folded in page by page (nothing of a page is kept but its sums and its
    orders' ids). The same headline columns as totals.summarize: gross + refunds + disputes + other - fees = net."""

    gross: int = 0
    refunds: int = 0
    disputes: int = 0
    fees: int = 0
    other: int = 0
    net: int = 0
    transactions: int = 0
    charges: int = 0  # payments among them (reporting category `charge`)
    order_ids: set[str] = field(default_factory=set)
    _seen: set[str] = field(default_factory=set)  # a transaction listed twice (on two pages) counts once

    def add(self, txns: Iterable[PayoutTxn]) -> list[PayoutTxn]:
        """Fold a page in; the transactions counted (the payout's own left out), for the CSV."""
        counted = []
        for t in txns:
            category = t.reporting_category
            if category in totals.PAYOUT_CATEGORIES or t.id in self._seen:
                continue
            self._seen.add(t.id)
            counted.append(t)
            self.transactions += 1
            if t.order_ref:
                self.order_ids.add(t.order_ref)
            if category in totals.GROSS_CATEGORIES:
                self.gross += t.amount
                self.charges += category == "charge"
            elif category in totals.REFUND_CATEGORIES:
                self.refunds += t.amount
            elif category in totals.DISPUTE_CATEGORIES:
                self.disputes += t.amount
            elif category not in NAMED:
                self.other += t.amount
            self.fees += t.fee - (t.amount if category in totals.FEE_CATEGORIES else 0)
            self.net += t.net
        return counted

    def done(self) -> Itemized:
        return Itemized(
            self.transactions,
            len(self.order_ids),
            self.charges,
            {
                "gross": self.gross,
                "refunds": self.refunds,
                "disputes": self.disputes,
                "fees": self.fees,
                "other": self.other,
                "net": self.net,
            },
        )


@dataclass(frozen=True)
class Itemized:
    """What a payout's itemization came to."""

    transactions: int
    orders: int
    charges: int
    totals: PayoutTotalsJson

    def adds_up(self, amount: int) -> bool:
        return self.totals["net"] == amount

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any] | None) -> Itemized | None:
        """As store/payouts.py keeps it (None: not itemized)."""
        if not doc or not isinstance(doc.get("totals"), dict):
            return None
        t = doc["totals"]
        return cls(
            int(doc.get("transactions") or 0),
            int(doc.get("orders") or 0),
            int(doc.get("charges") or 0),
            {
                "gross": int(t.get("gross") or 0),
                "refunds": int(t.get("refunds") or 0),
                "disputes": int(t.get("disputes") or 0),
                "fees": int(t.get("fees") or 0),
                "other": int(t.get("other") or 0),
                "net": int(t.get("net") or 0),
            },
        )


def judge(payout: Payout, itemized: Itemized | None, now: int, rules: PayoutRules) -> PayoutOutcome | None:
    """The payout's outcome (None: nothing for a person)."""
    if payout.status == "failed":
        return PAYOUT_FAILED
    if payout.status == "canceled":
        return PAYOUT_CANCELED
    if payout.status != "paid" and now >= payout.arrival + rules.overdue_after:
        return PAYOUT_OVERDUE
    if itemized is not None and not itemized.adds_up(payout.amount):
        return PAYOUT_MISMATCH
    return None


def watching(payout: Payout, now: int, rules: PayoutRules) -> bool:
    """Whether later runs re-check it: on its way, or paid within `watch_paid_for` of its arrival date
    (Stripe says a paid payout can still fail)."""
    if payout.status in ON_THE_WAY:
        return True
    return payout.status == "paid" and now < payout.arrival + rules.watch_paid_for


def key(outcome: str, payout_id: str) -> str:
    """The item's key: the same payout found again is the same item."""
    return f"{outcome}:{payout_id}"


def finding(payout: Payout, outcome: PayoutOutcome, detail: str | None) -> Finding:
    """The payout's outcome as the items collection records it; money at stake is its amount."""
    return {
        "key": key(outcome, payout.id),
        "kind": outcome,
        "needs_person": outcome.needs_person,
        "source": "payout",
        "order_key": None,
        "charge_id": None,
        "charge_ids": [],
        "object_id": payout.id,
        "anchor": None,  # never resolved by a window's coverage: only by re-reading the payout
        "amount": payout.amount,
        "at_stake": payout.amount,
        "currency": payout.currency,
        "detail": detail,
        "deadline": None,
        "livemode": payout.livemode,
        "email": None,
        "order_status": None,
        "charge_amount": None,
        "object_status": payout.status,
    }


@dataclass(frozen=True)
class Judged:
    """The payouts a run looked at, judged."""

    payouts: list[tuple[Payout, Itemized | None, PayoutOutcome | None]]
    cleared: dict[str, str]  # live payout items now gone, resolutions to verify (key -> why)
    settled: list[str]  # final outcomes a person resolved: not found again


def judge_all(
    looked_at: Iterable[tuple[Payout, Itemized | None]],
    items: Mapping[str, Mapping[str, Any]],
    now: int,
    rules: PayoutRules,
) -> Judged:
    """Every payout looked at judged. `items`: the payout items (by key, in any state) about them. A live
    item whose outcome no longer holds is cleared. A failed or canceled payout never changes: once a person
    resolved its item it is settled (not found again, so never reopened); a resolution not yet verified is
    verified now."""
    judged = []
    status: dict[str, str] = {}
    settled = []
    cleared: dict[str, str] = {}
    for payout, itemized in looked_at:
        outcome = judge(payout, itemized, now, rules)
        judged.append((payout, itemized, outcome))
        status[payout.id] = payout.status
        if outcome is None or not outcome.stays_until_decided:
            continue
        doc = items.get(key(outcome, payout.id))
        if doc is not None and doc.get("state") == RESOLVED and doc.get("resolved_by"):
            settled.append(key(outcome, payout.id))
            if not doc.get("verified_at"):
                cleared[key(outcome, payout.id)] = rechecked_note(f"payout is {payout.status}")
    current = {key(o, p.id) for p, _, o in judged if o is not None}
    for item_key, doc in items.items():
        payout_id = str(doc.get("object_id"))
        if doc.get("state") in LIVE and payout_id in status and item_key not in current:
            cleared[item_key] = rechecked_note(f"payout is {status[payout_id]}")
    return Judged(judged, cleared, settled)


class WatchDoc(TypedDict):
    """A payout as store/payouts.py keeps it: whether later runs re-check it, and its itemization once done
    (a paid payout is re-checked for days: its transactions are listed once)."""

    _id: str
    status: str
    amount: int
    currency: str
    arrival_date: int  # unix seconds
    created: int
    watching: bool
    transactions: int | None
    orders: int | None
    charges: int | None
    totals: PayoutTotalsJson | None
    last_seen: int
    last_run: str
    trace_id: NotRequired[str | None]  # matches its deposit on a bank statement (decide/bank.py)


def watch_doc(payout: Payout, itemized: Itemized | None, now: int, rules: PayoutRules, run_id: str) -> WatchDoc:
    return {
        "_id": payout.id,
        "status": payout.status,
        "amount": payout.amount,
        "currency": payout.currency,
        "arrival_date": payout.arrival,
        "created": payout.created,
        "watching": watching(payout, now, rules),
        "transactions": itemized.transactions if itemized else None,
        "orders": itemized.orders if itemized else None,
        "charges": itemized.charges if itemized else None,
        "totals": itemized.totals if itemized else None,
        "last_seen": now,
        "last_run": run_id,
        "trace_id": payout.trace_id,
    }
