"""Undoing a catch-up by the id its summary names, end to end through the CLI (stand-in over HTTP,
nx-27017, a real SMTP server on loopback).

A first run after a pause catches up in sub-windows (`window.max_span`); its summary adds up every
window's `repaired` and `marked_failed`. The summary's `run_id`, the console's last line, the email,
`reconcile runs` and `reconcile undo` share one id, the invocation's: undo of it puts back every order
the summary lists (the windows newest first, as one undo); a window's own run id (`ID-wN`) undoes that
window only.

Time: runs are placed with the hidden `--now` option, never by sleeping (tests/test_operation.py).
nx-27017 gaps: an ObjectId `_id` also matches its hex string; orders are read back by their own id.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from conftest import at

H = timedelta(hours=1)
DAY = timedelta(days=1)


def stuck(seed, age: timedelta, amount: int = 3999):
    """A lost write: the charge succeeded, the order is still pending (the run repairs it)."""
    oid = seed.order(None, status="created", amount=amount, age=age)
    seed.charge(oid, amount=amount, age=age)
    return oid


def declined(seed, age: timedelta):
    """A pending order whose only charge failed (the run marks it failed)."""
    oid = seed.order(None, status="created", age=age)
    seed.charge(oid, status="failed", age=age)
    return oid


def email_section(port: int) -> dict:
    return {
        "send": "always",
        "host": "127.0.0.1",
        "port": port,
        "security": "none",
        "from_addr": "reconcile@shop.example",
        "to": ["finance@shop.example"],
        "timeout": "5s",
    }


@pytest.fixture
def catch_up(cli, seed, t0, smtp_sink):
    """A run, a pause of two days, then a catch-up in three sub-windows that changes orders in each,
    emailed: (the catch-up's CLI result, {window index from 1: the orders it changed})."""
    cli.configure(email=email_section(smtp_sink.port))
    assert cli("--now", at(t0)).exit_code == 0
    changed = {
        1: [stuck(seed, -5 * H)],
        2: [stuck(seed, -(DAY + 6 * H), amount=4100)],
        3: [stuck(seed, -(2 * DAY + 6 * H), amount=4200), declined(seed, -(2 * DAY + 7 * H))],
    }
    result = cli("--now", at(t0 + 2 * DAY + 10 * H))
    assert result.exit_code == 0, result.output
    assert len(result.summary["runs"]) == 3, result.summary["runs"]
    return result, changed


def order(db, oid) -> dict:
    (doc,) = [d for d in db["orders"].find({"_id": oid}) if d["_id"] == oid]
    return doc


def test_undo_of_the_id_a_catch_up_summary_names_puts_back_every_order_it_lists(cli, catch_up, db, smtp_sink):
    result, changed = catch_up
    summary = result.summary
    run_id, windows = summary["run_id"], [w["run_id"] for w in summary["runs"]]
    listed = summary["repaired"] + summary["marked_failed"]
    every = [o for orders in changed.values() for o in orders]
    assert sorted(listed) == sorted(map(str, every)) and len(summary["marked_failed"]) == 1

    undone = cli("undo", run_id, "--by", "alice")
    assert undone.exit_code == 0, undone.output
    assert "4 put back, 0 left alone, 0 already undone" in undone.output
    assert f"undo of run {run_id} (3 windows, newest first: {', '.join(reversed(windows))})" in undone.output
    for oid in every:
        doc = order(db, oid)
        assert doc["status"] == "created" and "charge_id" not in doc, doc
        assert doc["reconcile"]["action"] == "undo" and doc["reconcile"]["hold"] is True
    undid = {r["order_key"]: r["undid_run"] for r in db["reconcile_audit"].find({"action": "undo"})}
    assert sorted(undid) == sorted(listed) and set(undid.values()) == set(windows)
    # Newest window first: the third window's orders, then the second's, then the first's.
    put_back = [ln.split()[3].rstrip(":") for ln in undone.output.splitlines() if ln.startswith("put back order")]
    assert sorted(put_back[:2]) == sorted(map(str, changed[3]))
    assert put_back[2:] == [str(changed[2][0]), str(changed[1][0])]

    # One id everywhere: the console's last line, the email, the run history; each window has its own.
    assert run_id not in windows and all(w.startswith(f"{run_id}-w") for w in windows)
    line = f"run {run_id} (3 windows): 4 order(s) changed; `reconcile undo {run_id}` puts them back"
    assert result.stdout.strip().splitlines()[-1] == line
    message = smtp_sink.messages[-1]
    assert message.get_body(("plain",)).get_content().strip().splitlines()[-1] == line
    history = [json.loads(row) for row in cli("runs", "--json").stdout.splitlines()]
    assert sorted(r["run_id"] for r in history if r["invocation"] == run_id) == sorted(windows)


def test_a_windows_own_run_id_undoes_that_window_only(cli, catch_up, db):
    result, changed = catch_up
    run_id, windows = result.summary["run_id"], [w["run_id"] for w in result.summary["runs"]]
    assert windows == [f"{run_id}-w{i}" for i in (1, 2, 3)]

    dry = cli("undo", run_id, "--dry-run")
    assert dry.exit_code == 0 and dry.output.count("DRY RUN: would put back order") == 4, dry.output

    second = cli("undo", windows[1], "--by", "alice")
    assert second.exit_code == 0, second.output
    assert f"undo of run {windows[1]} as undo-" in second.output and "1 put back, 0 left alone" in second.output
    (oid,) = changed[2]
    assert order(db, oid)["status"] == "created"
    assert all(order(db, o)["status"] in ("accepted", "failed") for i in (1, 3) for o in changed[i])

    # The invocation's id then finishes the job: the other windows put back, the second already undone.
    rest = cli("undo", run_id, "--by", "alice")
    assert rest.exit_code == 0, rest.output
    assert "3 put back, 0 left alone, 1 already undone" in rest.output
    assert all(order(db, o)["status"] == "created" for orders in changed.values() for o in orders)

    # --order reaches any window of the invocation; an order none of them changed is refused.
    unknown = cli("undo", run_id, "--order", "no_such_order")
    assert unknown.exit_code == 2 and f"run {run_id} did not change order(s) no_such_order" in unknown.output


def test_show_of_the_id_a_catch_up_summary_names_prints_every_window_oldest_first(cli, catch_up):
    result, _ = catch_up
    run_id, windows = result.summary["run_id"], [w["run_id"] for w in result.summary["runs"]]
    shown = cli("show", run_id)
    assert shown.exit_code == 0, shown.output
    heads = [line.split()[1] for line in shown.stdout.splitlines() if line.startswith("run ")]
    assert heads == windows
    one = cli("show", windows[1])
    assert one.exit_code == 0 and [ln.split()[1] for ln in one.stdout.splitlines() if ln.startswith("run ")] == [
        windows[1]
    ]
