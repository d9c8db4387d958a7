"""The run summary: typed records, built in one place (`RunSummary.build`, `combine`, `InvocationSummary`)
and serialised once (`to_json`) with the keys docs/operations.md documents for `--summary-json`.

A window run builds its `RunSummary`; the invocation adds the windows up (`RunSummary.combine`) and
wraps them with its exit code, error and the list of windows (`InvocationSummary`). The CLI prints
from these records; `--summary-json` and `reconcile runs --json` are the only JSON made from them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypedDict, cast

import pandas as pd

from reconcile.decide import classify as c
from reconcile.decide.audit import AuditRecord
from reconcile.decide.items import plain_value
from reconcile.decide.totals import CategoryTotals, CurrencyTotals, Totals
from reconcile.money import currency_code, minor_units
from reconcile.report.records import (
    DiscrepancyJson,
    EarlierChangeJson,
    ItemsJson,
    MovementJson,
    PayoutJson,
    ReportJson,
    SummaryJson,
    WindowEntryJson,
)
from reconcile.report.render import ReportFiles, iso_time
from reconcile.timeutil import fmt


def _report_json(report: ReportFiles) -> ReportJson:
    return {"html": str(report.html), "csv": str(report.csv)}


class OutcomeRow(TypedDict):
    """What a discrepancy takes of a row of the outcomes frame (classify.RESULT_COLUMNS), cells as they come."""

    outcome: str
    order_key: object
    charge_id: object
    detail: object
    amount: object
    currency: object
    charge_amount: object
    charge_currency: object
    expected_end: object


@dataclass(frozen=True)
class Discrepancy:
    """One outcome other than ok: what it is, its amounts (integer minor units with their currency codes),
    and whether it needs a person. `detail` is a sentence for people: never parse amounts out of it."""

    outcome: str
    order_id: str | None
    charge_id: str | None
    detail: str | None
    needs_person: bool
    order_amount: int | None = None
    order_currency: str | None = None
    charge_amount: int | None = None
    charge_currency: str | None = None
    expected_end: str | None = None  # ISO: when the order's payment should have settled (docs/deadlines.md)
    payout_id: str | None = None  # a payout's outcome (decide/payouts.py)

    @classmethod
    def from_outcome(cls, row: OutcomeRow) -> Discrepancy:
        """From a row of the outcomes frame."""
        outcome = str(row["outcome"])
        return cls(
            outcome=outcome,
            order_id=plain_value(row["order_key"]),
            charge_id=plain_value(row["charge_id"]),
            detail=plain_value(row["detail"]),
            needs_person=outcome in c.NEEDS_PERSON,
            order_amount=minor_units(plain_value(row["amount"])),
            order_currency=currency_code(plain_value(row["currency"])),
            charge_amount=minor_units(plain_value(row["charge_amount"])),
            charge_currency=currency_code(plain_value(row["charge_currency"])),
            expected_end=iso_time(row["expected_end"]),
        )

    def to_json(self) -> DiscrepancyJson:
        out: DiscrepancyJson = {
            "outcome": self.outcome,
            "order_id": self.order_id,
            "charge_id": self.charge_id,
            "order_amount": self.order_amount,
            "order_currency": self.order_currency,
            "charge_amount": self.charge_amount,
            "charge_currency": self.charge_currency,
            "detail": self.detail,
            "needs_person": self.needs_person,
            "expected_end": self.expected_end,
        }
        if self.payout_id is not None:
            out["payout_id"] = self.payout_id
        return out


@dataclass(frozen=True)
class EarlierChange:
    """An order an earlier run changed and no report of that run listed."""

    run_id: str
    order_id: str
    action: str

    @classmethod
    def from_audit(cls, record: AuditRecord) -> EarlierChange:
        return cls(str(record.get("run_id")), str(record.get("order_key")), str(record.get("action")))

    def to_json(self) -> EarlierChangeJson:
        return {"run_id": self.run_id, "order_id": self.order_id, "action": self.action}


def _category_added(a: CategoryTotals, b: CategoryTotals) -> CategoryTotals:
    return {
        "amount": a["amount"] + b["amount"],
        "fee": a["fee"] + b["fee"],
        "net": a["net"] + b["net"],
        "count": a["count"] + b["count"],
    }


def _currency_added(a: CurrencyTotals, b: CurrencyTotals) -> CurrencyTotals:
    categories = dict(a["by_category"])
    for name, values in b["by_category"].items():
        categories[name] = _category_added(categories[name], values) if name in categories else values
    return {
        "gross": a["gross"] + b["gross"],
        "refunds": a["refunds"] + b["refunds"],
        "disputes": a["disputes"] + b["disputes"],
        "other": a["other"] + b["other"],
        "fees": a["fees"] + b["fees"],
        "net": a["net"] + b["net"],
        "payouts": a["payouts"] + b["payouts"],
        "charge_count": a["charge_count"] + b["charge_count"],
        "by_category": categories,
    }


def _totals_added(parts: list[Totals]) -> Totals:
    """Money totals per currency (and per reporting category) added up over several windows."""
    into: Totals = {}
    for totals in parts:
        for currency, t in totals.items():
            into[currency] = _currency_added(into[currency], t) if currency in into else t
    return into


@dataclass
class RunSummary:
    """What a window run (or, combined, an invocation's windows) found, changed and counted."""

    run_id: str
    since: datetime
    until: datetime
    dry_run: bool
    counts: dict[str, int]
    needs_attention: int
    repaired: list[str]
    marked_failed: list[str]
    discrepancies: list[Discrepancy]
    totals: Totals  # per currency: decide/totals.py's numbers
    report: ReportFiles | None
    counted_from: datetime | None = None
    movements: list[MovementJson] = field(default_factory=list)  # report/period.py's refunds and disputes
    items: ItemsJson | None = None  # report/period.py's open items: open, new, resolved, buckets
    audit_healed: list[str] = field(default_factory=list)
    earlier_changes: list[EarlierChange] = field(default_factory=list)
    payouts: list[PayoutJson] = field(default_factory=list)  # the payouts looked at (run/payouts.py)

    @classmethod
    def build(
        cls,
        run_id: str,
        since: datetime,
        until: datetime,
        outcomes: pd.DataFrame,
        counts: dict[str, int],
        totals: Totals,
        dry_run: bool,
        report: ReportFiles | None,
        *,
        counted_from: datetime | None = None,
        movements: Sequence[MovementJson] = (),
        items: ItemsJson | None = None,
        audit_healed: Sequence[str] = (),
        earlier_changes: Sequence[EarlierChange] = (),
        payouts: Sequence[PayoutJson] = (),
        payout_discrepancies: Sequence[Discrepancy] = (),
    ) -> RunSummary:
        """A window's summary from its outcomes (every one other than ok is a discrepancy) and their
        counts (classify.outcome_counts: ok orders have no row)."""

        def keys(outcome: str) -> list[str]:
            return outcomes.loc[outcomes["outcome"] == outcome, "order_key"].astype(str).tolist()

        unusual = outcomes.loc[outcomes["outcome"] != c.OK]
        return cls(
            run_id=run_id,
            since=since,
            until=until,
            dry_run=dry_run,
            counts=counts,
            needs_attention=int(outcomes["outcome"].isin(c.NEEDS_PERSON).sum()) + len(payout_discrepancies),
            repaired=keys(c.REPAIRED),
            marked_failed=keys(c.MARKED_FAILED),
            discrepancies=[
                Discrepancy.from_outcome(cast(OutcomeRow, r))
                for r in unusual[list(OutcomeRow.__annotations__)].to_dict("records")
            ]
            + list(payout_discrepancies),
            totals=totals,
            report=report,
            counted_from=counted_from,
            movements=list(movements),
            items=items,
            audit_healed=list(audit_healed),
            earlier_changes=list(earlier_changes),
            payouts=list(payouts),
        )

    @classmethod
    def combine(cls, run_id: str, parts: list[RunSummary]) -> RunSummary:
        """Several windows of one invocation as one: counts, changes and totals added up, the last one's items."""
        if len(parts) == 1:
            return parts[0]
        first, last = parts[0], parts[-1]
        return cls(
            run_id=run_id,
            since=first.since,
            until=last.until,
            dry_run=last.dry_run,
            counts={k: sum(p.counts.get(k, 0) for p in parts) for k in last.counts},
            needs_attention=sum(p.needs_attention for p in parts),
            repaired=[k for p in parts for k in p.repaired],
            marked_failed=[k for p in parts for k in p.marked_failed],
            discrepancies=[d for p in parts for d in p.discrepancies],
            totals=_totals_added([p.totals for p in parts]),
            report=last.report,
            movements=[m for p in parts for m in p.movements],
            items=last.items,
            audit_healed=[k for p in parts for k in p.audit_healed],
            earlier_changes=[e for p in parts for e in p.earlier_changes],
            payouts=[x for p in parts for x in p.payouts],
        )

    @property
    def charge_count(self) -> int:
        return sum(int(t["charge_count"]) for t in self.totals.values())

    def to_json(self) -> SummaryJson:
        out: SummaryJson = {
            "run_id": self.run_id,
            "window": {"since": fmt(self.since), "until": fmt(self.until)},
            "dry_run": self.dry_run,
            "counts": dict(self.counts),
            "needs_attention": self.needs_attention,
            "repaired": list(self.repaired),
            "marked_failed": list(self.marked_failed),
            "discrepancies": [d.to_json() for d in self.discrepancies],
            "totals": self.totals,
            "report": _report_json(self.report) if self.report else None,
        }
        if self.counted_from is not None:
            out["counted_from"] = fmt(self.counted_from)
        out["movements"] = self.movements
        if self.items is not None:
            out["items"] = self.items
        out["audit_healed"] = list(self.audit_healed)
        out["earlier_changes"] = [e.to_json() for e in self.earlier_changes]
        out["payouts"] = list(self.payouts)
        return out


@dataclass(frozen=True)
class WindowEntry:
    """One sub-window of an invocation, as the summary's `runs` lists it."""

    run_id: str
    summary: RunSummary
    email: str | None
    exit_code: int

    def to_json(self) -> WindowEntryJson:
        s = self.summary.to_json()
        return {
            "run_id": self.run_id,
            "window": s["window"],
            "counts": s["counts"],
            "needs_attention": s["needs_attention"],
            "report": s["report"],
            "email": self.email,
            "exit_code": self.exit_code,
        }


@dataclass
class InvocationSummary:
    """What `--summary-json` holds: the windows that completed (added up), the exit code, the error if
    any, and what a window that failed after changing orders had changed."""

    run_id: str
    exit_code: int
    windows: list[WindowEntry] = field(default_factory=list)
    error: str | None = None
    failed_repaired: list[str] = field(default_factory=list)
    failed_marked_failed: list[str] = field(default_factory=list)
    failed_run_report: ReportFiles | None = None

    @property
    def combined(self) -> RunSummary | None:
        if not self.windows:
            return None
        return RunSummary.combine(self.run_id, [w.summary for w in self.windows])

    def to_json(self) -> SummaryJson:
        combined = self.combined
        out: SummaryJson
        if combined is None:  # nothing completed: monitoring still sees this invocation's answer
            out = {"run_id": self.run_id, "exit_code": self.exit_code, "error": self.error, "runs": []}
        else:
            out = combined.to_json()
            out["runs"] = [w.to_json() for w in self.windows]
            out["exit_code"] = self.exit_code
            if self.error is not None:
                out["error"] = self.error
        if self.failed_repaired or self.failed_marked_failed or self.failed_run_report is not None:
            out["repaired"] = [*out.get("repaired", []), *self.failed_repaired]
            out["marked_failed"] = [*out.get("marked_failed", []), *self.failed_marked_failed]
            if self.failed_run_report is not None:
                out["failed_run_report"] = _report_json(self.failed_run_report)
        return out
