"""The `reconcile` command: parse options, build the clients, run the job, map errors to exit codes."""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, overload

import click

from reconcile.config import EMAIL_SEND, Config, load_config
from reconcile.errors import ConfigError, Interrupted, ReconcileError
from reconcile.exitcodes import ExitCode
from reconcile.report.outputs import check_outputs
from reconcile.runtime import interrupt, progress
from reconcile.runtime.logs import LOG_FORMATS, setup_logging
from reconcile.runtime.redact import exception_text, one_line
from reconcile.timeutil import MAX_DURATION, MAX_DURATION_TEXT, fmt, parse_duration, parse_when, utcnow

if TYPE_CHECKING:
    from pymongo.database import Database  # pymongo is imported only when a command needs it
    from rich.console import Console

    from reconcile.report.mailer import Mailer
    from reconcile.report.summary import RunSummary
    from reconcile.run.invocation import Invocation, Outcome

log = logging.getLogger("reconcile.cli")


@overload
def parse_option_when(value: str, option: str, now: datetime) -> datetime: ...
@overload
def parse_option_when(value: str | None, option: str, now: datetime) -> datetime | None: ...
def parse_option_when(value: str | None, option: str, now: datetime) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_when(value, now)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=option) from None


def fail(error: ReconcileError, exit_code: ExitCode | None = None) -> NoReturn:
    progress.stop()  # the error line gets a row of its own
    click.echo(f"reconcile: error: {one_line(str(error))}", err=True)
    sys.exit(int(exit_code if exit_code is not None else error.exit_code))


EXIT_CODES_HELP = (
    "Exit codes: 0 nothing needs a person; 1 discrepancies need a person; 2 bad usage or config; "
    "3 Stripe or MongoDB unavailable; 4 another run holds the lease (the line names it); "
    "5 report written but not emailed (the next run resends it); 70 internal error; "
    "130/143 stopped by Ctrl-C/SIGTERM between writes (finished repairs stay, audited)."
)


# The group's options a person may also write after a subcommand (`reconcile init --config x.toml`).
GLOBAL_OPTIONS = ("--config", "--log-format", "--log-file", "--quiet", "-q", "--verbose", "-v")


def hoist_global_options(group: click.Group, args: list[str]) -> list[str]:
    """`args` with the group's global options that follow a subcommand moved before it, unless the
    subcommand has an option of that name itself. Works for subcommands added with `main.add_command`."""
    takes_value = {
        name: not param.is_flag
        for param in group.params
        if isinstance(param, click.Option)
        for name in (*param.opts, *param.secondary_opts)
    }
    at = 0
    while at < len(args):  # find the subcommand, skipping the values of the group's options
        arg = args[at]
        if arg == "--":
            return args
        if arg in group.commands:
            break
        at += 2 if takes_value.get(arg) else 1
    else:
        return args
    command = group.commands[args[at]]
    own = {name for param in command.params for name in (*param.opts, *param.secondary_opts)}
    moved: list[str] = []
    rest: list[str] = []
    index = at + 1
    while index < len(args):
        arg = args[index]
        name = arg.split("=", 1)[0]
        if arg == "--":
            rest.extend(args[index:])
            break
        if name in GLOBAL_OPTIONS and name not in own:
            if takes_value[name] and "=" not in arg and index + 1 < len(args):
                moved += args[index : index + 2]
                index += 2
                continue
            moved.append(arg)
        else:
            rest.append(arg)
        index += 1
    return [*args[:at], *moved, args[at], *rest]


class ReconcileGroup(click.Group):
    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, hoist_global_options(self, args))

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SystemExit as stop:
            # --quiet (cron): output only when the exit code is not 0, ending with the code, which cron's mail omits.
            if ctx.params.get("quiet") and stop.code not in (0, None):
                click.echo(f"(exit {stop.code})", err=True)
            raise


@click.group(
    cls=ReconcileGroup,
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog=EXIT_CODES_HELP,
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default="reconcile.toml",
    show_default=True,
    envvar="RECONCILE_CONFIG",
    show_envvar=True,
    help="TOML config file (see config.example.toml); before or after the subcommand.",
)
@click.option(
    "--since",
    "since_text",
    metavar="WHEN",
    help="Window start: ISO-8601 (naive = UTC) or a span back from now (90m, 6h, 3d). "
    "Default: where the last completed run ended, minus window.overlap (first run: --until minus window.lookback).",
)
@click.option(
    "--until", "until_text", metavar="WHEN", help="Window end, excluded. Same forms as --since. Default: now."
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Change nothing (no repairs, no watermark, no items, no email); report what would be done.",
)
@click.option(
    "--report-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the HTML and CSV reports go (default: report.dir).",
)
@click.option(
    "--summary-json", type=click.Path(dir_okay=False, path_type=Path), help="Also write a JSON summary of the run here."
)
@click.option(
    "--wait",
    metavar="DURATION",
    help="Wait this long (e.g. 10m) for another run's lease before exiting 4. Default: lease.wait.",
)
@click.option("--email", "email_send", type=click.Choice(EMAIL_SEND), help="Override email.send for this run.")
@click.option("--trigger", metavar="NAME", help="What started this run, kept in the run history (e.g. cron-hourly).")
@click.option("--now", "now_text", metavar="WHEN", hidden=True, help="Tests only: pretend the current time is WHEN.")
@click.option("-v", "--verbose", is_flag=True, help="Log debug lines too.")
@click.option(
    "--log-format",
    type=click.Choice(LOG_FORMATS),
    default="auto",
    show_default=True,
    help="stderr's log lines: auto = short human lines and a live progress line on a terminal, "
    "JSON lines otherwise; json = JSON lines always; human = human lines always.",
)
@click.option(
    "--log-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also append the JSON log lines to this file (created, with its folder, readable by this user only).",
)
@click.option(
    "-q",
    "--quiet",
    is_flag=True,
    help="For cron: no log lines on stderr (use --log-file), and the summary only when the exit code is not 0, "
    "so a run with nothing to report mails nothing.",
)
@click.version_option(package_name="reconcile")
@click.pass_context
def main(
    ctx: click.Context,
    config_path: Path,
    since_text: str | None,
    until_text: str | None,
    dry_run: bool,
    report_dir: Path | None,
    summary_json: Path | None,
    wait: str | None,
    email_send: str | None,
    trigger: str | None,
    now_text: str | None,
    verbose: bool,
    log_format: str,
    log_file: Path | None,
    quiet: bool,
) -> None:
    """Reconcile MongoDB orders with Stripe charges for a window, repair stuck orders, report the rest.

    Without --since, a run continues where the last completed run ended (minus window.overlap) and
    catches up after a pause in sub-windows of window.max_span. One run at a time: a lease in
    MongoDB keeps a manual backfill and the hourly run apart.

    Subcommands: runs, show RUN_ID, init, check, demo.
    """
    try:
        console = setup_logging(logging.DEBUG if verbose else logging.INFO, log_format, log_file, quiet)
    except ConfigError as error:
        fail(error)
    ctx.obj = {"config_path": config_path}
    if console is not None and console.is_terminal and ctx.invoked_subcommand in (None, "demo"):
        _start_live_progress(ctx, console)
    if ctx.invoked_subcommand is not None:
        return
    from reconcile.run import invocation as orchestrate  # heavy imports only when a run happens
    from reconcile.runtime import memory

    memory.tune()  # before the pull's threads allocate

    now = utcnow()
    if now_text is not None:
        now = parse_option_when(now_text, "--now", now)
    since = parse_option_when(since_text, "--since", now)
    until = parse_option_when(until_text, "--until", now)
    wait_for = parse_option_duration(wait, "--wait")
    try:
        config = load_config(config_path)
        _check_window_options(now, since, until)
        policy = orchestrate.email_policy(config, email_send)
        api_key, mongodb_uri = config.stripe_api_key(), config.mongodb_uri()
        mail = _build_mailer(config, policy)
        # Before the first write (the lease, a repair): a report or summary that cannot be written is a
        # config problem, not a crash after the changes.
        check_outputs(
            report_dir or Path(config.report.dir), "--report-dir" if report_dir else "report.dir", summary_json
        )
    except ConfigError as error:
        fail(error)  # before the run: one line, nothing touched
    invocation = orchestrate.Invocation(
        now=now,
        since=since,
        until=until,
        dry_run=dry_run,
        report_dir=report_dir or Path(config.report.dir),
        summary_json=summary_json,
        wait=wait_for,
        email=email_send,
        trigger=trigger,
    )
    outcome = _run_invocation(config, invocation, api_key, mongodb_uri, mail)
    if not quiet or outcome.exit_code != ExitCode.OK:  # --quiet: cron mails nothing when all is well
        for run in outcome.runs:
            print_summary(run.result.summary, run.run_id if len(outcome.runs) > 1 else None)
        for line in outcome.lines:
            click.echo(line)
    if outcome.error is not None:
        fail(outcome.error, outcome.exit_code)
    sys.exit(int(outcome.exit_code))


def _start_live_progress(ctx: click.Context, console: Console) -> None:
    """A terminal gets the live progress rows; they stop when the command closes."""
    from reconcile.runtime.progress import LiveProgress

    live = LiveProgress(console)
    live.start()
    progress.install(live)
    ctx.call_on_close(progress.stop)


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
        log.warning(
            "run.interrupted",
            extra={"signal": stop.signal_name, "during": "any step (second signal)", "exit_code": int(stop.exit_code)},
        )
        if not stop.summary_written:  # else the invocation's summary lists what it changed
            error_summary(summary_json, stop.exit_code, stop.line())
        progress.stop()
        click.echo(f"reconcile: {stop.line()}", err=True)
        sys.exit(int(stop.exit_code))
    except ReconcileError as error:
        log.error("run.failed", extra={"error": str(error), "exit_code": int(error.exit_code)})
        error_summary(summary_json, error.exit_code, str(error))
        fail(error)
    except Exception as error:  # a bug: say so plainly, never exit 1 ("discrepancies") by accident
        log.exception("run.crashed")
        line = f"internal error: {exception_text(error)}"  # a Stripe, MongoDB or SMTP error by its facts only
        error_summary(summary_json, ExitCode.INTERNAL_ERROR, line)
        progress.stop()
        click.echo(f"reconcile: {line}", err=True)
        sys.exit(int(ExitCode.INTERNAL_ERROR))
    finally:
        progress.stop()
        for database in databases:
            database.client.close()


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


def parse_option_duration(value: str | None, option: str) -> timedelta | None:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=option) from None


def print_summary(summary: RunSummary, run_id: str | None = None) -> None:
    counts = ", ".join(f"{k} {v}" for k, v in summary.counts.items() if v)
    prefix = "DRY RUN: " if summary.dry_run else ""
    click.echo(f"{prefix}{fmt(summary.since)} to {fmt(summary.until)}: {counts or 'nothing in window'}")
    items = summary.items or {}
    open_text = f"; open items {items['open']} ({items['new']} new, {len(items['resolved'])} resolved)" if items else ""
    report = summary.report.html if summary.report else None
    click.echo(f"needs attention: {summary.needs_attention}{open_text}; report: {report}")


def _open_db(ctx: click.Context) -> tuple[Config, Database]:
    from reconcile.store import mongo

    config = load_config(ctx.obj["config_path"])
    return config, mongo.connect(config.mongodb_uri(), config.mongodb)


@main.command()
@click.option(
    "--limit", default=20, show_default=True, type=click.IntRange(1, 1000), help="How many runs, newest first."
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="One JSON object per line instead of a table (the summary's keys and ISO-8601 UTC times).",
)
@click.pass_context
def runs(ctx: click.Context, limit: int, as_json: bool) -> None:
    """List recent runs: window, status, exit code, what needed a person, email, who started them."""
    from reconcile.report import history
    from reconcile.store import runs as state

    try:
        config, db = _open_db(ctx)
        docs = state.recent(db[config.mongodb.runs_collection], limit)
    except ReconcileError as error:
        fail(error)
    if as_json:
        for doc in docs:  # the summary's keys and time format
            click.echo(json.dumps(history.as_json(doc), default=str, sort_keys=True))
        return
    for line in history.table(docs):
        click.echo(line)


@main.command()
@click.argument("run_id")
@click.pass_context
def show(ctx: click.Context, run_id: str) -> None:
    """Print one run's summary (RUN_ID as listed by `reconcile runs`, or a unique prefix of it)."""
    from reconcile.report import history
    from reconcile.store import runs as state

    try:
        config, db = _open_db(ctx)
        doc, matching = state.match_run(db[config.mongodb.runs_collection], run_id)
    except ReconcileError as error:
        fail(error)
    if doc is None and matching:
        fail(ConfigError(f"ambiguous: {matching} runs match {run_id!r}; give more of the id (see `reconcile runs`)"))
    if doc is None:
        fail(ConfigError(f"no run {run_id!r} in the history (see `reconcile runs`)"))
    for line in history.details(doc):
        click.echo(line)


@main.command()
@click.pass_context
def init(ctx: click.Context) -> None:
    """Create the MongoDB indexes the job needs (idempotent; safe on a live database)."""
    from reconcile.store import indexes

    try:
        config, db = _open_db(ctx)
        done = indexes.create(db, config.mongodb, config.orders)
    except ReconcileError as error:
        fail(error)
    for spec, created in done:
        click.echo(f"{'created' if created else 'present'}  {spec.text():<50} {spec.why}")


@main.command()
@click.pass_context
def check(ctx: click.Context) -> None:
    """Check the setup: MongoDB reachable, the indexes the job needs, the Stripe key's read permissions."""
    from reconcile.run import settings
    from reconcile.store import indexes
    from reconcile.stripe import permissions as setup_check
    from reconcile.stripe import pull as stripe_pull

    missing = denied = 0
    unreachable = rejected = False
    try:
        config, db = _open_db(ctx)
        click.echo("MongoDB: connected")
        for spec in indexes.required(config.mongodb, config.orders):
            ok = indexes.present(db, spec)
            missing += not ok
            click.echo(f"  index {'ok     ' if ok else 'MISSING'} {spec.text():<50} {spec.why}")
        click.echo("Stripe:")
        client = stripe_pull.make_client(config.stripe_api_key(), config.stripe)
        for probe in setup_check.stripe_permissions(client, settings.linking(config)):
            click.echo(probe.line)
            unreachable |= probe.state == setup_check.UNREACHABLE
            rejected |= probe.state == setup_check.REJECTED
            denied += probe.state in (setup_check.DENIED, setup_check.FAILED)
    except ReconcileError as error:
        fail(error)
    if unreachable:  # as a run would: exit 3, and nothing to fix in the setup
        click.echo("reconcile: check: Stripe is unreachable; check again when it answers", err=True)
        sys.exit(int(ExitCode.UNAVAILABLE))
    if missing or denied or rejected:  # as a run would: exit 2, with what to fix
        hints = []
        if rejected:
            hints.append(
                "Stripe rejected the key: check the key in the environment variable named by stripe.api_key_env"
            )
        if missing:
            hints.append(f"{missing} index(es) missing: `reconcile init` creates them")
        if denied:
            hints.append(f"{denied} Stripe endpoint(s) the key may not read: give it the permission named")
        click.echo(f"reconcile: check: {'; '.join(hints)}", err=True)
        sys.exit(int(ExitCode.BAD_CONFIG))
    click.echo("all checks passed")


@main.command()
@click.option(
    "--report-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default="reports",
    show_default=True,
    help="Where the demo's report goes.",
)
def demo(report_dir: Path) -> None:
    """Run the whole job on a seeded demo shop: local Stripe stand-in and embedded MongoDB."""
    from reconcile.demo.shop import run_demo

    try:
        code = run_demo(report_dir)
    except ReconcileError as error:
        fail(error)
    sys.exit(int(code))


from reconcile.cli_items import items, undo  # noqa: E402  (its commands reach back here for _open_db)

main.add_command(items)
main.add_command(undo)

if __name__ == "__main__":
    main()
