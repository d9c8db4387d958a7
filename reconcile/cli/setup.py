"""`reconcile init` (the indexes) and `reconcile check` (MongoDB, the indexes, the Stripe key's permissions).

An advised index missing (one the job works without, e.g. on the decisions collection, added after
many installs ran `init`) is a warning naming `reconcile init`; `check` still exits 0 for it."""

from __future__ import annotations

import sys
from typing import NoReturn

import click

from reconcile.cli.common import fail, open_db
from reconcile.errors import ReconcileError
from reconcile.exitcodes import ExitCode


@click.command()
@click.pass_context
def init(ctx: click.Context) -> None:
    """Create the MongoDB indexes the job needs (idempotent; safe on a live database)."""
    from reconcile.store import indexes

    try:
        config, db = open_db(ctx)
        done = indexes.create(db, config.mongodb, config.orders)
    except ReconcileError as error:
        fail(error)
    for spec, created in done:
        click.echo(f"{'created' if created else 'present'}  {spec.text():<50} {spec.why}")


@click.command()
@click.pass_context
def check(ctx: click.Context) -> None:
    """Check the setup: MongoDB reachable, the indexes the job needs, the Stripe key's read permissions."""
    from reconcile.run import settings
    from reconcile.store import indexes
    from reconcile.stripe import permissions as setup_check
    from reconcile.stripe import pull as stripe_pull

    missing = denied = advised = 0
    unreachable = rejected = False
    try:
        config, db = open_db(ctx)
        click.echo("MongoDB: connected")
        for spec in indexes.required(config.mongodb, config.orders):
            ok = indexes.present(db, spec)
            missing += not ok and not spec.advised
            advised += not ok and spec.advised
            state = "ok     " if ok else "advised" if spec.advised else "MISSING"
            click.echo(f"  index {state} {spec.text():<50} {spec.why}")
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
        _unfit(missing, denied, rejected, advised)
    if advised:  # the job works without them (an install from before they were added): a warning, exit 0
        click.echo(f"reconcile: check: warning: {_advised_hint(advised)}", err=True)
    click.echo("all checks passed" + (f" ({advised} advised index(es) missing)" if advised else ""))


def _advised_hint(advised: int) -> str:
    return f"{advised} advised index(es) missing: `reconcile init` creates them"


def _unfit(missing: int, denied: int, rejected: bool, advised: int = 0) -> NoReturn:
    """What to fix in the setup, on one line, and exit 2."""
    hints = []
    if rejected:
        hints.append("Stripe rejected the key: check the key in the environment variable named by stripe.api_key_env")
    if missing:
        hints.append(f"{missing + advised} index(es) missing: `reconcile init` creates them")
    if denied:
        hints.append(f"{denied} Stripe endpoint(s) the key may not read: give it the permission named")
    click.echo(f"reconcile: check: {'; '.join(hints)}", err=True)
    sys.exit(int(ExitCode.BAD_CONFIG))
