"""`reconcile payouts` and `reconcile payouts show PO_ID`: payouts from Stripe with what each paid out.

Read-only: Stripe, and the orders to join a charge to (by the charge id stored on the order); nothing is
written to MongoDB and no lease is taken. Thin: the reads are run/payouts.py's, the words report/payouts.py's.
"""

from __future__ import annotations

import csv
import json
import sys
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import click

from reconcile.cli.common import fail, now_of, open_db, parse_option_when
from reconcile.config import load_config
from reconcile.errors import ConfigError, ReconcileError

if TYPE_CHECKING:
    from reconcile.decide.payouts import Payout, PayoutTxn

DEFAULT_SPAN = timedelta(days=30)


@click.group(invoke_without_command=True)
@click.option("--since", "since_text", metavar="WHEN", help="Payouts created from WHEN (default: 30 days ago).")
@click.option("--until", "until_text", metavar="WHEN", help="Payouts created before WHEN (default: now).")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="JSON Lines instead of a table: one JSON object per payout, one per line, with the summary's "
    "`payouts` fields (amounts in integer minor units with the currency code).",
)
@click.option("--csv", "as_csv", is_flag=True, help="CSV: one row per payout (amounts in major units).")
@click.option(
    "--bank-statement",
    "bank_statements",
    multiple=True,
    metavar="FILE",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A bank statement to match the payouts to (repeatable, besides bank.statements): each payout's "
    "deposit is shown, and so is every Stripe deposit that no listed payout explains.",
)
@click.pass_context
def payouts(
    ctx: click.Context,
    since_text: str | None,
    until_text: str | None,
    as_json: bool,
    as_csv: bool,
    bank_statements: tuple[Path, ...],
) -> None:
    """List payouts from Stripe: status, arrival date, amount, the charges and orders in each (read-only)."""
    if ctx.invoked_subcommand is not None:
        return
    from reconcile.report import payouts as words
    from reconcile.run import bank as bank_run
    from reconcile.run import payouts as payouts_run

    if as_json and as_csv:
        raise click.UsageError("--json and --csv: choose one")
    now = now_of(ctx)
    until = parse_option_when(until_text, "--until", now) or now
    since = parse_option_when(since_text, "--since", now) or until - DEFAULT_SPAN
    if since >= until:
        fail(ConfigError("--since must be before --until"))
    try:
        config = load_config(ctx.obj["config_path"])
        # Read before Stripe is asked anything: a file the job cannot read is one line, exit 2.
        statements = bank_run.statements_of(config.bank, bank_statements)
    except ReconcileError as error:
        fail(error)
    out = csv.writer(sys.stdout, lineterminator="\r\n") if as_csv else None
    if out is not None:
        out.writerow(words.LIST_CSV_COLUMNS)
    try:
        config, db = open_db(ctx)
        listed = payouts_run.list_payouts(payouts_run.command_scope(config, db), since, until, now, statements)
        shown = 0
        for payout, itemized, bank in listed.rows:
            shown += 1
            if as_json:
                click.echo(json.dumps(words.payout_json(payout, itemized, bank), sort_keys=True))
            elif out is not None:
                out.writerow(words.list_csv_row(payout, itemized, bank))
            else:
                click.echo(words.table_line(payout, itemized, bank))
        if not shown and out is None and not as_json:
            click.echo(words.none_line(since, until))
        for line in listed.unexplained:  # JSON Lines and CSV stay one payout a line; the table says them
            if out is None and not as_json:
                click.echo(f"not explained by a payout listed: {line}")
            else:
                click.echo(f"reconcile: {line}", err=True)
    except ReconcileError as error:
        fail(error)


@payouts.command()
@click.argument("payout_id")
@click.option("--csv", "as_csv", is_flag=True, help="CSV: one row per transaction, the payouts CSV's columns.")
@click.pass_context
def show(ctx: click.Context, payout_id: str, as_csv: bool) -> None:
    """One payout's every transaction with its charge and order (read-only)."""
    from reconcile.report import payouts as words
    from reconcile.run import payouts as payouts_run

    out = csv.writer(sys.stdout, lineterminator="\r\n") if as_csv else None
    if out is not None:
        out.writerow(words.CSV_COLUMNS)

    def rows(payout: Payout, txns: list[PayoutTxn]) -> None:
        for t in txns:
            if out is not None:
                out.writerow(words.csv_row(payout, t))
            else:
                click.echo(words.txn_line(t))

    try:
        config, db = open_db(ctx)
        found = payouts_run.show_payout(payouts_run.command_scope(config, db), payout_id, rows)
    except ReconcileError as error:
        fail(error)
    if found is None:
        fail(ConfigError(f"no payout {payout_id!r} in Stripe (see `reconcile payouts`)"))
    if out is None:
        for line in words.show_lines(*found):
            click.echo(line)
