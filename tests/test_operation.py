"""Cron-grade operation end to end: the `reconcile` command against the Stripe stand-in (HTTP, official
SDK), the wire-protocol MongoDB and, for email, a real SMTP server on loopback.

Time: runs are placed in time with the hidden `--now` option (tests only), never by sleeping.
The data are seeded days in the past, so a run "three days later" is still in the real past.

nx-27017 gaps: the job stores every time it compares later as integer unix seconds, so these
tests read them as integers; an ObjectId `_id` also matches its hex string (mongomock checks id
types elsewhere).
"""

from __future__ import annotations

import csv
import io
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from conftest import SmtpSink, at

from reconcile.config import load_config
from reconcile.decide import classify as c
from reconcile.demo.embedded_mongo import free_port
from reconcile.demo.shop import ShopSeeder
from reconcile.run import invocation as orchestrate
from reconcile.run.lease import LEASE_ID
from reconcile.store import runs as state
from reconcile.timeutil import to_unix

H = timedelta(hours=1)
DAY = timedelta(days=1)


def paid(seed: ShopSeeder, age: timedelta, amount: int = 2500, status: str = "accepted", **kw):
    """An order and its succeeded charge, both `age` before t0 (negative: after t0)."""
    oid = seed.order(None, status=status, amount=amount, age=age, **kw)
    return oid, seed.charge(oid, amount=amount, age=age)


def runs_of(db) -> list[dict]:
    return sorted(db["reconcile_runs"].find(), key=lambda d: (d["started"], (d.get("window") or {}).get("since", 0)))


def body(message) -> str:
    return message.get_body(("html",)).get_content().replace("\r\n", "\n").rstrip()


# --------------------------------------------------------------------------- consecutive runs, catch-up


def test_consecutive_runs_leave_no_gap_and_count_nothing_twice(cli, db, store, seed, t0):
    charges = []
    for hours in (20, 5, 0.5):  # before the first run
        charges.append(paid(seed, timedelta(hours=hours))[1])
    charges.append(paid(seed, -timedelta(minutes=20))[1])  # between run 1 and run 2
    stuck = seed.order(None, status="created", amount=3999, age=-timedelta(minutes=30))
    charges.append(seed.charge(stuck, amount=3999, age=-timedelta(minutes=30)))  # lost write: repair once
    charges.append(paid(seed, -timedelta(minutes=90))[1])  # between run 2 and run 3
    seed.order(None, status="accepted", amount=700, age=timedelta(minutes=30))  # paid, no charge: an item

    results = [cli("--now", at(t0 + k * H)) for k in range(3)]
    windows = [(r.summary["window"]["since"], r.summary["window"]["until"]) for r in results]
    assert windows[0] == (at(t0 - DAY) + "Z", at(t0) + "Z")
    for (_, until), (since, _) in zip(windows, windows[1:], strict=False):
        assert since < until  # each run overlaps the one before: no gap
    assert [r.summary.get("counted_from") for r in results] == [None, at(t0) + "Z", at(t0 + H) + "Z"]

    # Money: every charge counted exactly once over the three runs, although the windows overlap.
    counted = Counter()
    for r in results:
        for t in r.summary["totals"].values():
            counted["charges"] += t["charge_count"]
            counted["gross"] += t["gross"]
    assert counted == {"charges": len(charges), "gross": sum(ch["amount"] for ch in charges)}

    # The stuck order is repaired once. The paid order without a charge is one item: seen in the
    # windows of runs 1 and 2 (the overlap), re-checked by run 3, whose window no longer covers it.
    assert [r.summary["repaired"] for r in results] == [[], [str(stuck)], []]
    assert db["reconcile_audit"].count_documents({}) == 1
    (item,) = list(db["reconcile_items"].find())
    assert item["kind"] == c.PAID_WITHOUT_CHARGE and item["times_seen"] == 3
    assert (item["first_seen"], item["last_seen"]) == (to_unix(t0), to_unix(t0 + 2 * H))
    assert [r.summary["items"]["new"] for r in results] == [1, 0, 0]
    assert db["reconcile_state"].find_one({"_id": "watermark"})["until"] == to_unix(t0 + 2 * H)


def test_catch_up_after_days_in_sub_windows(cli, db, store, seed, t0):
    paid(seed, timedelta(hours=3))
    cli("--now", at(t0))
    day_charges = [paid(seed, -(k * DAY + 5 * H))[1] for k in range(3)]  # one paid order on each missed day
    stuck = seed.order(None, status="created", age=-(DAY + 6 * H))
    seed.charge(stuck, age=-(DAY + 6 * H))

    later = t0 + 3 * DAY + 5 * H
    result = cli("--now", at(later))
    assert result.exit_code == 0, result.output
    parts = result.summary["runs"]
    assert len(parts) == 4  # 76 hours in sub-windows of at most 24
    assert parts[0]["window"]["since"] == at(t0 - H) + "Z" and parts[-1]["window"]["until"] == at(later) + "Z"
    for a, b in zip(parts, parts[1:], strict=False):
        assert a["window"]["until"] == b["window"]["since"]
    assert all(Path(p["report"]["html"]).is_file() for p in parts)
    assert result.summary["repaired"] == [str(stuck)]
    assert sum(t["charge_count"] for t in result.summary["totals"].values()) == len(day_charges) + 1
    history = [d for d in runs_of(db) if d["invocation"] == result.summary["run_id"]]
    assert [d["part"] for d in history] == [{"index": i, "of": 4} for i in range(1, 5)]
    assert all(d["status"] == state.COMPLETED for d in history)
    assert db["reconcile_state"].find_one({"_id": "watermark"})["until"] == to_unix(later)
    assert result.output.count("needs attention:") == 4


def test_manual_backfill_does_not_move_the_watermark_back(cli, db, seed, t0):
    cli("--now", at(t0))
    backfill = cli("--since", at(t0 - 3 * DAY), "--until", at(t0 - 2 * DAY), "--now", at(t0 + H))
    assert backfill.exit_code == 0 and backfill.summary["window"]["since"] == at(t0 - 3 * DAY) + "Z"
    assert db["reconcile_state"].find_one({"_id": "watermark"})["until"] == to_unix(t0)
    dry = cli("--dry-run", "--now", at(t0 + 2 * H))
    assert dry.summary["window"]["since"] == at(t0 - H) + "Z"
    assert db["reconcile_state"].find_one({"_id": "watermark"})["until"] == to_unix(t0)  # a dry run moves nothing


# --------------------------------------------------------------------------- one run at a time


class GatedClient:
    """A Stripe client whose first list request waits for the test: the run is then mid-pull, holding the lease."""

    def __init__(self, client):
        self._client, self.reached, self.go = client, threading.Event(), threading.Event()

    def raw_request(self, method, path, **params):
        if not self.reached.is_set():
            self.reached.set()
            assert self.go.wait(timeout=60), "the test never let the run continue"
        return self._client.raw_request(method, path, **params)

    def __getattr__(self, name):
        return getattr(self._client, name)


class _OnLog(logging.Handler):
    def __init__(self, step: str, event: threading.Event):
        super().__init__()
        self.step, self.event = step, event

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage() == self.step:
            self.event.set()


def _clients(cli):
    from reconcile.store import mongo
    from reconcile.stripe import pull as stripe_pull

    config = load_config(cli.config)
    return (
        config,
        stripe_pull.make_client(config.stripe_api_key(), config.stripe),
        mongo.connect(config.mongodb_uri(), config.mongodb),
    )


def test_two_runs_at_once_never_both_repair(cli, db, store, seed, t0):
    stuck = []
    for i in range(3):
        oid = seed.order(None, status="created", amount=1000 + i, age=timedelta(hours=2))
        seed.charge(oid, amount=1000 + i, age=timedelta(hours=2))
        stuck.append(str(oid))
    config, client, mongo_db = _clients(cli)
    gated = GatedClient(client)
    first: dict = {}
    inv = orchestrate.Invocation(now=t0, report_dir=cli.tmp_path / "reports", trigger="hourly")
    runner = threading.Thread(target=lambda: first.update(out=orchestrate.run_windows(config, gated, mongo_db, inv)))
    runner.start()
    try:
        assert gated.reached.wait(timeout=60)
        # A second run from the command line while the first holds the lease: exit 4, naming the holder.
        second = cli("--now", at(t0), "--trigger", "manual-backfill")
        assert second.exit_code == 4, second.output
        line = second.output.strip().splitlines()[-1]
        assert line.startswith("reconcile: error: another run holds the lease: ") and "(hourly) on host" in line
        assert f"pid {os.getpid()}" in line
        assert second.summary["exit_code"] == 4 and second.summary["runs"] == []  # monitoring sees it too
        assert db["reconcile_audit"].count_documents({}) == 0
        # A third run that is willing to wait gets the lease once the first is done, and finds nothing to repair.
        third: dict = {}
        inv3 = orchestrate.Invocation(
            now=t0, since=t0 - DAY, report_dir=cli.tmp_path / "reports", wait=timedelta(seconds=60)
        )
        waiting = threading.Event()
        watcher = _OnLog("lease.waiting", waiting)
        logging.getLogger("reconcile").addHandler(watcher)
        try:
            waiter = threading.Thread(
                target=lambda: third.update(out=orchestrate.run_windows(config, client, mongo_db, inv3))
            )
            waiter.start()
            assert waiting.wait(timeout=30)  # the third run is polling the held lease
        finally:
            logging.getLogger("reconcile").removeHandler(watcher)
    finally:
        gated.go.set()
        runner.join(timeout=60)
    waiter.join(timeout=90)
    assert sorted(first["out"].summary["repaired"]) == sorted(stuck)
    assert third["out"].summary["repaired"] == [] and third["out"].exit_code == 0
    assert db["reconcile_audit"].count_documents({}) == 3
    statuses = Counter(d["status"] for d in runs_of(db))
    assert statuses == {state.COMPLETED: 2, state.LEASE_HELD: 1}
    assert db["reconcile_state"].find_one({"_id": LEASE_ID}) is None  # released


def test_a_killed_runs_lease_is_taken_over(cli, db, store, seed, t0, stripe_server):
    oid = seed.order(None, status="created", age=timedelta(hours=2))
    seed.charge(oid, age=timedelta(hours=2))
    cli.configure(lease={"ttl": "1s"})
    stripe_server.inject("/v1/charges", "hang", times=1)  # the doomed run stops mid-pull
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    doomed = subprocess.Popen(
        [sys.executable, "-m", "reconcile.cli", "--config", str(cli.config), "--now", at(t0), "--trigger", "doomed"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(cli.tmp_path / "doomed.log").open("w"),
    )
    try:
        deadline = time.monotonic() + 60
        while db["reconcile_state"].find_one({"_id": LEASE_ID}) is None and time.monotonic() < deadline:
            assert doomed.poll() is None, (cli.tmp_path / "doomed.log").read_text()
            time.sleep(0.05)
        holder = db["reconcile_state"].find_one({"_id": LEASE_ID})
        assert holder["pid"] == doomed.pid and holder["trigger"] == "doomed"
        while "/v1/charges" not in [p for _, p, _ in stripe_server.request_log] and time.monotonic() < deadline:
            time.sleep(0.05)  # it is now stuck in its pull, holding the lease
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(timeout=10)
    finally:
        if doomed.poll() is None:
            doomed.kill()
    result = cli("--now", at(t0), "--wait", "30s")
    assert result.exit_code == 0, result.output
    assert "took over the lease of a run that stopped without releasing it" in result.output
    assert result.summary["repaired"] == [str(oid)]
    killed = db["reconcile_runs"].find_one({"_id": holder["owner"]})
    assert killed["status"] == state.ABANDONED and killed["started_by"]["trigger"] == "doomed"


# --------------------------------------------------------------------------- money that moves later


def test_refund_and_dispute_days_later_are_reported_in_their_own_window(cli, db, store, seed, t0):
    refunded_order, refunded = paid(seed, timedelta(hours=3), amount=5000)
    disputed_order, disputed = paid(seed, timedelta(hours=4), amount=7400)
    _, failing = paid(seed, timedelta(hours=5), amount=1200)
    first = cli("--now", at(t0))
    assert first.exit_code == 0 and first.summary["counts"]["ok"] == 3

    refund = store.create_refund(refunded["id"], created=to_unix(t0 + 2 * DAY + 3 * H))
    dispute = store.create_dispute(disputed["id"], created=to_unix(t0 + 3 * DAY + 2 * H))
    failed = store.create_refund(failing["id"], created=to_unix(t0 + 3 * DAY + 4 * H), status="failed")
    later = cli("--now", at(t0 + 4 * DAY))
    assert later.exit_code == 1, later.output
    found = {}
    for part in later.summary["runs"]:
        # Its own row in the CSV of the window that judged it (later windows list it as an open item, since then).
        rows = list(csv.DictReader(io.StringIO(Path(part["report"]["csv"]).read_text())))
        for obj in (refund["id"], dispute["id"], failed["id"]):
            if any(obj in r["description"] and not r["description"].startswith("open item") for r in rows):
                found.setdefault(obj, []).append(part["window"])
        html = Path(part["report"]["html"]).read_text()
        assert all(obj in html for obj in found)  # and in the report's work queue from then on
    by_kind = {m["object_id"]: m for m in later.summary["movements"]}
    assert by_kind[refund["id"]]["kind"] == "refunded_order_still_paid" and by_kind[refund["id"]]["order_key"] == str(
        refunded_order
    )
    assert by_kind[dispute["id"]]["kind"] == "dispute_open" and by_kind[dispute["id"]]["order_key"] == str(
        disputed_order
    )
    assert by_kind[failed["id"]]["kind"] == "refund_failed"
    # Each is in exactly the sub-window in which it happened (the charges are days older).
    for obj, created in (
        (refund["id"], refund["created"]),
        (dispute["id"], dispute["created"]),
        (failed["id"], failed["created"]),
    ):
        (window,) = found[obj]
        assert window["since"] <= at(datetime.fromtimestamp(created, UTC)) + "Z" < window["until"]
    assert later.summary["needs_attention"] == 3
    csv_text = "".join(Path(p["report"]["csv"]).read_text() for p in later.summary["runs"])
    assert "refund_failed" in csv_text and "dispute_open" in csv_text

    # Weeks later the dispute is lost: the open dispute item is re-checked and now says so.
    store.update(dispute["id"], status="lost")
    lost = cli("--now", at(t0 + 4 * DAY + H))
    item = db["reconcile_items"].find_one({"_id": f"dispute:{dispute['id']}"})
    assert item["kind"] == "dispute_lost" and item["state"] == "open" and item["first_seen"] == to_unix(t0 + 4 * DAY)
    assert lost.summary["items"]["open"] == 3


# --------------------------------------------------------------------------- open items and aging


def test_an_open_item_ages_across_runs_and_is_resolved_when_fixed(cli, db, store, seed, t0):
    order = seed.order(None, status="accepted", amount=4200, age=timedelta(hours=2))  # paid, but no charge anywhere
    first = cli("--now", at(t0))
    assert first.exit_code == 1 and first.summary["items"]["new"] == 1
    assert first.summary["items"]["buckets"]["0-1 day"] == 1

    later = cli("--now", at(t0 + 9 * DAY))
    items = later.summary["items"]
    assert items["open"] == 1 and items["new"] == 0 and items["buckets"]["8-30 days"] == 1
    html = Path(later.summary["runs"][-1]["report"]["html"]).read_text()
    assert f"order {order}</code>" in html and "<br>9 days</small>" in html  # the age in days

    # Someone finds the charge and stores its id on the order: the next run re-checks and resolves the item.
    charge = seed.charge(None, metadata={}, amount=4200, age=timedelta(hours=2))
    db["orders"].update_one({"_id": order}, {"$set": {"charge_id": charge["id"]}})
    fixed = cli("--now", at(t0 + 9 * DAY + H))
    assert fixed.exit_code == 0, fixed.output
    (resolved,) = fixed.summary["items"]["resolved"]
    assert resolved["kind"] == c.PAID_WITHOUT_CHARGE and resolved["resolution"] == "re-checked: order is now ok"
    html = Path(fixed.summary["report"]["html"]).read_text()
    assert "Resolved by this run" in html and "re-checked: order is now ok" in html
    doc = db["reconcile_items"].find_one()
    assert doc["state"] == "resolved" and doc["resolved_at"] == to_unix(t0 + 9 * DAY + H)


# --------------------------------------------------------------------------- email


def email_section(port: int, **extra) -> dict:
    return {
        "send": "always",
        "host": "127.0.0.1",
        "port": port,
        "security": "none",
        "from_addr": "reconcile@shop.example",
        "to": ["finance@shop.example"],
        "timeout": "5s",
        **extra,
    }


def test_the_email_arrives_with_the_report_and_the_csv(cli, db, store, seed, t0, smtp_sink):
    seed.order(None, status="accepted", amount=900, age=timedelta(hours=2))  # paid without charge
    paid(seed, timedelta(hours=3))
    cli.configure(email=email_section(smtp_sink.port))
    result = cli("--now", at(t0))
    assert result.exit_code == 1, result.output
    (message,) = smtp_sink.messages
    since = (t0 - DAY).strftime("%Y-%m-%d %H:%M")
    assert message["Subject"] == (
        f"[reconcile] {since} to {t0:%Y-%m-%d %H:%M} UTC: 9.00 USD at stake, 1 needs attention (1 new), 1 open item"
    )
    assert message["Auto-Submitted"] == "auto-generated"
    # The text part opens with the headline and the top items, with their amounts and next steps.
    text = message.get_body(("plain",)).get_content().splitlines()
    assert text[0] == "9.00 USD at stake in 1 item; all new today."
    assert text[1].startswith("- 9.00 USD: Orders marked paid with no succeeded charge. Next: find the payment")
    html = body(message)
    assert html == Path(result.summary["report"]["html"]).read_text().rstrip()
    assert "Orders marked paid with no succeeded charge" in html and "Trend, last 14 days" in html
    assert "<svg" not in html and "<script" not in html and 'src="http' not in html
    (attachment,) = list(message.iter_attachments())
    assert attachment.get_filename() == Path(result.summary["report"]["csv"]).name
    assert "paid_without_charge" in attachment.get_content()
    assert db["reconcile_runs"].find_one()["email"]["status"] == "sent"

    cli.configure(email=email_section(smtp_sink.port, send="on_discrepancy"))
    db["orders"].delete_many({"amount": 900})
    quiet = cli("--now", at(t0 + H))
    assert quiet.exit_code == 0 and len(smtp_sink.envelopes) == 1  # nothing needed a person: no mail


def test_an_smtp_outage_loses_nothing(cli, db, store, seed, t0):
    seed.order(None, status="accepted", amount=900, age=timedelta(hours=2))
    port = free_port()
    cli.configure(email=email_section(port))
    down = cli("--now", at(t0))
    assert down.exit_code == 5, down.output
    assert "email NOT sent" in down.output and "the next run resends it" in down.output
    report = Path(down.summary["report"]["html"])
    assert report.is_file() and Path(down.summary["report"]["csv"]).is_file()
    assert db["reconcile_runs"].find_one({"_id": down.summary["run_id"]})["email"]["status"] == "failed"

    with SmtpSink(port=port) as sink:
        up = cli("--now", at(t0 + H))
    assert up.exit_code == 0, up.output  # its own window is clean (the item is carried, not new)
    subjects = [m["Subject"] for m in sink.messages]
    assert len(subjects) == 2 and subjects[0].startswith(f"[reconcile] {(t0 - DAY):%Y-%m-%d %H:%M} to ")
    assert body(sink.messages[0]) == report.read_text().rstrip()
    assert f"resent the report of run {down.summary['run_id']}" in up.output
    assert [d["email"]["status"] for d in runs_of(db)] == ["sent", "sent"]


# --------------------------------------------------------------------------- retention, history, setup


def test_old_reports_are_pruned_but_never_an_unsent_one(cli, db, seed, t0):
    cli.configure(report={"keep_days": 30}, email=email_section(free_port()))
    unsent = cli("--now", at(t0))
    assert unsent.exit_code == 5
    reports = Path(unsent.summary["report"]["html"]).parent
    old = time.time() - 40 * 86400
    stale = [reports / "reconcile-20250101T000000Z-abcdef.html", reports / "reconcile-20250101T000000Z-abcdef.csv"]
    for path in stale + [reports / "notes.txt"]:
        path.write_text("x")
    for path in [
        *stale,
        reports / "notes.txt",
        Path(unsent.summary["report"]["html"]),
        Path(unsent.summary["report"]["csv"]),
    ]:
        os.utime(path, (old, old))
    cli.configure(report={"keep_days": 30})
    cli("--now", at(t0 + H))
    assert not any(p.exists() for p in stale)
    assert (reports / "notes.txt").exists() and Path(unsent.summary["report"]["html"]).exists()


def test_runs_and_show(cli, db, seed, t0):
    seed.order(None, status="accepted", age=timedelta(hours=2))
    first = cli("--now", at(t0), "--trigger", "cron-hourly")
    listing = cli("runs")
    assert listing.exit_code == 0
    lines = listing.output.strip().splitlines()
    assert lines[0].startswith("RUN ID") and first.summary["run_id"] in lines[1]
    assert "completed" in lines[1] and "cron-hourly" in lines[1]
    shown = cli("show", first.summary["run_id"][:18])
    assert shown.exit_code == 0
    assert f"run           {first.summary['run_id']}" in shown.output
    assert "status        completed, exit 1" in shown.output and "paid_without_charge 1" in shown.output
    assert "email         skipped" in shown.output
    missing = cli("show", "nope")
    assert missing.exit_code == 2 and "no run 'nope'" in missing.output


def test_init_creates_the_indexes_and_check_lists_them(cli, db, store):
    before = cli("check")
    assert before.exit_code == 2 and "MISSING" in before.output
    assert "/v1/disputes" in before.output and "ok" in before.output
    created = cli("init")
    assert created.exit_code == 0
    assert [line.split()[0] for line in created.output.strip().splitlines()] == ["created"] * 11
    assert "orders {reconcile.audit: 1} sparse" in created.output
    after = cli("check")
    assert after.exit_code == 0 and "all checks passed" in after.output, after.output


def test_check_names_a_missing_stripe_permission(cli, store, monkeypatch):
    store.restricted_keys["rk_test_nodisputes_0123456789"] = {"/v1/disputes"}
    monkeypatch.setenv("STRIPE_API_KEY", "rk_test_nodisputes_0123456789")
    cli("init")
    result = cli("check")
    assert result.exit_code == 2
    assert "/v1/disputes" in result.output and "DENIED: the key needs 'Disputes: read'" in result.output
    assert "nodisputes_0123456789" not in result.output


def test_a_catch_up_sends_one_email_with_every_window(cli, db, store, seed, t0, smtp_sink):
    cli("--now", at(t0))
    seed.order(None, status="accepted", amount=900, age=-(DAY + 5 * H))  # paid without charge, in the 2nd window
    cli.configure(email=email_section(smtp_sink.port))
    result = cli("--now", at(t0 + 2 * DAY + 5 * H))
    assert result.exit_code == 1, result.output
    parts = result.summary["runs"]
    assert len(parts) == 3 and len(smtp_sink.messages) == 1
    (message,) = smtp_sink.messages
    assert message["Subject"].startswith(
        f"[reconcile] {(t0 - H):%Y-%m-%d %H:%M} to {(t0 + 2 * DAY + 5 * H):%Y-%m-%d %H:%M} UTC: 9.00 USD at stake, 1 needs"
    )
    assert body(message) == Path(parts[-1]["report"]["html"]).read_text().rstrip()
    names = sorted(a.get_filename() for a in message.iter_attachments())
    assert names == sorted(
        [Path(p["report"]["csv"]).name for p in parts] + [Path(p["report"]["html"]).name for p in parts[:-1]]
    )
    assert {d["email"]["status"] for d in runs_of(db)[1:]} == {"sent"}


def test_progress_follows_the_real_pulls(cli, db, store, seed, t0):
    import io

    from reconcile.runtime.progress import Progress, ProgressClient

    for i in range(250):
        paid(seed, timedelta(hours=2, seconds=i), amount=100 + i)

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    screen = Terminal()
    config, client, mongo_db = _clients(cli)
    inv = orchestrate.Invocation(now=t0, report_dir=cli.tmp_path / "reports")
    outcome = orchestrate.run_windows(config, ProgressClient(client, Progress(screen, interval=0)), mongo_db, inv)
    assert outcome.summary["counts"]["ok"] == 250
    finished = [line.split("\r\x1b[K")[-1] for line in screen.getvalue().split("\n")]
    assert any(line.startswith("/v1/charges: 3 pages, 250 objects, ") and line.endswith(", done") for line in finished)
    assert any(line.startswith("/v1/balance_transactions: 3 pages, 250 objects") for line in finished)
