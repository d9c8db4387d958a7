"""The `reconcile` process killed (SIGKILL) or stopped (SIGTERM, Ctrl-C) at chosen points, then the next run.

The job runs as its own process (`python -m reconcile.cli`). It is frozen at a precise point by
the servers it talks to, not by patching it: a stand-in page that hangs until released, or a
MongoDB command held back by the wire-protocol proxy. While frozen it is killed or signalled.
The report-writing point uses a Python audit hook in the child (tests/killpoint.py).
After a kill, the next run must leave the database exactly as one clean run does on a twin.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import threading
from datetime import timedelta
from pathlib import Path

import pytest
import stripe
from conftest import API_KEY, Cli, write_config
from faultkit import (
    FAST,
    SHORT_LEASE,
    TAKEOVER_WAIT,
    TOOK_OVER,
    CliProcess,
    assert_audit_complete,
    assert_changed_summary,
    assert_each_request_once,
    assert_error_summary,
    assert_run_recorded,
    cli_env,
    copy_orders,
    earlier_ids,
    final_state,
    last_error,
    seed_small_shop,
    wait_for,
)

from reconcile.decide import classify as c
from reconcile.run.lease import LEASE_ID, Lease

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


def start(
    tmp_path, name, stripe_server, db_name, uri, *args, kill_at=None, batch=500, lease=None, env=None
) -> CliProcess:
    """The command as its own process, writing --summary-json to NAME/summary.json (`summary()` reads it)."""
    folder = tmp_path / name
    folder.mkdir()
    sections = {"stripe": PROCESS["stripe"], "mongodb": dict(PROCESS["mongodb"], repair_batch_size=batch)}
    if lease:
        sections["lease"] = lease
    config = write_config(folder / "reconcile.toml", stripe_server.url, db_name, **sections)
    return CliProcess(
        folder,
        config,
        {**cli_env(uri, API_KEY), **(env or {})},
        "--summary-json",
        str(folder / "summary.json"),
        *args,
        kill_at=kill_at,
    )


def summary(process: CliProcess) -> dict | None:
    path = process.stdout_path.with_name("summary.json")
    return json.loads(path.read_text()) if path.exists() else None


def assert_abandoned(db, process: CliProcess) -> None:
    """The killed run never finished its history record; the run that took its lease over marked it abandoned."""
    mine = [r for r in db["reconcile_runs"].find() if (r.get("started_by") or {}).get("pid") == process.process.pid]
    assert [r["status"] for r in mine] == ["abandoned"], mine


def seed_two_pages(shop) -> None:
    for i in range(150):
        oid = shop.order(None, status="accepted", amount=100 + i, age=timedelta(hours=1, seconds=i))
        shop.charge(oid, amount=100 + i, age=timedelta(hours=1, seconds=i))


def hang_second_charges_page(stripe_server) -> threading.Event:
    release = threading.Event()
    stripe_server.inject(CHARGES, "hang", times=1, when=lambda q: "starting_after" in q, release=release)
    return release


def converges(tmp_path, stripe_server, db, mongo_uri, monkeypatch, expected, name="next", *, after_kill=True):
    """The next run, uninterrupted: it must reach the clean run's state.

    After a kill it waits (bounded) for the dead run's short lease to expire and takes it over; after a
    clean stop (SIGTERM, Ctrl-C) the lease was given back, so it starts at once: lease.wait is 0 and
    the stopped run's ttl 2m, so a lease left behind would make it exit 4.
    """
    args = TAKEOVER_WAIT if after_kill else ()
    result = in_process_cli(tmp_path, name, stripe_server, db.name, mongo_uri, monkeypatch)(*args)
    assert result.exit_code in (0, 1), result.output
    assert (TOOK_OVER in result.output) == after_kill, result.output
    assert_audit_complete(db)
    assert final_state(db) == expected
    return result


def assert_reported_once(tmp_path, stripe_server, db, mongo_uri, monkeypatch) -> None:
    """A further run reports no earlier change again."""
    again = in_process_cli(tmp_path, "again", stripe_server, db.name, mongo_uri, monkeypatch)()
    assert again.exit_code in (0, 1), again.output
    assert earlier_ids(again.summary) == []


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
    process = start(tmp_path, "killed", stripe_server, db.name, mongo_server.uri, **SHORT_LEASE)
    wait_for(lambda: stripe_server.faults_served == 1, what="the second page to hang")
    assert process.kill() == -signal.SIGKILL
    release.set()
    assert snapshot(db) == before
    next_run = converges(tmp_path, stripe_server, db, mongo_server.uri, monkeypatch, expected)
    assert len(next_run.summary["repaired"]) == 3
    assert_abandoned(db, process)


def test_killed_between_order_changes_and_their_audit_records(
    tmp_path, stripe_server, shop, db, mongo_server, proxy, monkeypatch
):
    seed_small_shop(shop)
    expected = clean_twin_state(tmp_path, stripe_server, db, mongo_server.uri, monkeypatch)
    held = proxy.on("insert", "reconcile_audit", action="hold")
    process = start(tmp_path, "killed", stripe_server, db.name, proxy.uri, **SHORT_LEASE)
    wait_for(held.hit.is_set, what="the audit write to be held")
    assert process.kill() == -signal.SIGKILL
    proxy.go_down()  # the held write dies with the process
    proxy.release()
    assert db["orders"].count_documents({"reconcile.audit": "pending"}) == 4
    assert db["reconcile_audit"].count_documents({}) == 0
    next_run = converges(tmp_path, stripe_server, db, mongo_server.uri, monkeypatch, expected)
    assert len(next_run.summary["audit_healed"]) == 4 and next_run.summary["repaired"] == []
    # The killed run reported nothing: the next run reports its changes, once.
    assert sorted(earlier_ids(next_run.summary)) == sorted(next_run.summary["audit_healed"])
    assert_reported_once(tmp_path, stripe_server, db, mongo_server.uri, monkeypatch)
    assert_abandoned(db, process)


def test_killed_between_repair_batches(tmp_path, stripe_server, shop, db, mongo_server, proxy, monkeypatch):
    seed_small_shop(shop, stuck=5)  # six changes, in batches of four
    expected = clean_twin_state(tmp_path, stripe_server, db, mongo_server.uri, monkeypatch)
    held = proxy.on("update", "orders", nth=3, action="hold")  # the second batch's compare-and-set
    process = start(tmp_path, "killed", stripe_server, db.name, proxy.uri, batch=4, **SHORT_LEASE)
    wait_for(held.hit.is_set, what="the second batch to be held")
    assert process.kill() == -signal.SIGKILL
    proxy.go_down()
    proxy.release()
    assert db["reconcile_audit"].count_documents({}) == 4
    first_batch = sorted(r["order_key"] for r in db["reconcile_audit"].find())
    next_run = converges(tmp_path, stripe_server, db, mongo_server.uri, monkeypatch, expected)
    assert len(next_run.summary["repaired"]) + len(next_run.summary["marked_failed"]) == 2
    # The first batch's changes, which no report of the killed run listed, are in the next run's report, once.
    assert sorted(earlier_ids(next_run.summary)) == first_batch
    report = Path(next_run.summary["report"]["html"]).read_text()
    assert "Changes made by earlier runs" in report and all(key in report for key in first_batch)
    assert_reported_once(tmp_path, stripe_server, db, mongo_server.uri, monkeypatch)
    assert_abandoned(db, process)


def test_killed_while_writing_the_report(tmp_path, stripe_server, shop, db, mongo_server, monkeypatch):
    seed_small_shop(shop)
    expected = clean_twin_state(tmp_path, stripe_server, db, mongo_server.uri, monkeypatch)
    # The HTML report's temporary file is written, not yet renamed into place (the audit hook
    # sees the chmod just before the rename; a kill earlier in the write leaves the same picture).
    kill_at = ("os.chmod", r"\.reconcile-[^']*\.html\.[^']*\.tmp", 1)
    process = start(tmp_path, "killed", stripe_server, db.name, mongo_server.uri, kill_at=kill_at, **SHORT_LEASE)
    assert process.wait() == -signal.SIGKILL
    reports = tmp_path / "killed" / "reports"
    assert list(reports.glob("reconcile-*.html")) == []  # no half-written report under its name
    [csv_file] = reports.glob("reconcile-*.csv")  # the CSV finished before: complete
    rows = list(csv.reader(csv_file.open()))
    assert rows[0][0] == "outcome" and len(rows) == 1 + 6  # header + the 6 non-ok items
    [debris] = reports.glob(".reconcile-*.tmp")
    assert final_state(db) == expected  # the repairs were done before the report
    os.utime(debris, (0, 0))  # an old leftover: the next run in that directory sweeps it
    folder = tmp_path / "next"
    folder.mkdir()
    cli = Cli(folder, stripe_server.url, db.name, mongo_server.uri, monkeypatch)
    cli.configure(**FAST, report={"dir": str(reports)})
    next_run = cli(*TAKEOVER_WAIT)
    assert next_run.exit_code == 1 and next_run.summary["repaired"] == []
    assert len(earlier_ids(next_run.summary)) == 4  # its HTML report never made it: the next run lists them
    assert TOOK_OVER in next_run.output
    assert not debris.exists() and len(list(reports.glob("reconcile-*.html"))) == 1
    assert final_state(db) == expected
    assert_abandoned(db, process)


# --------------------------------------------------------------------------- a full disk after the repairs

HTML_TEMP = r"\.reconcile-[^']*\.html\.[^']*\.tmp"


@pytest.mark.parametrize("nth", [1, 0], ids=["full-report-fails", "every-report-fails"])
def test_full_disk_while_writing_the_report_still_reports_every_change(
    tmp_path, stripe_server, shop, db, mongo_server, monkeypatch, nth
):
    """The disk fills after the repairs (the report's HTML cannot be written: ENOSPC, raised in the process
    by an audit hook). Once: a plain report lists the changes. For good: the summary and the run history
    list them, and the next run's report does, once."""
    seed_small_shop(shop)  # three to repair, one to mark failed
    process = start(
        tmp_path,
        "full",
        stripe_server,
        db.name,
        mongo_server.uri,
        kill_at=("open", HTML_TEMP, nth),
        env={"KILLPOINT_RAISE": "ENOSPC"},
    )
    assert process.wait() == 70, process.stderr
    done = summary(process)
    keys = assert_changed_summary(done, 70, process.stderr, 4)
    line = last_error(process.stderr)
    assert line.startswith("internal error: OSError: [Errno 28] No space left on device; 4 order(s) were changed")
    run = db["reconcile_runs"].find_one({"_id": done["run_id"]})
    assert (run["status"], run["exit_code"], run["error"]) == ("failed", 70, line)
    assert sorted(run["repaired_ids"] + run["marked_failed_ids"]) == sorted(keys)
    reports = tmp_path / "full" / "reports"
    if nth == 1:  # the plain report, under the run's name, lists every change
        html = (reports / f"reconcile-{done['run_id']}.html").read_text()
        assert all(key in html for key in keys) and str(reports / f"reconcile-{done['run_id']}.html") in line
        assert run["changes_reported"]
    else:
        assert list(reports.glob("reconcile-*.html")) == []
        assert not run["changes_reported"] and "the next run's report lists what this run changed" in line
    assert db["reconcile_state"].find_one({"_id": LEASE_ID}) is None  # given back on the way out
    next_run = in_process_cli(tmp_path, "next", stripe_server, db.name, mongo_server.uri, monkeypatch)()
    assert next_run.exit_code in (0, 1), next_run.output
    assert next_run.summary["repaired"] == [] and next_run.summary["marked_failed"] == []
    assert sorted(earlier_ids(next_run.summary)) == (sorted(keys) if nth == 0 else [])
    assert_reported_once(tmp_path, stripe_server, db, mongo_server.uri, monkeypatch)


# --------------------------------------------------------------------------- SIGTERM, Ctrl-C


@pytest.mark.parametrize("signum, code, name", [(signal.SIGTERM, 143, "SIGTERM"), (signal.SIGINT, 130, "SIGINT")])
def test_stop_signal_during_pull_stops_cleanly(
    tmp_path, stripe_server, shop, db, mongo_server, monkeypatch, signum, code, name
):
    seed_two_pages(shop)
    stuck = shop.order(c.REPAIRED)
    shop.charge(stuck)
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
    # Recorded as interrupted, with the same line in --summary-json; the lease given back.
    assert_error_summary(summary(process), code, process.stderr)
    assert_run_recorded(db, summary(process), "interrupted")
    assert db["reconcile_state"].find_one({"_id": LEASE_ID}) is None
    assert db["reconcile_state"].find_one({"_id": "watermark"}) is None  # the window is done again
    # The next run starts at once (no lease to wait for) and does what the stopped one did not.
    next_run = in_process_cli(tmp_path, "next", stripe_server, db.name, mongo_server.uri, monkeypatch)()
    assert next_run.exit_code == 0, next_run.output
    assert TOOK_OVER not in next_run.output and next_run.summary["repaired"] == [str(stuck)]


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
    # Even stopping at once leaves no run "running" in the history, no lease behind, and its answer on disk.
    [run] = db["reconcile_runs"].find()
    assert (run["status"], run["exit_code"], run["error"]) == (
        "interrupted",
        143,
        "stopped at once by a second SIGTERM",
    )
    assert db["reconcile_state"].find_one({"_id": LEASE_ID}) is None
    assert summary(process)["exit_code"] == 143 and summary(process)["runs"] == []


def test_sigterm_mid_repair_finishes_the_batch_in_flight(
    tmp_path, stripe_server, shop, db, mongo_server, proxy, monkeypatch
):
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
    # The four orders it changed are listed: in the summary, the error line, the history and a report.
    keys = assert_changed_summary(summary(process), 143, process.stderr, 4)
    assert_run_recorded(db, summary(process), "interrupted")
    run = db["reconcile_runs"].find_one({"_id": summary(process)["run_id"]})
    assert sorted(run["repaired_ids"] + run["marked_failed_ids"]) == sorted(keys)
    assert run["changes_reported"]  # True (nx-27017 gives a stored bool back as 1)
    html = Path(summary(process)["failed_run_report"]["html"]).read_text()
    assert all(key in html for key in keys)
    assert db["reconcile_state"].find_one({"_id": LEASE_ID}) is None  # released on the way out
    # The batch in flight finished, with its audit records; the second batch was never sent.
    assert db["orders"].count_documents({"reconcile": {"$exists": True}}) == 4
    assert db["orders"].count_documents({"reconcile.audit": "pending"}) == 0
    assert db["reconcile_audit"].count_documents({}) == 4
    assert proxy.count("update", "orders") == 2  # the batch and the clearing of its audit flags
    next_run = converges(tmp_path, stripe_server, db, mongo_server.uri, monkeypatch, expected, after_kill=False)
    assert len(next_run.summary["repaired"]) + len(next_run.summary["marked_failed"]) == 2
    assert earlier_ids(next_run.summary) == []  # reported by the stopped run itself: not again


# --------------------------------------------------------------------------- the lease between processes


def test_two_runs_at_once_never_both_repair_the_same_order(tmp_path, stripe_server, shop, db, mongo_server):
    """Three real processes on one database: the hourly run holds the lease (frozen mid-pull); a backfill
    started beside it exits 4 naming it; another, willing to wait, runs after it and finds nothing to repair."""
    seed_two_pages(shop)
    seed_small_shop(shop, stuck=5)  # five orders to repair, one to mark failed
    release = hang_second_charges_page(stripe_server)
    first = start(tmp_path, "hourly", stripe_server, db.name, mongo_server.uri, "--trigger", "hourly")
    wait_for(lambda: stripe_server.faults_served == 1, what="the first run to hang mid-pull, holding the lease")
    backfill = ("--since", "24h")  # the same orders in its window
    second = start(tmp_path, "second", stripe_server, db.name, mongo_server.uri, *backfill, "--trigger", "backfill")
    assert second.wait() == 4, second.stderr
    assert last_error(second.stderr).startswith(
        f"another run holds the lease: {summary_id(db, first)} (hourly) on host {socket.gethostname()}, "
        f"pid {first.process.pid}, since "
    )
    assert_error_summary(summary(second), 4, second.stderr)
    assert_run_recorded(db, summary(second), "lease_held")
    third = start(
        tmp_path,
        "third",
        stripe_server,
        db.name,
        mongo_server.uri,
        *backfill,
        "--wait",
        "5m",
        "--trigger",
        "patient-backfill",
    )
    try:
        wait_for(lambda: "lease.waiting" in third.stderr, what="the third run to wait for the lease")
        assert db["reconcile_audit"].count_documents({}) == 0  # nobody repairs while the holder is mid-pull
    finally:
        release.set()
    assert first.wait() == 1, first.stderr
    assert third.wait() == 1, third.stderr
    done = summary(first)["repaired"] + summary(first)["marked_failed"]
    assert len(done) == len(set(done)) == 6
    assert summary(third)["repaired"] == [] and summary(third)["marked_failed"] == []
    assert_audit_complete(db)  # one audit record per change, by the run that made it
    assert db["reconcile_audit"].count_documents({}) == 6
    assert {r["run_id"] for r in db["reconcile_audit"].find()} == {summary(first)["run_id"]}
    assert db["reconcile_state"].find_one({"_id": LEASE_ID}) is None


def summary_id(db, process: CliProcess) -> str:
    """The run id of a running process, from the lease it holds."""
    holder = db["reconcile_state"].find_one({"_id": LEASE_ID})
    assert holder is not None and holder["pid"] == process.process.pid, holder
    return holder["owner"]


def test_sigterm_while_waiting_for_the_lease_stops_at_once(tmp_path, stripe_server, db, mongo_server):
    holder = Lease.acquire(db["reconcile_state"], "20261118T090000Z-holder", timedelta(minutes=10))
    waiting = start(tmp_path, "waiting", stripe_server, db.name, mongo_server.uri, "--wait", "10m")
    wait_for(lambda: "lease.waiting" in waiting.stderr, what="the run to wait for the lease")
    waiting.signal(signal.SIGTERM)
    # Bounded, not timed: ignoring the signal would mean waiting the whole ten minutes.
    assert waiting.wait(timeout=60) == 143, waiting.stderr
    assert last_error(waiting.stderr).startswith("interrupted by SIGTERM during lease wait; ")
    assert_error_summary(summary(waiting), 143, waiting.stderr)
    assert_run_recorded(db, summary(waiting), "interrupted")
    assert db["reconcile_state"].find_one({"_id": LEASE_ID})["owner"] == holder.owner  # not its lease to touch
    assert stripe_server.request_log == []
    holder.release()


def test_second_sigterm_after_changes_lists_them_in_the_summary(tmp_path, stripe_server, shop, db, mongo_server, proxy):
    """Stopped at once after a batch of repairs: --summary-json names the run and lists the orders changed,
    as the run history does (not `run_id: null` and nothing listed)."""
    seed_small_shop(shop, stuck=5)  # six changes, in batches of four
    # Orders updates: the first batch's compare-and-set, its audit flags cleared, then the second batch's.
    held = proxy.on("update", "orders", nth=3, action="hold")
    process = start(tmp_path, "run", stripe_server, db.name, proxy.uri, batch=4)
    wait_for(held.hit.is_set, what="the second batch to be held")
    process.signal(signal.SIGTERM)
    wait_for(lambda: "run.stop_requested" in process.stderr, what="the first stop request")
    process.signal(signal.SIGTERM)
    assert process.wait() == 143, process.stderr
    proxy.release()
    assert "stopped at once by a second SIGTERM" in process.stderr
    run = db["reconcile_runs"].find_one({"status": "interrupted"})
    changed = sorted(run["repaired_ids"] + run["marked_failed_ids"])
    assert len(changed) == 4
    said = summary(process)
    assert said["run_id"] == run["_id"] and said["exit_code"] == 143 and said["runs"] == []
    assert sorted(said["repaired"] + said["marked_failed"]) == changed
    assert "stopped at once by a second SIGTERM" in said["error"] and "4 order(s) were changed" in said["error"]
