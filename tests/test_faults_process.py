"""The `reconcile` process killed (SIGKILL) or stopped (SIGTERM, Ctrl-C) at chosen points, then the next run.

The job runs as its own process (`python -m reconcile.cli`). It is frozen at a precise point by
the servers it talks to, not by patching it: a stand-in page that hangs until released, or a
MongoDB command held back by the wire-protocol proxy. While frozen it is killed or signalled.
The report-writing point uses a Python audit hook in the child (tests/killpoint.py).
After a kill, the next run must leave the database exactly as one clean run does on a twin.
"""

from __future__ import annotations

import csv
import os
import signal
import threading
from datetime import timedelta

import pytest
import stripe

from reconcile import classify as c

from conftest import API_KEY, Cli, write_config
from faultkit import (
    FAST, CliProcess, assert_audit_complete, assert_each_request_once, cli_env, copy_orders, final_state, seed_small_shop,
    wait_for,
)

CHARGES = "/v1/charges"
# A frozen process must not time out by itself while the test acts on it.
PROCESS = {"stripe": dict(FAST["stripe"], timeout="60s"), "mongodb": FAST["mongodb"]}


@pytest.fixture(autouse=True)
def fast_sdk_retries(monkeypatch):
    monkeypatch.setattr(stripe.HTTPClient, "INITIAL_DELAY", 0.001)
    monkeypatch.setattr(stripe.HTTPClient, "MAX_DELAY", 0.005)


def snapshot(db) -> dict:
    """The shop's orders and the audit trail (run history, open items and the watermark are the job's own
    bookkeeping: a failed run is recorded there on purpose)."""
    return {name: sorted(map(repr, db[name].find())) for name in ("orders", "reconcile_audit")}


def in_process_cli(tmp_path, name, stripe_server, db_name, uri, monkeypatch) -> Cli:
    folder = tmp_path / name
    folder.mkdir()
    cli = Cli(folder, stripe_server.url, db_name, uri, monkeypatch)
    cli.configure(**FAST)
    return cli


def clean_twin_state(tmp_path, stripe_server, db, mongo_uri, monkeypatch) -> dict:
    twin = db.client[db.name + "_twin"]
    copy_orders(db["orders"], twin["orders"])
    result = in_process_cli(tmp_path, "twin", stripe_server, twin.name, mongo_uri, monkeypatch)()
    assert result.exit_code in (0, 1), result.output
    state = final_state(twin)
    db.client.drop_database(twin.name)
    return state


def start(tmp_path, name, stripe_server, db_name, uri, *args, kill_at=None, batch=500) -> CliProcess:
    folder = tmp_path / name
    folder.mkdir()
    sections = {"stripe": PROCESS["stripe"], "mongodb": dict(PROCESS["mongodb"], repair_batch_size=batch)}
    config = write_config(folder / "reconcile.toml", stripe_server.url, db_name, **sections)
    return CliProcess(folder, config, cli_env(uri, API_KEY), *args, kill_at=kill_at)


def seed_two_pages(shop) -> None:
    for i in range(150):
        oid = shop.order(None, status="accepted", amount=100 + i, age=timedelta(hours=1, seconds=i))
        shop.charge(oid, amount=100 + i, age=timedelta(hours=1, seconds=i))


def hang_second_charges_page(stripe_server) -> threading.Event:
    release = threading.Event()
    stripe_server.inject(CHARGES, "hang", times=1, when=lambda q: "starting_after" in q, release=release)
    return release


def converges(tmp_path, stripe_server, db, mongo_uri, monkeypatch, expected, name="next"):
    """The next run, uninterrupted: it must reach the clean run's state."""
    result = in_process_cli(tmp_path, name, stripe_server, db.name, mongo_uri, monkeypatch)()
    assert result.exit_code in (0, 1), result.output
    assert_audit_complete(db)
    assert final_state(db) == expected
    return result


# --------------------------------------------------------------------------- SIGKILL


def test_python_m_reconcile_cli_runs(tmp_path, stripe_server, shop, db, mongo_server):
    shop.charge(shop.order(c.REPAIRED))
    process = start(tmp_path, "run", stripe_server, db.name, mongo_server.uri)
    assert process.wait() == 0, process.stderr
    assert "repaired 1" in process.stdout


def test_killed_during_pull(tmp_path, stripe_server, shop, db, mongo_server, monkeypatch):
    seed_two_pages(shop)
    seed_small_shop(shop)
    expected = clean_twin_state(tmp_path, stripe_server, db, mongo_server.uri, monkeypatch)
    before = snapshot(db)
    release = hang_second_charges_page(stripe_server)
    process = start(tmp_path, "killed", stripe_server, db.name, mongo_server.uri)
    wait_for(lambda: stripe_server.faults_served == 1, what="the second page to hang")
    assert process.kill() == -signal.SIGKILL
    release.set()
    assert snapshot(db) == before
    next_run = converges(tmp_path, stripe_server, db, mongo_server.uri, monkeypatch, expected)
    assert len(next_run.summary["repaired"]) == 3


def test_killed_between_order_changes_and_their_audit_records(tmp_path, stripe_server, shop, db, mongo_server, proxy,
                                                              monkeypatch):
    seed_small_shop(shop)
    expected = clean_twin_state(tmp_path, stripe_server, db, mongo_server.uri, monkeypatch)
    held = proxy.on("insert", "reconcile_audit", action="hold")
    process = start(tmp_path, "killed", stripe_server, db.name, proxy.uri)
    wait_for(held.hit.is_set, what="the audit write to be held")
    assert process.kill() == -signal.SIGKILL
    proxy.go_down()  # the held write dies with the process
    proxy.release()
    assert db["orders"].count_documents({"reconcile.audit": "pending"}) == 4
    assert db["reconcile_audit"].count_documents({}) == 0
    next_run = converges(tmp_path, stripe_server, db, mongo_server.uri, monkeypatch, expected)
    assert len(next_run.summary["audit_healed"]) == 4 and next_run.summary["repaired"] == []


def test_killed_between_repair_batches(tmp_path, stripe_server, shop, db, mongo_server, proxy, monkeypatch):
    seed_small_shop(shop, stuck=5)  # six changes, in batches of four
    expected = clean_twin_state(tmp_path, stripe_server, db, mongo_server.uri, monkeypatch)
    held = proxy.on("update", "orders", nth=3, action="hold")  # the second batch's compare-and-set
    process = start(tmp_path, "killed", stripe_server, db.name, proxy.uri, batch=4)
    wait_for(held.hit.is_set, what="the second batch to be held")
    assert process.kill() == -signal.SIGKILL
    proxy.go_down()
    proxy.release()
    assert db["reconcile_audit"].count_documents({}) == 4
    next_run = converges(tmp_path, stripe_server, db, mongo_server.uri, monkeypatch, expected)
    assert len(next_run.summary["repaired"]) + len(next_run.summary["marked_failed"]) == 2


def test_killed_while_writing_the_report(tmp_path, stripe_server, shop, db, mongo_server, monkeypatch):
    seed_small_shop(shop)
    expected = clean_twin_state(tmp_path, stripe_server, db, mongo_server.uri, monkeypatch)
    # The HTML report's temporary file is written, not yet renamed into place (the audit hook
    # sees the chmod just before the rename; a kill earlier in the write leaves the same picture).
    kill_at = ("os.chmod", r"\.reconcile-[^']*\.html\.[^']*\.tmp", 1)
    process = start(tmp_path, "killed", stripe_server, db.name, mongo_server.uri, kill_at=kill_at)
    assert process.wait() == -signal.SIGKILL
    reports = tmp_path / "killed" / "reports"
    assert list(reports.glob("reconcile-*.html")) == []           # no half-written report under its name
    [csv_file] = reports.glob("reconcile-*.csv")                  # the CSV finished before: complete
    rows = list(csv.reader(csv_file.open()))
    assert rows[0][0] == "outcome" and len(rows) == 1 + 6  # header + the 6 non-ok items
    [debris] = reports.glob(".reconcile-*.tmp")
    assert final_state(db) == expected  # the repairs were done before the report
    os.utime(debris, (0, 0))            # an old leftover: the next run in that directory sweeps it
    folder = tmp_path / "next"
    folder.mkdir()
    cli = Cli(folder, stripe_server.url, db.name, mongo_server.uri, monkeypatch)
    cli.configure(**FAST, report={"dir": str(reports)})
    next_run = cli()
    assert next_run.exit_code == 1 and next_run.summary["repaired"] == []
    assert not debris.exists() and len(list(reports.glob("reconcile-*.html"))) == 1
    assert final_state(db) == expected


# --------------------------------------------------------------------------- SIGTERM, Ctrl-C


@pytest.mark.parametrize("signum, code, name", [(signal.SIGTERM, 143, "SIGTERM"), (signal.SIGINT, 130, "SIGINT")])
def test_stop_signal_during_pull_stops_cleanly(tmp_path, stripe_server, shop, db, mongo_server, signum, code, name):
    seed_two_pages(shop)
    shop.charge(shop.order(c.REPAIRED))
    before = snapshot(db)
    release = hang_second_charges_page(stripe_server)
    process = start(tmp_path, "run", stripe_server, db.name, mongo_server.uri)
    wait_for(lambda: stripe_server.faults_served == 1, what="the second page to hang")
    process.signal(signum)
    wait_for(lambda: "run.stop_requested" in process.stderr, what="the stop request to be seen")
    release.set()  # the page in flight completes; the job stops before the next one
    assert process.wait() == code
    assert process.stderr.strip().splitlines()[-1] == (
        f"reconcile: error: interrupted by {name} during pull; the write in progress was finished, changes "
        "already made are kept with their audit records, and the next run completes the rest"
    )
    [interrupted] = [line for line in process.log_lines() if line["step"] == "run.interrupted"]
    assert (interrupted["signal"], interrupted["during"], interrupted["exit_code"]) == (name, "pull", code)
    assert snapshot(db) == before
    assert not (tmp_path / "run" / "reports").exists()
    # The page in flight was the last page asked for (the time slices pulled beside it asked for their
    # first pages before the stop, or never), and no page was asked twice.
    assert sum(1 for _, p, q in stripe_server.request_log if p == CHARGES and "starting_after" in q) == 1
    assert_each_request_once(stripe_server.request_log, CHARGES)


def test_second_sigterm_stops_at_once(tmp_path, stripe_server, shop, db, mongo_server):
    seed_two_pages(shop)
    release = hang_second_charges_page(stripe_server)
    process = start(tmp_path, "run", stripe_server, db.name, mongo_server.uri)
    wait_for(lambda: stripe_server.faults_served == 1, what="the second page to hang")
    process.signal(signal.SIGTERM)
    wait_for(lambda: "run.stop_requested" in process.stderr, what="the first stop request")
    process.signal(signal.SIGTERM)
    assert process.wait() == 143
    release.set()
    assert "stopped at once by a second SIGTERM" in process.stderr


def test_sigterm_mid_repair_finishes_the_batch_in_flight(tmp_path, stripe_server, shop, db, mongo_server, proxy,
                                                         monkeypatch):
    seed_small_shop(shop, stuck=5)  # six changes, in batches of four
    expected = clean_twin_state(tmp_path, stripe_server, db, mongo_server.uri, monkeypatch)
    held = proxy.on("update", "orders", nth=1, action="hold")  # the first batch's compare-and-set, in flight
    process = start(tmp_path, "run", stripe_server, db.name, proxy.uri, batch=4)
    wait_for(held.hit.is_set, what="the first batch to be held")
    process.signal(signal.SIGTERM)
    wait_for(lambda: "run.stop_requested" in process.stderr, what="the stop request to be seen")
    proxy.release()
    assert process.wait() == 143, process.stderr
    assert "interrupted by SIGTERM during repair" in process.stderr
    # The batch in flight finished, with its audit records; the second batch was never sent.
    assert db["orders"].count_documents({"reconcile": {"$exists": True}}) == 4
    assert db["orders"].count_documents({"reconcile.audit": "pending"}) == 0
    assert db["reconcile_audit"].count_documents({}) == 4
    assert proxy.count("update", "orders") == 2  # the batch and the clearing of its audit flags
    next_run = converges(tmp_path, stripe_server, db, mongo_server.uri, monkeypatch, expected)
    assert len(next_run.summary["repaired"]) + len(next_run.summary["marked_failed"]) == 2
