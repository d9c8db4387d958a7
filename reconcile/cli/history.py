"""`reconcile runs` and `reconcile show RUN_ID`: the run history."""

from __future__ import annotations

import json

import click

from reconcile.cli.common import fail, open_db
from reconcile.errors import ConfigError, ReconcileError


@click.command()
@click.option(
    "--limit", default=20, show_default=True, type=click.IntRange(1, 1000), help="How many runs, newest first."
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="JSON Lines instead of a table: one JSON object per run, one per line, in the summary's keys "
    "(ISO-8601 UTC times; `totals` in integer minor units by currency code).",
)
@click.pass_context
def runs(ctx: click.Context, limit: int, as_json: bool) -> None:
    """List recent runs: window, status, exit code, what needed a person, email, who started them."""
    from reconcile.report import history
    from reconcile.store import runs as state

    try:
        config, db = open_db(ctx)
        docs = state.recent(db[config.mongodb.runs_collection], limit)
    except ReconcileError as error:
        fail(error)
    if as_json:
        for doc in docs:  # the summary's keys and time format
            click.echo(json.dumps(history.as_json(doc), default=str, sort_keys=True))
        return
    for line in history.table(docs):
        click.echo(line)


@click.command()
@click.argument("run_id")
@click.pass_context
def show(ctx: click.Context, run_id: str) -> None:
    """Print one run's summary (RUN_ID as listed by `reconcile runs`, a unique prefix of it, or a catch-up's
    invocation id: each of its windows, oldest first)."""
    from reconcile.report import history
    from reconcile.store import runs as state

    try:
        config, db = open_db(ctx)
        runs = db[config.mongodb.runs_collection]
        doc, matching = state.match_run(runs, run_id)
        # A catch-up's own id names its windows (`ID-w1`, `ID-w2`, ...): show them all, oldest first.
        windows = state.invocation_runs(runs, run_id) if doc is None else []
    except ReconcileError as error:
        fail(error)
    if windows:
        for index, window in enumerate(reversed(windows)):
            if index:
                click.echo("")
            for line in history.details(window):
                click.echo(line)
        return
    if doc is None and matching:
        fail(ConfigError(f"ambiguous: {matching} runs match {run_id!r}; give more of the id (see `reconcile runs`)"))
    if doc is None:
        fail(ConfigError(f"no run {run_id!r} in the history (see `reconcile runs`)"))
    for line in history.details(doc):
        click.echo(line)
