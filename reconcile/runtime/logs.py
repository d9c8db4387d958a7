"""Logging: JSON lines for machines, short human lines for a person at a terminal; never secrets or card data.

stderr gets JSON lines (one per step, with the run id) unless it is a terminal, where it gets short
human lines printed above the live progress line (reconcile/runtime/progress.py); `--log-format json`
keeps JSON on a terminal too. `--log-file PATH` appends the JSON lines to a file whatever stderr is.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import os
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from reconcile.errors import ConfigError
from reconcile.runtime.redact import scrub

if TYPE_CHECKING:
    from rich.console import Console

_run_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("run_id", default=None)
_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}

LOG_FORMATS = ("auto", "human", "json")


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _RESERVED and not k.startswith("_")}


class JsonLinesFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "level": record.levelname.lower(),
            "step": record.getMessage(),
        }
        if _run_id.get():
            line["run_id"] = _run_id.get()
        line.update(_fields(record))
        if record.exc_info and record.exc_info[0] is not None:
            # The exception's type only: messages from drivers can carry URIs with credentials.
            line["exception"] = record.exc_info[0].__name__
        # Last net: whatever a field holds, a secret read from the environment never leaves as text.
        return scrub(json.dumps(line, default=str, ensure_ascii=False))


# Fields a person at a terminal does not read (the log file and JSON lines keep them).
_HUMAN_SKIP = {"seconds", "peak_rss_mb", "orders_in_window_seconds"}


def _human_value(value: Any) -> str | None:
    if value is None or value is False or value == [] or value == {}:
        return None
    if isinstance(value, dict):
        shown = [f"{k} {v}" for k, v in value.items() if v not in (0, None, False, [], {})]
        return ", ".join(shown) or None
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value[:5]) + (f" (+{len(value) - 5} more)" if len(value) > 5 else "")
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10_000:
        return f"{value:,}"
    return str(value)


class HumanFormatter(logging.Formatter):
    """`22:30:01 pull done: charges 2,500, balance_transactions 2,730`; warnings and errors say so first."""

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        level = "" if record.levelno < logging.WARNING else f"{record.levelname.lower()}: "
        parts = []
        for key, value in _fields(record).items():
            text = None if key in _HUMAN_SKIP else _human_value(value)
            if text is not None:
                parts.append(f"{key.replace('_', ' ')} {text}")
        if record.exc_info and record.exc_info[0] is not None:
            parts.append(f"exception {record.exc_info[0].__name__}")
        step = record.getMessage().replace(".", " ").replace("_", " ")
        return scrub(f"{when} {level}{step}" + (f": {'; '.join(parts)}" if parts else ""))


# Steps a person at a terminal does not need a line for (the progress line shows them while they
# run; -v shows them too). JSON lines always have them.
CHATTY_STEPS = frozenset(
    {
        "pull.page_set",
        "pull.sessions_by_payment_intent",
        "pull.payment_intents_of_authorizations",
        "pull.payment_intents_retrieved",
        "load.orders",
        "edge.done",
        "classify.done",
        "repair.batch",
        "lease.acquired",
        "lease.released",
    }
)


class ConsoleHandler(logging.Handler):
    """Human lines through a rich Console: printed above its live progress line, never glued to it.
    Info lines are cut to the terminal's width (the log file has them whole); warnings and errors wrap."""

    def __init__(self, console: Console, verbose: bool = False):
        super().__init__()
        self.console, self.verbose = console, verbose
        self.setFormatter(HumanFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        from rich.text import Text

        if record.levelno < logging.WARNING and not self.verbose and record.getMessage() in CHATTY_STEPS:
            return
        try:
            line = self.format(record)
            if record.levelno < logging.WARNING:
                self.console.print(Text(line), no_wrap=True, overflow="ellipsis")
                return
            # Wrapped by words, later rows indented: the next time stamp starts the next line.
            rows = textwrap.wrap(line, max(20, self.console.width), subsequent_indent="    ") or [""]
            style = "red" if record.levelno >= logging.ERROR else "yellow"
            self.console.print(Text("\n".join(rows), style=style), no_wrap=True, overflow="ellipsis")
        except Exception:  # a log line must never stop the run
            self.handleError(record)


def _open_log_file(path: Path) -> TextIO:
    """Append, creating the file (readable by this user only: it names orders and charges) and its folder."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename and str(exc.filename) != str(path) else ""
        raise ConfigError(
            f"--log-file {path}: cannot append to it: {exc.strerror or type(exc).__name__}{where}"
        ) from None
    return os.fdopen(fd, "a", encoding="utf-8", buffering=1)


class _LogFileHandler(logging.StreamHandler[TextIO]):
    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.stream.close()
        super().close()


def is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def setup_logging(
    level: int = logging.INFO,
    log_format: str = "auto",
    log_file: Path | None = None,
    quiet: bool = False,
    stream: TextIO | None = None,
) -> Console | None:
    """Route the job's log lines; returns the rich Console when stderr gets human lines (for the progress line).

    `quiet`: nothing on stderr (cron mails whatever a job prints; the log file keeps every line).
    """
    stream = sys.stderr if stream is None else stream
    handlers: list[logging.Handler] = []
    console = None
    if not quiet:
        if log_format == "human" or (log_format == "auto" and is_terminal(stream)):
            from rich.console import Console

            console = Console(file=stream, highlight=False, soft_wrap=False)
            handlers.append(ConsoleHandler(console, verbose=level <= logging.DEBUG))
        else:
            handler = logging.StreamHandler(stream)
            handler.setFormatter(JsonLinesFormatter())
            handlers.append(handler)
    if log_file is not None:
        file_handler = _LogFileHandler(_open_log_file(log_file))
        file_handler.setFormatter(JsonLinesFormatter())
        handlers.append(file_handler)
    root = logging.getLogger("reconcile")
    for old in root.handlers:
        if isinstance(old, _LogFileHandler):
            old.close()  # an earlier --log-file (tests invoke the CLI many times in one process)
    root.handlers[:] = handlers
    root.setLevel(level)
    root.propagate = False
    return console


@contextlib.contextmanager
def run_context(run_id: str) -> Iterator[None]:
    """Every log line inside carries this run id."""
    token = _run_id.set(run_id)
    try:
        yield
    finally:
        _run_id.reset(token)
