"""Issue 11's localized cases, end to end: the `reconcile` command against the Stripe stand-in (HTTP,
official SDK) and nx-27017. Each test here failed on the code before its fix.

- every duration and WHEN ends in exit 2 naming the key or option, overflow included;
- outputs (report directory, summary path) are checked before the first write: exit 2, nothing changed;
- order fields are read per document into exact integers: 2**63-1 beside an unreadable amount;
- a run whose lease was taken over while it was paused stops writing and exits 4;
- Stripe lists are whole or the run stops (exit 3 naming the endpoint); every object counts once;
- one redaction for every error: status, Stripe's type and code, request id and path; never a body.
"""

from __future__ import annotations

import json
import os
import signal
import tempfile
import threading
from dataclasses import fields
from datetime import timedelta
from pathlib import Path

import pytest
import stripe
from conftest import API_KEY, Cli, SmtpSink, write_config
from faultkit import (
    FAST,
    TAKEOVER_WAIT,
    CliProcess,
    assert_audit_complete,
    assert_error_summary,
    assert_run_recorded,
    cli_env,
    last_error,
    wait_for,
)

from reconcile.config import SECTIONS
from reconcile.decide import classify as c
from reconcile.timeutil import to_unix


def snapshot(db) -> dict:
    return {name: sorted(map(repr, db[name].find())) for name in ("orders", "reconcile_audit")}


# --------------------------------------------------------------------------- durations and WHEN

DURATION_KEYS = [
    f"{section}.{f.name}" for section, cls in SECTIONS.items() for f in fields(cls) if "timedelta" in str(f.type)
]


@pytest.mark.parametrize("value", ["9999999999d", "999999999d", "9" * 5000 + "ms"])
@pytest.mark.parametrize("key", DURATION_KEYS)
def test_every_config_duration_out_of_range_exits_2_naming_its_key(cli, stripe_server, shop, db, key, value):
    shop.charge(shop.order(c.REPAIRED))
    before = snapshot(db)
    section, name = key.split(".")
    cli.configure(**{section: {name: value}})
    result = cli()
    assert result.exit_code == 2, result.output
    [line] = result.stderr.splitlines()
    assert line.startswith("reconcile: error: ") and f"{key}: " in line and "is too long" in line, line
    assert stripe_server.request_log == [] and snapshot(db) == before and result.summary is None


@pytest.mark.parametrize(
    "args, option, expected",
    [
        (["--since", "99999999h"], "--since", "is too long: a duration is at most 3660d"),
        (["--until", "99999999h"], "--until", "is too long"),
        (["--since", "9" * 5000 + "d"], "--since", "is too long"),
        (["--wait", "9999999999d"], "--wait", "is too long"),
        (["--wait", "999999999d"], "--wait", "is too long"),
        (["--since", "0001-01-01T00:00"], "--since", "is more than 3660d (ten years) before now"),
        (["--since", "9999-12-31T23:59:59-14:00"], "--since", "is neither an ISO-8601 time"),
    ],
)
def test_every_when_and_wait_out_of_range_exits_2_naming_the_option(
    cli, stripe_server, shop, db, args, option, expected
):
    shop.charge(shop.order(c.REPAIRED))
    before = snapshot(db)
    result = cli(*args)
    assert result.exit_code == 2, result.output
    assert option in result.stderr and expected in result.stderr, result.stderr
    assert "Traceback" not in result.output
    assert stripe_server.request_log == [] and snapshot(db) == before and result.summary is None


# --------------------------------------------------------------------------- outputs before the first write


def _unwritable_dir(tmp_path: Path) -> Path:
    """A directory in which no file can be created: owner-only read-only, or, for root (who ignores
    permissions), /sys (a kernel file system that refuses new files)."""
    path = Path("/sys") if os.geteuid() == 0 else tmp_path / "read-only"
    if path != Path("/sys"):
        path.mkdir(mode=0o500)
    try:
        fd, name = tempfile.mkstemp(dir=path)
    except OSError:
        return path
    os.close(fd)
    os.unlink(name)
    pytest.skip(f"{path} is writable here")


@pytest.mark.parametrize(
    "case, named",
    [
        ("report.dir is a file", "report.dir: "),
        ("report.dir is read-only", "report.dir: "),
        ("--report-dir under a file", "--report-dir: "),
        ("--summary-json under a file", "--summary-json "),
    ],
)
def test_unwritable_outputs_exit_2_before_anything_changes(cli, stripe_server, shop, db, tmp_path, case, named):
    for _ in range(3):
        shop.charge(shop.order(c.REPAIRED))
    before = snapshot(db)
    a_file = tmp_path / "a-file"
    a_file.write_text("not a directory\n")
    args: list[str] = []
    if case == "report.dir is a file":
        cli.configure(report={"dir": str(a_file)})
    elif case == "report.dir is read-only":
        cli.configure(report={"dir": str(_unwritable_dir(tmp_path))})
    elif case == "--report-dir under a file":
        args = ["--report-dir", str(a_file / "reports")]
    else:
        args = ["--summary-json", str(a_file / "summary.json")]
    result = cli(*args)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("reconcile: error: ") and named in line, line
    assert "is not a directory the job can write in" in line and line.endswith("nothing was changed"), line
    assert stripe_server.request_log == [] and snapshot(db) == before
    assert db["reconcile_state"].count_documents({}) == 0 and db["reconcile_runs"].count_documents({}) == 0
    assert result.summary is None and a_file.read_text() == "not a directory\n"


# --------------------------------------------------------------------------- exact integers per document


def test_int64_max_amount_beside_an_unreadable_one_stops_nothing(cli, store, db, shop):
    """2**63-1 is a valid BSON int64; with a missing amount in the same window the column once went
    through float64 (exit 70 for every run); 2**53+1 was silently rounded."""
    stuck = [shop.order(c.REPAIRED, amount=1000 + i) for i in range(3)]
    for i, order_id in enumerate(stuck):
        shop.charge(order_id, amount=1000 + i)
    biggest = shop.order(c.AMOUNT_MISMATCH, amount=2**63 - 1)
    shop.charge(biggest, amount=2500)
    above_float = shop.order(c.AMOUNT_MISMATCH, amount=2**53 + 1)
    shop.charge(above_float, amount=2500)
    unreadable = shop.order(c.DATA_PROBLEM, amount="12.50")
    shop.charge(unreadable, amount=1250)
    missing = shop.order(c.DATA_PROBLEM, amount=None)
    shop.charge(missing)
    odd = [biggest, above_float, unreadable, missing]
    before = {str(o): db["orders"].find_one({"_id": o}) for o in odd}

    result = cli()
    assert result.exit_code == 1, result.output
    assert sorted(result.summary["repaired"]) == sorted(map(str, stuck))
    found = {d["order_id"]: d for d in result.summary["discrepancies"]}
    assert (
        found[str(biggest)]["outcome"] == c.AMOUNT_MISMATCH and found[str(above_float)]["outcome"] == c.AMOUNT_MISMATCH
    )
    report_csv = Path(result.summary["report"]["csv"]).read_text()
    assert "92233720368547758.07" in report_csv  # 2**63-1 cents, exact
    assert "90071992547409.93" in report_csv  # 2**53+1 cents, not rounded to ...92
    assert found[str(unreadable)]["outcome"] == c.DATA_PROBLEM and found[str(missing)]["outcome"] == c.DATA_PROBLEM
    for key, doc in before.items():
        assert db["orders"].find_one({"_id": doc["_id"]}) == doc, f"order {key} was changed"
    assert db["reconcile_audit"].count_documents({"order_key": {"$in": list(before)}}) == 0


# --------------------------------------------------------------------------- a lost lease


def _process(tmp_path: Path, name: str, stripe_server, db_name: str, uri: str, *args: str, **sections) -> CliProcess:
    folder = tmp_path / name
    folder.mkdir()
    config = write_config(folder / "reconcile.toml", stripe_server.url, db_name, **sections)
    return CliProcess(folder, config, cli_env(uri, API_KEY), "--summary-json", str(folder / "summary.json"), *args)


def _summary(process: CliProcess) -> dict:
    return json.loads(process.stdout_path.with_name("summary.json").read_text())


def test_a_run_paused_past_its_lease_stops_writing_when_it_resumes(
    tmp_path, stripe_server, shop, db, mongo_server, proxy, monkeypatch
):
    """The holder is frozen (SIGSTOP: a GC pause, a frozen VM) just after its first repair batch; another
    run takes the expired lease over and is itself held in its pull; the first resumes. Before, it logged
    `lease.lost`, repaired every other batch, exited 0 and turned its history back to `completed`."""
    monkeypatch.setattr(stripe.HTTPClient, "INITIAL_DELAY", 0.001)
    stuck = [shop.order(c.REPAIRED, amount=1000 + i) for i in range(6)]
    for i, order_id in enumerate(stuck):
        shop.charge(order_id, amount=1000 + i)
    sections = {
        "stripe": dict(FAST["stripe"], timeout="60s"),
        "mongodb": dict(FAST["mongodb"], repair_batch_size=2),
        "lease": {"ttl": "1s"},
    }
    # The first run's second `update` on orders clears the audit flags of its first batch: the last
    # write of that batch, before the lease is checked for the next one.
    held = proxy.on("update", "orders", nth=2, action="hold")
    first = _process(tmp_path, "first", stripe_server, db.name, proxy.uri, **sections)
    wait_for(held.hit.is_set, what="the first batch's last write")
    os.kill(first.process.pid, signal.SIGSTOP)
    try:
        proxy.release()  # answered while it is frozen: it reads the answer when it resumes
        release = threading.Event()  # the second run, holding the lease, waits in its pull
        stripe_server.inject("/v1/charges", "hang", times=1, release=release)
        second = _process(tmp_path, "second", stripe_server, db.name, mongo_server.uri, *TAKEOVER_WAIT, **sections)
        wait_for(lambda: stripe_server.faults_served == 1, what="the second run to take the lease over")
    finally:
        os.kill(first.process.pid, signal.SIGCONT)
    assert first.wait() == 4, first.stderr
    release.set()
    assert second.wait() == 0, second.stderr

    first_run, second_run = _summary(first)["run_id"], _summary(second)["run_id"]
    line = last_error(first.stderr)
    assert "lease expired and was taken over" in line and f"now held by {second_run}" in line, line
    done = _summary(first)
    assert (done["run_id"], done["exit_code"], done["error"], done["runs"]) == (first_run, 4, line, [])
    assert "2 order(s) were changed before this" in line  # its first batch, listed (issue 11, item 2)
    record = db["reconcile_runs"].find_one({"_id": first_run})
    assert (record["status"], record["exit_code"], record["error"]) == ("lease_lost", 4, line)
    # It wrote nothing after it resumed: its first batch only; the rest by the run that took over.
    by_run: dict[str, list[str]] = {}
    for doc in db["orders"].find({"reconcile": {"$exists": True}}):
        by_run.setdefault(doc["reconcile"]["run_id"], []).append(str(doc["_id"]))
    assert len(by_run.get(first_run, [])) == 2 and len(by_run.get(second_run, [])) == 4, by_run
    assert sorted(done["repaired"]) == sorted(by_run[first_run])
    assert sorted(_summary(second)["repaired"]) == sorted(by_run[second_run])
    assert_audit_complete(db)
    assert db["reconcile_state"].find_one({"_id": "watermark"})["run_id"] == second_run


# --------------------------------------------------------------------------- whole lists


def _stopped_before_any_change(result, db, before) -> None:
    assert snapshot(db) == before
    assert_error_summary(result.summary, 3, result.stderr)
    assert_run_recorded(db, result.summary, "failed")
    assert db["reconcile_state"].find_one({"_id": "watermark"}) is None


def _seed_stuck(shop, count: int = 3) -> list:
    stuck = [shop.order(c.REPAIRED, amount=1000 + i) for i in range(count)]
    for i, order_id in enumerate(stuck):
        shop.charge(order_id, amount=1000 + i)
    return stuck


@pytest.mark.parametrize("path", ["/v1/charges", "/v1/balance_transactions"])
def test_a_page_saying_there_is_more_with_nothing_on_it_stops_the_pull(cli, stripe_server, shop, db, path):
    """Before: the pull ended there as if complete (charges: every stuck order stale_pending, exit 1)."""
    _seed_stuck(shop)
    before = snapshot(db)
    stripe_server.inject(path, "empty_has_more", times=1)
    result = cli()
    assert result.exit_code == 3, result.output
    line = last_error(result.stderr)
    assert f"Stripe's list {path} is not whole: a page with has_more true and no objects" in line, line
    _stopped_before_any_change(result, db, before)


def test_a_repeated_cursor_stops_the_pull_naming_the_endpoint(cli, stripe_server, shop, store, db, now):
    """150 charges in one second (two pages, the range check cannot tell); the second page asked for
    answers the first again: its last id is the cursor already followed."""
    second = to_unix(now - timedelta(hours=2))
    for i in range(150):
        store.create_charge(amount=100 + i, created=second, metadata={"order_id": f"none-{i}"})
    _seed_stuck(shop)
    before = snapshot(db)
    stripe_server.inject("/v1/charges", "ignore_cursor", times=1, when=lambda q: "starting_after" in q)
    result = cli()
    assert stripe_server.faults_served == 1
    assert result.exit_code == 3, result.output
    line = last_error(result.stderr)
    assert "Stripe's list /v1/charges is not whole: the next cursor" in line and "was already followed" in line, line
    _stopped_before_any_change(result, db, before)


def test_an_object_outside_the_requested_range_stops_the_pull_naming_the_endpoint(cli, stripe_server, shop, db):
    _seed_stuck(shop)
    shop.charge(None, amount=777, age=timedelta(days=3))  # outside the 24h window
    before = snapshot(db)
    stripe_server.inject("/v1/charges", "ignore_created", times=1)
    result = cli()
    assert result.exit_code == 3, result.output
    line = last_error(result.stderr)
    assert "Stripe's list /v1/charges is not whole: " in line and "outside the range asked for" in line, line
    _stopped_before_any_change(result, db, before)


def test_an_object_listed_twice_counts_once_balance_transactions_and_refunds_included(
    cli, stripe_server, shop, store, db
):
    """Before: charges were de-duplicated, balance transactions (totals) and refunds (movements) were not."""
    stuck = _seed_stuck(shop)
    paid = shop.order(c.OK, status="accepted", amount=4000)
    charge = shop.charge(paid, amount=4000)
    store.create_refund(charge["id"], amount=1000, created=charge["created"] + 60)
    for path in ("/v1/balance_transactions", "/v1/refunds", "/v1/charges"):
        stripe_server.inject(path, "duplicate_first", times=1)
    result = cli()
    assert stripe_server.faults_served == 3
    assert result.exit_code in (0, 1), result.output
    usd = result.summary["totals"]["usd"]
    assert usd["charge_count"] == 4 and usd["gross"] == 1000 + 1001 + 1002 + 4000, usd
    assert usd["refunds"] == -1000, usd
    assert len(result.summary["movements"]) == 1, result.summary["movements"]
    assert sorted(result.summary["repaired"]) == sorted(map(str, stuck))


# --------------------------------------------------------------------------- one redaction for every error

CARD = "4000056655665556"
EMAILS = ("alice.sentinel@example.com", "bob.sentinel@example.org")
# What an answer or a server message may carry: a card (number, last4, expiry) and customers' emails.
LEAKY = (
    f"declined: card {CARD} last4 5556 exp_month 11 exp_year 2031 (11/2031) "
    f"for {EMAILS[0]} and {EMAILS[1]}; full body follows"
)
SECRETS = (CARD, "exp_month", "exp_year", "11/2031", "last4", *EMAILS, "full body follows", "AOB934RVNwzk6xtn")
ERROR_JSON = {"type": "invalid_request_error", "code": "parameter_invalid", "param": "limit", "message": LEAKY}


class RefusingSmtp(SmtpSink):
    """A real SMTP server that refuses the message with a reply echoing what it saw."""

    async def handle_DATA(self, server, session, envelope):
        return f"554 5.7.1 rejected: {LEAKY}"


def _everything(result, tmp_path: Path, db) -> str:
    """Every output of the run: stdout, stderr (log lines), summary, run history, every file it wrote."""
    texts = [result.stdout, result.stderr, json.dumps(result.summary)]
    texts += [json.dumps(doc, default=str) for doc in db["reconcile_runs"].find()]
    texts += [path.read_text(errors="replace") for path in tmp_path.rglob("*") if path.is_file()]
    return "\n".join(texts)


@pytest.mark.parametrize(
    "path_name, exit_code, says",
    [
        ("truncated 200 page", 3, "Stripe unavailable at /v1/charges"),
        ("4xx with a JSON error", 3, "Stripe rejected the request to /v1/charges (HTTP 400, invalid_request_error"),
        ("4xx with a proxy page", 3, "Stripe unavailable at /v1/charges"),
        ("5xx past the retries", 3, "Stripe unavailable at /v1/charges"),
        ("MongoDB error", 3, ": BadValue (code 2)"),
        ("SMTP error", 5, "email NOT sent"),
    ],
)
def test_no_card_or_customer_data_from_any_error_reaches_any_output(
    tmp_path, stripe_server, store, shop, db, proxy, monkeypatch, path_name, exit_code, says
):
    monkeypatch.setattr(stripe.HTTPClient, "INITIAL_DELAY", 0.001)
    monkeypatch.setattr(stripe.HTTPClient, "MAX_DELAY", 0.005)
    for i in range(3):
        shop.charge(shop.order(c.REPAIRED, amount=1000 + i), amount=1000 + i, billing_email=EMAILS[i % 2])
    cli = Cli(tmp_path, stripe_server.url, db.name, proxy.uri, monkeypatch)
    sections = dict(FAST)
    html = f"<html><body><h1>403 Forbidden</h1><pre>{LEAKY}</pre></body></html>".encode()
    if path_name == "truncated 200 page":
        stripe_server.inject("/v1/charges", "truncated", times=None)
    elif path_name == "4xx with a JSON error":
        stripe_server.inject(
            "/v1/charges", "raw", times=None, status=400, body=json.dumps({"error": ERROR_JSON}).encode()
        )
    elif path_name == "4xx with a proxy page":
        stripe_server.inject("/v1/charges", "raw", times=None, status=403, body=html)
    elif path_name == "5xx past the retries":
        error = {"error": dict(ERROR_JSON, type="api_error", code="internal")}
        stripe_server.inject("/v1/charges", "raw", times=None, status=500, body=json.dumps(error).encode())
    elif path_name == "MongoDB error":
        proxy.on("find", "orders", action={"ok": 0, "errmsg": LEAKY, "code": 2, "codeName": "BadValue"})
    smtp = RefusingSmtp() if path_name == "SMTP error" else None
    if smtp is not None:
        smtp.__enter__()
        sections["email"] = {
            "send": "always",
            "host": "127.0.0.1",
            "port": smtp.port,
            "security": "none",
            "from_addr": "reconcile@shop.example",
            "to": ["finance@shop.example"],
            "timeout": "5s",
        }
    try:
        cli.configure(**sections)
        result = cli()
    finally:
        if smtp is not None:
            smtp.__exit__()
    assert result.exit_code == exit_code, result.output
    assert says in result.output, result.output
    if exit_code == 3:
        line = last_error(result.stderr)
        assert result.summary["error"] == line
        assert db["reconcile_runs"].find_one({"_id": result.summary["run_id"]})["error"] == line
        if "Stripe" in says:
            assert "request req_" in line and "/v1/charges" in line, line  # what Stripe's support asks for
    text = _everything(result, tmp_path, db)
    leaked = [secret for secret in SECRETS if secret in text]
    assert not leaked, f"{leaked} in the outputs of the run"
