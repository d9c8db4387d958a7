"""What the commands share: the error line and exit, option parsing, the database, the group's habits."""

from __future__ import annotations

import contextlib
import getpass
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, overload

import click

from reconcile.config import Config, load_config
from reconcile.errors import ReconcileError
from reconcile.exitcodes import ExitCode
from reconcile.runtime import progress
from reconcile.runtime.redact import one_line
from reconcile.timeutil import parse_duration, parse_when, utcnow

if TYPE_CHECKING:
    from pymongo.database import Database  # pymongo is imported only when a command needs it
    from rich.console import Console

EXIT_CODES_HELP = (
    "Exit codes: 0 nothing needs a person; 1 discrepancies need a person; 2 bad usage or config; "
    "3 Stripe or MongoDB unavailable; 4 another run holds the lease (the line names it); "
    "5 report written but not emailed (the next run resends it); 70 internal error; "
    "130/143 stopped by Ctrl-C/SIGTERM between writes (finished repairs stay, audited)."
)


def fail(error: ReconcileError, exit_code: ExitCode | None = None) -> NoReturn:
    progress.stop()  # the error line gets a row of its own
    click.echo(f"reconcile: error: {one_line(str(error))}", err=True)
    sys.exit(int(exit_code if exit_code is not None else error.exit_code))


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


def parse_option_duration(value: str | None, option: str) -> timedelta | None:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=option) from None


def open_db(ctx: click.Context) -> tuple[Config, Database]:
    """The config named by the group's --config, and its MongoDB database."""
    from reconcile.store import mongo

    config = load_config(ctx.obj["config_path"])
    return config, mongo.connect(config.mongodb_uri(), config.mongodb)


def now_of(ctx: click.Context) -> datetime:
    """Now, or the main command's hidden --now (tests)."""
    text = (ctx.find_root().params or {}).get("now_text")
    if text:
        return parse_option_when(str(text), "--now", utcnow())
    return utcnow()


def os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name in this environment (a container without passwd)
        return "unknown"


def start_live_progress(ctx: click.Context, console: Console) -> None:
    """A terminal gets the live progress rows; they stop when the command closes."""
    from reconcile.runtime.progress import LiveProgress

    live = LiveProgress(console)
    live.start()
    progress.install(live)
    ctx.call_on_close(progress.stop)


# The group's options a person may also write after a subcommand (`reconcile init --config x.toml`).
GLOBAL_OPTIONS = ("--config", "--log-format", "--log-file", "--quiet", "-q", "--verbose", "-v")


def _subcommand_at(group: click.Group, args: list[str]) -> int | None:
    """Where the subcommand is in `args`, skipping the values of the group's options; None without one."""
    takes_value = _takes_value(group)
    at = 0
    while at < len(args):
        arg = args[at]
        if arg == "--":
            return None
        if arg in group.commands:
            return at
        at += 2 if takes_value.get(arg) else 1
    return None


def _takes_value(group: click.Group) -> dict[str, bool]:
    return {
        name: not param.is_flag
        for param in group.params
        if isinstance(param, click.Option)
        for name in (*param.opts, *param.secondary_opts)
    }


def hoist_global_options(group: click.Group, args: list[str]) -> list[str]:
    """`args` with the group's global options that follow a subcommand moved before it, unless the
    subcommand has an option of that name itself. Works for subcommands added with `main.add_command`."""
    at = _subcommand_at(group, args)
    if at is None:
        return args
    takes_value = _takes_value(group)
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


# The Stripe key variable only a config `reconcile demo` wrote names (reconcile.demo.kept_shop.KEY_ENV).
DEMO_KEY_ENV = "RECONCILE_DEMO_STRIPE_KEY"


@contextlib.contextmanager
def serve_demo_shop(ctx: click.Context) -> Iterator[None]:
    """With the config `reconcile demo` wrote, the demo shop's servers run for the length of the command
    (`reconcile demo` itself makes a new shop). Any other config: nothing, and the demo package is not imported."""
    path = ctx.params.get("config_path")
    if ctx.invoked_subcommand == "demo" or not isinstance(path, Path) or not _names_demo_key(path):
        yield
        return
    from reconcile.demo.kept_shop import serve_kept_shop

    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(serve_kept_shop(path))
        except ReconcileError as error:
            fail(error)
        yield


def _names_demo_key(path: Path) -> bool:
    try:
        return DEMO_KEY_ENV in path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False  # loading the config says what is wrong with it


class ReconcileGroup(click.Group):
    """Global options after a subcommand and --quiet's closing `(exit N)` line (the demo shop's servers: the
    group's callback, where click names the subcommand, enters `serve_demo_shop` for the context's length)."""

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
