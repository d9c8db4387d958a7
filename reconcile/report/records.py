"""Typed records the report modules hand each other and the run: extra CSV rows, the keys the period
sections add to the run's summary (report/period.summary), and the summary JSON itself (report/summary.py
builds it, render.write_summary_json writes it)."""

from __future__ import annotations

from typing import NotRequired, TypedDict

from reconcile.decide.payouts import PayoutTotalsJson
from reconcile.decide.totals import Totals


class CsvRow(TypedDict, total=False):
    """A row of the report's CSV beside the window's own, keyed by render.CSV_FIELDS (missing: an empty cell)."""

    outcome: str | None
    order_id: str | None
    order_status: str | None
    order_amount: str | None
    order_currency: str | None
    charge_id: str | None
    charge_amount: str | None
    charge_currency: str | None
    settlement_amount: str | None
    settlement_currency: str | None
    charge_created: str | None
    customer_email: str | None
    description: str | None
    detail: str | None
    dashboard_url: str | None
    linked_by: str | None


class MovementJson(TypedDict):
    """A refund or dispute of the window, as the summary's `movements` lists it."""

    kind: str
    needs_person: bool
    source: str
    object_id: str | None
    object_status: str | None
    charge_id: str | None
    order_key: str | None
    amount: int | None
    currency: str | None
    detail: str | None


class ResolvedJson(TypedDict):
    key: str
    kind: str | None
    resolution: str | None


class ClosedJson(TypedDict):
    key: str
    kind: str | None
    decision: str | None
    by: str | None
    reason: str | None


class ItemsJson(TypedDict):
    """The open items after a run, as the summary's `items` holds them."""

    open: int
    new: int
    resolved: list[ResolvedJson]
    buckets: dict[str, int]
    severity: dict[str, int]
    being_handled: int
    closed_by_people: list[ClosedJson]
    oldest_first_seen: str | None
    at: int


class PeriodSummary(TypedDict):
    """The keys the period sections add to the run's summary."""

    movements: list[MovementJson]
    items: ItemsJson | None


class DiscrepancyJson(TypedDict):
    """An outcome other than ok; amounts in integer minor units of the currency beside them (None: unknown)."""

    outcome: str
    order_id: str | None
    charge_id: str | None
    order_amount: int | None
    order_currency: str | None
    charge_amount: int | None
    charge_currency: str | None
    detail: str | None
    needs_person: bool
    expected_end: str | None  # ISO-8601 UTC: when the order's payment should have settled; None for a charge
    payout_id: NotRequired[str]  # a payout's outcome (decide/payouts.py)


class BankDepositJson(TypedDict):
    """A payout's deposit on a bank statement (the file by its base name only)."""

    date: str  # ISO date it was booked
    amount: int  # minor units
    currency: str
    reference: str
    file: str


class PayoutJson(TypedDict):
    """A payout the run looked at, as the summary's `payouts` lists it (and `reconcile payouts --json`)."""

    id: str
    status: str
    amount: int  # minor units, as Stripe gives it
    currency: str
    arrival_date: str  # ISO date
    automatic: bool
    reconciliation_status: str
    failure_code: str | None
    transactions: int | None  # None: not itemized
    orders: int | None
    totals: PayoutTotalsJson | None
    adds_up: bool | None
    # Its deposit on the bank statements (None: not found, or no statement read) and where it stands against
    # them: decide/bank.PayoutCheck (matched, not_in_bank, window_open, not_covered, not_expected), None: no statement.
    bank: BankDepositJson | None
    bank_check: str | None


class EarlierChangeJson(TypedDict):
    run_id: str
    order_id: str
    action: str


class WindowJson(TypedDict):
    since: str
    until: str


class ReportJson(TypedDict):
    html: str
    csv: str


class WindowEntryJson(TypedDict):
    run_id: str
    window: WindowJson
    counts: dict[str, int]
    needs_attention: int
    report: ReportJson | None
    email: str | None
    exit_code: int


class SummaryJson(TypedDict, total=False):
    """The `--summary-json` document (docs/operations.md): a window's keys, then the invocation's."""

    run_id: str | None
    window: WindowJson
    dry_run: bool
    counts: dict[str, int]
    needs_attention: int
    repaired: list[str]
    marked_failed: list[str]
    discrepancies: list[DiscrepancyJson]
    totals: Totals
    report: ReportJson | None
    counted_from: str
    movements: list[MovementJson]
    items: ItemsJson
    payouts: list[PayoutJson]
    audit_healed: list[str]
    earlier_changes: list[EarlierChangeJson]
    # The invocation's.
    runs: list[WindowEntryJson]
    exit_code: int
    error: str | None
    failed_run_report: ReportJson
