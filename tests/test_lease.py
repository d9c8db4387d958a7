"""The run lease against the wire-protocol MongoDB: atomic take-over, renewal, release, killed holders.

Time is a clock argument wherever expiry matters; the killed-process test uses a 1s TTL and
bounded polling, never a sleep whose length decides the outcome.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest

from reconcile.errors import LeaseHeld, LeaseLost
from reconcile.run.lease import LEASE_ID, Lease

TTL = timedelta(seconds=60)


class FakeClock:
    def __init__(self, start: float = 1_800_000_000.0):
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def leases(db):
    return db["reconcile_state"]


def test_second_run_is_refused_with_the_holder_named(leases):
    clock = FakeClock()
    first = Lease.acquire(leases, "run-a", TTL, clock=clock, info={"trigger": "cron-hourly"})
    with pytest.raises(LeaseHeld) as refused:
        Lease.acquire(leases, "run-b", TTL, clock=clock)
    message = str(refused.value)
    assert "run-a (cron-hourly)" in message and f"pid {os.getpid()}" in message and "expires in 60s" in message
    assert refused.value.holder["owner"] == "run-a"
    assert leases.find_one({"_id": LEASE_ID})["owner"] == "run-a"
    first.check()  # still ours


def test_expired_lease_is_taken_over_and_the_old_holder_learns_it(leases):
    clock = FakeClock()
    first = Lease.acquire(leases, "run-a", TTL, clock=clock)
    clock.now += 61
    second = Lease.acquire(leases, "run-b", TTL, clock=clock)
    assert second.previous["owner"] == "run-a"
    with pytest.raises(LeaseLost, match="taken over .*now held by run-b"):
        first.renew()
    with pytest.raises(LeaseLost):
        first.check()
    first.release()  # must not delete the new holder's lease
    assert leases.find_one({"_id": LEASE_ID})["owner"] == "run-b"


def test_release_lets_the_next_run_in_at_once(leases):
    clock = FakeClock()
    Lease.acquire(leases, "run-a", TTL, clock=clock).release()
    assert leases.count_documents({}) == 0
    assert Lease.acquire(leases, "run-b", TTL, clock=clock).previous is None


def test_waiting_run_gets_the_lease_when_the_holder_expires(leases):
    clock = FakeClock()
    Lease.acquire(leases, "run-a", timedelta(seconds=10), clock=clock)
    second = Lease.acquire(leases, "run-b", TTL, wait=timedelta(seconds=30), clock=clock, sleep=clock.sleep)
    assert second.previous["owner"] == "run-a"
    assert 10 <= sum(clock.sleeps) <= 12 and all(s <= 1.0 for s in clock.sleeps)


def test_wait_is_bounded(leases):
    clock = FakeClock()
    Lease.acquire(leases, "run-a", TTL, clock=clock)
    with pytest.raises(LeaseHeld, match=r"waited 5s"):
        Lease.acquire(leases, "run-b", TTL, wait=timedelta(seconds=5), clock=clock, sleep=clock.sleep)
    assert 5 <= sum(clock.sleeps) < 6


def test_check_renews_a_half_spent_lease(leases):
    clock = FakeClock()
    lease = Lease.acquire(leases, "run-a", TTL, clock=clock)
    clock.now += 40
    lease.check()
    assert leases.find_one({"_id": LEASE_ID})["expires_at"] == clock.now + 60


def test_racing_runs_never_both_win(leases):
    """Eight threads try at the same instant; exactly one holds the lease."""
    barrier = threading.Barrier(8)
    won, refused = [], []

    def attempt(i: int) -> None:
        barrier.wait(timeout=10)
        try:
            won.append(Lease.acquire(leases, f"run-{i}", TTL))
        except LeaseHeld:
            refused.append(i)

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(won) == 1 and len(refused) == 7
    assert leases.find_one({"_id": LEASE_ID})["owner"] == won[0].owner


def test_keep_alive_renews_in_the_background(leases):
    lease = Lease.acquire(leases, "run-a", timedelta(seconds=1))
    first_expiry = leases.find_one({"_id": LEASE_ID})["expires_at"]
    with lease:
        deadline = time.monotonic() + 10
        while leases.find_one({"_id": LEASE_ID})["expires_at"] == first_expiry and time.monotonic() < deadline:
            time.sleep(0.05)
        assert leases.find_one({"_id": LEASE_ID})["expires_at"] > first_expiry
    assert leases.count_documents({}) == 0


HOLDER = """
import sys, time
from datetime import timedelta
import pymongo
from reconcile.run.lease import Lease
db = pymongo.MongoClient(sys.argv[1])[sys.argv[2]]
Lease.acquire(db["reconcile_state"], "killed-run", timedelta(seconds=1)).keep_alive(0.2)
print("held", flush=True)
time.sleep(120)
"""


def test_a_killed_runs_lease_is_taken_over(leases, mongo_uri, db_name):
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, mongo_uri, db_name], stdout=subprocess.PIPE, env=env, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "held"
        with pytest.raises(LeaseHeld, match="killed-run"):
            Lease.acquire(leases, "next-run", TTL)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        lease = Lease.acquire(leases, "next-run", TTL, wait=timedelta(seconds=20), poll=0.1)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert lease.previous["owner"] == "killed-run" and lease.previous["pid"] == proc.pid
    assert leases.find_one({"_id": LEASE_ID})["owner"] == "next-run"
