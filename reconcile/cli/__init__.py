"""The `reconcile` command: the group's options, the live progress and logging, and its subcommands.

Each command lives in a module of its own (job: the run itself; history: runs, show; setup: init, check;
items: items, undo; demo); what they share is in common.
"""

from __future__ import annotations

import logging
from pathlib import Path

import click

from reconcile.cli import demo, history, items, payouts, setup
from reconcile.cli.common import EXIT_CODES_HELP, ReconcileGroup, fail, serve_demo_shop, start_live_progress
from reconcile.cli.job import RunOptions, run_job
from reconcile.config import EMAIL_SEND
from reconcile.errors import ConfigError
from reconcile.runtime.logs import LOG_FORMATS, setup_logging


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
@click.option(
    "--bank-statement",
    "bank_statements",
    multiple=True,
    metavar="FILE",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A bank statement (OFX, MT940, camt.053, BAI2 or CSV) to match the payouts to; repeatable, "
    "besides bank.statements. Read before anything else, never changed (docs/bank.md).",
)
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
    bank_statements: tuple[Path, ...],
    now_text: str | None,
    verbose: bool,
    log_format: str,
    log_file: Path | None,
    quiet: bool,
) -> None:
    """Reconcile MongoDB orders with Stripe charges for a window, repair stuck orders, report the rest.

    Each payout created in the window is traced to its transactions and orders; with bank statements
    (--bank-statement, bank.statements) each is ticked off against its deposit.

    Without --since, a run continues where the last completed run ended (minus window.overlap) and
    catches up after a pause in sub-windows of window.max_span. One run at a time: a lease in
    MongoDB keeps a manual backfill and the hourly run apart.

    Subcommands: runs, show RUN_ID, init, check, demo, items, undo, payouts.
    """
    try:
        console = setup_logging(logging.DEBUG if verbose else logging.INFO, log_format, log_file, quiet)
    except ConfigError as error:
        fail(error)
    ctx.obj = {"config_path": config_path}
    ctx.with_resource(serve_demo_shop(ctx))  # closed when the command (and any subcommand) ends
    if console is not None and console.is_terminal and ctx.invoked_subcommand in (None, "demo"):
        start_live_progress(ctx, console)
    if ctx.invoked_subcommand is not None:
        return
    run_job(
        RunOptions(
            config_path=config_path,
            since_text=since_text,
            until_text=until_text,
            now_text=now_text,
            dry_run=dry_run,
            report_dir=report_dir,
            summary_json=summary_json,
            wait=wait,
            email_send=email_send,
            trigger=trigger,
            quiet=quiet,
            bank_statements=bank_statements,
        )
    )


for command in (
    history.runs,
    history.show,
    setup.init,
    setup.check,
    demo.demo,
    items.items,
    items.undo,
    payouts.payouts,
):
    main.add_command(command)

__all__ = ["EXIT_CODES_HELP", "main"]
