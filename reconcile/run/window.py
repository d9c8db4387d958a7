"""One reconciliation run for a window: pull, load, classify, repair, report."""

from __future__ import annotations

import logging
import resource
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import stripe
from pymongo.database import Database

from reconcile.config import Config
from reconcile.decide import classify as c
from reconcile.decide import columns, totals
from reconcile.exitcodes import ExitCode
from reconcile.logs import run_context
from reconcile.report import render as report
from reconcile.report import wording
from reconcile.run import interrupt
from reconcile.store import items as item_store
from reconcile.store import orders as order_store
from reconcile.store import repair
from reconcile.stripe import payments as payment_pull
from reconcile.stripe import pull as stripe_pull
from reconcile.stripe import slices as pull_plan
from reconcile.timeutil import fmt, to_unix, utcnow

log = logging.getLogger(__name__)


# A call back up into the invocation (run/invocation.py `_period_hook`), made by `run` after its
# repairs: (run_id, outcomes, money totals) -> report extras. It pulls the window's refunds and
# disputes from Stripe, re-checks open items from earlier windows (Stripe and MongoDB reads),
# writes the items collection, reads the run history and renders the period's HTML sections.
# A later change replaces this with read-decide-write in the invocation; until then it is the one
# place a window run does I/O it was not given the inputs of.
PeriodHook = Callable[[str, pd.DataFrame, dict[str, Any]], report.ReportExtras]


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
    # Called before repairs and before each repair batch (the run lease's check): raising stops the writes.
    checkpoint: Callable[[], None] | None = None
    # The invocation's period work, called back in the middle of this run (see `PeriodHook`).
    extend: PeriodHook | None = None


@dataclass(frozen=True)
class RunResult:
    run_id: str
    counts: dict[str, int]
    summary: dict[str, Any]
    report: report.ReportFiles
    exit_code: ExitCode
    seconds: dict[str, float] = field(default_factory=dict)  # wall time per step


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


class _LoadAfterPull(Exception):
    """The window holds too many orders to read beside the pull."""


def new_run_id(now: datetime) -> str:
    return f"{now.strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(3)}"


def rules_for(config: Config, now: datetime, dismissed: frozenset[tuple[str, str]] = frozenset()) -> c.Rules:
    """The decision's rules; `dismissed`: probable-match pairs people dismissed (store.items.dismissed_pairs)."""
    o = config.orders
    return c.Rules(
        pending_status=o.pending_status,
        paid_statuses=(o.paid_status, *o.other_paid_statuses),
        failed_status=o.failed_status,
        grace_seconds=int(o.grace_period.total_seconds()),
        now=to_unix(now),
        amount_tolerance=o.amount_tolerance,
        repair_within_tolerance=o.repair_within_tolerance,
        link_by=config.matching.link_by,
        probable_matches=config.matching.probable_matches,
        probable_drift_seconds=int(config.matching.probable_match_drift.total_seconds()),
        dismissed_pairs=dismissed,
    )


def run(
    config: Config,
    client: stripe.StripeClient,
    db: Database,
    req: RunRequest,
    run_id: str | None = None,
    policy: stripe_pull.RetryPolicy | None = None,
    scan_db: Database | None = None,
) -> RunResult:
    """One window. `scan_db` is the database through `mongo.connect_for_scans` (default: `db`)."""
    run_id = run_id or new_run_id(req.now)
    policy = policy or stripe_pull.RetryPolicy.from_config(config.stripe, config.test_mode_key())
    with run_context(run_id):
        return _run(config, client, db, req, run_id, policy, db if scan_db is None else scan_db)


def _run(
    config: Config,
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
    # A run that died between an order's change and its audit record left the order flagged: finish that first.
    healed = [] if req.dry_run else repair.heal_audit(db, config)
    clock.lap("heal")

    # Charges (with PaymentIntents and sessions as the link kinds need) and balance transactions,
    # side by side; the window's orders are read meanwhile (that query needs nothing from Stripe,
    # and a slow one, e.g. a scan for string-dated orders, hides behind the rate-limited pull).
    orders_name = config.mongodb.orders_collection
    linking = payment_pull.Linking.from_config(config)

    def order_load() -> order_store.OrderLoad:
        return order_store.OrderLoad(
            db[orders_name], config.orders, scan_db[orders_name], config.mongodb.scan_timeout.total_seconds()
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
    clock.lap("pull")
    log.info(
        "pull.done",
        extra={
            "charges": len(pulled.charges),
            "payment_intents": len(pulled.intents),
            "checkout_sessions": len(pulled.sessions),
            "balance_transactions": len(balance),
            "orders_in_window": beside.in_window if loaded else None,
            "orders_in_window_seconds": beside.window_seconds if loaded else None,
        },
    )
    if loaded:
        load = beside
    else:  # a big window (a backfill): its orders are read now, the pull's memory freed first
        load = order_load()
        load.window(req.since, req.until, lambda: interrupt.checkpoint("load"))
    beside = None  # the partial load of a big window, if any, is dropped here

    refs = payment_pull.references(pulled, config.matching.link_by)
    orders = c.orders_frame(
        load.referenced(
            refs.order_refs,
            refs.charge_ids,
            refs.payment_intent_ids,
            refs.session_ids,
        ).columns()
    )
    del refs, load
    clock.lap("load")
    log.info("load.done", extra={"orders": len(orders)})
    interrupt.checkpoint("load")

    rules = rules_for(config, req.now, item_store.dismissed_pairs(db[config.mongodb.decisions_collection]))
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
    del orders, pulled, extra, charges, intents, sessions  # the outcomes carry what the rest needs

    if not req.dry_run:
        if req.checkpoint:
            req.checkpoint()
        done = repair.apply_repairs(db, config, outcomes, run_id, req.now, checkpoint=req.checkpoint)
        outcomes = repair.mark_lost_races(outcomes, done.lost_race)
        log.info(
            "repair.done",
            extra={
                "repaired": len(done.repaired),
                "marked_failed": len(done.marked_failed),
                "lost_race": len(done.lost_race),
            },
        )
    clock.lap("repair")

    counts = {str(o): int(n) for o, n in outcomes["outcome"].value_counts().reindex(c.OUTCOMES, fill_value=0).items()}
    if req.counted_from is not None:
        balance = balance.loc[balance["created"] >= to_unix(req.counted_from)]
    money = totals.summarize(balance)
    # Calls back up into the invocation (PeriodHook above): pulls refunds and disputes, re-checks
    # open items, writes the items collection, renders the period sections; returns them as extras.
    extras = req.extend(run_id, outcomes, money) if req.extend else None
    clock.lap("extend")
    files = report.write_report(
        req.report_dir,
        run_id,
        req.since,
        req.until,
        counts,
        outcomes,
        money,
        req.dry_run,
        config.stripe.dashboard_url,
        utcnow(),
        extras=extras,
        counted_from=req.counted_from,
    )
    summary = report.build_summary(run_id, req.since, req.until, counts, outcomes, money, req.dry_run, files)
    if req.counted_from is not None:
        summary["counted_from"] = fmt(req.counted_from)
    if extras is not None:
        summary.update(extras.summary)
        summary["needs_attention"] += extras.needs_attention
    summary["audit_healed"] = healed
    if req.summary_json:
        report.write_summary_json(req.summary_json, summary)
    exit_code = ExitCode.DISCREPANCIES if summary["needs_attention"] else ExitCode.OK
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
    return RunResult(run_id, counts, summary, files, exit_code, clock.laps)
