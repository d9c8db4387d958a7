"""One reconciliation run for a window: read, decide, write, report.

Every scope a run judges goes through the same steps (run/judge.py): its window, then the open items
from earlier windows it re-checks (run/recheck.py), whose scope is what the window did not judge.

1. Read: every remote read the window needs, Stripe and MongoDB: the charges (with their
   PaymentIntents and Checkout Sessions) and balance transactions, the window's orders, the look
   past the window's edges for the orders that seem to have no money, the refunds and disputes with
   their orders; the open items to re-check and the objects they name; the changes earlier runs
   made and did not report (and the audit records a stopped run owed), the run history for the trend.
2. Decide: pure (classify, wording, findings, counts, totals), each scope's findings once.
3. Write: the owed audit records, repairs with theirs, the items collection, the report files; the
   invocation then advances the watermark and records the run.

After the first write to an order nothing remote is read: a Stripe or MongoDB failure in the read
phase ends the run with nothing changed. Whatever ends a run after its first write, what it changed
is in `Changes` (given by the invocation, filled as orders change), a report lists it if one can
be written (a plain one if the full one cannot), and the run history says whether it was reported:
the next run reports what an earlier one could not (`earlier_changes`).
"""

from __future__ import annotations

import dataclasses
import logging
import resource
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import stripe
from pymongo.database import Database

from reconcile.decide import classify as c
from reconcile.decide import columns, totals
from reconcile.decide import deadlines as deadline_rules
from reconcile.decide import items as item_rules
from reconcile.decide import repair as repair_rules
from reconcile.decide.audit import AuditRecord
from reconcile.decide.bank import Statement
from reconcile.decide.findings import Finding
from reconcile.decide.runs import RunDoc
from reconcile.decide.trend import trend_points
from reconcile.errors import ReconcileError
from reconcile.exitcodes import ExitCode
from reconcile.report import payouts as payout_words
from reconcile.report import period, repair_words
from reconcile.report import render as report
from reconcile.report.summary import EarlierChange, RunSummary
from reconcile.run import judge, recheck, settings
from reconcile.run import payouts as payouts_run
from reconcile.run.settings import WindowSettings
from reconcile.runtime import interrupt, memory, progress
from reconcile.runtime.logs import run_context
from reconcile.runtime.redact import exception_text, one_line
from reconcile.store import deadlines as deadline_store
from reconcile.store import items as item_store
from reconcile.store import orders as order_store
from reconcile.store import repair
from reconcile.store import runs as state
from reconcile.stripe import movements as stripe_movements
from reconcile.stripe import payments as payment_pull
from reconcile.stripe import pull as stripe_pull
from reconcile.stripe import slices as pull_plan
from reconcile.timeutil import to_unix, utcnow

log = logging.getLogger(__name__)

Money = totals.Totals  # the balance transactions' totals per currency (totals.summarize)


@dataclass
class Changes:
    """What a window run changed so far, filled as its writes happen. The invocation gives it and reads
    it whatever ends the run: the summary and the run history list these orders on every way out."""

    repair: repair.RepairResult = field(default_factory=repair.RepairResult)
    report: report.ReportFiles | None = None  # the report listing them, once written
    plain: bool = False  # the report is the plain one (the full render failed or was not reached)
    reported: bool = False  # the run history says so (the next run need not report them again)

    @property
    def count(self) -> int:
        return len(self.repair.repaired) + len(self.repair.marked_failed)


@dataclass(frozen=True)
class RunRequest:
    since: datetime
    until: datetime
    now: datetime
    dry_run: bool = False
    report_dir: Path = Path("reports")
    summary_json: Path | None = None
    # Count money from here (the overlap before it was counted by the previous run); None: the whole window.
    counted_from: datetime | None = None
    # Called just before repairs and before each repair batch (the run lease's check): raising stops the writes.
    checkpoint: Callable[[], None] | None = None
    # Open items from earlier windows re-checked in this one (the invocation's last window; 0: none).
    recheck_limit: int = 0
    part: tuple[int, int] = (1, 1)  # this window among the invocation's sub-windows
    source: str | None = None  # how the window was chosen (watermark, lookback, options): for the trend
    changes: Changes = field(default_factory=Changes)
    # The bank statements matched to the payouts in this window (the invocation's last; None: none read).
    statements: tuple[Statement, ...] | None = None


@dataclass(frozen=True)
class RunResult:
    run_id: str
    counts: dict[str, int]
    summary: RunSummary
    report: report.ReportFiles
    exit_code: ExitCode
    seconds: dict[str, float] = field(default_factory=dict)  # wall time per step
    items: item_rules.ItemsResult = field(default_factory=item_rules.ItemsResult)
    movements: list[Finding] = field(default_factory=list)  # refunds and disputes judged


class _Clock:
    """Wall time per step of a run, and the process's peak memory at the end of each, for the log
    and the benchmark (the step where the peak grows is the one to look at)."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self.peak_mb: dict[str, int] = {}
        self._last = time.monotonic()

    def lap(self, step: str) -> None:
        now = time.monotonic()
        self.laps[step] = round(self.laps.get(step, 0.0) + now - self._last, 3)
        self.peak_mb[step] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024  # KiB on Linux
        self._last = now


# The window's orders are read beside the Stripe pull up to this many (an hourly run at a million
# charges a day holds about 42,000). A window holding more (a backfill, minutes long anyway) reads
# them after the pull instead: its order columns never share memory with the pull's (peak RSS).
ORDERS_BESIDE_PULL = 250_000
# Changes of earlier runs reported by one run at most (runs, oldest first); the rest by the next.
EARLIER_RUNS_LIMIT = 50


class _LoadAfterPull(Exception):
    """The window holds too many orders to read beside the pull."""


def new_run_id(now: datetime) -> str:
    return f"{now.strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(3)}"


@dataclass(frozen=True)
class _Remote:
    """What a window run reads through: Stripe with its retry policy, MongoDB (and its scans' handle)."""

    client: stripe.StripeClient
    policy: stripe_pull.RetryPolicy
    db: Database
    scan_db: Database


@dataclass(frozen=True)
class _Pulled:
    """The window's payments and orders, as read."""

    payments: payment_pull.Payments
    orders: pd.DataFrame  # the window's orders and those its payments name (classify.orders_frame)
    money: Money  # from `req.counted_from` when set
    charge_ids_as_stored: dict[str, str]  # by order key, charge ids stored as blank or padded text


@dataclass(frozen=True)
class _Ledger:
    """What the run history and the audit records say a window run owes or shows."""

    history: list[RunDoc]  # completed runs, for the trend
    earlier: list[AuditRecord]  # audit records of changes earlier runs did not report
    earlier_runs: list[str]
    owed: list[AuditRecord]  # audit records a stopped run owed, rebuilt from its orders' markers


@dataclass(frozen=True)
class _Read:
    """Everything a window run read, judged, before its first write."""

    window: judge.Judged  # the window (edge look included): outcomes worded, findings
    orders: int  # how many orders were classified (those without a row in the outcomes are ok)
    money: Money
    rechecked: recheck.Rechecked  # the open items of earlier windows re-checked
    ledger: _Ledger
    charge_ids_as_stored: dict[str, str]  # by order key (the repairs compare what is stored)
    payouts: payouts_run.PayoutsRead  # the payouts looked at, judged (run/payouts.py)
    watches: deadline_rules.WatchPlan = field(default_factory=deadline_rules.WatchPlan)  # slow payments to judge later

    @property
    def findings(self) -> list[Finding]:
        """Every finding for the items collection: the window's and its payouts'."""
        return self.window.findings + self.payouts.findings

    @property
    def checked(self) -> recheck.Rechecked:
        """The open items re-checked: those of earlier windows, and those of the payouts read again."""
        r, p = self.rechecked, self.payouts
        return recheck.Rechecked(r.confirmed, {**r.cleared, **p.cleared}, r.checked + p.checked)


def run(
    ws: WindowSettings,
    client: stripe.StripeClient,
    db: Database,
    req: RunRequest,
    run_id: str | None = None,
    policy: stripe_pull.RetryPolicy | None = None,
    scan_db: Database | None = None,
) -> RunResult:
    """One window, with the settings it uses (`settings.window_settings`). `scan_db` is the database through
    `mongo.connect_for_scans` (default: `db`)."""
    run_id = run_id or new_run_id(req.now)
    remote = _Remote(client, policy or ws.retry(), db, db if scan_db is None else scan_db)
    with run_context(run_id):
        log.info(
            "run.start",
            extra={"since": req.since.isoformat(), "until": req.until.isoformat(), "dry_run": req.dry_run},
        )
        clock = _Clock()
        store = ws.repair_store(db)
        read = _read(ws, remote, store, req, run_id, clock)
        return _write(ws, db, store, req, run_id, read, clock)


# --------------------------------------------------------------------------- read


def _read(
    ws: WindowSettings,
    remote: _Remote,
    store: repair.RepairStore,
    req: RunRequest,
    run_id: str,
    clock: _Clock,
) -> _Read:
    """The window read and judged, then the open items it leaves read and judged the same way, then the ledger."""
    pulled = _pull_and_load(ws, remote, req, clock)
    rules = settings.rules_at(ws.rules, req.now, item_store.dismissed_pairs(remote.db[ws.collections.decisions]))
    outcomes = _classify_with_edges(ws, remote, req, pulled, rules, clock)
    orders, money, as_stored = len(pulled.orders), pulled.money, pulled.charge_ids_as_stored
    # Watched orders with an answer, or past their deadline, since they left the windows: judged in this window's scope.
    outcomes, watched_orders, watches = _with_watched(ws, remote, req, rules, pulled.orders, outcomes)
    orders += watched_orders
    clock.lap("recheck")  # the watched orders' reads: counted with the open items' re-check
    del pulled  # the window's orders and payments: only their outcomes are kept
    # Refunds and disputes created in the window, with their orders (of any age).
    rows = stripe_movements.fetch_movements(remote.client, req.since, req.until, ws.linking.metadata_key, remote.policy)
    moved_orders = order_store.orders_of_movements(remote.db[ws.collections.orders], ws.orders, rows, req.since)
    interrupt.checkpoint("pull")
    clock.lap("movements")
    window = judge.judge(outcomes, rows, moved_orders, rules)
    clock.lap("edge_look")  # the wording, as before with the outcomes it words
    rechecked = _recheck(ws, remote, req, rules, {f["key"] for f in window.findings})
    clock.lap("recheck")
    payouts = _payouts(ws, remote, req, run_id)
    clock.lap("payouts")
    try:
        ledger = _read_ledger(ws, remote.db, store, req, run_id)
    except BaseException:
        payouts_run.discard(payouts)
        raise
    return _Read(window, orders, money, rechecked, ledger, as_stored, payouts, watches)


def _payouts(ws: WindowSettings, remote: _Remote, req: RunRequest, run_id: str) -> payouts_run.PayoutsRead:
    """The payouts created in the window; with the re-check (the invocation's last window), also those
    earlier runs saw that are not final yet and those with an open item (run/payouts.py)."""
    scope = payouts_run.scope_for(ws, remote.client, remote.policy, remote.db)
    if scope is None:
        return payouts_run.PayoutsRead()
    return payouts_run.read(
        scope, req.since, req.until, req.now, run_id, req.report_dir, bool(req.recheck_limit), req.statements
    )


def _pull_and_load(ws: WindowSettings, remote: _Remote, req: RunRequest, clock: _Clock) -> _Pulled:
    """The window's payments pulled and its orders loaded (beside the pull when few enough), and the
    totals of its balance transactions."""
    beside = _OrdersBeside(ws, remote, req)
    pulled, money, loaded = _pull(ws, remote, req, beside)
    clock.lap("pull")
    log.info(
        "pull.done",
        extra={
            "charges": len(pulled.charges),
            "payment_intents": len(pulled.intents),
            "checkout_sessions": len(pulled.sessions),
            "balance_transactions": money.n_balance,
            "orders_in_window": beside.load.in_window if loaded else None,
            "orders_in_window_seconds": beside.load.window_seconds if loaded else None,
        },
    )
    load = beside.load if loaded else None
    del beside  # the partial load of a big window, if any, is dropped here, before its orders are read again
    if load is None:
        load = _load_after_pull(ws, remote, req, pulled)
    refs = payment_pull.references(pulled, ws.rules.link_by)
    progress.step("load orders", 0, None)
    loaded_columns = load.referenced(refs.order_refs, refs.charge_ids, refs.payment_intent_ids, refs.session_ids)
    orders = c.orders_frame(loaded_columns.columns())
    as_stored = load.charge_ids_as_stored
    del refs, load, loaded_columns
    memory.trim()  # the documents' and columns' memory, before the join
    clock.lap("load")
    progress.step("load orders", 1, 1)
    log.info("load.done", extra={"orders": len(orders)})
    interrupt.checkpoint("load")
    return _Pulled(pulled, orders, money.totals, as_stored)


class _OrdersBeside:
    """The window's orders read beside the Stripe pull, stopped when there are too many to hold beside it."""

    def __init__(self, ws: WindowSettings, remote: _Remote, req: RunRequest) -> None:
        self.load = _order_load(ws, remote)
        self.req = req
        self.abort = remote.policy.abort

    def _stop(self) -> None:
        interrupt.checkpoint("load")
        if self.abort.is_set():  # a pull beside it failed: its error is the one to report
            raise pull_plan.PullAborted()
        if self.load.count > ORDERS_BESIDE_PULL:
            raise _LoadAfterPull()

    def __call__(self) -> bool:
        """True when the window's orders are all read."""
        try:
            self.load.window(self.req.since, self.req.until, self._stop)
        except _LoadAfterPull:
            return False
        return True


def _order_load(ws: WindowSettings, remote: _Remote) -> order_store.OrderLoad:
    name = ws.collections.orders
    return order_store.OrderLoad(remote.db[name], ws.orders, remote.scan_db[name], ws.collections.scan_timeout)


@dataclass(frozen=True)
class _Money:
    totals: Money
    n_balance: int  # balance transactions pulled


def _pull(
    ws: WindowSettings, remote: _Remote, req: RunRequest, beside: _OrdersBeside
) -> tuple[payment_pull.Payments, _Money, bool]:
    """Charges (with PaymentIntents and sessions as the link kinds need) and balance transactions, side by
    side; the window's orders are read meanwhile (that query needs nothing from Stripe, and a slow one,
    e.g. a scan for string-dated orders, hides behind the rate-limited pull). The balance transactions
    come back as their totals; True: the window's orders were read beside the pull."""
    client, policy = remote.client, remote.policy
    # Three kinds of result from one call: typed here, where they are unpacked.
    calls: list[Callable[[], Any]] = [
        lambda: payment_pull.pull(client, ws.linking, req.since, req.until, policy),
        lambda: stripe_pull.fetch_balance_columns(client, req.since, req.until, policy),
        beside,
    ]
    pulled: payment_pull.Payments
    balance_columns: columns.Columns
    loaded: bool
    pulled, balance_columns, loaded = pull_plan.side_by_side(calls, policy.abort)
    # Pulls side by side may all finish after a stop was asked for: honour it before loading more orders.
    interrupt.checkpoint("pull")
    money = _balance_totals(balance_columns, req.counted_from)
    memory.trim()  # the pages' memory, freed, goes back to the system before the orders come in
    return pulled, money, loaded


def _balance_totals(balance_columns: columns.Columns, counted_from: datetime | None) -> _Money:
    """Totals now: a million balance transactions (~130 MB) are not held through the load and the join."""
    balance = totals.balance_frame(balance_columns)
    balance_columns.clear()  # the frame holds what is needed
    n_balance = len(balance)
    if counted_from is not None:
        balance = balance.loc[balance["created"] >= to_unix(counted_from)]
    return _Money(totals.summarize(balance), n_balance)


def _load_after_pull(
    ws: WindowSettings, remote: _Remote, req: RunRequest, pulled: payment_pull.Payments
) -> order_store.OrderLoad:
    """A big window's (a backfill's) orders, read after the pull. They repeat strings the charges hold (their
    ids, the charges' ids, emails): held once. The lookup tables cost ~40 MB a million strings: dropped
    once the window's orders are in (the orders Stripe names besides are few)."""
    load = _order_load(ws, remote)
    charges = pulled.charges
    shared = {"order_key": charges["order_ref"], "stored_charge_id": charges["charge_id"]}
    # Only for fields the orders have (a column the shop does not store is None in every row).
    if ws.orders.payment_intent_id_field:
        shared["stored_payment_intent_id"] = charges["payment_intent"]
    if ws.orders.email_field:
        shared["email"] = charges["email"]
    load.share_strings(shared)
    progress.step("load orders", 0, None)
    load.window(req.since, req.until, lambda: interrupt.checkpoint("load"))
    load.share_strings({})
    return load


def _classify_with_edges(
    ws: WindowSettings, remote: _Remote, req: RunRequest, pulled: _Pulled, rules: c.Rules, clock: _Clock
) -> pd.DataFrame:
    """The window classified; the orders that seem to have no money need a look past the window's edges (a
    charge can land after `until`): what that look finds, if anything, is classified with the rest."""
    outcomes = judge.classify(pulled.orders, pulled.payments, rules)
    clock.lap("classify")
    extra = payment_pull.edge_look(
        remote.client, ws.linking, req.since, req.until, pulled.orders, outcomes, pulled.payments, remote.policy
    )
    if extra:
        outcomes = judge.classify(pulled.orders, pulled.payments + extra, rules)
    clock.lap("edge_look")
    log.info("classify.done", extra={"edge_charges": len(extra.charges)})
    return outcomes


def _with_watched(
    ws: WindowSettings,
    remote: _Remote,
    req: RunRequest,
    rules: c.Rules,
    window_orders: pd.DataFrame,
    outcomes: pd.DataFrame,
) -> tuple[pd.DataFrame, int, deadline_rules.WatchPlan]:
    """The window's outcomes with those of the watched orders judged now (decide/deadlines.py): each run
    (the invocation's last window, as the open items' re-check) reads up to `req.recheck_limit` watched
    orders again by id, those past their deadline first, then the longest unchecked; one whose payment
    has an answer, or whose deadline has passed, is classified as the window's are; one still in flight
    before its deadline is watched on, with no row. Also how many orders that adds, and the watch list's plan."""
    now = rules.now
    watched = deadline_store.to_check(remote.db[ws.collections.state], now, req.recheck_limit)
    # One the window holds already is judged there.
    held = set(window_orders.loc[window_orders["order_key"].isin([w.order_key for w in watched.watches]), "order_key"])
    todo = [w for w in watched.watches if w.order_key not in held]
    checked = deadline_rules.Rechecked(outcomes.iloc[:0], (), (), 0)
    if todo:
        docs: list[item_rules.ItemDoc] = [
            {
                "_id": f"deadline:{w.order_key}",
                "source": "order",
                "order_key": w.order_key,
                "charge_ids": list(w.charge_ids),
            }
            for w in todo
        ]
        scope = recheck.Remote(remote.client, remote.policy, remote.db[ws.collections.orders], ws.orders, ws.linking)
        attempts = [(w.order_key, kind, i) for w in todo for kind, i in w.attempts]
        read = recheck.read_orders(scope, docs, req.now, attempts)
        interrupt.checkpoint("recheck")
        keys = [w.order_key for w in todo]
        found = read.orders.loc[read.orders["order_key"].isin(keys)].reset_index(drop=True)
        judged = judge.classify(found, read.payments, rules)
        judged = judged.loc[judged["order_id"].notna()]
        # A watched order that no longer exists is forgotten with those judged.
        checked = deadline_rules.sort_rechecked(todo, list(found["order_key"]), judged, now)
    log.info(
        "deadlines.checked",
        extra={
            "watched": watched.total,
            "read": len(todo),
            "judged": checked.found,
            "not_ok": len(checked.outcomes),
            "waiting": len(checked.waiting),
            "left_for_next_run": watched.left(),
        },
    )
    if watched.left():  # a warning when orders past their deadline took every place: more of them may wait
        past = sum(1 for w in watched.watches if w.deadline <= now)
        log.log(
            logging.WARNING if past == len(watched.watches) else logging.INFO,
            "deadlines.left",
            extra={"left": watched.left(), "limit": req.recheck_limit, "past_deadline_read": past},
        )
    if len(checked.outcomes):
        outcomes = pd.concat([outcomes, checked.outcomes], ignore_index=True)[c.RESULT_COLUMNS]
    judged_keys = tuple(sorted({*checked.judged, *held}))
    plan = deadline_rules.watch_plan(outcomes, judged_keys, rules.grace_seconds, rules.now, checked.waiting)
    return outcomes, checked.found, plan


def _recheck(
    ws: WindowSettings, remote: _Remote, req: RunRequest, rules: c.Rules, found: set[str]
) -> recheck.Rechecked:
    """Once per invocation (`req.recheck_limit`): the open items from windows before this one that this
    window did not judge (`found`: its findings' keys), read and judged as the window is."""
    if not req.recheck_limit:
        return recheck.Rechecked([], {}, [])
    todo = item_rules.to_recheck(
        # A payout's items are re-checked with the payouts (run/payouts.py), the bank's with the statements.
        [
            d
            for d in item_store.open_items(remote.db[ws.collections.items])
            if d.get("source") not in ("payout", "bank")
        ],
        found,
        to_unix(req.since),
        to_unix(req.until),
        req.recheck_limit,
    )
    orders = remote.db[ws.collections.orders]
    scope = recheck.Remote(remote.client, remote.policy, orders, ws.orders, ws.linking)
    read = recheck.read(scope, todo, req.now)
    interrupt.checkpoint("recheck")
    return recheck.verdicts(read, rules)


def _read_ledger(ws: WindowSettings, db: Database, store: repair.RepairStore, req: RunRequest, run_id: str) -> _Ledger:
    """The run history for the trend; the changes earlier runs did not report, and the audit records owed.
    A run that died between an order's change and its audit record left the order flagged: the write
    phase writes the record it owed. That run reported nothing: this run reports its changes (`earlier`)."""
    runs = db[ws.collections.runs]
    history = state.completed_since(runs, req.now - timedelta(days=ws.report.trend_days + 2))
    owed = [] if req.dry_run else repair.owed_audit(store)
    earlier_runs = [] if req.dry_run else state.unreported(runs, EARLIER_RUNS_LIMIT, but=run_id)
    earlier = repair.changes_of_runs(store, earlier_runs)
    have = {(r.get("run_id"), r.get("order_key")) for r in earlier}
    earlier += [r for r in owed if (r["run_id"], r["order_key"]) not in have]
    earlier_runs = list(dict.fromkeys([*earlier_runs, *(r["run_id"] for r in owed)]))
    return _Ledger(history, earlier, earlier_runs, owed)


# --------------------------------------------------------------------------- write


def _write(
    ws: WindowSettings,
    db: Database,
    store: repair.RepairStore,
    req: RunRequest,
    run_id: str,
    read: _Read,
    clock: _Clock,
) -> RunResult:
    changes, findings = req.changes, read.findings
    try:
        outcomes, healed = _repair(store, req, run_id, read)
        clock.lap("repair")
        counts = c.outcome_counts(outcomes, read.orders)
        items = _sync_items(ws, db, req, run_id, findings, read.checked)
        if not req.dry_run:
            deadline_store.write(db[ws.collections.state], read.watches, to_unix(req.now))
        extras = _period_extras(ws, req, run_id, items, read, {f["key"] for f in findings})
        csv_name = read.payouts.csv.path.name if read.payouts.csv else None
        section = payout_words.section_html(
            read.payouts.lines, ws.report.dashboard_url, csv_name, read.payouts.statements
        )
        extras = dataclasses.replace(extras, html=extras.html + section)
        clock.lap("items")
        progress.step("report", 0, 1)
        files = report.write_report(
            req.report_dir,
            run_id,
            req.since,
            req.until,
            counts,
            outcomes,
            read.money,
            req.dry_run,
            ws.report.dashboard_url,
            utcnow(),
            extras=extras,
            counted_from=req.counted_from,
            order_url=ws.report.order_url,
        )
        changes.report = files
        if ws.payouts is not None:
            payouts_run.write(db[ws.payouts.collection], read.payouts, req.dry_run)
    except BaseException as error:
        payouts_run.discard(read.payouts)
        if changes.count or read.ledger.earlier:
            _report_anyway(ws, db, req, run_id, read.ledger, error)
        raise
    if not req.dry_run:
        changes.reported = _mark_reported(ws, db, run_id, read.ledger)
    summary = RunSummary.build(
        run_id,
        req.since,
        req.until,
        outcomes,
        counts,
        read.money,
        req.dry_run,
        files,
        counted_from=req.counted_from,
        movements=extras.summary["movements"],
        items=extras.summary["items"],
        audit_healed=healed,
        earlier_changes=[EarlierChange.from_audit(r) for r in read.ledger.earlier],
        payouts=read.payouts.summary(),
        payout_discrepancies=read.payouts.discrepancies(),
    )
    # Items a person acknowledged (being handled) or accepted (closed) need nobody now: not counted in the
    # exit code or the email's "need attention", or an hourly cron run mails about them every hour.
    summary.needs_attention = _needing_person(findings, items)
    return _finish(req, run_id, counts, summary, files, items, read.window.moved, clock)


def _repair(store: repair.RepairStore, req: RunRequest, run_id: str, read: _Read) -> tuple[pd.DataFrame, list[str]]:
    """The owed audit records written, then the repairs with theirs: (the outcomes with the races lost to
    other writers marked, the orders whose owed records were written)."""
    outcomes = read.window.outcomes
    if req.dry_run:
        return outcomes, []
    if req.checkpoint:
        req.checkpoint()
    healed = repair.write_owed(store, read.ledger.owed)
    done = repair.apply_repairs(
        store,
        outcomes,
        run_id,
        req.now,
        checkpoint=req.checkpoint,
        into=req.changes.repair,
        as_stored=read.charge_ids_as_stored,
    )
    outcomes = repair_rules.mark_lost_races(outcomes, done.lost_race, repair_words.lost_race(done.lost_now))
    log.info(
        "repair.done",
        extra={
            "repaired": len(done.repaired),
            "marked_failed": len(done.marked_failed),
            "lost_race": len(done.lost_race),
        },
    )
    return outcomes, healed


def _sync_items(
    ws: WindowSettings,
    db: Database,
    req: RunRequest,
    run_id: str,
    findings: list[Finding],
    rechecked: recheck.Rechecked,
) -> item_rules.ItemsResult:
    return item_store.sync(
        db[ws.collections.items],
        findings,
        since=req.since,
        until=req.until,
        run_id=run_id,
        now=req.now,
        confirmed=rechecked.confirmed,
        cleared=rechecked.cleared,
        checked=rechecked.checked,
        dry_run=req.dry_run,
        decisions=db[ws.collections.decisions],
        thresholds=ws.severity,
    )


def _finish(
    req: RunRequest,
    run_id: str,
    counts: dict[str, int],
    summary: RunSummary,
    files: report.ReportFiles,
    items: item_rules.ItemsResult,
    moved: list[Finding],
    clock: _Clock,
) -> RunResult:
    """The summary JSON written, the exit code, the run's last log line."""
    if req.summary_json:
        report.write_summary_json(req.summary_json, summary.to_json())
    exit_code = ExitCode.DISCREPANCIES if summary.needs_attention else ExitCode.OK
    progress.step("report", 1, 1)
    clock.lap("report")
    log.info(
        "run.done",
        extra={
            "counts": counts,
            "report": str(files.html),
            "exit_code": int(exit_code),
            "seconds": clock.laps,
            "peak_rss_mb": clock.peak_mb,
        },
    )
    return RunResult(run_id, counts, summary, files, exit_code, clock.laps, items, moved)


def _needing_person(findings: list[Finding], items: item_rules.ItemsResult) -> int:
    """This window's findings whose item is open after the run (not acknowledged, not accepted)."""
    still_open = {d["_id"] for d in items.open}
    return sum(1 for f in findings if f["key"] in still_open)


def _period_extras(
    ws: WindowSettings,
    req: RunRequest,
    run_id: str,
    items: item_rules.ItemsResult,
    read: _Read,
    found: set[str],
) -> report.ReportExtras:
    """The period sections of the report: refunds and disputes, open items, the trend, earlier runs' changes."""
    moved, earlier, links = read.window.moved, read.ledger.earlier, ws.report
    current: RunDoc = {
        "window": {"until": to_unix(req.until)},
        "open_items": len(items.open),
        "charge_count": sum(t["charge_count"] for t in read.money.values()),
        "source": req.source,
    }
    trend = trend_points(read.ledger.history, current, req.now, links.trend_days)
    sections = period.sections(
        run_id=run_id,
        now=req.now,
        findings=moved,
        items=items,
        trend=trend,
        dashboard_url=links.dashboard_url,
        dry_run=req.dry_run,
        part=req.part,
        order_url=links.order_url,
    )
    log.info(
        "period.done",
        extra={"refunds_disputes": len(moved), "open_items": len(items.open), "resolved": len(items.resolved)},
    )
    return report.ReportExtras(
        html_top=report.earlier_changes_html(earlier),  # after the sections' own (the budget cuts their lists)
        sections=sections,
        csv_rows=period.csv_rows(moved, links.dashboard_url)
        + period.decision_csv_rows(items, found, links.dashboard_url)
        + report.earlier_changes_csv(earlier),
        summary=period.summary(moved, items, req.now),
        queue_items=tuple(items.open),
    )


def _mark_reported(ws: WindowSettings, db: Database, run_id: str, ledger: _Ledger) -> bool:
    """The run history says this run's changes, and the earlier ones it listed, are in a report.
    False when that could not be recorded (the next run then lists them again rather than never)."""
    try:
        state.mark_reported(db[ws.collections.runs], [run_id, *ledger.earlier_runs], run_id)
    except Exception as error:  # MongoDB gone: the report is written; the next run lists them again
        log.warning("report.not_marked", extra={"error": exception_text(error)})
        return False
    return True


def _report_anyway(
    ws: WindowSettings, db: Database, req: RunRequest, run_id: str, ledger: _Ledger, error: BaseException
) -> None:
    """A run that changed orders and then failed: the plain report lists what it changed (and the
    earlier runs' changes it took on), and the run history says so when MongoDB still answers."""
    changes = req.changes
    if changes.report is None:
        try:
            changes.report = report.write_plain_report(
                req.report_dir,
                run_id,
                req.since,
                req.until,
                changes.repair.repaired,
                changes.repair.marked_failed,
                ledger.earlier,
                one_line(str(error)) if isinstance(error, ReconcileError) else exception_text(error),
                utcnow(),
            )
            changes.plain = True
        except Exception as failure:  # a full disk, a read-only directory: the summary and history still list them
            log.error("report.plain_failed", extra={"error": exception_text(failure)})
            return
    # Orders of a batch cut off mid-write may have changed without being listed: let the next run list
    # this run's changes from its audit records rather than call them reported.
    if not changes.repair.in_doubt:
        changes.reported = _mark_reported(ws, db, run_id, ledger)
