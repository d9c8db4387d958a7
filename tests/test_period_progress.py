"""The trend chart, retention, progress on a terminal, and the run history pages."""

from __future__ import annotations

import io
import os
import time
from datetime import UTC, datetime, timedelta

import stripe

from reconcile.decide import items as item_rules
from reconcile.decide.trend import trend_points
from reconcile.report import history, period, retention
from reconcile.runtime.progress import Progress, ProgressClient

T = datetime(2026, 11, 18, 12, 0, tzinfo=UTC)


def run(until: datetime, charges: int, open_items: int) -> dict:
    return {"window": {"until": int(until.timestamp())}, "charge_count": charges, "open_items": open_items}


def test_trend_counts_charges_per_day_and_the_last_open_count_of_each_day():
    sweep = run(T - timedelta(hours=1), 99, 3) | {"source": "options"}  # counted its 3 days again: no charges here
    runs = [
        run(T - timedelta(days=1, hours=3), 10, 4),
        run(T - timedelta(days=1, hours=1), 5, 2),
        run(T - timedelta(hours=2), 7, 3),
        sweep,
    ]
    points = trend_points(runs, run(T, 1, 1), T, days=3)
    assert points == [
        {"day": "2026-11-16", "charges": 0, "open": None},
        {"day": "2026-11-17", "charges": 15, "open": 2},
        {"day": "2026-11-18", "charges": 8, "open": 1},
    ]


def test_the_chart_is_a_table_email_clients_show():
    trend = trend_points([run(T, 50, 5)], None, T, days=2)
    result = item_rules.ItemsResult(buckets={b: 0 for b in item_rules.BUCKETS})
    top, bottom = period.sections(
        run_id="r", now=T, findings=[], items=result, trend=trend, dashboard_url="https://d", dry_run=False
    ).html()
    # The chart comes after the tables a person acts on.
    assert 'width="100%" bgcolor="#9aa5f5"' in bottom and 'width="100%" bgcolor="#f5a623"' in bottom
    assert "no run" in bottom  # the day before had no run
    assert ">0</td>" not in bottom  # ...and counted no charges: no "0 charges" noise, a blank
    for banned in ("<svg", "<script", "<img", "data:", "http"):
        assert banned not in top + bottom


def test_retention_prunes_old_reports_only(tmp_path):
    now = time.time()
    old, fresh, unsent = (tmp_path / f"reconcile-2026010{i}T000000Z-abc123.html" for i in (1, 2, 3))
    other = tmp_path / "reconcile-notes.html"
    for path in (old, fresh, unsent, other):
        path.write_text("x")
    for path in (old, unsent, other):
        os.utime(path, (now - 91 * 86400, now - 91 * 86400))
    removed = retention.prune(tmp_path, 90, now, keep=[unsent])
    assert removed == [old]
    assert fresh.exists() and unsent.exists() and other.exists()
    assert retention.prune(tmp_path, 0, now + 10**9) == []  # 0 keeps everything


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_on_a_terminal_shows_pages_objects_rate_and_eta():
    ticks = iter(range(100))  # one tick per report, one when the pull starts
    screen = FakeTerminal()
    progress = Progress(screen, clock=lambda: float(next(ticks)), interval=0)
    report = progress.watch("/v1/charges", 0, 1000)
    for page in range(1, 10):
        report(page, page * 100, page / 10, False)  # the pull says how much of its window is done
    report(10, 1000, 1.0, True)
    lines = screen.getvalue().split("\r\x1b[K")
    # After 2 pages (2 ticks) 20% of the 1000 s window is done: 8 ticks to go.
    assert "/v1/charges: 2 pages, 200 objects, 100/s, 20% of the window from 1970-01-01 00:00, ETA 0:08" in lines[2]
    assert lines[-1] == "/v1/charges: 10 pages, 1,000 objects, 100/s, done\n"


def test_progress_shows_pulls_side_by_side_on_one_line_and_leaves_each_finished_one():
    screen = FakeTerminal()
    progress = Progress(screen, clock=lambda: 0.0, interval=0)
    charges, balance = progress.watch("/v1/charges", 0, 1000), progress.watch("/v1/balance_transactions", 0, 1000)
    progress.clock = lambda: 2.0
    charges(1, 100, 0.5, False)
    balance(1, 100, 0.25, False)
    assert screen.getvalue().split("\r\x1b[K")[-1] == (
        "/v1/charges: 1 page, 100 objects, 50/s, 50% of the window from 1970-01-01 00:00, ETA 0:02"
        " | /v1/balance_transactions: 1 page, 100 objects, 50/s, 25% of the window from 1970-01-01 00:00, ETA 0:06"
    )
    progress.clock = lambda: 3.0
    charges(2, 150, 1.0, True)
    balance(2, 300, 1.0, True)
    progress.close()
    finished = [line.split("\r\x1b[K")[-1] for line in screen.getvalue().split("\n")]
    assert finished == [
        "/v1/charges: 2 pages, 150 objects, 50/s, done",
        "/v1/balance_transactions: 2 pages, 300 objects, 100/s, done",
        "",
    ]


def test_concurrent_pull_reports_its_progress_to_a_wrapped_client():
    from reconcile.demo.standin import StandinStore, serve
    from reconcile.stripe import pull as stripe_pull
    from reconcile.timeutil import from_unix

    store = StandinStore(api_key="sk_test_progress")
    with store.bulk():
        for n in range(1000):
            store.create_charge(amount=100 + n, created=1_700_000_000 + n)
    screen = FakeTerminal()
    with serve(store) as srv:
        client = ProgressClient(
            stripe.StripeClient("sk_test_progress", base_addresses={"api": srv.url}), Progress(screen, interval=0)
        )
        rows = stripe_pull.fetch_charges(
            client,
            from_unix(1_700_000_000),
            from_unix(1_700_001_000),
            "order_id",
            stripe_pull.RetryPolicy(concurrency=4),
        )
    assert len(rows) == 1000
    shown = screen.getvalue().split("\r\x1b[K")
    fractions = [
        int(line.split("% of the window")[0].rsplit(", ", 1)[1]) for line in shown if "% of the window" in line
    ]
    assert fractions and fractions == sorted(fractions) and fractions[-1] <= 100  # only forward, done only at the end
    assert shown[-1].startswith("/v1/charges: ") and ", 1,000 objects, " in shown[-1] and shown[-1].endswith(", done\n")


def test_progress_is_silent_when_stderr_is_not_a_terminal():
    assert Progress.for_stream(io.StringIO()) is None


def test_history_pages():
    doc = {
        "_id": "20261118T120000Z-abc123",
        "invocation": "20261118T120000Z-abc123",
        "status": "completed",
        "dry_run": False,
        "started": int(T.timestamp()),
        "finished": int(T.timestamp()) + 12,
        "window": {"since": int((T - timedelta(hours=1)).timestamp()), "until": int(T.timestamp())},
        "part": {"index": 1, "of": 1},
        "exit_code": 1,
        "needs_attention": 2,
        "open_items": 3,
        "repaired": 1,
        "counts": {"ok": 5, "paid_without_charge": 2},
        "totals": {"jpy": {"charge_count": 2, "gross": 4980, "refunds": 0, "disputes": 0, "fees": 0, "net": 4980}},
        "email": {"status": "failed", "attempts": 2, "error": "down", "subject": "[reconcile] x"},
        "started_by": {"trigger": "cron-hourly", "user": "shop", "host": "web1", "pid": 7, "command": "reconcile"},
    }
    (header, line) = history.table([doc])
    assert line.split()[:2] == ["20261118T120000Z-abc123", "11-18"] and "cron-hourly shop@web1" in line
    page = "\n".join(history.details(doc))
    assert "took 12s" in page and "ok 5, paid_without_charge 2" in page
    assert "totals JPY    2 charges, gross 4,980 JPY" in page
    assert "email         failed after 2 attempt(s): [reconcile] x; last error: down (the next run resends it)" in page


def test_long_lists_of_resolved_items_and_refunds_are_drawn_whole_and_counted_when_cut():
    """The sections draw every row; the rows the report's budget cuts (render.Row, tests/test_report.py) are
    counted, each list saying how many more the summary JSON has."""
    docs = [
        {"_id": f"k{i}", "kind": "orphan_charge", "charge_id": f"ch_{i}", "resolution": "re-checked: gone"}
        for i in range(17)
    ]
    refunds = [
        {
            "kind": "partial_refund",
            "needs_person": False,
            "source": "refund",
            "object_id": f"re_{i}",
            "object_status": "succeeded",
            "created": int(T.timestamp()),
            "amount": 100,
            "currency": "usd",
            "charge_id": f"ch_r{i}",
            "charge_ids": [f"ch_r{i}"],
            "livemode": False,
            "order_key": None,
            "detail": "partial refund",
        }
        for i in range(13)
    ]
    dispute = refunds[0] | {"kind": "dispute_open", "needs_person": True, "source": "dispute", "object_id": "dp_1"}
    result = item_rules.ItemsResult(resolved=docs, buckets={b: 0 for b in item_rules.BUCKETS})
    sections = period.sections(
        run_id="r",
        now=T,
        findings=[*refunds, dispute],
        items=result,
        trend=[],
        dashboard_url="https://d",
        dry_run=False,
    )
    _, whole = sections.html()
    assert whole.count("How we know: re-checked: gone") == 17 and whole.count("Partial refund") == 13
    assert "more (the summary JSON" not in whole
    assert sorted((r.list, -r.place) for r in sections.rows()) == sorted(
        [*(("resolved", i) for i in range(17)), *(("movements", i) for i in range(13))]
    )
    cut = frozenset({*(("resolved", i) for i in range(10, 17)), *(("movements", i) for i in range(10, 13))})
    top, bottom = sections.html(cut)
    assert f"Resolved by this run &middot; {len(docs)}" in bottom and "and 7 more (the summary JSON" in bottom
    assert bottom.count("How we know: re-checked: gone") == 10
    # The open dispute is a work-queue item: here it is counted, not listed a second time.
    assert "1 of them needs a person: they are in the work queue above" in bottom and "dp_1" not in bottom
    assert bottom.count("Partial refund") == 10 and "and 3 more" in bottom
