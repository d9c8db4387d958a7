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

import contextvars
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from reconcile.runtime import interrupt, progress
from reconcile.stripe.slices import PullAborted

log = logging.getLogger(__name__)

T = TypeVar("T")

# Told after each lookup: (done, total). Set by the CLI's progress display (runtime/progress.py); None: nothing.
Report = Callable[[int, int], None]


@dataclass
class FetchStats:
    calls: int = 0
    workers: int = 0
    in_flight_max: int = 0
    seconds: float = 0.0


def _progress(name: str) -> Report:
    """Reports to the progress display's step `name` (runtime/progress.py: nothing unless the CLI shows one)."""
    return lambda done, total: progress.step(name, done, total)


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
    results: list[Any] = [None] * total
    failures: dict[int, BaseException] = {}
    lock = threading.Lock()
    state = {"next": 0, "done": 0, "in_flight": 0}
    started = time.monotonic()

    def work() -> None:
        while True:
            with lock:
                index = state["next"]
                if failures or index >= total:
                    return
                state["next"] = index + 1
            try:
                if abort.is_set():
                    raise PullAborted()
                interrupt.checkpoint("pull")  # between lookups: nothing is half-done here
                with lock:
                    state["in_flight"] += 1
                    stats.in_flight_max = max(stats.in_flight_max, state["in_flight"])
                try:
                    results[index] = calls[index]()
                finally:
                    with lock:
                        state["in_flight"] -= 1
            except BaseException as exc:  # handed to the caller's thread below
                with lock:
                    failures[index] = exc
                return
            with lock:
                state["done"] += 1
                done = state["done"]
            if report is not None:
                report(done, total)

    if stats.workers == 1:
        work()  # one at a time: no thread needed
    else:
        threads = []
        for n in range(stats.workers):
            context = contextvars.copy_context()  # log lines keep the run id
            threads.append(threading.Thread(target=context.run, args=(work,), name=f"fetch{label}:{n}", daemon=True))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    stats.seconds = time.monotonic() - started
    if failures:
        errors = [failures[n] for n in sorted(failures)]
        raise next((e for e in errors if not isinstance(e, PullAborted)), errors[0])
    return results, stats


def run(
    calls: Sequence[Callable[[], T]],
    policy: Any,
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
