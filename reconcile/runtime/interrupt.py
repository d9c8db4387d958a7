"""Stopping a run cleanly on SIGTERM or Ctrl-C: finish the write in progress, stop at the next checkpoint.

The signal handler only records the request; the job calls `checkpoint(step)` where stopping
is safe (between pages, between steps, between repair batches), which raises `Interrupted`.
`Interrupted` is a ReconcileError, so it unwinds through every `with` block around the run:
that is where a lease is released. A second signal stops at once (KeyboardInterrupt): every
write is compare-and-set and audited, so even that leaves nothing the next run cannot finish.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator

from reconcile.errors import Interrupted
from reconcile.exitcodes import ExitCode

log = logging.getLogger(__name__)

_stop = threading.Event()
_signal_name: str | None = None
_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopNow(KeyboardInterrupt):
    """A second signal while stopping: stop at once, wherever the run is."""

    def __init__(self, signal_name: str):
        super().__init__(f"second {signal_name}: stopping at once")
        self.signal_name = signal_name
        self.exit_code = ExitCode.INTERRUPTED if signal_name == "SIGINT" else ExitCode.TERMINATED
        # The invocation wrote --summary-json on its way out (listing what it changed): not overwritten.
        self.summary_written = False

    def line(self) -> str:
        """The closing line, for stderr and the summary."""
        return (
            f"stopped at once by a second {self.signal_name}; every change is compare-and-set and "
            "audited, the next run completes the rest"
        )


def request_stop(signal_name: str = "SIGTERM") -> None:
    """Ask the running job to stop at its next checkpoint."""
    global _signal_name
    _signal_name = _signal_name or signal_name
    _stop.set()


def stop_requested() -> bool:
    return _stop.is_set()


def reset() -> None:
    global _signal_name
    _signal_name = None
    _stop.clear()


def checkpoint(step: str) -> None:
    """Raise Interrupted if a stop was requested; called only where stopping leaves nothing half-done."""
    if _stop.is_set():
        raise Interrupted(_signal_name or "SIGTERM", step)


def wait(seconds: float) -> None:
    """Sleep, but wake at once when a stop is requested (backoff pauses must not delay a shutdown)."""
    _stop.wait(max(0.0, seconds))


def _handler(signum: int, frame: object) -> None:
    name = signal.Signals(signum).name
    if _stop.is_set():
        raise StopNow(name)
    log.warning("run.stop_requested", extra={"signal": name})
    request_stop(name)


@contextlib.contextmanager
def handle_signals() -> Iterator[None]:
    """SIGINT and SIGTERM request a clean stop while inside; previous handlers come back after."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread (e.g. a test runner's worker)
        return
    previous = {sig: signal.getsignal(sig) for sig in _SIGNALS}
    reset()
    for sig in _SIGNALS:
        signal.signal(sig, _handler)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        reset()
