"""The `reconcile` command: parse options, build the clients, run the job, map errors to exit codes."""

from __future__ import annotations

import logging
import sys
from datetime import datetime
from pathlib import Path

import click

from reconcile import interrupt
from reconcile.config import load_config
from reconcile.errors import ConfigError, Interrupted, ReconcileError
from reconcile.exitcodes import ExitCode
from reconcile.logs import setup_logging
from reconcile.redact import scrub
from reconcile.timeutil import fmt, parse_when, utcnow

log = logging.getLogger("reconcile.cli")


def parse_option_when(value: str | None, option: str, now: datetime) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_when(value, now)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=option) from None


def resolve_window(config, since: datetime | None, until: datetime | None, now: datetime) -> tuple[datetime, datetime]:
    if since is not None and since >= now:
        raise ConfigError(f"--since {fmt(since)} is in the future (now is {fmt(now)}): there is nothing to reconcile yet")
    until = until or now
    if until > now:
        until = now  # nothing exists after now; a future end would only mislabel the report
    since = since or until - config.window.lookback
    if since >= until:
        raise ConfigError(f"--since {fmt(since)} is not before --until {fmt(until)}")
    return since, until


def fail(error: ReconcileError) -> None:
    click.echo(f"reconcile: error: {scrub(str(error))}", err=True)
    sys.exit(int(error.exit_code))


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), default="reconcile.toml",
              show_default=True, help="TOML config file (see config.example.toml).")
@click.option("--since", metavar="WHEN", help="Window start: ISO-8601 (naive = UTC) or a span back from now (90m, 6h, 3d). Default: --until minus window.lookback.")
@click.option("--until", metavar="WHEN", help="Window end, excluded. Same forms as --since. Default: now.")
@click.option("--dry-run", is_flag=True, help="Change nothing; report what would be repaired.")
@click.option("--report-dir", type=click.Path(file_okay=False, path_type=Path), help="Where the HTML and CSV reports go (default: report.dir).")
@click.option("--summary-json", type=click.Path(dir_okay=False, path_type=Path), help="Also write a JSON summary of the run here.")
@click.option("-v", "--verbose", is_flag=True, help="Log debug lines too.")
@click.version_option(package_name="reconcile")
@click.pass_context
def main(ctx: click.Context, config_path, since, until, dry_run, report_dir, summary_json, verbose) -> None:
    """Reconcile MongoDB orders with Stripe charges for a window, repair stuck orders, report the rest.

    Exit codes: 0 nothing needs a person; 1 discrepancies need a person; 2 bad usage or config;
    3 Stripe or MongoDB unavailable; 70 internal error; 130/143 stopped by Ctrl-C/SIGTERM.
    """
    setup_logging(logging.DEBUG if verbose else logging.INFO)
    if ctx.invoked_subcommand is not None:
        return
    from reconcile import job, mongo, stripe_pull  # heavy imports only when a run happens

    now = utcnow()
    since = parse_option_when(since, "--since", now)
    until = parse_option_when(until, "--until", now)
    try:
        config = load_config(config_path)
        window = resolve_window(config, since, until, now)
        api_key, mongodb_uri = config.stripe_api_key(), config.mongodb_uri()
    except ConfigError as error:
        fail(error)  # before the run: one line, nothing touched
    try:
        with interrupt.handle_signals():
            client = stripe_pull.make_client(api_key, config.stripe)
            db = mongo.connect(mongodb_uri, config.mongodb)
            request = job.RunRequest(
                since=window[0], until=window[1], now=now, dry_run=dry_run,
                report_dir=report_dir or Path(config.report.dir), summary_json=summary_json,
            )
            # One run at a time: a lease taken here (`with lease(...):`) is released on every way out,
            # Interrupted (SIGTERM, Ctrl-C) included, since all of them unwind through this block.
            result = job.run(config, client, db, request)
    except Interrupted as error:
        log.warning("run.interrupted", extra={"signal": error.signal_name, "during": error.step, "exit_code": int(error.exit_code)})
        fail(error)
    except interrupt.StopNow as stop:
        log.warning("run.interrupted", extra={"signal": stop.signal_name, "during": "any step (second signal)", "exit_code": int(stop.exit_code)})
        click.echo(
            f"reconcile: stopped at once by a second {stop.signal_name}; every change is compare-and-set and "
            "audited, the next run completes the rest", err=True,
        )
        sys.exit(int(stop.exit_code))
    except ReconcileError as error:
        log.error("run.failed", extra={"error": str(error), "exit_code": int(error.exit_code)})
        fail(error)
    except Exception as error:  # a bug: say so plainly, never exit 1 ("discrepancies") by accident
        log.exception("run.crashed")
        click.echo(f"reconcile: internal error: {type(error).__name__}: {scrub(str(error))}", err=True)
        sys.exit(int(ExitCode.INTERNAL_ERROR))
    print_summary(result.summary)
    sys.exit(int(result.exit_code))


def print_summary(summary: dict) -> None:
    counts = ", ".join(f"{k} {v}" for k, v in summary["counts"].items() if v)
    prefix = "DRY RUN: " if summary["dry_run"] else ""
    click.echo(f"{prefix}{summary['window']['since']} to {summary['window']['until']}: {counts or 'nothing in window'}")
    click.echo(f"needs attention: {summary['needs_attention']}; report: {summary['report']['html']}")


@main.command()
@click.option("--report-dir", type=click.Path(file_okay=False, path_type=Path), default="reports", show_default=True,
              help="Where the demo's report goes.")
def demo(report_dir: Path) -> None:
    """Run the whole job on a seeded demo shop: local Stripe stand-in and embedded MongoDB."""
    from reconcile.demo import run_demo

    try:
        code = run_demo(report_dir)
    except ReconcileError as error:
        fail(error)
    sys.exit(int(code))


if __name__ == "__main__":
    main()
