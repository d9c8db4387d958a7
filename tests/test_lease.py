"""The run lease against the wire-protocol MongoDB: atomic take-over, renewal, release, killed holders.

Time is a clock argument wherever expiry matters: leases live a minute, and a test that needs one
to expire moves a fake clock past it. Real time only bounds polling for what a background thread or
another process does; no sleep's length decides an outcome.
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
from faultkit import wait_for

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
    clock = FakeClock()
    lease = Lease.acquire(leases, "run-a", TTL, clock=clock)
    assert leases.find_one({"_id": LEASE_ID})["expires_at"] == clock.now + 60
    lease.keep_alive(0.01)  # renews every 10 ms of real time, at the fake clock's time
    with lease:
        clock.now += 45  # nobody calls check(): only the background thread can push the expiry out
        wait_for(
            lambda: leases.find_one({"_id": LEASE_ID})["expires_at"] == clock.now + 60, what="a background renewal"
        )
        lease.check()  # still ours
    assert leases.count_documents({}) == 0


HOLDER = """
import sys
from datetime import timedelta
import pymongo
from reconcile.run.lease import Lease
db = pymongo.MongoClient(sys.argv[1])[sys.argv[2]]
Lease.acquire(db["reconcile_state"], "killed-run", timedelta(seconds=60)).keep_alive(0.05)
print("held", flush=True)
sys.stdin.read()  # until killed (or the test's end closes the pipe)
"""


def test_a_killed_runs_lease_is_taken_over(leases, mongo_uri, db_name):
    """A run killed while holding the lease cannot give it back: the lease stays, held by nobody alive,
    until it expires; then the next run takes it over and learns whose it was. The holder's lease
    lives a minute (a busy machine cannot make it lapse early); the next run's clock is moved past it."""
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, mongo_uri, db_name],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "held"
        with pytest.raises(LeaseHeld, match="killed-run"):
            Lease.acquire(leases, "next-run", TTL)
        first = leases.find_one({"_id": LEASE_ID})["renewed_at"]
        wait_for(lambda: leases.find_one({"_id": LEASE_ID})["renewed_at"] > first, what="the holder to renew its lease")
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    left = leases.find_one({"_id": LEASE_ID})
    assert left["owner"] == "killed-run" and left["pid"] == proc.pid  # not given back
    clock = FakeClock(start=time.time())
    with pytest.raises(LeaseHeld, match="killed-run"):  # not before it expires
        Lease.acquire(leases, "next-run", TTL, clock=FakeClock(start=left["expires_at"] - 0.5))
    lease = Lease.acquire(leases, "next-run", TTL, wait=timedelta(minutes=5), clock=clock, sleep=clock.sleep)
    assert left["expires_at"] <= clock.now <= left["expires_at"] + 1.1  # taken over once it expired
    assert lease.previous["owner"] == "killed-run" and lease.previous["pid"] == proc.pid
    assert leases.find_one({"_id": LEASE_ID})["owner"] == "next-run"
