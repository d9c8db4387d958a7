"""One reconciliation run for a window: pull, load, classify, repair, report."""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import stripe
from pymongo.database import Database

from reconcile import classify as c
from reconcile import orders as order_store
from reconcile import pull_plan, repair, report, stripe_pull, subwindows, totals
from reconcile.config import Config
from reconcile.exitcodes import ExitCode
from reconcile.logs import run_context
from reconcile.timeutil import from_unix, to_unix, utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunRequest:
    since: datetime
    until: datetime
    now: datetime
    dry_run: bool = False
    report_dir: Path = Path("reports")
    summary_json: Path | None = None


@dataclass(frozen=True)
class RunResult:
    run_id: str
    counts: dict[str, int]
    summary: dict[str, Any]
    report: report.ReportFiles
    exit_code: ExitCode
    seconds: dict[str, float] = field(default_factory=dict)  # wall time per step


class _Clock:
    """Wall time per step of a run, for the log and the benchmark."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.monotonic()

    def lap(self, step: str) -> None:
        now = time.monotonic()
        self.laps[step] = round(self.laps.get(step, 0.0) + now - self._last, 3)
        self._last = now


def new_run_id(now: datetime) -> str:
    return f"{now.strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(3)}"


def rules_for(config: Config, now: datetime) -> c.Rules:
    o = config.orders
    return c.Rules(
        pending_status=o.pending_status,
        paid_statuses=(o.paid_status, *o.other_paid_statuses),
        failed_status=o.failed_status,
        grace_seconds=int(o.grace_period.total_seconds()),
        now=to_unix(now),
        amount_tolerance=o.amount_tolerance,
    )


def _edge_charges(
    client: stripe.StripeClient, config: Config, req: RunRequest, orders: pd.DataFrame,
    outcomes: pd.DataFrame, known: set[str], policy: stripe_pull.RetryPolicy,
) -> list[dict[str, Any]]:
    """Charges just outside the window for orders that seem to have none (a charge can land after `until`)."""
    doubtful = outcomes.loc[outcomes["outcome"].isin(c.NEEDS_EDGE_LOOK), "order_key"]
    if doubtful.empty:
        return []
    candidates = orders.loc[orders["order_key"].isin(doubtful)]
    stored = sorted(set(candidates["stored_charge_id"].dropna()) - known)
    key = config.stripe.order_id_metadata_key
    rows = stripe_pull.retrieve_charges(client, stored, key, policy)
    unnamed = candidates.loc[candidates["stored_charge_id"].isna(), "created"].dropna()
    if len(unnamed):
        # A charge lands within edge_slack of its order: look only where that reaches past the window.
        slack = config.window.edge_slack
        before = (max(req.since, from_unix(int(unnamed.min()))) - slack, req.since)
        after = (req.until, min(req.until, from_unix(int(unnamed.max()))) + slack)
        looks = [span for span in (before, after) if span[0] < span[1]]
        for found in pull_plan.side_by_side([
            lambda span=span: stripe_pull.fetch_charges(client, span[0], span[1], key, policy) for span in looks
        ], policy.abort):
            rows += found
    for row in rows:
        row["in_window"] = False
    return rows


def run(
    config: Config, client: stripe.StripeClient, db: Database, req: RunRequest,
    run_id: str | None = None, policy: stripe_pull.RetryPolicy | None = None,
) -> RunResult:
    run_id = run_id or new_run_id(req.now)
    with run_context(run_id):
        return _run(config, client, db, req, run_id, policy or stripe_pull.RetryPolicy.from_config(config.stripe))


def _run(
    config: Config, client: stripe.StripeClient, db: Database, req: RunRequest,
    run_id: str, policy: stripe_pull.RetryPolicy,
) -> RunResult:
    log.info("run.start", extra={"since": req.since.isoformat(), "until": req.until.isoformat(), "dry_run": req.dry_run})
    clock = _Clock()
    order_store.check_indexes(db[config.mongodb.orders_collection], config.orders)
    merge = subwindows.Merge()
    money: dict[str, dict[str, Any]] = {}
    parts = subwindows.pieces(req.since, req.until, config.window.sub_window)
    for number, (since, until) in enumerate(parts, 1):
        if len(parts) > 1:
            log.info("piece.start", extra={
                "piece": number, "of": len(parts), "since": since.isoformat(), "until": until.isoformat(),
            })
        piece = replace(req, since=since, until=until)
        outcomes, balance = _reconcile(config, client, db, piece, policy, clock)
        outcomes = merge.admit(outcomes, since, until)
        if not req.dry_run:
            done = repair.apply_repairs(db, config, outcomes, run_id, req.now)
            outcomes = repair.mark_lost_races(outcomes, done.lost_race)
            log.info("repair.done", extra={
                "repaired": len(done.repaired), "marked_failed": len(done.marked_failed),
                "lost_race": len(done.lost_race),
            })
        clock.lap("repair")
        merge.keep(outcomes)
        money = subwindows.add_totals(money, totals.summarize(balance))
        del outcomes, balance  # the next piece starts from nothing

    counts = merge.outcome_counts()
    outcomes = merge.outcomes()
    files = report.write_report(
        req.report_dir, run_id, req.since, req.until, counts, outcomes, money, req.dry_run,
        config.stripe.dashboard_url, utcnow(),
    )
    summary = report.build_summary(run_id, req.since, req.until, counts, outcomes, money, req.dry_run, files)
    if req.summary_json:
        report.write_summary_json(req.summary_json, summary)
    exit_code = ExitCode.DISCREPANCIES if summary["needs_attention"] else ExitCode.OK
    clock.lap("report")
    log.info("run.done", extra={
        "counts": counts, "report": str(files.html), "exit_code": int(exit_code), "seconds": clock.laps,
    })
    return RunResult(run_id, counts, summary, files, exit_code, clock.laps)


def _reconcile(
    config: Config, client: stripe.StripeClient, db: Database, req: RunRequest,
    policy: stripe_pull.RetryPolicy, clock: _Clock,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One (sub-)window: pull, load, classify, edge look. Returns the outcomes and the balance transactions."""
    key = config.stripe.order_id_metadata_key
    charge_columns, balance_columns = pull_plan.side_by_side([
        lambda: stripe_pull.fetch_charge_columns(client, req.since, req.until, key, policy),
        lambda: stripe_pull.fetch_balance_columns(client, req.since, req.until, policy),
    ], policy.abort)
    balance = totals.balance_frame(balance_columns)
    charges = c.charges_frame(charge_columns)
    del charge_columns, balance_columns  # the frames hold what is needed
    clock.lap("pull")
    log.info("pull.done", extra={"charges": len(charges), "balance_transactions": len(balance)})

    refs = set(charges["order_ref"].dropna())
    unreferenced = set(charges.loc[charges["order_ref"].isna(), "charge_id"])
    orders = c.orders_frame(order_store.load_order_columns(
        db[config.mongodb.orders_collection], config.orders, req.since, req.until, refs, unreferenced
    ))
    del refs, unreferenced
    clock.lap("load")
    log.info("load.done", extra={"orders": len(orders)})

    rules = rules_for(config, req.now)
    outcomes = c.classify(orders, charges, rules)
    clock.lap("classify")
    extra = _edge_charges(client, config, req, orders, outcomes, set(charges["charge_id"]), policy)
    if extra:
        charges = c.with_more_charges(charges, extra)
        outcomes = c.classify(orders, charges, rules)
    clock.lap("edge_look")
    log.info("classify.done", extra={"edge_charges": len(extra)})
    return outcomes, balance
