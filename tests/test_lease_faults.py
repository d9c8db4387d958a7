"""The lease's dangerous branches under faults (issue 25): a holder that vanishes or comes back between two
steps of the take, renewals cut off or answered "not yours", and the connection cut on `reconcile_state`
during a real run.

The job talks to nx-27017 through tests/mongoproxy.py, which cuts, holds or runs a step at a chosen
command on a chosen collection; the other actors (the holder that goes away, the run that takes over)
use their own connection, beside the proxy. Time is a FakeClock wherever the lease is used directly; a
whole run uses the real clock with `lease.ttl = "1s"`, and whatever waits for an expiry is bounded
polling (`--wait 30s`, `Lease.acquire(wait=...)`), never a sleep that decides the outcome.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta

import pymongo
import pytest
import stripe
from conftest import Cli
from faultkit import (
    FAST,
    TAKEOVER_WAIT,
    TOOK_OVER,
    assert_audit_complete,
    assert_error_summary,
    assert_run_recorded,
    last_error,
    seed_small_shop,
    wait_for,
)
from mongoproxy import Rule

from reconcile.errors import LeaseHeld, LeaseLost, MongoUnavailable
from reconcile.exitcodes import ExitCode
from reconcile.run.lease import LEASE_ID, Lease

TTL = timedelta(seconds=60)
STATE = "reconcile_state"


class FakeClock:
    def __init__(self, start: float = 1_800_000_000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def fast_sdk_retries(monkeypatch):
    monkeypatch.setattr(stripe.HTTPClient, "INITIAL_DELAY", 0.001)
    monkeypatch.setattr(stripe.HTTPClient, "MAX_DELAY", 0.005)


@pytest.fixture
def leases(db):
    """The lease collection as the other runs see it: their own connection, not through the proxy."""
    return db[STATE]


@pytest.fixture
def proxied(proxy, db_name):
    """The lease collection as the run under test sees it: through the proxy, with short timeouts."""
    client = pymongo.MongoClient(
        proxy.uri, serverSelectionTimeoutMS=2000, connectTimeoutMS=2000, socketTimeoutMS=10_000
    )
    yield client[db_name][STATE]
    client.close()


def holder_of(leases) -> str | None:
    doc = leases.find_one({"_id": LEASE_ID})
    return doc["owner"] if doc else None


# --------------------------------------------------------------------------- the take: a holder vanishing or coming back


def test_holder_released_between_the_refused_insert_and_the_read_is_retried_at_once(leases, proxied, proxy):
    """Run A holds a live lease. B's compare-and-set misses, its insert hits A's document, and A gives the
    lease back just before B reads who holds it: B finds nobody, tries again at once and takes it."""
    clock = FakeClock()
    a = Lease.acquire(leases, "run-a", TTL, clock=clock)
    vanished = proxy.on("find", STATE, action=a.release)
    b = Lease.acquire(proxied, "run-b", TTL, clock=clock)
    assert vanished.hit.is_set()
    assert b.previous is None  # a released lease, not one taken over
    assert holder_of(leases) == "run-b" and leases.count_documents({}) == 1
    with pytest.raises(LeaseLost, match="now held by run-b"):
        a.renew()  # A's renewal, had it kept one, would not take it back
    b.check()


def test_expired_holder_released_just_before_the_compare_and_set_is_not_a_take_over(leases, proxied, proxy):
    """A's lease has expired; it is deleted (A giving it back late) just before B's compare-and-set: B takes
    the empty slot by insert, and does not report taking A's lease over (A's runs are not abandoned)."""
    clock = FakeClock()
    a = Lease.acquire(leases, "run-a", TTL, clock=clock)
    clock.now += 61
    vanished = proxy.on("findAndModify", STATE, action=a.release)
    b = Lease.acquire(proxied, "run-b", TTL, clock=clock)
    assert vanished.hit.is_set()
    assert b.previous is None
    assert holder_of(leases) == "run-b" and leases.count_documents({}) == 1
    assert leases.find_one({"_id": LEASE_ID})["expires_at"] == clock.now + 60


def test_expired_holder_that_renews_just_before_the_compare_and_set_keeps_its_lease(leases, proxied, proxy):
    """A was paused past its expiry and resumes, renewing, just before B's compare-and-set: expiry is judged
    by the server in that same atomic step, so B misses, its insert is refused, and it names A."""
    clock = FakeClock()
    a = Lease.acquire(leases, "run-a", TTL, clock=clock)
    clock.now += 61
    came_back = proxy.on("findAndModify", STATE, action=a.renew)
    with pytest.raises(LeaseHeld, match="another run holds the lease: run-a ") as refused:
        Lease.acquire(proxied, "run-b", TTL, clock=clock)
    assert came_back.hit.is_set() and not isinstance(refused.value, LeaseLost)
    assert refused.value.holder["owner"] == "run-a"
    assert holder_of(leases) == "run-a"
    a.check()  # still A's, and only A's


def test_slot_freed_and_taken_by_a_third_run_before_the_insert_names_that_run(leases, proxied, proxy):
    """A's lease is released and C takes the free slot between B's missed compare-and-set and B's insert:
    B is refused naming C; exactly one holder."""
    clock = FakeClock()
    a = Lease.acquire(leases, "run-a", TTL, clock=clock)
    taken: list[Lease] = []

    def a_leaves_and_c_comes() -> None:
        a.release()
        taken.append(Lease.acquire(leases, "run-c", TTL, clock=clock))

    proxy.on("insert", STATE, action=a_leaves_and_c_comes)
    with pytest.raises(LeaseHeld, match="another run holds the lease: run-c "):
        Lease.acquire(proxied, "run-b", TTL, clock=clock)
    assert holder_of(leases) == "run-c" and leases.count_documents({}) == 1
    taken[0].check()


# --------------------------------------------------------------------------- renewal: a blip is not a loss, a loss is not forgotten


def test_renewal_cut_off_is_unavailable_not_lost_and_the_lease_stays_ours(leases, proxied, proxy):
    """check() on a half-spent lease must renew; the connection is cut at that renewal. The run cannot know
    it still holds the lease, so it stops (exit 3, MongoDB unavailable), but it must not believe it lost
    it: once MongoDB answers again the same lease renews."""
    clock = FakeClock()
    lease = Lease.acquire(proxied, "run-a", TTL, clock=clock)
    clock.now += 40  # half-spent: check() renews
    cut = proxy.on("findAndModify", STATE)
    with pytest.raises(MongoUnavailable, match=r"^MongoDB unavailable while renewing the run lease: ") as failed:
        lease.check()
    assert cut.hit.is_set()
    assert not isinstance(failed.value, LeaseHeld) and failed.value.exit_code == ExitCode.UNAVAILABLE
    assert holder_of(leases) == "run-a"
    proxy.restore()
    lease.check()
    assert leases.find_one({"_id": LEASE_ID})["expires_at"] == clock.now + 60


def test_background_renewal_blip_keeps_renewing_and_keeps_the_lease(leases, proxied, proxy, caplog):
    """keep_alive's renewal is cut once: it logs it and keeps renewing once MongoDB answers again; the
    lease is not counted lost (check() passes, nothing logged as lost)."""
    lease = Lease.acquire(proxied, "run-a", timedelta(seconds=30))
    cut = proxy.on("findAndModify", STATE)
    with caplog.at_level(logging.INFO, logger="reconcile.run.lease"):
        lease.keep_alive(interval=0.05)
        try:
            wait_for(cut.hit.is_set, timeout=10, what="a renewal to be cut")
            proxy.restore()
            renewed_at = leases.find_one({"_id": LEASE_ID})["renewed_at"]
            wait_for(
                lambda: leases.find_one({"_id": LEASE_ID})["renewed_at"] > renewed_at,
                timeout=10,
                what="a renewal after the blip",
            )
            lease.check()
        finally:
            lease.release()
    steps = [r.getMessage() for r in caplog.records]
    assert "lease.renew_failed" in steps and "lease.lost" not in steps
    assert leases.count_documents({}) == 0  # given back at the end


def test_a_loss_learned_during_a_blip_is_not_forgotten(leases, proxied, proxy):
    """A's renewal finds the lease no longer its own (deleted by hand, and run B took the free slot at once),
    and the connection is cut as it reads who holds it now. The run knows it lost the lease: check() must
    say so from then on, even with its own expiry still fresh, instead of letting it write beside B.
    (Before the fix the renewal raised MongoUnavailable and forgot the loss: check() passed.)"""
    clock = FakeClock()
    a = Lease.acquire(proxied, "run-a", TTL, clock=clock)
    leases.delete_one({"_id": LEASE_ID})  # someone removed it by hand
    b = Lease.acquire(leases, "run-b", TTL, clock=clock)
    cut = proxy.on("find", STATE)
    with pytest.raises(MongoUnavailable):
        a.renew()
    assert cut.hit.is_set()
    proxy.restore()
    with pytest.raises(LeaseLost):
        a.check()  # its expiry looks fresh: only the remembered loss stops it
    a.release()
    assert holder_of(leases) == "run-b"
    b.check()


def test_release_cut_off_never_raises_and_the_lease_left_behind_expires(leases, proxied, proxy, caplog):
    """Giving the lease back is cut: release() logs it and returns (the run's result stands). The lease is
    left behind: the next run is refused until the ttl has run out, then takes it over."""
    clock = FakeClock()
    a = Lease.acquire(proxied, "run-a", TTL, clock=clock)
    cut = proxy.on("delete", STATE)
    with caplog.at_level(logging.INFO, logger="reconcile.run.lease"):
        a.release()
    assert cut.hit.is_set() and "lease.release_failed" in [r.getMessage() for r in caplog.records]
    assert holder_of(leases) == "run-a"
    clock.now += 59
    with pytest.raises(LeaseHeld, match="another run holds the lease: run-a .*expires in 1s"):
        Lease.acquire(leases, "run-b", TTL, clock=clock)
    clock.now += 2
    b = Lease.acquire(leases, "run-b", TTL, clock=clock)
    assert b.previous["owner"] == "run-a" and holder_of(leases) == "run-b"


# --------------------------------------------------------------------------- a whole run


def make_cli(tmp_path, name: str, stripe_server, db_name: str, uri: str, monkeypatch, **sections) -> Cli:
    folder = tmp_path / name
    folder.mkdir()
    cli = Cli(folder, stripe_server.url, db_name, uri, monkeypatch)
    merged = {k: dict(v) for k, v in FAST.items()}
    merged["lease"] = {"ttl": "1s"}
    for section, values in sections.items():
        merged.setdefault(section, {}).update(values)
    cli.configure(**merged)
    return cli


def snapshot(db) -> dict:
    return {name: sorted(map(repr, db[name].find())) for name in ("orders", "reconcile_audit")}


def log_steps(stderr: str) -> list[str]:
    return [json.loads(line)["step"] for line in stderr.splitlines() if line.startswith("{")]


@contextlib.contextmanager
def meanwhile(step: Callable[[], None], proxy) -> Iterator[None]:
    """Run `step` in a thread while the body runs the job (held by the proxy meanwhile); when the body is
    done, let go of whatever is still held. A failed step fails the test (and lets the job go at once)."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            step()
        except BaseException as exc:
            errors.append(exc)
            proxy.release()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        proxy.release()
        thread.join(timeout=60)
    if errors:
        raise errors[0]


def assert_next_run_completes(cli: Cli, *args: str):
    """The next run repairs the small shop's stuck orders: it could take the lease."""
    again = cli(*args)
    assert again.exit_code == 1, again.output
    assert len(again.summary["repaired"]) == 3 and len(again.summary["marked_failed"]) == 1
    return again


# The run's last reads before its write phase: the history of completed runs, the orders owing an audit
# record, then the runs not yet reported. The second `find` on reconcile_runs is that last one.
LAST_READ = ("find", "reconcile_runs", 2)
# A renewal answered with an error instead of being forwarded: one failed command, the connection kept.
BACKFILL = {"trigger": "backfill", "command": "reconcile --since 2026-11-01"}
UNREACHABLE = {"ok": 0, "errmsg": "network blip", "code": 6, "codeName": "HostUnreachable"}


def take_over_while(held: Rule, proxy, db, takers: list[Lease]) -> Callable[[], None]:
    """Once the run is held at `held`, stall its next renewal (the keep-alive thread, held by the proxy)
    until its 1s lease has expired and another run ("taker") has taken it over; then let both go."""

    def step() -> None:
        wait_for(held.hit.is_set, what="the run to reach the held command")
        stalled = proxy.on("findAndModify", STATE, action="hold")
        wait_for(stalled.hit.is_set, what="a renewal to stall")
        takers.append(
            Lease.acquire(
                db[STATE], "taker", timedelta(minutes=2), wait=timedelta(seconds=30), poll=0.05, info=BACKFILL
            )
        )
        proxy.release()

    return step


def assert_lease_lost(lost, db, takers: list[Lease]) -> None:
    """Exit 4 naming the new holder; the history says lease_lost; the new holder's lease is left alone."""
    assert takers and takers[0].previous["owner"] == lost.summary["run_id"]
    assert lost.exit_code == 4, lost.output
    line = last_error(lost.stderr)
    assert line.startswith(
        f"this run's lease expired and was taken over (now held by taker (backfill) on host {socket.gethostname()}, "
    ), line
    assert line.endswith("); stopped")
    assert_error_summary(lost.summary, 4, lost.stderr)  # no run completed, no order listed as changed
    assert_run_recorded(db, lost.summary, "lease_lost")
    assert db[STATE].find_one({"_id": "watermark"}) is None
    assert holder_of(db[STATE]) == "taker"  # the lost run's release did not remove the new holder's lease


def test_run_whose_lease_is_taken_over_before_its_repairs_writes_nothing_and_exits_4(
    tmp_path, stripe_server, shop, db, proxy, monkeypatch
):
    """The run is held at its last read before the write phase, and its renewals stall (held too) until its
    1s lease expires; another run takes the lease over. When both are let go the run must learn that the
    lease is lost before its first repair batch: nothing written, exit 4 naming the new holder, the summary
    and the history say so, and the run that took over repairs everything once it is done."""
    seed_small_shop(shop)
    before = snapshot(db)
    cli = make_cli(tmp_path, "run", stripe_server, db.name, proxy.uri, monkeypatch)
    held = proxy.on(*LAST_READ[:2], nth=LAST_READ[2], action="hold")
    takers: list[Lease] = []
    with meanwhile(take_over_while(held, proxy, db, takers), proxy):
        lost = cli()
    assert_lease_lost(lost, db, takers)
    assert snapshot(db) == before  # not one order, not one audit record

    takers[0].release()
    again = assert_next_run_completes(cli)
    assert TOOK_OVER not in again.output  # it was released, not left behind
    assert_audit_complete(db)


@pytest.mark.parametrize(
    "held_at, healed",
    [
        (LAST_READ, 0),  # before the write phase: the check before it stops even the healing
        (("insert", "reconcile_audit", 1), 2),  # healing: past that check, only the per-batch check is left
    ],
    ids=["before-the-write-phase", "while-healing"],
)
def test_run_whose_lease_is_taken_over_with_audit_records_to_heal_repairs_nothing(
    tmp_path, stripe_server, shop, db, proxy, monkeypatch, held_at, healed
):
    """A first run is cut off after its first batch of two (orders changed, audit records not written) and
    leaves its lease. The next run takes that lease over and would heal those records, then repair the two
    orders left; its own lease is taken over in turn while it is held at `held_at`. It repairs neither
    order, heals only if it was already healing (a write in flight finishes), and exits 4."""
    seed_small_shop(shop)
    cli = make_cli(tmp_path, "run", stripe_server, db.name, proxy.uri, monkeypatch, mongodb={"repair_batch_size": 2})
    proxy.on("insert", "reconcile_audit")
    cut = cli()
    assert cut.exit_code == 3, cut.output
    marked = {"reconcile": {"$exists": True}}
    assert db["orders"].count_documents(marked) == 2 and db["reconcile_audit"].count_documents({}) == 0
    proxy.restore()
    command, collection, nth = held_at
    held = proxy.on(command, collection, nth=nth, action="hold")
    takers: list[Lease] = []
    with meanwhile(take_over_while(held, proxy, db, takers), proxy):
        lost = cli(*TAKEOVER_WAIT)
    assert_lease_lost(lost, db, takers)
    assert db["orders"].count_documents(marked) == 2
    assert db["orders"].count_documents({"reconcile.run_id": lost.summary["run_id"]}) == 0
    assert db["reconcile_audit"].count_documents({}) == healed
    assert db["orders"].count_documents({"reconcile.audit": "pending"}) == 2 - healed

    takers[0].release()
    again = cli()
    assert again.exit_code == 1, again.output
    assert len(again.summary["repaired"]) + len(again.summary["marked_failed"]) == 2
    assert len(again.summary["audit_healed"]) == 2 - healed
    assert_audit_complete(db)


@pytest.mark.parametrize(
    "command, nth",
    [
        ("findAndModify", 1),  # the compare-and-set on an expired or own lease
        ("insert", 1),  # creating the lease document
    ],
)
def test_connection_cut_while_taking_the_lease_exits_3_and_the_next_run_starts_at_once(
    tmp_path, stripe_server, shop, db, proxy, monkeypatch, command, nth
):
    seed_small_shop(shop)
    before = snapshot(db)
    cli = make_cli(tmp_path, "run", stripe_server, db.name, proxy.uri, monkeypatch)
    cut = proxy.on(command, STATE, nth=nth)
    failed = cli()
    assert cut.hit.is_set()
    assert failed.exit_code == 3, failed.output
    assert last_error(failed.stderr).startswith("MongoDB unavailable while taking the run lease: "), failed.stderr
    assert_error_summary(failed.summary, 3, failed.stderr)
    assert stripe_server.request_log == []  # stopped before asking Stripe for anything
    assert snapshot(db) == before and holder_of(db[STATE]) is None  # the cut command never arrived
    proxy.restore()
    again = assert_next_run_completes(cli)  # no lease was left behind: no wait, no take-over
    assert TOOK_OVER not in again.output


def test_connection_cut_right_after_the_lease_is_taken_leaves_it_to_expire(
    tmp_path, stripe_server, shop, db, proxy, monkeypatch
):
    """The lease document is written; the connection is cut at the run's next command (reading the
    watermark). The run exits 3 having changed nothing, and cannot give the lease back: the next run
    takes it over once its 1s ttl has run out (the lease-level test below does this on a fake clock)."""
    seed_small_shop(shop)
    before = snapshot(db)
    cli = make_cli(tmp_path, "run", stripe_server, db.name, proxy.uri, monkeypatch)
    cut = proxy.on("find", STATE)
    failed = cli()
    assert cut.hit.is_set()
    assert failed.exit_code == 3, failed.output
    assert last_error(failed.stderr).startswith("MongoDB unavailable while "), failed.stderr
    assert_error_summary(failed.summary, 3, failed.stderr)
    assert snapshot(db) == before
    assert holder_of(db[STATE]) == failed.summary["run_id"]  # left behind
    proxy.restore()
    again = assert_next_run_completes(cli, *TAKEOVER_WAIT)
    assert TOOK_OVER in again.output


def test_renewal_blip_mid_run_does_not_stop_the_run(tmp_path, stripe_server, shop, db, proxy, monkeypatch):
    """A renewal fails once (the server answers it with a network error) while the run reads: the run must not take
    that for a lost lease. It renews again and completes: repairs done, exit 1, lease given back."""
    seed_small_shop(shop)
    cli = make_cli(tmp_path, "run", stripe_server, db.name, proxy.uri, monkeypatch)
    held = proxy.on(*LAST_READ[:2], nth=LAST_READ[2], action="hold")

    def blip_then_renewed() -> None:
        wait_for(held.hit.is_set, what="the run to reach its last read")
        blip = proxy.on("findAndModify", STATE, action=UNREACHABLE)
        wait_for(blip.hit.is_set, what="a renewal to fail")
        seen = proxy.count("findAndModify", STATE)
        wait_for(lambda: proxy.count("findAndModify", STATE) > seen, what="a renewal after the blip")
        proxy.release()

    with meanwhile(blip_then_renewed, proxy):
        done = cli()
    assert done.exit_code == 1, done.output
    assert len(done.summary["repaired"]) == 3 and len(done.summary["marked_failed"]) == 1
    steps = log_steps(done.stderr)
    assert "lease.renew_failed" in steps and "lease.lost" not in steps
    assert holder_of(db[STATE]) is None  # released at the end
    assert_audit_complete(db)


def test_connection_cut_at_the_release_keeps_the_work_and_the_next_run_takes_over_after_the_ttl(
    tmp_path, stripe_server, shop, db, proxy, monkeypatch
):
    """Everything is done and recorded; giving the lease back is cut. The run's result stands (exit 1, its
    repairs listed), the failed release is logged, and the lease left behind expires: the next run takes it
    over after the ttl and marks nothing abandoned (the run had completed)."""
    seed_small_shop(shop)
    cli = make_cli(tmp_path, "run", stripe_server, db.name, proxy.uri, monkeypatch)
    cut = proxy.on("delete", STATE)
    done = cli()
    assert cut.hit.is_set()
    assert done.exit_code == 1, done.output
    assert len(done.summary["repaired"]) == 3 and len(done.summary["marked_failed"]) == 1
    assert "lease.release_failed" in log_steps(done.stderr)
    assert db["reconcile_runs"].find_one({"_id": done.summary["run_id"]})["status"] == "completed"
    assert holder_of(db[STATE]) == done.summary["run_id"]
    proxy.restore()
    again = cli(*TAKEOVER_WAIT)
    assert again.exit_code == 0, again.output  # nothing left to repair
    assert f"took over the lease of a run that stopped without releasing it ({done.summary['run_id']}); 0 of" in (
        again.output
    )
    assert db["reconcile_runs"].find_one({"_id": done.summary["run_id"]})["status"] == "completed"
    assert_audit_complete(db)
