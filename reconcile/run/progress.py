"""Progress of long pulls on stderr (pages, objects, rate, ETA), only when stderr is a terminal.

A window pull is many time slices walked side by side (reconcile/stripe/slices.py), so no single
request says how far the pull is: the pull itself reports after each page how much of its
window is done (the seconds no slice still has to walk). The Stripe client is wrapped
(`ProgressClient`, so the pulling code takes no extra argument) and offers `watch_pull`, which
`reconcile/stripe/pull.py` calls when a window pull starts.

One updating line shows every pull in flight; a finished pull leaves its final line behind.
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
    from stripe import StripeClient as _Wrapped
else:
    _Wrapped = object

from reconcile.stripe.slices import Progress as PullReport


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


class Progress:
    """Writes one updating line for the pulls in flight to a terminal."""

    def __init__(self, stream: TextIO, clock: Callable[[], float] = time.monotonic, interval: float = 0.25):
        self.stream, self.clock, self.interval = stream, clock, interval
        self._lock = threading.Lock()
        self._pulls: dict[int, _Pull] = {}
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

    def _report(self, token: int, pages: int, objects: int, fraction: float, done: bool) -> None:
        with self._lock:
            pull = self._pulls.get(token)
            if pull is None:
                return
            now = self.clock()
            pull.pages, pull.objects, pull.fraction = pages, objects, min(1.0, max(0.0, fraction))
            if done:
                del self._pulls[token]
                self._write(self._line(pull, now, done=True))
                self._finish_line()
                self._last_write = float("-inf")  # show the pulls still running at once
            elif now - self._last_write >= self.interval:
                self._write(" | ".join(self._line(p, now, done=False) for p in self._pulls.values()))
                self._last_write = now

    def _line(self, pull: _Pull, now: float, done: bool) -> str:
        elapsed = max(now - pull.started, 1e-6)
        rate = pull.objects / elapsed
        pages = f"{pull.pages} page{'s' if pull.pages != 1 else ''}"
        text = f"{pull.path}: {pages}, {pull.objects:,} objects, {rate:,.0f}/s"
        if done:
            return text + ", done"
        day = datetime.fromtimestamp(pull.since, UTC).strftime("%Y-%m-%d %H:%M")
        text += f", {pull.fraction:.0%} of the window from {day}"
        if pull.fraction > 0.01:
            text += f", ETA {_clock_text(elapsed * (1 - pull.fraction) / pull.fraction)}"
        return text

    def _write(self, line: str) -> None:
        self.stream.write("\r\x1b[K" + line)
        self.stream.flush()
        self._open_line = True

    def _finish_line(self) -> None:
        if self._open_line:
            self.stream.write("\n")
            self.stream.flush()
            self._open_line = False

    def close(self) -> None:
        with self._lock:
            self._finish_line()


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
