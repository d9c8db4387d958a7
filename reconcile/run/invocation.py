"""One invocation of `reconcile` under cron: lease, window plan, sub-window runs, history, email, retention.

`window.run` reconciles one window. Around it, this module:
1. takes the run lease (a second run waits `lease.wait`, then exits 4 naming the holder);
2. resends reports an earlier run could not email;
3. plans the window from the watermark (or --since/--until) and splits it into sub-windows
   of at most `window.max_span`;
4. runs each sub-window, adding refunds and disputes, open items and the trend to its report,
   records it in the run history, advances the watermark, emails the report;
5. prunes old reports and gives the lease back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import stripe
from pymongo.collection import Collection
from pymongo.database import Database

from reconcile.config import Config
from reconcile.decide.bank import Statement
from reconcile.decide.findings import Finding
from reconcile.decide.items import ItemsResult
from reconcile.decide.runs import RunDoc, StartedBy
from reconcile.errors import (
    ChangedThenFailed,
    ConfigError,
    InternalError,
    Interrupted,
    LeaseHeld,
    LeaseLost,
    MailError,
    MongoUnavailable,
    ReconcileError,
)
from reconcile.exitcodes import ExitCode, worst
from reconcile.report import mailer, retention
from reconcile.report import queue as work_queue
from reconcile.report.records import SummaryJson
from reconcile.report.render import write_summary_json
from reconcile.report.summary import InvocationSummary, WindowEntry
from reconcile.run import plan as window_plan
from reconcile.run import settings
from reconcile.run import window as job
from reconcile.run.lease import Lease
from reconcile.runtime import interrupt
from reconcile.runtime.logs import run_context
from reconcile.runtime.redact import exception_text, one_line
from reconcile.store import indexes
from reconcile.store import runs as state
from reconcile.stripe import pull as stripe_pull
from reconcile.timeutil import Window, fmt, utcnow

log = logging.getLogger(__name__)

RESEND_LIMIT = 20


@dataclass(frozen=True)
class Invocation:
    """What the command line asked for."""

    now: datetime
    since: datetime | None = None
    until: datetime | None = None
    dry_run: bool = False
    report_dir: Path = Path("reports")
    summary_json: Path | None = None
    wait: timedelta | None = None  # overrides lease.wait
    email: str | None = None  # overrides email.send
    trigger: str | None = None  # recorded in the run history (e.g. "cron-hourly")
    # The bank statements, read before anything else (run/bank.statements_of; None: none to read).
    statements: tuple[Statement, ...] | None = None


@dataclass
class WindowRun:
    run_id: str
    window: Window
    result: job.RunResult
    items: ItemsResult
    movements: list[Finding]
    email: str | None = None  # sent / failed / skipped / None (dry run)
    email_error: str | None = None


@dataclass
class Outcome:
    exit_code: ExitCode
    run_id: str = ""  # the invocation's id: the summary's `run_id`, which `reconcile undo` takes for every window
    runs: list[WindowRun] = field(default_factory=list)
    summary: SummaryJson | None = None
    lines: list[str] = field(default_factory=list)  # for stdout (cron mail)
    error: ReconcileError | None = None
    failed_changes: job.Changes | None = None  # what the window run that failed had changed
    stopped: str | None = None  # a second signal's line: the invocation stopped at once


def email_policy(config: Config, override: str | None) -> str:
    policy = override or config.email.send
    e = config.email
    if policy != "never" and not (e.host and e.from_addr and e.to):
        raise ConfigError(f"email {policy!r} needs email.host, email.from_addr and email.to in the config")
    return policy


def run_windows(
    config: Config,
    client: stripe.StripeClient,
    db: Database,
    inv: Invocation,
    *,
    mail: mailer.Mailer | None = None,
    lease_clock: Callable[[], float] = time.time,
    scan_db: Database | None = None,
) -> Outcome:
    """Everything one `reconcile` invocation does; an error ends it, is recorded, and sets the exit code.

    Every way out that is not a crash gives the lease back and writes `--summary-json`: a failed,
    refused or interrupted invocation says so there too (`error`, and no run it did not finish).
    """
    m = config.mongodb
    runs, stash = db[m.runs_collection], db[m.state_collection]
    policy = email_policy(config, inv.email)
    who = state.started_by(inv.trigger)
    invocation = job.new_run_id(inv.now)
    outcome = Outcome(ExitCode.OK, invocation)

    lease: Lease | None = None
    if not inv.dry_run:  # a dry run changes nothing, so it needs no lease
        try:
            lease = _take_lease(config, stash, inv, invocation, who, lease_clock)
        except ReconcileError as error:  # held by another run, a stop while waiting for it, or MongoDB gone
            _record_refused(runs, invocation, inv, who, error)
            _fail(outcome, error)
            _write_summary(inv, outcome, invocation)
            return outcome
        lease.keep_alive()

    def windows() -> None:
        if lease is not None and lease.previous:
            _take_over(runs, lease.previous, invocation, outcome)
        if not inv.dry_run and mail is not None:
            _resend(config, runs, mail, outcome)
        _run_all(config, client, db, inv, lease, invocation, who, outcome, scan_db)

    try:
        _guarded(outcome, invocation, windows)
        if not inv.dry_run and outcome.runs:  # what completed is reported, even if a later window failed
            _guarded(outcome, invocation, lambda: _email(config, runs, mail, policy, invocation, outcome))
        if not inv.dry_run and outcome.error is None:  # a failed invocation prunes nothing; the next one will
            _guarded(outcome, invocation, lambda: _prune_reports(runs, inv.report_dir, config.report.keep_days))
    except interrupt.StopNow as stop:
        _stopped_at_once(inv, outcome, invocation, stop)
        raise
    finally:
        if lease is not None:
            lease.release()
    if outcome.runs or outcome.failed_changes is not None:
        outcome.lines.append(_run_line(outcome, inv.dry_run))
    _write_summary(inv, outcome, invocation)
    return outcome


def _guarded(outcome: Outcome, invocation: str, step: Callable[[], None]) -> None:
    """An error outside a window's run (history, plan, resend, email, pruning) ends the step, recorded."""
    try:
        step()
    except ReconcileError as error:
        with run_context(invocation):
            _log_end(error)
        _fail(outcome, error)


def _take_lease(
    config: Config,
    stash: Collection,
    inv: Invocation,
    invocation: str,
    who: StartedBy,
    clock: Callable[[], float],
) -> Lease:
    wait = inv.wait if inv.wait is not None else config.lease.wait
    return Lease.acquire(
        stash,
        invocation,
        config.lease.ttl,
        wait,
        clock=clock,
        sleep=_lease_pause,
        info={"trigger": who["trigger"], "command": who["command"]},
    )


def _stopped_at_once(inv: Invocation, outcome: Outcome, invocation: str, stop: interrupt.StopNow) -> None:
    """Stopped at once: the summary still names this invocation and lists every order it changed (the
    windows completed and the one cut off), as the history does; the CLI then leaves it be."""
    outcome.exit_code = worst(outcome.exit_code, stop.exit_code)
    outcome.stopped = stop.line()
    if outcome.failed_changes is not None:
        n = outcome.failed_changes.count
        outcome.stopped += f"; {n} order(s) were changed before this, listed here and in the run history"
    try:
        _write_summary(inv, outcome, invocation)
        stop.summary_written = inv.summary_json is not None
    except Exception as error:  # the CLI writes its plain error summary instead
        log.warning("summary.not_written", extra={"error": exception_text(error)})


def _record_refused(runs: Any, invocation: str, inv: Invocation, who: StartedBy, error: ReconcileError) -> None:
    """An invocation that could not take the lease: logged, and in the history (when MongoDB answers) as
    one run that ended at once."""
    status = state.LEASE_HELD if isinstance(error, LeaseHeld) else _status_of(error)
    with run_context(invocation):
        _log_end(error, "lease.held" if isinstance(error, LeaseHeld) else None)
    if isinstance(error, MongoUnavailable):  # there is no history to write to
        return
    _best_effort(
        state.record_start,
        runs,
        invocation,
        invocation,
        None,
        inv.now,
        who,
        dry_run=False,
        status=status,
        started=utcnow(),
    )
    _best_effort(
        state.record_finish,
        runs,
        invocation,
        status,
        utcnow(),
        exit_code=int(error.exit_code),
        error=_text(error),
    )


def _take_over(runs: Any, previous: dict[str, Any], invocation: str, outcome: Outcome) -> None:
    """The lease was taken over from a run that stopped without releasing it: its runs are marked abandoned."""
    abandoned = state.mark_abandoned(runs, str(previous.get("owner")), invocation)
    outcome.lines.append(
        f"took over the lease of a run that stopped without releasing it "
        f"({previous.get('owner')}); {abandoned} of its runs marked abandoned"
    )


def _prune_reports(runs: Any, report_dir: Path, keep_days: int) -> None:
    """Old report files are removed, except those of reports still to be emailed."""
    keep = [Path(p) for r in state.unsent(runs, limit=10_000) for p in (r.get("report") or {}).values()]
    retention.prune(report_dir, keep_days, keep=keep)


def _lease_pause(seconds: float) -> None:
    """A pause while waiting for the lease: SIGTERM or Ctrl-C ends the wait at once."""
    interrupt.wait(seconds)
    interrupt.checkpoint("lease wait")


def _text(error: BaseException) -> str:
    """An error as kept in the history and the summary: the CLI's error line, never a secret."""
    return one_line(str(error))


def _status_of(error: ReconcileError) -> str:
    if isinstance(error, LeaseLost):
        return state.LEASE_LOST
    return state.INTERRUPTED if isinstance(error, Interrupted) else state.FAILED


def _log_end(error: ReconcileError, step: str | None = None) -> None:
    """The JSON line that says how a run ended early; a stop names its signal and the step it stopped in."""
    fields: dict[str, Any] = {"error": _text(error), "exit_code": int(error.exit_code)}
    if isinstance(error, Interrupted):
        fields.update(signal=error.signal_name, during=error.step)
    if step is None:
        step = "run.interrupted" if isinstance(error, Interrupted) else "run.failed"
    (log.warning if isinstance(error, Interrupted) else log.error)(step, extra=fields)


def _fail(outcome: Outcome, error: ReconcileError, changes: job.Changes | None = None) -> None:
    """The first error is the one the invocation reports (later ones follow from it); the worst code wins.
    `changes`: what the failed window run changed, listed in the summary however the run ended."""
    outcome.exit_code = worst(outcome.exit_code, error.exit_code)
    if outcome.error is None:
        outcome.error = error
    if changes is not None and changes.count:
        outcome.failed_changes = changes


def _best_effort(write: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """A history write on the way out of a failed run: if MongoDB is gone too, say so, but never hide the
    error that ended the run (a run left `running` is marked abandoned by the run that takes its lease)."""
    try:
        write(*args, **kwargs)
    except ReconcileError as error:
        log.warning("run.record_failed", extra={"error": _text(error)})


def _write_summary(inv: Invocation, outcome: Outcome, invocation: str) -> None:
    if outcome.runs or outcome.error is not None or outcome.stopped:  # nothing completed: monitoring still sees it
        outcome.summary = _summary(outcome, invocation).to_json()
    if outcome.summary is not None and inv.summary_json:
        write_summary_json(inv.summary_json, outcome.summary)


@dataclass(frozen=True)
class _Windows:
    """What every window run of an invocation shares: where it reads and writes, and how it is held."""

    settings: settings.WindowSettings
    client: stripe.StripeClient
    db: Database
    scan_db: Database | None
    policy: stripe_pull.RetryPolicy
    runs: Collection  # the run history
    stash: Collection  # the watermark
    lease: Lease | None
    dry_run: bool
    may_create: bool  # the watermark may be created (no --until)
    summary_json: Path | None


@dataclass(frozen=True)
class _Failed:
    """A window run that failed: the error the invocation reports and what the run changed."""

    error: ReconcileError
    changes: job.Changes


def _run_all(
    config: Config,
    client: stripe.StripeClient,
    db: Database,
    inv: Invocation,
    lease: Lease | None,
    invocation: str,
    who: StartedBy,
    outcome: Outcome,
    scan_db: Database | None,
) -> None:
    runs, stash = db[config.mongodb.runs_collection], db[config.mongodb.state_collection]
    plan = _plan(config, db, stash, inv, invocation)
    shared = _Windows(
        settings.window_settings(config),
        client,
        db,
        scan_db,
        stripe_pull.RetryPolicy.from_config(config.stripe, config.test_mode_key()),
        runs,
        stash,
        lease,
        inv.dry_run,
        may_create=inv.until is None,
        summary_json=inv.summary_json,
    )
    total = len(plan.windows)
    for index, window in enumerate(plan.windows, start=1):
        run_id = window_run_id(invocation, index, total)
        if lease is not None:
            lease.check()  # LeaseLost: another run took over; this one starts nothing more
        state.record_start(
            runs,
            run_id,
            invocation,
            window,
            inv.now,
            who,
            dry_run=inv.dry_run,
            part=(index, total),
            started=utcnow(),
            source=plan.source,
        )
        # Once per invocation, in its last window: the open items from windows before this one.
        recheck_limit = config.report.recheck_limit if index == total else 0
        req = _request(inv, window, lease, recheck_limit, (index, total), plan.source)
        try:
            run = _run_window(shared, req, run_id, window)
        except interrupt.StopNow:  # the summary lists what the window cut off changed
            if req.changes.count:
                outcome.failed_changes = req.changes
            raise
        if isinstance(run, _Failed):  # recorded; no later window starts
            _fail(outcome, run.error, run.changes)
            return
        outcome.runs.append(run)
        outcome.exit_code = worst(outcome.exit_code, run.result.exit_code)


def window_run_id(invocation: str, index: int, total: int) -> str:
    """A window's run id: the invocation's own when it runs one window, else `INVOCATION-wN`, so that the
    invocation's id (the summary's `run_id`) names all its windows and each window keeps an id of its own."""
    return invocation if total == 1 else f"{invocation}-w{index}"


def _request(
    inv: Invocation, window: Window, lease: Lease | None, recheck_limit: int, part: tuple[int, int], source: str
) -> job.RunRequest:
    return job.RunRequest(
        since=window.since,
        until=window.until,
        now=inv.now,
        dry_run=inv.dry_run,
        report_dir=inv.report_dir,
        counted_from=window.counted_from,
        checkpoint=lease.check if lease else None,
        recheck_limit=recheck_limit,
        part=part,
        source=source,
        changes=job.Changes(),
        # The statements are matched once, with the payouts the last window re-checks.
        statements=inv.statements if part[0] == part[1] else None,
    )


def _plan(config: Config, db: Database, stash: Any, inv: Invocation, invocation: str) -> window_plan.Plan:
    """The windows this invocation runs (from the options or the watermark), logged; missing indexes warned of."""
    w = config.window
    watermark = state.read_watermark(stash)
    plan = window_plan.plan_windows(
        since=inv.since,
        until=inv.until,
        now=inv.now,
        watermark=watermark,
        lookback=w.lookback,
        overlap=w.overlap,
        max_span=w.max_span,
    )
    with run_context(invocation):
        log.info(
            "plan",
            extra={
                "source": plan.source,
                "watermark": fmt(watermark) if watermark else None,
                "windows": len(plan.windows),
                "since": fmt(plan.windows[0].since),
                "until": fmt(plan.windows[-1].until),
            },
        )
        indexes.warn_missing(db, config.mongodb, config.orders)  # once per invocation, not per window
    return plan


def _run_window(shared: _Windows, req: job.RunRequest, run_id: str, window: Window) -> WindowRun | _Failed:
    """One window run, completed (the watermark advanced, the history finished), or how it failed, with the
    failure and what it changed recorded in the history."""
    runs, stash = shared.runs, shared.stash
    changes = req.changes
    try:
        result = job.run(
            shared.settings, shared.client, shared.db, req, run_id=run_id, policy=shared.policy, scan_db=shared.scan_db
        )
        run = WindowRun(run_id, window, result, result.items, result.movements)
        # Completed only once the watermark and the history say so; until then the window is redone next time.
        if shared.lease is not None:
            shared.lease.check()  # a run whose lease was taken over meanwhile does not mark the window done
        if not shared.dry_run:
            state.advance_watermark(stash, window.since, window.until, run_id, may_create=shared.may_create)
        state.record_finish(runs, run_id, state.COMPLETED, utcnow(), **_record_fields(result, run))
    except ReconcileError as error:
        with run_context(run_id):
            _log_end(error)
        said = _with_changes(error, changes, run_id, shared.summary_json)
        _end_window(runs, run_id, _status_of(error), error.exit_code, _text(said), changes)
        return _Failed(said, changes)
    except interrupt.StopNow as stop:  # a second signal: no more work, but the history must not say "running"
        _end_window(
            runs,
            run_id,
            state.INTERRUPTED,
            stop.exit_code,
            f"stopped at once by a second {stop.signal_name}",
            changes,
        )
        raise
    except Exception as error:  # a bug: recorded as one, and what the run changed is still reported
        with run_context(run_id):
            log.exception("run.crashed")
        internal = InternalError(f"internal error: {exception_text(error)}")
        said = _with_changes(internal, changes, run_id, shared.summary_json)
        _end_window(runs, run_id, state.FAILED, ExitCode.INTERNAL_ERROR, _text(said), changes)
        return _Failed(said, changes)
    return run


def _end_window(runs: Any, run_id: str, status: str, code: ExitCode, error: str, changes: job.Changes) -> None:
    """The history of a window run that did not complete: how it ended and, by order id, what it changed."""
    fields: dict[str, Any] = {"exit_code": int(code), "error": error, **_changed_fields(changes)}
    if changes.count == 0 and not changes.repair.in_doubt:
        fields["changes_reported"] = True  # it changed nothing: the next run has nothing of it to report
    _best_effort(state.record_finish, runs, run_id, status, utcnow(), **fields)


def _changed_fields(changes: job.Changes) -> dict[str, Any]:
    r = changes.repair
    fields: dict[str, Any] = {
        "repaired": len(r.repaired),
        "marked_failed": len(r.marked_failed),
        "repaired_ids": list(r.repaired),
        "marked_failed_ids": list(r.marked_failed),
    }
    if changes.report is not None:
        fields["report"] = {"html": str(changes.report.html), "csv": str(changes.report.csv)}
    return fields


def _with_changes(
    error: ReconcileError, changes: job.Changes, run_id: str, summary_json: Path | None
) -> ReconcileError:
    """The error that ended a run after it changed orders, its line saying how many and where they are listed."""
    r = changes.repair
    notes = []
    if changes.count:
        where = [str(changes.report.html)] if changes.report is not None else []
        if summary_json is not None:
            where.append(f"--summary-json {summary_json}")
        where.append(f"the run history (reconcile show {run_id})")
        notes.append(
            f"{changes.count} order(s) were changed before this ({len(r.repaired)} repaired, "
            f"{len(r.marked_failed)} marked failed), each with its audit record; listed in {', '.join(where)}"
        )
    if r.in_doubt:
        notes.append(f"the {len(r.in_doubt)} order(s) of the batch being written may have changed")
    if notes and not changes.reported:
        notes.append("the next run's report lists what this run changed")
    return ChangedThenFailed(error, "; ".join(notes)) if notes else error


def _record_fields(result: job.RunResult, run: WindowRun) -> dict[str, Any]:
    s = result.summary
    return {
        "exit_code": int(result.exit_code),
        "counts": result.counts,
        "needs_attention": s.needs_attention,
        "repaired": len(s.repaired),
        "marked_failed": len(s.marked_failed),
        # Which orders it changed, by id, beside the counts (a failed run's record lists them too).
        "repaired_ids": list(s.repaired),
        "marked_failed_ids": list(s.marked_failed),
        "charge_count": s.charge_count,
        "totals": s.totals,
        "open_items": len(run.items.open),
        "new_items": run.items.new,
        "resolved_items": len(run.items.resolved),
        "movements": len(run.movements),
        "report": {"html": str(result.report.html), "csv": str(result.report.csv)},
    }


def _text_body(sent: list[WindowRun], queue: work_queue.Queue, run_line: str) -> str:
    # The headline and the top of the work queue first: a phone's preview shows them.
    lines = [queue.headline(), *queue.text_lines(), ""]
    for run in sent:
        s = run.result.summary
        lines.append(
            f"{fmt(s.since)} to {fmt(s.until)} (run {run.run_id}): needs attention {s.needs_attention}, "
            f"repaired {len(s.repaired)}; report {run.result.report.html.name}"
        )
    lines.append(
        f"Open items: {len(sent[-1].items.open)} ({sum(r.items.new for r in sent)} new, "
        f"{sum(len(r.items.resolved) for r in sent)} resolved)."
    )
    lines.append("The newest report is this message's HTML part; the discrepancies of each window are attached as CSV.")
    lines.append(run_line)
    return "\n".join(lines) + "\n"


def _email(
    config: Config, runs: Any, mail: mailer.Mailer | None, policy: str, invocation: str, outcome: Outcome
) -> None:
    """One message per invocation, with the reports of the windows the policy says to send."""
    sent = [
        r for r in outcome.runs if mail is not None and mailer.should_send(policy, r.result.summary.needs_attention)
    ]
    for run in outcome.runs:
        if run not in sent:
            state.set_email(runs, run.run_id, state.EMAIL_SKIPPED, policy=policy)
            run.email = state.EMAIL_SKIPPED
    if not sent or mail is None:
        return
    first, last = sent[0], sent[-1]
    queue = work_queue.build(last.items.open, config.stripe.dashboard_url, config.report.order_url)
    subject = mailer.subject(
        config.email.subject_prefix,
        first.window.since,
        last.window.until,
        sum(r.result.summary.needs_attention for r in sent),
        sum(r.items.new for r in sent),
        len(last.items.open),
        sum(len(r.result.summary.repaired) for r in sent),
        critical=sum(1 for d in last.items.open if d.get("severity") == "critical"),
        at_stake=queue.at_stake_text(),
    )
    text = _text_body(sent, queue, _run_line(outcome, dry_run=False))
    reports = [(r.result.report.html, r.result.report.csv) for r in sent]
    try:
        mail.send(mailer.message_from_files(config.email, subject, reports, text))
    except MailError as error:
        with run_context(invocation):
            log.error("email.failed", extra={"error": str(error), "reports": len(reports)})
        _record_unsent(runs, sent, invocation, subject, text, error)
        outcome.exit_code = worst(outcome.exit_code, ExitCode.EMAIL_FAILED)
        outcome.lines.append(
            f"email NOT sent ({error}); the report stays at {last.result.report.html}; the next run resends it"
        )
        return
    for order, run in enumerate(sent):
        state.set_email(
            runs,
            run.run_id,
            state.EMAIL_SENT,
            subject=subject,
            group=invocation,
            order=order,
            to=list(config.email.to),
            sent_at=int(time.time()),
        )
        run.email = state.EMAIL_SENT
    outcome.lines.append(f"email sent to {len(config.email.to)} recipient(s): {subject}")


def _run_line(outcome: Outcome, dry_run: bool) -> str:
    """The console's last line and the email's: the invocation by the id the summary names, which
    `reconcile undo` takes for every window's changes."""
    windows = len(outcome.runs) + (outcome.failed_changes is not None)
    line = f"run {outcome.run_id}" + (f" ({windows} windows)" if windows > 1 else "")
    done = outcome.failed_changes.count if outcome.failed_changes is not None else 0
    changed = done + sum(len(r.result.summary.repaired) + len(r.result.summary.marked_failed) for r in outcome.runs)
    if changed and not dry_run:
        line += f": {changed} order(s) changed; `reconcile undo {outcome.run_id}` puts them back"
    return line


def _record_unsent(
    runs: Collection, sent: list[WindowRun], invocation: str, subject: str, text: str, error: MailError
) -> None:
    """The message that could not be sent, kept in the history of its runs for the next run to resend."""
    for order, run in enumerate(sent):
        state.set_email(
            runs,
            run.run_id,
            state.EMAIL_FAILED,
            subject=subject,
            text=text,
            group=invocation,
            order=order,
            error=str(error),
            at=int(time.time()),
        )
        run.email, run.email_error = state.EMAIL_FAILED, str(error)


def _resend(config: Config, runs: Any, mail: mailer.Mailer, outcome: Outcome) -> None:
    """Messages earlier invocations could not send, oldest first, each rebuilt as it was then."""
    groups: dict[str, list[RunDoc]] = {}
    for doc in state.unsent(runs, RESEND_LIMIT):
        groups.setdefault((doc.get("email") or {}).get("group") or doc["_id"], []).append(doc)
    for group, docs in groups.items():
        docs.sort(key=lambda d: (d.get("email") or {}).get("order", 0))
        email = docs[0].get("email") or {}
        reports = [
            (Path((d.get("report") or {}).get("html", "")), Path((d.get("report") or {}).get("csv", ""))) for d in docs
        ]
        with run_context(group):
            if not all(html.is_file() and csv.is_file() for html, csv in reports):
                log.error("email.report_missing", extra={"runs": [d["_id"] for d in docs]})
                for d in docs:
                    state.set_email(runs, d["_id"], state.EMAIL_LOST, error="report files no longer on disk")
                outcome.exit_code = worst(outcome.exit_code, ExitCode.EMAIL_FAILED)
                outcome.lines.append(f"could not resend the report of run {group}: its files are gone")
                continue
            subject = email.get("subject") or f"{config.email.subject_prefix} report of run {group}"
            try:
                mail.send(mailer.message_from_files(config.email, subject, reports, email.get("text") or ""))
            except MailError as error:
                log.error("email.resend_failed", extra={"error": str(error)})
                for d in docs:
                    state.set_email(runs, d["_id"], state.EMAIL_FAILED, error=str(error), at=int(time.time()))
                outcome.exit_code = worst(outcome.exit_code, ExitCode.EMAIL_FAILED)
                outcome.lines.append(f"email of run {group} still NOT sent ({error}); the next run tries again")
                return  # the server is still down: do not hammer it with the rest
            for d in docs:
                state.set_email(runs, d["_id"], state.EMAIL_SENT, sent_at=int(time.time()), resent=True)
            outcome.lines.append(f"resent the report of run {group}: {subject}")


# --------------------------------------------------------------------------- the invocation's summary


def _summary(outcome: Outcome, invocation: str) -> InvocationSummary:
    """One window: its summary. Several: counts, repairs and totals added up, and a `runs` list.
    A window that failed after changing orders adds them to `repaired` and `marked_failed`.
    `run_id` is the invocation's id whatever the windows: a window's own when it ran one, else the id
    that `reconcile undo` expands to every window (so undo of it puts back all `repaired` and `marked_failed`)."""
    done = outcome.failed_changes
    return InvocationSummary(
        run_id=invocation,
        exit_code=int(outcome.exit_code),
        windows=[WindowEntry(r.run_id, r.result.summary, r.email, int(r.result.exit_code)) for r in outcome.runs],
        error=_text(outcome.error) if outcome.error is not None else outcome.stopped,
        failed_repaired=list(done.repair.repaired) if done else [],
        failed_marked_failed=list(done.repair.marked_failed) if done else [],
        failed_run_report=done.report if done else None,
    )
