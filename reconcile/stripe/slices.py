"""Pulling one list endpoint's window concurrently: time slices, each paged by its cursor.

Stripe lists newest first and pages by cursor, so one cursor walk is one request at a time. To
have several requests in flight the window [since, until) is cut into time slices walked side
by side. The cut is made where the data is: the whole window is asked for first; a page that
says there is more splits what is left below it among the idle workers, in equal time pieces.
A worker that falls idle with nothing queued takes the lower half of the running slice with the
most pages left at once, even while that slice's request is out: at the end of a window the
slices still walking, one page after another, set its length. So a dense hour is shared out
however the objects are spread, and a small window costs one request.

How many workers: the pull starts with the caller's count and asks ``want_workers`` after each
page how many it should have; it starts more up to that (pull.py asks for the endpoint's rate
times its requests' mean round trip, so slow answers do not leave the budget idle).

Exactly the sequential set, in the sequential order: when a slice with a cursor at second ``c``
is split, the seconds below ``c`` go to new slices with no cursor, while the slice keeps walking
its cursor through the rest of second ``c`` (objects sharing a second are only ever listed by
one slice). A page asked for before its slice's lower seconds were taken keeps only its objects
at or above the new bound, and ends that slice if it had any below (Stripe lists newest first,
so everything after them is below too). Slices cover disjoint seconds, so the pages sort back
into Stripe's own order.

That narrowing is right only for a list Stripe documents as newest first (charges, balance
transactions, refunds). Other lists (PaymentIntents, Checkout Sessions, disputes: "Returns a
list") are walked with ``ordered=False``: each slice keeps its time range fixed and follows its
cursor alone. A window that needs more than one page is then cut once, up front, into fixed time
slices (the first page is set aside and the slices list it again), and no slice is ever split.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from reconcile.errors import StripeListIncomplete
from reconcile.runtime.progress import PullReport
from reconcile.stripe.wire import Params, StripeObject

log = logging.getLogger(__name__)

T = TypeVar("T")
PAGE_SIZE = 100
# A new slice should be worth at least this many pages: each one ends on a part-full page.
MIN_PAGES_PER_SLICE = 2.0
# At the end of a window (no more pages left per worker than this, all slices together), an idle worker
# takes the lower half of the running slice with the most pages left, if at least MIN_PAGES_TO_TAKE.
# Before that, an idle worker waits for the next page of any slice to split it (_maybe_split): a cut
# costs a part-full page, and a pull with workers to spare would keep cutting.
END_PAGES_PER_WORKER = 1.5
MIN_PAGES_TO_TAKE = 2.0
# Workers are added only when asked for at least this many times those running: each new worker
# cuts a slice, and each cut costs a part-full page.
GROW_STEP = 1.2
# Fixed slices per worker for a list in no promised order (cut once, never split later).
UNORDERED_SLICES_PER_WORKER = 4

FetchPage = Callable[[Params], StripeObject]
# How many workers the pull should have now (asked after each page); more are started up to it, none stopped.
WantWorkers = Callable[[], int]


class PullAborted(Exception):
    """Another pull of the same run failed; this one stopped early (its error is the real one)."""


@dataclass(eq=False)  # compared and hashed by identity: a slice is a walk in progress
class _Slice:
    since: int  # first second, inclusive
    until: int  # last second, exclusive
    number: int  # creation order, breaks ties when sorting pages back
    cursor: str | None = None
    pages: int = 0
    seen: set[str] = field(default_factory=set)
    density: float | None = None  # objects per second on its last page (None: no page yet)


@dataclass
class PullStats:
    requests: int = 0
    slices: int = 1
    objects: int = 0
    pages: int = 0  # pages with objects
    workers: int = 0  # worker threads at the end (more are started when `want_workers` asks)
    seconds: float = 0.0  # the pull's wall time
    fetch_seconds: float = 0.0  # summed over requests: time in `fetch` (the budget's wait and the round trip)
    cpu_seconds: float = 0.0  # the workers' own CPU (thread time): requests, parsing, page checks, rows
    tail_seconds: float = 0.0  # from the last time work was shared out (a split) to the end

    @property
    def in_flight(self) -> float:
        """Mean requests in `fetch` at once over the pull (Little's law)."""
        return self.fetch_seconds / self.seconds if self.seconds else 0.0


# Told after each page: (pages with objects, objects, fraction of the window done, finished).
Progress = PullReport


class _Pull(Generic[T]):
    def __init__(
        self,
        fetch: FetchPage,
        workers: int,
        on_page: Callable[[list[StripeObject]], T],
        abort: threading.Event | None,
        label: str,
        progress: Progress | None = None,
        ordered: bool = True,
        want_workers: WantWorkers | None = None,
    ) -> None:
        self.fetch = fetch
        self.want_workers = want_workers
        self.threads: list[threading.Thread] = []
        self.running = 0  # worker threads not yet finished
        self.ordered = ordered
        self.progress = progress
        self.live: set[_Slice] = set()  # queued or being walked
        self.seconds = 1
        self.workers = workers
        self.on_page = on_page
        self.abort = abort
        self.label = label
        self.cond = threading.Condition()
        self.queue: list[_Slice] = []
        self.active = 0
        self.error: BaseException | None = None
        self.results: list[tuple[tuple[int, int, int], T]] = []
        self.stats = PullStats()
        self.started = self.shared = time.monotonic()  # `shared`: when work was last split out

    # --------------------------------------------------------------- scheduling

    def run(self, since: int, until: int) -> list[T]:
        first = _Slice(since, until, 0)
        self.queue.append(first)
        self.live.add(first)
        self.seconds = max(1, until - since)
        with self.cond:
            self._start_workers(self.workers)
            while self.running:
                self.cond.wait()
        for thread in self.threads:
            thread.join()
        self.stats.workers = self.workers
        ended = time.monotonic()
        self.stats.seconds, self.stats.tail_seconds = ended - self.started, ended - self.shared
        if self.error is not None:
            raise self.error
        if self.progress is not None:
            self.progress(self.stats.pages, self.stats.objects, 1.0, True)
        self.results.sort(key=lambda item: item[0])
        return [value for _, value in self.results]

    def _start_workers(self, count: int) -> None:
        """Start `count` more worker threads (called holding the lock)."""
        for _ in range(count):
            thread = daemon_thread(self._worker, f"pull{self.label}:{len(self.threads)}")
            self.threads.append(thread)
            self.running += 1
            thread.start()

    def _grow(self) -> None:
        """Start the workers `want_workers` asks for beyond those running (never fewer): when requests take
        longer than the worker count assumed, more must be in flight to keep the budget busy."""
        if self.want_workers is None:
            return
        want = self.want_workers()
        with self.cond:
            if want >= self.workers * GROW_STEP and self.error is None:
                self._start_workers(want - self.workers)
                self.workers = want

    def _worker(self) -> None:
        try:
            self._work()
        finally:
            with self.cond:
                self.running -= 1
                self.cond.notify_all()

    def _work(self) -> None:
        while True:
            with self.cond:
                piece = self._next_piece()
                if piece is None:
                    self.cond.notify_all()
                    return
                self.active += 1
            try:
                self._walk(piece)
            except BaseException as exc:  # handed to the caller's thread by run()
                with self.cond:
                    if self.error is None:
                        self.error = exc
            finally:
                with self.cond:
                    self.active -= 1
                    self.live.discard(piece)
                    self.cond.notify_all()
            if self.error is None:  # the slice's last page (often a window's only one) counts too
                self._report()

    def _next_piece(self) -> _Slice | None:
        """A slice to walk (called holding the lock): a queued one, else part of a running one that would
        finish last (`_take`), else wait while others walk; None when the pull is done or failed."""
        while self.error is None:
            if self.queue:
                return self.queue.pop()
            taken = self._take()
            if taken is not None:
                return taken
            if not self.active:
                return None
            self.cond.wait()  # woken by each page that moves a slice on, and when a slice ends
        return None

    def _take(self) -> _Slice | None:
        """The lower half of the running slice with the most pages left, as a new slice (called holding
        the lock, by an idle worker), at the end of the window; None before it, or when no slice has
        `MIN_PAGES_TO_TAKE` left.

        A slice's pages come one after another while the pull's come side by side, so at the end of a
        window the slices still walking decide its length. An idle worker shares the longest one at once,
        even while its request is out (that page keeps only its objects at or above the new bound, see
        `_walk`), rather than waiting for some slice's next page. Ordered lists only: halves by second."""
        if not self.ordered:
            return None
        best, most, total = None, MIN_PAGES_TO_TAKE, 0.0
        for s in self.live:
            pages = 0.0 if s.density is None else s.density * (s.until - s.since) / PAGE_SIZE
            total += pages
            if s.until - s.since >= 2 and pages >= most:
                best, most = s, pages
        if best is None or total > END_PAGES_PER_WORKER * self.workers:
            return None
        middle = best.since + (best.until - best.since) // 2  # below the running slice's cursor second
        self.stats.slices += 1
        taken = _Slice(best.since, middle, self.stats.slices, density=best.density)
        best.since = middle
        self.live.add(taken)
        self.shared = time.monotonic()
        return taken

    def _idle(self) -> int:
        """Workers with nothing to walk (called holding the lock)."""
        return 0 if self.queue else self.workers - self.active

    # --------------------------------------------------------------- one slice

    def _walk(self, piece: _Slice) -> None:
        while True:
            if self.error is not None:
                return
            if self.abort is not None and self.abort.is_set():
                raise PullAborted()
            with self.cond:  # another worker may take seconds from its bottom (`_take`)
                since, until, cursor = piece.since, piece.until, piece.cursor
            params: Params = {"created": {"gte": since, "lt": until}, "limit": PAGE_SIZE}
            if cursor:
                params["starting_after"] = cursor
            cpu, began = time.thread_time(), time.monotonic()
            page = self.fetch(params)
            fetched = time.monotonic() - began
            data = check_page(page, self.label, since, until, cursor, piece.seen)
            more = bool(page.get("has_more"))
            with self.cond:
                if data and piece.since > since:
                    # Seconds below piece.since went to another slice while this page was out: that slice
                    # lists them (newest first, so they end the page); nothing below is this slice's.
                    kept = [obj for obj in data if obj["created"] >= piece.since]
                    more = more and len(kept) == len(data)
                    data = kept
                self.stats.requests += 1
                self.stats.objects += len(data)
                self.stats.fetch_seconds += fetched
                if data and more and self.ordered:
                    # Narrowed with the trim, in one step: a worker taking seconds sees where this slice is.
                    last = int(data[-1]["created"])
                    piece.density = len(data) / max(1, until - last)
                    piece.until, piece.cursor = last + 1, data[-1]["id"]
                    self.cond.notify_all()
            if not data:
                self._count_cpu(cpu)
                return
            # check_page has checked every object's id and created time against the slice.
            first = int(data[0]["created"])
            if not self.ordered:
                if piece.number == 0 and not piece.pages and more and self._plan(piece):
                    with self.cond:
                        self.stats.objects -= len(data)  # set aside: the slices list these again
                    self._count_cpu(cpu)
                    return
                first = piece.until  # pages sort back by slice (newest range first), then walk order
            value = self.on_page(data)
            self._count_cpu(cpu)
            with self.cond:
                # Seconds belong to one slice, so pages sort back by (newest second, slice, page).
                self.results.append(((-first, piece.number, piece.pages), value))
                self.stats.pages += 1
            piece.pages += 1
            if not more:
                return
            cursor = data[-1]["id"]  # a string never followed before: check_page refused anything else
            piece.seen.add(cursor)
            self._grow()
            if not self.ordered:  # no order to narrow by: the cursor alone walks the fixed range
                with self.cond:
                    piece.cursor = cursor
                self._report()
                continue
            self._maybe_split(piece)
            self._report()

    def _count_cpu(self, since: float) -> None:
        """Add the calling worker's CPU since `since` (its thread time) to the pull's."""
        used = time.thread_time() - since
        with self.cond:
            self.stats.cpu_seconds += used

    def _report(self) -> None:
        """Tell the watcher how far the pull is: the seconds no slice still has to walk. Told after
        every page that says there is more, and when a slice ends (its last page: a small window's only one)."""
        if self.progress is None:
            return
        with self.cond:
            left = sum(max(0, s.until - s.since) for s in self.live)
            pages, objects = self.stats.pages, self.stats.objects
        self.progress(pages, objects, 1.0 - left / self.seconds, False)

    def _plan(self, piece: _Slice) -> bool:
        """Cut an unordered window into fixed slices for the workers (several per worker, so a dense
        stretch is shared out); False when it is too short to cut."""
        parts = min(piece.until - piece.since, self.workers * UNORDERED_SLICES_PER_WORKER)
        if parts < 2:
            return False
        bounds = [piece.since + (piece.until - piece.since) * n // parts for n in range(parts + 1)]
        with self.cond:
            for lo, hi in zip(bounds[:-1], bounds[1:], strict=False):
                self.stats.slices += 1
                new = _Slice(lo, hi, self.stats.slices)
                self.queue.append(new)
                self.live.add(new)
            self.shared = time.monotonic()
            self.cond.notify_all()
        return True

    def _maybe_split(self, piece: _Slice) -> None:
        """Share the seconds below the cursor's second with idle workers, if there are enough of them to share."""
        with self.cond:
            below = piece.until - 1 - piece.since  # whole seconds left under the cursor's second
            idle = self._idle()
            if below < 2 or idle < 1 or piece.density is None:
                return
            pages_left = piece.density * below / PAGE_SIZE
            parts = int(min(idle + 1, below, pages_left / MIN_PAGES_PER_SLICE))
            if parts < 2:
                return
            bounds = [piece.since + below * n // parts for n in range(parts + 1)]
            for lo, hi in zip(bounds[:-2], bounds[1:-1], strict=False):
                self.stats.slices += 1
                new = _Slice(lo, hi, self.stats.slices)
                self.queue.append(new)
                self.live.add(new)
            piece.since = bounds[-2]  # this slice keeps the top part and its cursor's second
            self.shared = time.monotonic()
            self.cond.notify_all()


def check_page(
    page: StripeObject,
    label: str,
    since: int | None = None,
    until: int | None = None,
    cursor: str | None = None,
    seen: set[str] | None = None,
) -> list[StripeObject]:
    """The objects of one list page of `label` (the endpoint), or StripeListIncomplete naming it when the
    page cannot be part of a whole list: `has_more` with no objects (the rest would be silently lost),
    a next cursor already followed (a loop), an object created outside [since, until) (asked for by
    `created`), an object without an id. Called before any object of the page counts."""
    where = f" (created in [{since}, {until})" if since is not None else " ("
    where += f", after {cursor})" if cursor else ", first page)"

    def stop(problem: str) -> StripeListIncomplete:
        return StripeListIncomplete(
            f"Stripe's list {label} is not whole: {problem}{where}; the run stopped rather than treat part of "
            "it as complete"
        )

    data = page.get("data")
    if not isinstance(data, list) or not all(isinstance(obj, dict) for obj in data):
        raise stop("a page without a list of objects")
    if page.get("has_more") and not data:
        raise stop("a page with has_more true and no objects")
    if any(not isinstance(obj.get("id"), str) or not obj["id"] for obj in data):
        raise stop("an object without an id")
    if since is not None and until is not None:
        for obj in data:
            created = obj.get("created")
            if not isinstance(created, int) or isinstance(created, bool) or not since <= created < until:
                raise stop(f"{obj['id']} created at {created!r}, outside the range asked for")
    if page.get("has_more") and seen is not None and data[-1]["id"] in seen:
        raise stop(f"the next cursor {data[-1]['id']} was already followed")
    return data


def pull_window(
    fetch: FetchPage,
    since: int,
    until: int,
    on_page: Callable[[list[StripeObject]], T],
    *,
    workers: int = 1,
    abort: threading.Event | None = None,
    label: str = "",
    progress: Progress | None = None,
    ordered: bool = True,
    want_workers: WantWorkers | None = None,
) -> tuple[list[T], PullStats]:
    """``on_page`` of every page of objects created in [since, until), in Stripe's list order.

    ``ordered=False`` for a list whose order Stripe does not promise: slices are walked by cursor
    alone (see the module docstring); pages come back by slice, newest range first.

    ``fetch(params)`` gets one page (params: ``created``, ``limit``, ``starting_after``); it is
    called from ``workers`` threads at once. ``abort`` stops the pull early (PullAborted).
    ``progress`` is told after each page how far the pull is (from the workers' threads).
    ``want_workers`` is asked after each page that says there is more how many workers the pull should
    have: more are started up to it (a pull starts with ``workers``).
    """
    if until <= since:
        return [], PullStats(slices=0)
    pull: _Pull[T] = _Pull(fetch, max(1, workers), on_page, abort, label, progress, ordered, want_workers)
    values = pull.run(since, until)
    return values, pull.stats


def daemon_thread(target: Callable[[], None], name: str) -> threading.Thread:
    """A daemon thread running in a copy of the caller's context (log lines keep the run id)."""
    context = contextvars.copy_context()
    return threading.Thread(target=context.run, args=(target,), name=name, daemon=True)


def side_by_side(calls: Sequence[Callable[[], T]], abort: threading.Event) -> list[T]:
    """Run the calls at once (e.g. one pull per endpoint); results in call order.

    A failure sets ``abort`` so the other pulls stop at their next page; the failure of the
    earliest call that failed by itself (in call order) is raised, not a pull that stopped because
    another failed: when two fail at once, which failed first may depend on timing.
    """
    results: list[Any] = [None] * len(calls)
    failures: dict[int, BaseException] = {}

    def runner(n: int) -> Callable[[], None]:
        def run() -> None:
            try:
                results[n] = calls[n]()
            except BaseException as exc:
                failures[n] = exc
                abort.set()

        return run

    threads = [daemon_thread(runner(n), f"side-by-side:{n}") for n in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    abort.clear()
    errors = [failures[n] for n in sorted(failures)]
    if errors:
        raise next((e for e in errors if not isinstance(e, PullAborted)), errors[0])
    return results
