"""`reconcile demo`: the whole job on a seeded demo shop."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from reconcile.cli.common import fail
from reconcile.errors import ReconcileError


@click.command()
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
