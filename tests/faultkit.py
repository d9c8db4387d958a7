"""Helpers for the fault tests: a shop seeded twice, a normalised final state, the CLI as a real process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import reconcile
from reconcile.decide import classify as c
from reconcile.demo.shop import ShopSeeder

ROOT = Path(reconcile.__file__).resolve().parents[1]
KILLPOINT = Path(__file__).with_name("killpoint.py")
# Settings that keep fault tests fast: backoff pauses of a millisecond, a short MongoDB server selection.
# Not a short Stripe timeout: the stand-in runs in the test's own process, and on a busy machine a
# healthy page may take seconds; a test whose fault is a hang sets its own timeout (and counts it).
FAST = {
    "stripe": {
        "retry_backoff": "1ms",
        "timeout": "60s",
        "max_network_retries": 2,
        "rate_limit_retries": 8,
        "max_retry_time": "30s",
    },
    "mongodb": {"server_selection_timeout": "1s"},
}
RUN_FIELDS = ("run_id", "at")  # differ between any two runs by design
# A run killed (or cut off from MongoDB) cannot give its lease back: it expires after lease.ttl and
# the next run, willing to wait that long (a bound, not a pause), takes it over. Tests that kill a
# run give it a short ttl; a run stopped by SIGTERM releases its lease and keeps the default ttl (2m).
# The short ttl never has to hold against a rival: no other run of that database starts before the
# short-lease run is dead, and a lapsed lease nobody took is simply renewed by its holder. So a busy
# machine can only make the next run wait (up to TAKEOVER_WAIT), never change what it finds.
SHORT_LEASE = {"lease": {"ttl": "1s"}}
TAKEOVER_WAIT = ("--wait", "30s")
TOOK_OVER = "took over the lease of a run that stopped without releasing it"


def seed_small_shop(shop: ShopSeeder, stuck: int = 3) -> None:
    """A few of each kind: stuck orders to repair, one to mark failed, healthy ones, a discrepancy, an orphan."""
    for i in range(stuck):
        oid = shop.order(c.REPAIRED, amount=1000 + i, object_id=i % 2 == 0)
        shop.charge(oid, amount=1000 + i)
    oid = shop.order(c.MARKED_FAILED)
    shop.charge(oid, status="failed")
    for i in range(4):
        oid = shop.order(c.OK, status="accepted", amount=500 + i, age=timedelta(hours=3, minutes=i))
        shop.charge(oid, amount=500 + i, age=timedelta(hours=3, minutes=i))
    oid = shop.order(c.AMOUNT_MISMATCH, status="accepted", amount=5000)
    shop.charge(oid, amount=4500)
    shop.charge(None, amount=990)


def copy_orders(source, target) -> None:
    """The same order documents (same ids, same types) in another database: the twin for a clean run."""
    target.insert_many(list(source.find()))


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=repr)


def final_state(db) -> dict[str, list[str]]:
    """Orders and audit records, without what differs between any two runs (run ids, timestamps)."""
    orders = []
    for doc in db["orders"].find():
        marker = doc.get("reconcile")
        if isinstance(marker, dict):
            doc["reconcile"] = {k: v for k, v in marker.items() if k not in RUN_FIELDS}
        orders.append(_canonical(doc))
    audit = []
    for record in db["reconcile_audit"].find():
        record = {k: v for k, v in record.items() if k not in RUN_FIELDS + ("_id",)}
        record["undo"]["filter"].pop("reconcile.run_id", None)
        audit.append(_canonical(record))
    return {"orders": sorted(orders), "audit": sorted(audit)}


def assert_audit_complete(db) -> None:
    """Every changed order has exactly one audit record of its change, and every record its changed order."""
    marked = {str(d["_id"]): d["reconcile"] for d in db["orders"].find({"reconcile": {"$exists": True}})}
    records = list(db["reconcile_audit"].find())
    keys = [r["order_key"] for r in records]
    assert len(keys) == len(set(keys)), "an order has two audit records"
    assert set(keys) == set(marked), f"audit missing for {set(marked) - set(keys)}, extra for {set(keys) - set(marked)}"
    for record in records:
        assert record["run_id"] == marked[record["order_key"]]["run_id"]
        assert "audit" not in marked[record["order_key"]], "an order still waits for its audit record"


def last_error(stderr: str) -> str:
    """The CLI's closing error line, without its prefix."""
    line = stderr.strip().splitlines()[-1]
    assert line.startswith("reconcile: error: "), line
    return line.removeprefix("reconcile: error: ")


def assert_error_summary(summary: dict[str, Any] | None, exit_code: int, stderr: str) -> None:
    """A failed or stopped invocation still writes --summary-json: its error and exit code, and no run as complete."""
    assert summary is not None, "no --summary-json written"
    assert summary == {"run_id": summary["run_id"], "exit_code": exit_code, "error": last_error(stderr), "runs": []}


def assert_changed_summary(summary: dict[str, Any] | None, exit_code: int, stderr: str, changed: int) -> list[str]:
    """A run that failed after changing orders: its summary lists each changed order once, its error line
    (the summary's too) says how many; no run is listed as complete. Returns the changed order ids."""
    assert summary is not None, "no --summary-json written"
    assert (summary["exit_code"], summary["error"], summary["runs"]) == (exit_code, last_error(stderr), [])
    keys = summary["repaired"] + summary["marked_failed"]
    assert len(keys) == len(set(keys)) == changed, keys
    assert f"{changed} order(s) were changed before this" in summary["error"]
    return keys


def earlier_ids(summary: dict[str, Any]) -> list[str]:
    """The orders a run reported as changed by earlier runs whose own report never listed them."""
    return [e["order_id"] for e in summary["earlier_changes"]]


def assert_run_recorded(db, summary: dict[str, Any], status: str) -> None:
    """The run history holds the invocation's run with this status, its exit code and the same error line."""
    run = db["reconcile_runs"].find_one({"_id": summary["run_id"]})
    assert run is not None, f"run {summary['run_id']} not in the history"
    assert (run["status"], run["exit_code"], run["error"]) == (status, summary["exit_code"], summary["error"])


def cli_env(mongo_uri: str, api_key: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(PYTHONPATH=str(ROOT), STRIPE_API_KEY=api_key, MONGODB_URI=mongo_uri, PYTHONUNBUFFERED="1")
    return env


class CliProcess:
    """`python -m reconcile.cli ...` as its own process (optionally SIGKILLed at an audit event), output in files."""

    def __init__(
        self, tmp: Path, config: Path, env: dict[str, str], *args: str, kill_at: tuple[str, str, int] | None = None
    ):
        tmp.mkdir(parents=True, exist_ok=True)
        self.stdout_path, self.stderr_path = tmp / "stdout.txt", tmp / "stderr.txt"
        prefix = (
            [sys.executable, str(KILLPOINT), *map(str, kill_at), "--"]
            if kill_at
            else [sys.executable, "-m", "reconcile.cli"]
        )
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.process = subprocess.Popen(
                [*prefix, "--config", str(config), *args],
                stdout=out,
                stderr=err,
                env=env,
                cwd=tmp,
            )

    def wait(self, timeout: float = 60) -> int:
        return self.process.wait(timeout=timeout)

    def kill(self) -> int:
        self.process.kill()
        return self.wait()

    def signal(self, signum: int = signal.SIGTERM) -> None:
        self.process.send_signal(signum)

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text()

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def log_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stderr.splitlines() if line.startswith("{")]


class VirtualClock:
    """Seconds that pass only when someone sleeps, for a Budget, a RetryPolicy and the stand-in's limiter.

    ``sleep(s)`` moves time to the sleeper's wake-up instant (the time it last read, plus ``s``)
    if no other thread has moved it past that already, and returns at once. So a request granted
    for instant t reaches the stand-in at t or later, whatever the machine's speed; time never runs
    backwards, and threads sleeping side by side do not add their pauses up.
    """

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._lock = threading.Lock()
        self._read = threading.local()

    def __call__(self) -> float:
        with self._lock:
            now = self._now
        self._read.at = now
        return now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        with self._lock:
            woken = getattr(self._read, "at", self._now) + seconds
            self._now = max(self._now, woken)
        self._read.at = woken
        time.sleep(0)  # let the others run, as a real pause would


def wait_for(condition: Callable[[], Any], timeout: float = 30, what: str = "condition") -> Any:
    """Poll until `condition()` is truthy (a bounded wait for an event, not a timing assumption)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def page_cursors(request_log: list, path: str) -> list[str | None]:
    """The `starting_after` of every request to a list endpoint, in order (None: the first page)."""
    return [q.get("starting_after") for m, p, q in request_log if p == path]


def assert_paged_once(cursors: list[str | None], pages: int) -> None:
    """Each page's cursor appears in order, a repeat only right after itself (a retry), none skipped."""
    distinct = list(dict.fromkeys(cursors))
    assert len(distinct) == pages, f"expected {pages} distinct pages, got {distinct}"
    for before, after in zip(cursors, cursors[1:], strict=False):
        assert distinct.index(after) in (distinct.index(before), distinct.index(before) + 1), (
            f"pagination went back or skipped: {cursors}"
        )


class FaultLog:
    """A `when` for inject() that remembers the query of every request the fault was served to."""

    def __init__(self, when: Callable[[dict], bool] | None = None):
        self.when = when
        self.queries: list[dict[str, str]] = []

    def __call__(self, query: dict[str, str]) -> bool:
        hit = self.when is None or self.when(query)
        if hit:
            self.queries.append(dict(query))
        return hit


def one_page_request() -> Callable[[dict], bool]:
    """A `when` matching only the first request that carries a cursor, and its exact repeats (its retries)."""
    chosen: list[dict[str, str]] = []

    def when(query: dict[str, str]) -> bool:
        if "starting_after" not in query:
            return False
        if not chosen:
            chosen.append(dict(query))
        return query == chosen[0]

    return when


def _range(query: dict[str, str]) -> tuple[int, int]:
    return int(query["created[gte]"]), int(query["created[lt]"])


def assert_each_request_once(request_log: list, path: str, faulted: list[dict[str, str]] = ()) -> None:
    """A window pull in concurrent slices fetched every page once: each request (range and cursor) was
    made once, and again only as the retry of a fault served to exactly that request; a cursor is
    followed under one range only; no slice was restarted (the first pages of the slices cut from one
    range are disjoint parts of it: a slice's lower seconds may be cut off later, as a new slice inside
    its first range)."""
    key = lambda q: tuple(sorted(q.items()))  # noqa: E731
    made = Counter(key(q) for _, p, q in request_log if p == path)
    faults = Counter(key(q) for q in faulted)
    for query, count in made.items():
        assert count == 1 + faults[query], f"{dict(query)} asked {count} times, {faults[query]} fault(s) served to it"
    followed: dict[str, set] = {}
    for query in made:
        cursor = dict(query).get("starting_after")
        if cursor is not None:
            followed.setdefault(cursor, set()).add(query)
    assert all(len(queries) == 1 for queries in followed.values()), "a cursor was followed under two ranges"
    starts = sorted({_range(dict(q)) for q in made if "starting_after" not in dict(q)}, key=lambda r: (r[0], -r[1]))
    cut_from: dict[tuple[int, int], list[tuple[int, int]]] = {}  # a range: the ranges cut directly from it
    for r in starts:
        holders = [o for o in starts if o != r and o[0] <= r[0] and r[1] <= o[1]]
        if holders:
            cut_from.setdefault(min(holders, key=lambda o: o[1] - o[0]), []).append(r)
    for inside in cut_from.values():
        inside.sort()
        for (_, end), (begin, _) in zip(inside, inside[1:], strict=False):
            assert end <= begin, f"slices overlap (a restart?): {inside}"
