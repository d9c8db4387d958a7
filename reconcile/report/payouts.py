"""What people read of payouts: the summary's `payouts` objects, the report's "Payouts" section, and
`reports/payouts-RUN_ID.csv` (one row per balance transaction of every payout itemized).

The CSV is written as the transactions arrive (`PayoutCsv`, into a temporary file beside the report),
never held for a month at once, and put in place when the report is written (atomically, mode 0600).
"""

from __future__ import annotations

import contextlib
import csv
import os
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePath
from typing import IO, Any, TypedDict

import markupsafe

from reconcile.decide.bank import Deposit, PayoutCheck, PayoutMatch, Statement
from reconcile.decide.payouts import Itemized, Payout, PayoutOutcome, PayoutTxn
from reconcile.money import format_amount, to_decimal_text
from reconcile.report import queue, wording
from reconcile.report.records import BankDepositJson, PayoutJson
from reconcile.report.render import neutralise, template_env
from reconcile.timeutil import fmt

CSV_COLUMNS = (
    "payout_id",
    "payout_status",
    "arrival_date",
    "balance_transaction_id",
    "type",
    "reporting_category",
    "source_id",
    "charge_id",
    "order_id",
    "currency",
    "gross",
    "fee",
    "net",
    "bank_date",
    "bank_reference",
)
PREFIX = "payouts-"


def csv_path(report_dir: Path, run_id: str) -> Path:
    return report_dir / f"{PREFIX}{run_id}.csv"


def beside(report_csv: Path) -> Path:
    """The payouts CSV of the run whose report CSV is `report_csv` (reconcile-RUN.csv -> payouts-RUN.csv)."""
    return report_csv.with_name(PREFIX + report_csv.name.removeprefix("reconcile-"))


def deposit_json(deposit: Deposit | None) -> BankDepositJson | None:
    if deposit is None:
        return None
    return {
        "date": deposit.booked.isoformat(),
        "amount": deposit.amount,
        "currency": deposit.currency,
        "reference": deposit.reference,
        "file": PurePath(deposit.file).name,
    }


def payout_json(payout: Payout, itemized: Itemized | None, bank: PayoutMatch | None = None) -> PayoutJson:
    return {
        "id": payout.id,
        "status": payout.status,
        "amount": payout.amount,
        "currency": payout.currency,
        "arrival_date": payout.arrival_date.isoformat(),
        "automatic": payout.automatic,
        "reconciliation_status": payout.reconciliation_status,
        "failure_code": payout.failure_code,
        "transactions": itemized.transactions if itemized else None,
        "orders": itemized.orders if itemized else None,
        "totals": dict(itemized.totals) if itemized else None,  # type: ignore[typeddict-item]
        "adds_up": itemized.adds_up(payout.amount) if itemized else None,
        "bank": deposit_json(bank.deposit) if bank else None,
        "bank_check": str(bank.check) if bank else None,
    }


def csv_row(payout: Payout, t: PayoutTxn, deposit: Deposit | None = None) -> list[str]:
    """One transaction's row: amounts in major units with the currency's exact decimals; the payout's deposit."""
    return [
        neutralise(payout.id),
        neutralise(payout.status),
        payout.arrival_date.isoformat(),
        neutralise(t.id),
        neutralise(t.type),
        neutralise(t.reporting_category),
        neutralise(t.source_id),
        neutralise(t.charge_id),
        neutralise(t.order_ref),
        neutralise(t.currency),
        to_decimal_text(t.amount, t.currency),
        to_decimal_text(t.fee, t.currency),
        to_decimal_text(t.net, t.currency),
        deposit.booked.isoformat() if deposit else "",
        neutralise(deposit.reference) if deposit else "",
    ]


class PayoutCsv:
    """The payouts CSV, written row by row as the pages arrive (from several threads), put in place by `finish`."""

    def __init__(
        self, report_dir: Path, run_id: str, deposit_of: Callable[[str], Deposit | None] | None = None
    ) -> None:
        self.path = csv_path(report_dir, run_id)
        self._deposit_of = deposit_of or (lambda _: None)  # a payout's deposit on the bank statements
        self._tmp: str | None = None
        self._handle: IO[str] | None = None
        self._out: Any = None  # the csv writer (its type is private to the csv module)
        self._lock = threading.Lock()
        self.rows = 0

    def _open(self) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Named as render.sweep_stale_temps finds a killed run's leftovers.
        fd, self._tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".reconcile-{self.path.name}.", suffix=".tmp")
        self._handle = os.fdopen(fd, "w", encoding="utf-8", newline="")
        self._out = csv.writer(self._handle, lineterminator="\r\n")
        self._out.writerow(CSV_COLUMNS)

    def write(self, payout: Payout, txns: list[PayoutTxn]) -> None:
        with self._lock:
            if self._handle is None:
                self._open()
            deposit = self._deposit_of(payout.id)
            self._out.writerows(csv_row(payout, t, deposit) for t in txns)
            self.rows += len(txns)

    def finish(self) -> Path | None:
        """The file put in place (None: no payout was itemized, no file)."""
        with self._lock:
            if self._handle is None or self._tmp is None:
                return None
            handle, tmp = self._handle, self._tmp
            self._handle = self._tmp = None
        try:
            handle.flush()
            os.fsync(handle.fileno())
            handle.close()
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            self._remove(tmp)
            raise
        return self.path

    def discard(self) -> None:
        """A run that stopped before its report: no half file left."""
        with self._lock:
            handle, tmp = self._handle, self._tmp
            self._handle = self._tmp = None
        if handle is not None:
            with contextlib.suppress(OSError):
                handle.close()
        if tmp is not None:
            self._remove(tmp)

    @staticmethod
    def _remove(tmp: str) -> None:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


class PayoutView(TypedDict):
    """A row of the report's "Payouts" section."""

    id: str
    amount_text: str
    arrival: str
    status: str
    title: str
    outcome: str | None
    contents: str
    adds_up: bool | None
    url: str
    bank: str  # where it stands against the bank statements ("": none read)
    bank_missing: bool  # NOT on the statements that cover its days


@dataclass(frozen=True)
class PayoutLine:
    """A payout the run looked at, judged: what the section, the summary and the discrepancies take."""

    payout: Payout
    itemized: Itemized | None
    outcome: PayoutOutcome | None
    detail: str | None
    bank: PayoutMatch | None = None  # against the bank statements (None: the run read none)


def contents_text(payout: Payout, itemized: Itemized | None) -> str:
    if itemized is None:
        if not payout.automatic:
            return f"{wording.NOT_ITEMIZED} (a manual payout)"
        if payout.final:
            return "not itemized: nothing reached the bank"  # the title says where the money went
        return f"{wording.NOT_ITEMIZED} yet (reconciliation {payout.reconciliation_status.replace('_', ' ')})"
    adds = "adds up" if itemized.adds_up(payout.amount) else "does NOT add up"
    return f"{itemized.charges} charges, {itemized.orders} orders, {itemized.transactions} transactions; {adds}"


def view(line: PayoutLine, dashboard_url: str) -> PayoutView:
    p, itemized = line.payout, line.itemized
    return {
        "id": p.id,
        "amount_text": format_amount(p.amount, p.currency),
        "arrival": wording.day_text(p.arrival),
        "status": wording.PAYOUT_STATUS_WORDS.get(p.status, p.status),
        "title": wording.item_title(line.outcome) if line.outcome else "",
        "outcome": line.outcome,
        "contents": contents_text(p, itemized),
        "adds_up": itemized.adds_up(p.amount) if itemized else None,
        "url": queue.dashboard_url(dashboard_url, p.livemode, f"payouts/{p.id}"),
        "bank": wording.bank_check_text(line.bank),
        "bank_missing": line.bank is not None and line.bank.check is PayoutCheck.NOT_IN_BANK,
    }


def section_html(
    lines: list[PayoutLine],
    dashboard_url: str,
    csv_name: str | None,
    statements: Sequence[Statement] | None = None,
) -> str:
    """The report's "Payouts" section (escaped HTML); empty when the run looked at no payout. `statements`: the
    bank statements the run read (None: none), named by base name, account by its last four characters."""
    if not lines:
        return ""
    views = [view(line, dashboard_url) for line in sorted(lines, key=lambda x: (-x.payout.arrival, x.payout.id))]
    read = None if statements is None else [wording.statement_text(s) for s in statements]
    html = template_env().get_template("payouts.html.j2").render(payouts=views, csv_name=csv_name, statements=read)
    return str(markupsafe.Markup(html))


# --------------------------------------------------------------------------- `reconcile payouts`

LIST_CSV_COLUMNS = (
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
    "gross",
    "refunds",
    "disputes",
    "fees",
    "other",
    "net",
    "adds_up",
    "bank_date",
    "bank_reference",
)


def list_csv_row(payout: Payout, itemized: Itemized | None, bank: PayoutMatch | None = None) -> list[str]:
    """A payout as `reconcile payouts --csv` lists it: the summary's fields, amounts in major units."""
    j = payout_json(payout, itemized, bank)
    deposit = j["bank"]
    cur = payout.currency
    sums = [to_decimal_text(itemized.totals[k], cur) if itemized else "" for k in TOTAL_KEYS]  # type: ignore[literal-required]
    return [
        neutralise(j["id"]),
        neutralise(j["status"]),
        to_decimal_text(j["amount"], cur),
        cur,
        j["arrival_date"],
        str(j["automatic"]).lower(),
        neutralise(j["reconciliation_status"]),
        neutralise(j["failure_code"]),
        "" if j["transactions"] is None else str(j["transactions"]),
        "" if j["orders"] is None else str(j["orders"]),
        *sums,
        "" if j["adds_up"] is None else str(j["adds_up"]).lower(),
        deposit["date"] if deposit else "",
        neutralise(deposit["reference"]) if deposit else "",
    ]


TOTAL_KEYS = ("gross", "refunds", "disputes", "fees", "other", "net")


def none_line(since: datetime, until: datetime) -> str:
    """`reconcile payouts` with nothing to list: says so, and for which dates."""
    return f"no payouts created from {fmt(since)} to {fmt(until)} (UTC, end excluded)"


def table_line(payout: Payout, itemized: Itemized | None, bank: PayoutMatch | None = None) -> str:
    """One payout on a terminal line: arrival, status, amount, id, what is in it (and where it stands against
    the bank statements, when any was read)."""
    status = payout.status + (f" ({payout.failure_code})" if payout.failure_code else "")
    amount = format_amount(payout.amount, payout.currency)
    against = f"; {wording.bank_check_text(bank)}" if bank is not None else ""
    return (
        f"{payout.arrival_date.isoformat()}  {status:<24} {amount:>20}  {payout.id}  "
        f"{contents_text(payout, itemized)}{against}"
    )


def show_lines(payout: Payout, itemized: Itemized | None) -> list[str]:
    """`reconcile payouts show`: the payout, then (after its transactions) its totals."""
    lines = [table_line(payout, itemized)]
    if itemized is None:
        return lines
    cur = payout.currency
    sums = ", ".join(f"{k} {format_amount(itemized.totals[k], cur)}" for k in TOTAL_KEYS)  # type: ignore[literal-required]
    lines.append(f"totals: {sums}; payout {format_amount(payout.amount, cur)}")
    return lines


def txn_line(t: PayoutTxn) -> str:
    order = f"order {t.order_ref}" if t.order_ref else "no order"
    return (
        f"  {t.id}  {t.reporting_category:<20} {format_amount(t.net, t.currency):>16} net  "
        f"{t.charge_id or t.source_id or '-'}  {order}"
    )


def console_line(payouts: list[PayoutJson], outcomes: list[str]) -> str | None:
    """The run's payouts on one console line (None: it looked at none): how many, and those needing a person."""
    if not payouts:
        return None
    counted = {o: outcomes.count(o) for o in dict.fromkeys(outcomes)}
    problems = ", ".join(f"{n} {wording.PAYOUT_SHORT.get(o, o)}" for o, n in counted.items())
    itemized = sum(1 for p in payouts if p["transactions"] is not None)
    return f"payouts: {len(payouts)} looked at, {itemized} itemized" + (f"; {problems}" if problems else "")
