"""One `reconcile undo RUN_ID`: take the lease, read the run's audit records and the orders as they
are now, decide which can be put back (decide/undo.py), put them back (store/undo.py), say what
happened to each. The id the summary names (an invocation's) undoes every window of a catch-up,
newest window first, as one undo; a window's own run id undoes that window. Exit codes as a run:
0 every order put back (or already), 1 some left alone and listed, 2 no such run, 3 MongoDB
unavailable, 4 another run holds the lease.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from pymongo.collection import Collection

from reconcile.config import LeaseConfig
from reconcile.decide import undo as rules
from reconcile.decide.audit import AuditRecord
from reconcile.exitcodes import ExitCode
from reconcile.report import repair_words
from reconcile.run.lease import Lease
from reconcile.store import undo as store
from reconcile.store.repair import RepairStore
from reconcile.timeutil import fmt

log = logging.getLogger(__name__)


def new_undo_id(now: datetime, kind: str = "undo") -> str:
    return f"{kind}-{now.strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(3)}"


@dataclass
class UndoResult:
    exit_code: ExitCode
    undo_id: str
    run_id: str  # as resolved: a run's id, or an invocation's standing for its windows
    run_ids: tuple[str, ...] = ()  # the runs undone, newest window first
    lines: list[str] = field(default_factory=list)
    put_back: list[str] = field(default_factory=list)
    left_alone: list[str] = field(default_factory=list)


def _named(result: UndoResult) -> str:
    """The run undone, as the lines name it: a catch-up's id says how many windows it stands for."""
    windows = len(result.run_ids)
    return f"run {result.run_id}" + (
        f" ({windows} windows, newest first: {', '.join(result.run_ids)})" if windows > 1 else ""
    )


def _change(record: AuditRecord) -> str:
    what = f"{record.get('from_status')} -> {record.get('to_status')}"
    if rules.charge_changed(record):
        what += f", charge {record.get('previous_charge_id') or 'none'} -> {record.get('charge_id') or 'none'}"
    return f"{record.get('action')} ({what})"


def undo_run(
    repairs: RepairStore,
    runs: Collection,
    state: Collection,
    lease_config: LeaseConfig,
    run_text: str,
    *,
    order_keys: tuple[str, ...] = (),
    dry_run: bool = False,
    by: str,
    now: datetime,
    wait: timedelta | None = None,
) -> UndoResult:
    """Undo what run `run_text` changed (only `order_keys` when given). Errors (no such run, MongoDB,
    the lease held) are raised as ReconcileError for the CLI. `repairs`: the orders and audit records;
    `runs`: the run history (to find a run by prefix); `state`: where the lease is held."""
    undo_id = new_undo_id(now)
    lease = None
    if not dry_run:  # like a run: changes only under the lease; a dry run changes nothing
        lease = Lease.acquire(
            state,
            undo_id,
            lease_config.ttl,
            lease_config.wait if wait is None else wait,
            info={"trigger": "undo", "command": f"reconcile undo {run_text}"},
        )
    try:
        target = store.audit_of(repairs, runs, run_text, order_keys)
        records = target.records
        found = store.orders_now(repairs, records)
        steps = rules.plan(records, found)
        result = UndoResult(ExitCode.OK, undo_id, target.run_id, target.run_ids)
        if not records:
            result.lines.append(f"{_named(result)} changed no orders: nothing to undo")
            return result
        done: list[str] = []
        lost: list[str] = []
        healed: list[str] = []
        if not dry_run:
            if lease is not None:
                lease.check()
            healed = store.heal_owed(repairs, steps, found)
            done, lost = store.put_back(repairs, steps, undo_id, by, now)
        _say_steps(result, steps, dry_run, done, lost, healed)
        _say_summary(result, steps, dry_run, by, now)
        return result
    finally:
        if lease is not None:
            lease.release()


def _say_steps(
    result: UndoResult, steps: list[rules.Step], dry_run: bool, done: list[str], lost: list[str], healed: list[str]
) -> None:
    """What happened to each order: put back, already undone, or left alone (and why)."""
    prefix = "DRY RUN: would put back" if dry_run else "put back"
    for s in steps:
        key = s.order_key
        if s.step == rules.PUT_BACK and (dry_run or key in done):
            result.put_back.append(key)
            of_window = f" of run {s.record.get('run_id')}" if len(result.run_ids) > 1 else ""
            result.lines.append(f"{prefix} order {key}: undo {_change(s.record)}{of_window}")
        elif s.step == rules.ALREADY_UNDONE:
            owed = "; its audit record, owed by that undo, written now" if key in healed else ""
            result.lines.append(f"order {key}: already undone ({repair_words.order_now(s.order)}); nothing to do{owed}")
        else:
            now_text = (
                repair_words.order_now(s.order) if key not in lost else "changed by another writer during this undo"
            )
            result.left_alone.append(key)
            result.lines.append(f"LEFT ALONE order {key}: changed since run {s.record.get('run_id')} ({now_text})")
    if result.left_alone:
        result.exit_code = ExitCode.DISCREPANCIES


def _say_summary(result: UndoResult, steps: list[rules.Step], dry_run: bool, by: str, now: datetime) -> None:
    run_id, undo_id = result.run_id, result.undo_id
    summary = (
        f"{'DRY RUN: ' if dry_run else ''}undo of {_named(result)}"
        + ("" if dry_run else f" as {undo_id} by {by} at {fmt(now)}")
        + f": {len(result.put_back)} put back, {len(result.left_alone)} left alone, "
        f"{sum(1 for s in steps if s.step == rules.ALREADY_UNDONE)} already undone"
    )
    result.lines.append(summary)
    if result.put_back and not dry_run:
        result.lines.append(f"(undo this undo with `reconcile undo {undo_id}`)")
    log.info(
        "undo.finished",
        extra={
            "run": run_id,
            "runs": list(result.run_ids),
            "undo_id": undo_id,
            "put_back": len(result.put_back),
            "left_alone": len(result.left_alone),
        },
    )
