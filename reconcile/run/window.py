"""One reconciliation run for a window: read, decide, write.

1. Read: every remote read the window needs, Stripe and MongoDB: the charges (with their
   PaymentIntents and Checkout Sessions) and balance transactions, the window's orders, the edge
   look, the refunds and disputes with their orders, the open items and their re-check, the
   changes earlier runs made and did not report (and the audit records a stopped run owed), the
   run history for the trend.
2. Decide: pure (classify, movements, findings, counts, totals).
3. Write: the owed audit records, repairs with theirs, the items collection, the report files; the
   invocation then advances the watermark and records the run.

After the first write to an order nothing remote is read: a Stripe or MongoDB failure in the read
phase ends the run with nothing changed. Whatever ends a run after its first write, what it changed
is in `Changes` (given by the invocation, filled as orders change), a report lists it if one can
be written (a plain one if the full one cannot), and the run history says whether it was reported:
the next run reports what an earlier one could not (`earlier_changes`).
"""

from __future__ import annotations

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
from reconcile.decide import columns, movements, totals
from reconcile.decide import items as item_rules
from reconcile.decide.findings import Finding
from reconcile.decide.trend import trend_points
from reconcile.errors import ReconcileError
from reconcile.exitcodes import ExitCode
from reconcile.report import period, wording
from reconcile.report import render as report
from reconcile.report.summary import EarlierChange, RunSummary
from reconcile.run import recheck, settings
from reconcile.run.settings import WindowSettings
from reconcile.runtime import interrupt, memory, progress
from reconcile.runtime.logs import run_context
from reconcile.runtime.redact import exception_text, one_line
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


@dataclass
class _Read:
    """Everything a window run read, before its first write."""

    outcomes: pd.DataFrame  # classified (edge look included) and worded: no row for an ok order
    orders: int  # how many orders were classified (those without a row in `outcomes` are ok)
    money: dict[str, dict[str, Any]]  # the balance transactions' totals per currency (totals.summarize)
    movement_rows: list[dict[str, Any]]
    movement_orders: list[dict[str, Any]]
    confirmed: list[Finding]  # re-checked items still present
    cleared: dict[str, str]  # re-checked items now gone
    checked: list[str]
    history: list[dict[str, Any]]  # completed runs, for the trend
    earlier: list[dict[str, Any]]  # audit records of changes earlier runs did not report
    earlier_runs: list[str]
    owed: list[dict[str, Any]]  # audit records a stopped run owed, rebuilt from its orders' markers
    # By order key, charge ids stored as blank or padded text (the repairs compare what is stored).
    charge_ids_as_stored: dict[str, str] = field(default_factory=dict)


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
    policy = policy or stripe_pull.RetryPolicy.from_config(ws.stripe, ws.test_mode)
    with run_context(run_id):
        return _run(ws, client, db, req, run_id, policy, db if scan_db is None else scan_db)


def _run(
    ws: WindowSettings,
    client: stripe.StripeClient,
    db: Database,
    req: RunRequest,
    run_id: str,
    policy: stripe_pull.RetryPolicy,
    scan_db: Database,
) -> RunResult:
    log.info(
        "run.start", extra={"since": req.since.isoformat(), "until": req.until.isoformat(), "dry_run": req.dry_run}
    )
    clock = _Clock()
    read = _read(ws, client, db, scan_db, req, run_id, policy, clock)
    return _write(ws, db, req, run_id, read, clock)


# --------------------------------------------------------------------------- read


def _read(
    ws: WindowSettings,
    client: stripe.StripeClient,
    db: Database,
    scan_db: Database,
    req: RunRequest,
    run_id: str,
    policy: stripe_pull.RetryPolicy,
    clock: _Clock,
) -> _Read:
    outcomes, orders, money, as_stored = _read_payments(ws, client, db, scan_db, req, policy, clock)
    # Refunds and disputes created in the window, with their orders (of any age).
    m = ws.mongodb
    rows = stripe_movements.fetch_movements(client, req.since, req.until, ws.stripe.order_id_metadata_key, policy)
    moved_orders = order_store.orders_of_movements(db[m.orders_collection], ws.orders, rows, req.since)
    interrupt.checkpoint("pull")
    clock.lap("movements")
    confirmed: list[Finding] = []
    cleared: dict[str, str] = {}
    checked: list[str] = []
    if req.recheck_limit:  # once per invocation: the open items from windows before this one
        found = {f["key"] for f in _findings(ws, outcomes, rows, moved_orders)}
        todo = item_rules.to_recheck(
            item_store.open_items(db[m.items_collection]),
            found,
            to_unix(req.since),
            to_unix(req.until),
            req.recheck_limit,
        )
        confirmed, cleared, checked = recheck.recheck(
            client,
            policy,
            db[m.orders_collection],
            ws.orders,
            ws.linking,
            settings.rules_of(ws.orders, ws.matching, req.now, item_store.dismissed_pairs(db[m.decisions_collection])),
            todo,
            req.now,
        )
        interrupt.checkpoint("recheck")
    clock.lap("recheck")
    history = state.completed_since(db[m.runs_collection], req.now - timedelta(days=ws.report.trend_days + 2))
    # A run that died between an order's change and its audit record left the order flagged: the write
    # phase writes the record it owed. That run reported nothing: this run reports its changes (`earlier`).
    store = settings.repairs_in(db, ws.mongodb, ws.orders)
    owed = [] if req.dry_run else repair.owed_audit(store)
    earlier_runs = [] if req.dry_run else state.unreported(db[m.runs_collection], EARLIER_RUNS_LIMIT, but=run_id)
    earlier = repair.changes_of_runs(store, earlier_runs)
    have = {(r.get("run_id"), r.get("order_key")) for r in earlier}
    earlier += [r for r in owed if (r["run_id"], r["order_key"]) not in have]
    earlier_runs = list(dict.fromkeys([*earlier_runs, *(r["run_id"] for r in owed)]))
    return _Read(
        outcomes,
        orders,
        money,
        rows,
        moved_orders,
        confirmed,
        cleared,
        checked,
        history,
        earlier,
        earlier_runs,
        owed,
        charge_ids_as_stored=as_stored,
    )


def _read_payments(
    ws: WindowSettings,
    client: stripe.StripeClient,
    db: Database,
    scan_db: Database,
    req: RunRequest,
    policy: stripe_pull.RetryPolicy,
    clock: _Clock,
) -> tuple[pd.DataFrame, int, dict[str, dict[str, Any]], dict[str, str]]:
    """(outcomes, orders, money, as stored): the window's payments pulled, its orders loaded and classified
    (no row for an ok order), how many orders, the totals of its balance transactions (from
    `req.counted_from` when set), and the charge ids stored as blank or padded text (OrderLoad)."""
    # Charges (with PaymentIntents and sessions as the link kinds need) and balance transactions,
    # side by side; the window's orders are read meanwhile (that query needs nothing from Stripe,
    # and a slow one, e.g. a scan for string-dated orders, hides behind the rate-limited pull).
    orders_name = ws.mongodb.orders_collection
    linking = ws.linking

    def order_load() -> order_store.OrderLoad:
        return order_store.OrderLoad(
            db[orders_name], ws.orders, scan_db[orders_name], ws.mongodb.scan_timeout.total_seconds()
        )

    beside: order_store.OrderLoad | None  # None once the window's load is taken from it
    beside = order_load()

    def stop_load() -> None:
        interrupt.checkpoint("load")
        if policy.abort.is_set():  # a pull beside it failed: its error is the one to report
            raise pull_plan.PullAborted()
        assert beside is not None  # the closures run during the pull, before it is dropped
        if beside.count > ORDERS_BESIDE_PULL:
            raise _LoadAfterPull()

    def window_beside_pull() -> bool:
        assert beside is not None
        try:
            beside.window(req.since, req.until, stop_load)
        except _LoadAfterPull:
            return False
        return True

    # Three kinds of result from one call: typed here, where they are unpacked.
    calls: list[Callable[[], Any]] = [
        lambda: payment_pull.pull(client, linking, req.since, req.until, policy),
        lambda: stripe_pull.fetch_balance_columns(client, req.since, req.until, policy),
        window_beside_pull,
    ]
    pulled: payment_pull.Payments
    balance_columns: columns.Columns
    loaded: bool
    pulled, balance_columns, loaded = pull_plan.side_by_side(calls, policy.abort)
    # Pulls side by side may all finish after a stop was asked for: honour it before loading more orders.
    interrupt.checkpoint("pull")
    balance = totals.balance_frame(balance_columns)
    del balance_columns  # the frame holds what is needed
    n_balance = len(balance)
    if req.counted_from is not None:
        balance = balance.loc[balance["created"] >= to_unix(req.counted_from)]
    # Totals now: a million balance transactions (~130 MB) are not held through the load and the join.
    money = totals.summarize(balance)
    del balance
    memory.trim()  # the pages' memory, freed, goes back to the system before the orders come in
    clock.lap("pull")
    log.info(
        "pull.done",
        extra={
            "charges": len(pulled.charges),
            "payment_intents": len(pulled.intents),
            "checkout_sessions": len(pulled.sessions),
            "balance_transactions": n_balance,
            "orders_in_window": beside.in_window if loaded else None,
            "orders_in_window_seconds": beside.window_seconds if loaded else None,
        },
    )
    load = beside if loaded else order_load()
    beside = None  # the partial load of a big window, if any, is dropped here
    if not loaded:  # a big window (a backfill): its orders are read now
        # They repeat strings the charges hold (their ids, the charges' ids, emails): held once. The
        # lookup tables cost ~40 MB a million strings: dropped once the window's orders are in (the
        # orders Stripe names besides are few).
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

    refs = payment_pull.references(pulled, ws.matching.link_by)
    progress.step("load orders", 0, None)
    orders = c.orders_frame(
        load.referenced(
            refs.order_refs,
            refs.charge_ids,
            refs.payment_intent_ids,
            refs.session_ids,
        ).columns()
    )
    as_stored = load.charge_ids_as_stored
    del refs, load
    memory.trim()  # the documents' and columns' memory, before the join
    clock.lap("load")
    progress.step("load orders", 1, 1)
    log.info("load.done", extra={"orders": len(orders)})
    interrupt.checkpoint("load")

    rules = settings.rules_of(
        ws.orders, ws.matching, req.now, item_store.dismissed_pairs(db[ws.mongodb.decisions_collection])
    )
    charges, intents, sessions = pulled.frames()
    outcomes = c.classify(orders, charges, rules, intents, sessions)
    clock.lap("classify")
    extra = payment_pull.edge_look(client, linking, req.since, req.until, orders, outcomes, pulled, policy)
    if extra:
        charges, intents, sessions = (pulled + extra).frames()
        outcomes = c.classify(orders, charges, rules, intents, sessions)
    outcomes = wording.worded(outcomes, rules)
    clock.lap("edge_look")
    log.info("classify.done", extra={"edge_charges": len(extra.charges)})
    return outcomes, len(orders), money, as_stored


# --------------------------------------------------------------------------- decide (pure)


def _movement_findings(
    ws: WindowSettings, outcomes: pd.DataFrame, rows: list[dict[str, Any]], orders: list[dict[str, Any]]
) -> list[Finding]:
    flagged = set(outcomes.loc[outcomes["outcome"].eq(c.REFUNDED_OR_DISPUTED), "order_key"].dropna().astype(str))
    paid = (ws.orders.paid_status, *ws.orders.other_paid_statuses)
    return movements.evaluate(rows, orders, paid, flagged)


def _findings(
    ws: WindowSettings, outcomes: pd.DataFrame, rows: list[dict[str, Any]], orders: list[dict[str, Any]]
) -> list[Finding]:
    """This window's findings for the items collection: core outcomes and refunds/disputes needing a person."""
    moved = _movement_findings(ws, outcomes, rows, orders)
    return item_rules.core_findings(outcomes) + [f for f in moved if f["needs_person"]]


# --------------------------------------------------------------------------- write


def _write(
    ws: WindowSettings,
    db: Database,
    req: RunRequest,
    run_id: str,
    read: _Read,
    clock: _Clock,
) -> RunResult:
    m = ws.mongodb
    changes = req.changes
    outcomes = read.outcomes
    moved = _movement_findings(ws, outcomes, read.movement_rows, read.movement_orders)
    healed: list[str] = []
    try:
        if not req.dry_run:
            if req.checkpoint:
                req.checkpoint()
            healed = repair.write_owed(settings.repairs_in(db, ws.mongodb, ws.orders), read.owed)
            done = repair.apply_repairs(
                settings.repairs_in(db, ws.mongodb, ws.orders),
                outcomes,
                run_id,
                req.now,
                checkpoint=req.checkpoint,
                into=changes.repair,
                as_stored=read.charge_ids_as_stored,
            )
            outcomes = repair.mark_lost_races(outcomes, done.lost_race, done.lost_now)
            log.info(
                "repair.done",
                extra={
                    "repaired": len(done.repaired),
                    "marked_failed": len(done.marked_failed),
                    "lost_race": len(done.lost_race),
                },
            )
        clock.lap("repair")

        counts = c.outcome_counts(outcomes, read.orders)
        money = read.money
        findings = item_rules.core_findings(outcomes) + [f for f in moved if f["needs_person"]]
        items = item_store.sync(
            db[m.items_collection],
            findings,
            since=req.since,
            until=req.until,
            run_id=run_id,
            now=req.now,
            confirmed=read.confirmed,
            cleared=read.cleared,
            checked=read.checked,
            dry_run=req.dry_run,
            decisions=db[m.decisions_collection],
            thresholds=ws.severity,
        )
        extras = _period_extras(ws, req, run_id, moved, items, money, read, {f["key"] for f in findings})
        clock.lap("items")
        progress.step("report", 0, 1)
        files = report.write_report(
            req.report_dir,
            run_id,
            req.since,
            req.until,
            counts,
            outcomes,
            money,
            req.dry_run,
            ws.stripe.dashboard_url,
            utcnow(),
            extras=extras,
            counted_from=req.counted_from,
            order_url=ws.report.order_url,
        )
        changes.report = files
    except BaseException as error:
        if changes.count or read.earlier:
            _report_anyway(ws, db, req, run_id, read, error)
        raise
    if not req.dry_run:
        changes.reported = _mark_reported(ws, db, run_id, read)
    summary = RunSummary.build(
        run_id,
        req.since,
        req.until,
        outcomes,
        counts,
        money,
        req.dry_run,
        files,
        counted_from=req.counted_from,
        movements=extras.summary["movements"],
        items=extras.summary["items"],
        audit_healed=healed,
        earlier_changes=[EarlierChange.from_audit(r) for r in read.earlier],
    )
    # Items a person acknowledged (being handled) or accepted (closed) need nobody now: not counted in the
    # exit code or the email's "need attention", or an hourly cron run mails about them every hour.
    summary.needs_attention = _needing_person(findings, items)
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
    moved: list[Finding],
    items: item_rules.ItemsResult,
    money: dict[str, Any],
    read: _Read,
    found: set[str],
) -> report.ReportExtras:
    """The period sections of the report: refunds and disputes, open items, the trend, earlier runs' changes."""
    current = {
        "window": {"until": to_unix(req.until)},
        "open_items": len(items.open),
        "charge_count": sum(t["charge_count"] for t in money.values()),
        "source": req.source,
    }
    trend = trend_points(read.history, current, req.now, ws.report.trend_days)
    top, bottom = period.render(
        run_id=run_id,
        now=req.now,
        findings=moved,
        items=items,
        trend=trend,
        dashboard_url=ws.stripe.dashboard_url,
        dry_run=req.dry_run,
        part=req.part,
        order_url=ws.report.order_url,
    )
    log.info(
        "period.done",
        extra={"refunds_disputes": len(moved), "open_items": len(items.open), "resolved": len(items.resolved)},
    )
    return report.ReportExtras(
        html_top=top + report.earlier_changes_html(read.earlier),
        html=bottom,
        csv_rows=period.csv_rows(moved, ws.stripe.dashboard_url)
        + period.decision_csv_rows(items, found, ws.stripe.dashboard_url)
        + report.earlier_changes_csv(read.earlier),
        summary=period.summary(moved, items, req.now),
        queue_items=tuple(items.open),
    )


def _mark_reported(ws: WindowSettings, db: Database, run_id: str, read: _Read) -> bool:
    """The run history says this run's changes, and the earlier ones it listed, are in a report.
    False when that could not be recorded (the next run then lists them again rather than never)."""
    try:
        state.mark_reported(db[ws.mongodb.runs_collection], [run_id, *read.earlier_runs], run_id)
    except Exception as error:  # MongoDB gone: the report is written; the next run lists them again
        log.warning("report.not_marked", extra={"error": exception_text(error)})
        return False
    return True


def _report_anyway(
    ws: WindowSettings, db: Database, req: RunRequest, run_id: str, read: _Read, error: BaseException
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
                read.earlier,
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
        changes.reported = _mark_reported(ws, db, run_id, read)
