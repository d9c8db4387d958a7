"""Progress of a run's long steps on stderr (pull, load, re-check, repair, report), only on a terminal.

A window pull is many time slices walked side by side (reconcile/stripe/slices.py), so no single
request says how far the pull is: the pull itself reports after each page how much of its
window is done (the seconds no slice still has to walk). The Stripe client is wrapped
(`ProgressClient`, so the pulling code takes no extra argument) and offers `watch_pull`, which
`reconcile/stripe/pull.py` calls when a window pull starts. Other steps call the module's
`step(name, done, total)` at the points they already have; it does nothing unless the CLI
`install`ed a display (a terminal), so code under test and under cron runs as before.

One line shows every pull and step in flight, cut to the terminal's width (a wrapped line would
leave stale rows behind at each update); log lines are printed above it (reconcile/runtime/logs.py).
On a terminal the line is a rich `Live` display (`LiveProgress`); `Progress` itself writes plain
carriage-return updates to any stream (used by tests and by `LiveProgress` for its state).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    # For the type checker the wrapper is the client it stands in for: every other attribute passes through.
    from rich.console import Console
    from stripe import StripeClient as _Wrapped
else:
    _Wrapped = object


# Told after each page of a pull: (pages with objects, objects, fraction of the window done, finished).
PullReport = Callable[[int, int, float, bool], None]


def _clock_text(seconds: float) -> str:
    seconds = int(max(0, seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


@dataclass
class _Pull:
    path: str
    since: int
    started: float
    pages: int = 0
    objects: int = 0
    fraction: float = 0.0


@dataclass
class _Step:
    name: str
    started: float
    done: int = 0
    total: int | None = None


class Progress:
    """The pulls and steps in flight, written as one updating line (carriage return) to `stream`."""

    def __init__(self, stream: TextIO | None, clock: Callable[[], float] = time.monotonic, interval: float = 0.25):
        self.stream, self.clock, self.interval = stream, clock, interval
        self._lock = threading.Lock()
        self._pulls: dict[int, _Pull] = {}
        self._steps: dict[str, _Step] = {}
        self._next = 0
        self._last_write = float("-inf")
        self._open_line = False

    @classmethod
    def for_stream(cls, stream: TextIO) -> Progress | None:
        """A Progress when `stream` is a terminal; None under cron, pipes and files."""
        try:
            return cls(stream) if stream.isatty() else None
        except (AttributeError, ValueError):
            return None

    def watch(self, path: str, since: int, until: int) -> PullReport:
        """A pull of [since, until) started; returns what its pages are reported to."""
        with self._lock:
            token = self._next
            self._next += 1
            self._pulls[token] = _Pull(path, since, self.clock())

        def report(pages: int, objects: int, fraction: float, done: bool) -> None:
            self._report(token, pages, objects, fraction, done)

        return report

    def step(self, name: str, done: int, total: int | None = None) -> None:
        """`done` of `total` units of a step (None: of an unknown number); done >= total ends the step."""
        with self._lock:
            now = self.clock()
            if total is not None and done >= total:
                ended = self._steps.pop(name, None) is not None
                line = self.status_line(now) if ended and self._open_line else None
            else:
                state = self._steps.setdefault(name, _Step(name, now))
                state.done, state.total = done, total
                line = self.status_line(now) if now - self._last_write >= self.interval else None
            if line is not None:
                self._last_write = now
                self._write(line)

    def _report(self, token: int, pages: int, objects: int, fraction: float, done: bool) -> None:
        finished = None
        with self._lock:
            pull = self._pulls.get(token)
            if pull is None:
                return
            now = self.clock()
            fraction = min(1.0, max(0.0, fraction))
            if done:  # the pull's own final figures
                pull.pages, pull.objects, pull.fraction = pages, objects, fraction
            else:  # only forward: the workers' reports may arrive out of the order they were taken in
                pull.pages, pull.objects = max(pull.pages, pages), max(pull.objects, objects)
                pull.fraction = max(pull.fraction, fraction)
            if done:
                del self._pulls[token]
                finished = self._pull_text(pull, now, done=True)
                self._last_write = float("-inf")  # show the pulls still running at once
            elif now - self._last_write >= self.interval:
                self._write(self.status_line(now))
                self._last_write = now
        if finished is not None:  # outside the lock: a display may print it through its own lock
            self._finished(finished)

    def status_line(self, now: float | None = None) -> str:
        """Every pull and step in flight, on one line."""
        now = self.clock() if now is None else now
        parts = [self._pull_text(p, now, done=False) for p in self._pulls.values()]
        parts += [self._step_text(s, now) for s in self._steps.values()]
        return " | ".join(parts)

    def _pull_text(self, pull: _Pull, now: float, done: bool) -> str:
        elapsed = max(now - pull.started, 1e-6)
        rate = pull.objects / elapsed
        pages = f"{pull.pages} page{'s' if pull.pages != 1 else ''}"
        objects = f"{pull.objects:,} object{'s' if pull.objects != 1 else ''}"
        text = f"{pull.path}: {pages}, {objects}, {rate:,.0f}/s"
        if done:
            return text + ", done"
        day = datetime.fromtimestamp(pull.since, UTC).strftime("%Y-%m-%d %H:%M")
        text += f", {pull.fraction:.0%} of the window from {day}"
        if pull.fraction > 0.01:
            text += f", ETA {_clock_text(elapsed * (1 - pull.fraction) / pull.fraction)}"
        return text

    def _step_text(self, step: _Step, now: float) -> str:
        elapsed = max(now - step.started, 1e-6)
        if step.total is None:
            return f"{step.name}: {step.done:,}, {_clock_text(elapsed)}"
        text = f"{step.name}: {step.done:,}/{step.total:,}"
        if step.total and step.done:
            text += f", ETA {_clock_text(elapsed * (step.total - step.done) / step.done)}"
        return text

    def _write(self, line: str) -> None:
        if self.stream is None:
            return
        self.stream.write("\r\x1b[K" + line)
        self.stream.flush()
        self._open_line = True

    def _finished(self, line: str) -> None:
        """A finished pull leaves its last line behind."""
        with self._lock:
            self._write(line)
            self._finish_line()

    def _finish_line(self) -> None:
        if self._open_line and self.stream is not None:
            self.stream.write("\n")
            self.stream.flush()
            self._open_line = False

    def close(self) -> None:
        with self._lock:
            self._finish_line()


class LiveProgress(Progress):
    """The same line as a rich `Live` display on a terminal: redrawn a few times a second, cut to the
    terminal's current width, erased when closed; lines printed through `console` (logs) go above it."""

    def __init__(self, console: Console, clock: Callable[[], float] = time.monotonic):
        from rich.live import Live

        super().__init__(None, clock, interval=0.0)
        self.console = console
        # transient: the line is erased on close, so whatever is printed next starts on a clean row.
        # stdout is left alone (it may be a file: the summary must not land on stderr); stray writes to
        # stderr are printed above the line.
        self._live = Live(
            console=console,
            transient=True,
            refresh_per_second=4,
            get_renderable=self._renderable,
            redirect_stdout=False,
        )
        self._started = False

    def _renderable(self) -> Any:
        from rich.text import Text

        with self._lock:
            line = self.status_line()
        return Text(line, no_wrap=True, overflow="ellipsis", end="")

    def start(self) -> None:
        if not self._started:
            self._live.start()
            self._started = True

    def _write(self, line: str) -> None:  # the Live display redraws from the state itself
        pass

    def _finished(self, line: str) -> None:
        """A finished pull leaves its final figures above the line, as on a plain stream (its log line,
        pull.page_set, is not shown on a terminal)."""
        from rich.text import Text

        self.console.print(Text(line), no_wrap=True, overflow="ellipsis")

    def close(self) -> None:
        if self._started:
            self._started = False
            self._live.stop()


_current: Progress | None = None


def install(progress: Progress | None) -> None:
    """Make `progress` the display `step` reports to (None: none)."""
    global _current
    _current = progress


def current() -> Progress | None:
    return _current


def step(name: str, done: int, total: int | None = None) -> None:
    """Report a long step's progress to the terminal's display, if there is one (see the module doc)."""
    progress = _current
    if progress is not None:
        progress.step(name, done, total)


def stop() -> None:
    """Take the display off the terminal (before a final message: it must not share a row with it)."""
    global _current
    progress, _current = _current, None
    if progress is not None:
        progress.close()


def wrap(client: Any) -> Any:
    """The Stripe client, reporting its window pulls to the installed display (as is without one)."""
    return client if _current is None else ProgressClient(client, _current)


class ProgressClient(_Wrapped):
    """Wraps a StripeClient: window pulls report to a Progress; everything else passes through."""

    def __init__(self, client: Any, progress: Progress):
        self._client, self._progress = client, progress

    def watch_pull(self, path: str, since: int, until: int) -> PullReport:
        return self._progress.watch(path, since, until)

    def raw_request(self, method_: str, url_: str, **params: Any) -> Any:
        return self._client.raw_request(method_, url_, **params)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)
