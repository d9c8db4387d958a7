"""`python -m reconcile.cli`: the `reconcile` command."""

from reconcile.cli import main

main()
