"""One concurrent fetcher for every by-id lookup: re-checks, the edge look, movements' charges, the
PaymentIntents and sessions of charges or orders.

Each lookup is one request (or one short filtered list, e.g. the charges of a PaymentIntent), so one
at a time they cost a round trip each and leave the budget idle. Here they go side by side on a few
worker threads, each request through `pull.request`: the run's shared budget (budget.py) and its 429
handling are the list pulls' own, so retrieves and lists together never ask for more than the
configured rates. Results come back in the input order, whatever order the answers arrive in.

Stopping: a failed lookup stops the others from starting (its error is raised, the earliest in the
input order when several fail); the run's `policy.abort` (another pull failed) and a stop request
(interrupt.py) are looked at before every request.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from reconcile.runtime import interrupt, progress
from reconcile.stripe.slices import PullAborted, daemon_thread

log = logging.getLogger(__name__)

T = TypeVar("T")

# Told after each lookup: (done, total). Set by the CLI's progress display (runtime/progress.py); None: nothing.
Report = Callable[[int, int], None]


class Policy(Protocol):
    """What `run` takes of the run's retry policy (pull.RetryPolicy, which imports this module)."""

    abort: threading.Event  # set: stop before the next request

    def workers(self) -> int: ...


@dataclass
class FetchStats:
    calls: int = 0
    workers: int = 0
    in_flight_max: int = 0
    seconds: float = 0.0


def _progress(name: str) -> Report:
    """Reports to the progress display's step `name` (runtime/progress.py: nothing unless the CLI shows one)."""
    return lambda done, total: progress.step(name, done, total)


class _Lookups(Generic[T]):
    """One `each` in progress: which call starts next, the results and failures so far."""

    def __init__(self, calls: Sequence[Callable[[], T]], abort: threading.Event, report: Report | None) -> None:
        self.calls = calls
        self.total = len(calls)
        self.abort = abort
        self.report = report
        self.results: list[Any] = [None] * self.total
        self.failures: dict[int, BaseException] = {}
        self.lock = threading.Lock()
        self.next = 0
        self.done = 0
        self.in_flight = 0
        self.in_flight_max = 0

    def work(self) -> None:
        """One worker: calls not yet started, one after another, until none is left or one failed."""
        while (index := self._claim()) is not None:
            try:
                self.results[index] = self._call(index)
            except BaseException as exc:  # handed to the caller's thread by raise_failure
                with self.lock:
                    self.failures[index] = exc
                return
            self._count_done()

    def _claim(self) -> int | None:
        with self.lock:
            index = self.next
            if self.failures or index >= self.total:
                return None
            self.next = index + 1
            return index

    def _call(self, index: int) -> T:
        if self.abort.is_set():
            raise PullAborted()
        interrupt.checkpoint("pull")  # between lookups: nothing is half-done here
        with self.lock:
            self.in_flight += 1
            self.in_flight_max = max(self.in_flight_max, self.in_flight)
        try:
            return self.calls[index]()
        finally:
            with self.lock:
                self.in_flight -= 1

    def _count_done(self) -> None:
        with self.lock:
            self.done += 1
            done = self.done
        if self.report is not None:
            self.report(done, self.total)

    def raise_failure(self) -> None:
        """The earliest failure in call order; a PullAborted only when nothing else failed."""
        if self.failures:
            errors = [self.failures[n] for n in sorted(self.failures)]
            raise next((e for e in errors if not isinstance(e, PullAborted)), errors[0])


def each(
    calls: Sequence[Callable[[], T]],
    workers: int,
    abort: threading.Event,
    label: str = "",
    report: Report | None = None,
) -> tuple[list[T], FetchStats]:
    """Every call's result, in the calls' order, with up to `workers` running at once.

    A call that raises stops the calls not yet started; the earliest failure (in call order) is raised
    (a PullAborted only when nothing else failed). `abort` set from outside stops it with PullAborted.
    """
    total = len(calls)
    stats = FetchStats(calls=total, workers=max(1, min(workers, total)))
    if not total:
        return [], stats
    lookups = _Lookups(calls, abort, report)
    started = time.monotonic()
    if stats.workers == 1:
        lookups.work()  # one at a time: no thread needed
    else:
        threads = [daemon_thread(lookups.work, f"fetch{label}:{n}") for n in range(stats.workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    stats.seconds = time.monotonic() - started
    stats.in_flight_max = lookups.in_flight_max
    lookups.raise_failure()
    return lookups.results, stats


def run(
    calls: Sequence[Callable[[], T]],
    policy: Policy,
    label: str,
    endpoints: dict[str, int] | None = None,
    *,
    step: str | None = "",
) -> list[T]:
    """`each` under the run's policy: its workers, its abort, a progress step and a log line named by
    `label` (a path, or e.g. "re-check"). `step`: the progress step's name ("": the label; None: no
    step, the caller reports its own). `endpoints`: the requests the calls make per budget endpoint,
    when each call is one request (for the log; the bench's floor)."""
    if not calls:
        return []
    report = _progress(step or label) if step is not None else None
    if report is not None:
        report(0, len(calls))
    results, stats = each(calls, policy.workers(), policy.abort, label, report)
    log.info(
        "fetch.done",
        extra={
            "what": label,
            "count": stats.calls,
            "workers": stats.workers,
            "in_flight_max": stats.in_flight_max,
            "seconds": round(stats.seconds, 3),
            "endpoints": endpoints or {},
        },
    )
    return results
