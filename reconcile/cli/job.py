"""The job itself (`reconcile` without a subcommand): the window options in, one invocation run, its
summary lines out, and whatever ends it mapped to an exit code."""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click

from reconcile.cli.common import fail, parse_option_duration, parse_option_when
from reconcile.config import Config, load_config
from reconcile.errors import ConfigError, Interrupted, ReconcileError, StatementError
from reconcile.exitcodes import ExitCode
from reconcile.report.outputs import check_outputs
from reconcile.runtime import interrupt, progress
from reconcile.runtime.redact import exception_text, one_line
from reconcile.timeutil import MAX_DURATION, MAX_DURATION_TEXT, fmt, utcnow

if TYPE_CHECKING:
    from reconcile.report.mailer import Mailer
    from reconcile.report.summary import RunSummary
    from reconcile.run.invocation import Invocation, Outcome

log = logging.getLogger("reconcile.cli")


@dataclass(frozen=True)
class RunOptions:
    """The main command's options that shape a run, as written (times and durations not parsed yet)."""

    config_path: Path
    since_text: str | None
    until_text: str | None
    now_text: str | None
    dry_run: bool
    report_dir: Path | None
    summary_json: Path | None
    wait: str | None
    email_send: str | None
    trigger: str | None
    quiet: bool
    bank_statements: tuple[Path, ...] = ()


def run_job(options: RunOptions) -> NoReturn:
    """Run one invocation and exit with its code; --quiet prints nothing when all is well (cron mails nothing).
    The last line names the invocation by the summary's `run_id`, the id `reconcile undo` takes."""
    from reconcile.runtime import memory  # heavy imports only when a run happens

    memory.tune()  # before the pull's threads allocate
    config, invocation, api_key, mongodb_uri, mail = _prepare(options)
    outcome = _run_invocation(config, invocation, api_key, mongodb_uri, mail)
    if not options.quiet or outcome.exit_code != ExitCode.OK:
        for run in outcome.runs:
            print_summary(run.result.summary, run.run_id if len(outcome.runs) > 1 else None)
        for line in outcome.lines:
            click.echo(line)
    if outcome.error is not None:
        fail(outcome.error, outcome.exit_code)
    sys.exit(int(outcome.exit_code))


def _prepare(options: RunOptions) -> tuple[Config, Invocation, str, str, Mailer | None]:
    """The options parsed, the config checked and the bank statements read before anything is touched: a
    problem is one line, exit 2."""
    from reconcile.run import bank as bank_run
    from reconcile.run import invocation as orchestrate

    now = utcnow()
    if options.now_text is not None:
        now = parse_option_when(options.now_text, "--now", now)
    since = parse_option_when(options.since_text, "--since", now)
    until = parse_option_when(options.until_text, "--until", now)
    wait_for = parse_option_duration(options.wait, "--wait")
    report_dir = options.report_dir
    try:
        config = load_config(options.config_path)
        _check_window_options(now, since, until)
        policy = orchestrate.email_policy(config, options.email_send)
        api_key, mongodb_uri = config.stripe_api_key(), config.mongodb_uri()
        mail = _build_mailer(config, policy)
        # Before the first write (the lease, a repair): a report or summary that cannot be written is a
        # config problem, not a crash after the changes.
        check_outputs(
            report_dir or Path(config.report.dir), "--report-dir" if report_dir else "report.dir", options.summary_json
        )
        # Every statement read now: a file the job cannot read costs no Stripe pull and writes nothing.
        statements = bank_run.statements_of(config.bank, options.bank_statements)
        if statements is not None and not config.payouts.enabled:
            raise ConfigError("bank statements are matched to payouts: set payouts.enabled = true to read them")
    except (ConfigError, StatementError) as error:
        fail(error)  # before the run: one line, nothing touched
    invocation = orchestrate.Invocation(
        now=now,
        since=since,
        until=until,
        dry_run=options.dry_run,
        report_dir=report_dir or Path(config.report.dir),
        summary_json=options.summary_json,
        wait=wait_for,
        email=options.email_send,
        trigger=options.trigger,
        statements=statements,
    )
    return config, invocation, api_key, mongodb_uri, mail


def _check_window_options(now: datetime, since: datetime | None, until: datetime | None) -> None:
    """--since/--until must name a window Stripe still holds, with since before until and before now."""
    for option, when in (("--since", since), ("--until", until)):
        if when is not None and now - when > MAX_DURATION:  # Stripe holds nothing that old
            raise ConfigError(f"{option} {fmt(when)} is more than {MAX_DURATION_TEXT} before now ({fmt(now)})")
    if since is not None and since >= now:
        raise ConfigError(
            f"--since {fmt(since)} is in the future (now is {fmt(now)}): there is nothing to reconcile yet"
        )
    if since is not None and since >= min(until or now, now):
        raise ConfigError(f"--since {fmt(since)} is not before --until {fmt(min(until or now, now))}")


def _build_mailer(config: Config, policy: str) -> Mailer | None:
    """The mailer, when the email policy may send; its password is read (and checked) before the run."""
    if policy == "never":
        return None
    from reconcile.report.mailer import Mailer

    return Mailer(config.email, config.smtp_password())


def _run_invocation(
    config: Config, invocation: Invocation, api_key: str, mongodb_uri: str, mail: Mailer | None
) -> Outcome:
    """Connect to Stripe and MongoDB, run the windows, and map anything that ends the run to its exit code."""
    from reconcile.run import invocation as orchestrate
    from reconcile.store import mongo
    from reconcile.stripe import pull as stripe_pull

    summary_json = invocation.summary_json
    databases = []
    try:
        with interrupt.handle_signals():
            client = progress.wrap(stripe_pull.make_client(api_key, config.stripe))
            db = mongo.connect(mongodb_uri, config.mongodb)
            scan_db = mongo.connect_for_scans(mongodb_uri, config.mongodb)
            databases = [db, scan_db]
            # The lease is taken inside and released on every way out, Interrupted (SIGTERM, Ctrl-C) included.
            return orchestrate.run_windows(config, client, db, invocation, mail=mail, scan_db=scan_db)
    except Interrupted as error:
        log.warning(
            "run.interrupted",
            extra={"signal": error.signal_name, "during": error.step, "exit_code": int(error.exit_code)},
        )
        error_summary(summary_json, error.exit_code, str(error))
        fail(error)
    except interrupt.StopNow as stop:
        _stopped_now(stop, summary_json)
    except ReconcileError as error:
        log.error("run.failed", extra={"error": str(error), "exit_code": int(error.exit_code)})
        error_summary(summary_json, error.exit_code, str(error))
        fail(error)
    except Exception as error:  # a bug: say so plainly, never exit 1 ("discrepancies") by accident
        _crashed(error, summary_json)
    finally:
        progress.stop()
        for database in databases:
            database.client.close()


def _stopped_now(stop: interrupt.StopNow, summary_json: Path | None) -> NoReturn:
    """A second signal: the invocation stopped at once."""
    log.warning(
        "run.interrupted",
        extra={"signal": stop.signal_name, "during": "any step (second signal)", "exit_code": int(stop.exit_code)},
    )
    if not stop.summary_written:  # else the invocation's summary lists what it changed
        error_summary(summary_json, stop.exit_code, stop.line())
    progress.stop()
    click.echo(f"reconcile: {stop.line()}", err=True)
    sys.exit(int(stop.exit_code))


def _crashed(error: Exception, summary_json: Path | None) -> NoReturn:
    """A bug: exit 70 with the error's facts only (a Stripe, MongoDB or SMTP error carries no secret here)."""
    log.exception("run.crashed")
    line = f"internal error: {exception_text(error)}"
    error_summary(summary_json, ExitCode.INTERNAL_ERROR, line)
    progress.stop()
    click.echo(f"reconcile: {line}", err=True)
    sys.exit(int(ExitCode.INTERNAL_ERROR))


def error_summary(path: Path | None, exit_code: ExitCode, message: str) -> None:
    """An invocation that ended outside the run (MongoDB down at connect, a second signal) still leaves its
    answer for monitoring: a stale summary of an earlier success would say all is well."""
    if path is None:
        return
    from reconcile.report.render import write_summary_json

    try:
        write_summary_json(path, {"run_id": None, "exit_code": int(exit_code), "error": one_line(message), "runs": []})
    except OSError as exc:  # the error line below still says what happened
        log.warning("summary.not_written", extra={"error": type(exc).__name__})


def print_summary(summary: RunSummary, run_id: str | None = None) -> None:
    """A window's lines; `run_id`: the window's own id, named when the invocation ran several."""
    counts = ", ".join(f"{k} {v}" for k, v in summary.counts.items() if v)
    prefix = "DRY RUN: " if summary.dry_run else ""
    window = f"{fmt(summary.since)} to {fmt(summary.until)}" + (f" (run {run_id})" if run_id else "")
    click.echo(f"{prefix}{window}: {counts or 'nothing in window'}")
    items = summary.items
    open_text = f"; open items {items['open']} ({items['new']} new, {len(items['resolved'])} resolved)" if items else ""
    report = summary.report.html if summary.report else None
    from reconcile.decide.bank import BANK_DEPOSIT_UNMATCHED
    from reconcile.report.payouts import console_line

    payouts = console_line(
        summary.payouts,
        [d.outcome for d in summary.discrepancies if d.payout_id or d.outcome == BANK_DEPOSIT_UNMATCHED],
    )
    if payouts:
        click.echo(payouts)
    click.echo(f"needs attention: {summary.needs_attention}{open_text}; report: {report}")
