"""The trend chart, retention, progress on a terminal, and the run history pages."""

from __future__ import annotations

import io
import os
import time
from datetime import datetime, timedelta, timezone

from reconcile import history, items, period, retention
from reconcile.progress import Progress, ProgressClient

T = datetime(2026, 11, 18, 12, 0, tzinfo=timezone.utc)


def run(until: datetime, charges: int, open_items: int) -> dict:
    return {"window": {"until": int(until.timestamp())}, "charge_count": charges, "open_items": open_items}


def test_trend_counts_charges_per_day_and_the_last_open_count_of_each_day():
    sweep = run(T - timedelta(hours=1), 99, 3) | {"source": "options"}   # counted its 3 days again: no charges here
    runs = [run(T - timedelta(days=1, hours=3), 10, 4), run(T - timedelta(days=1, hours=1), 5, 2), run(T - timedelta(hours=2), 7, 3), sweep]
    points = period.trend_points(runs, run(T, 1, 1), T, days=3)
    assert points == [
        {"day": "2026-11-16", "charges": 0, "open": None},
        {"day": "2026-11-17", "charges": 15, "open": 2},
        {"day": "2026-11-18", "charges": 8, "open": 1},
    ]


def test_the_chart_is_a_table_email_clients_show():
    trend = period.trend_points([run(T, 50, 5)], None, T, days=2)
    result = items.ItemsResult(buckets={b: 0 for b in items.BUCKETS})
    top, bottom = period.render(run_id="r", now=T, findings=[], items=result, trend=trend,
                                dashboard_url="https://d", dry_run=False)
    # The chart comes after the tables a person acts on.
    assert 'width="100%" bgcolor="#9aa5f5"' in bottom and 'width="100%" bgcolor="#f5a623"' in bottom
    assert "no run" in bottom                                # the day before had no run
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
    assert retention.prune(tmp_path, 0, now + 10**9) == []    # 0 keeps everything


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Page:
    def __init__(self, data, has_more):
        self.data = {"object": "list", "data": data, "has_more": has_more}


class FakeStripe:
    """Answers list pages of a 1000-second window, 100 seconds per page."""

    def __init__(self):
        self.calls = 0

    def raw_request(self, method, path, **params):
        self.calls += 1
        top = 1000 - (self.calls - 1) * 100
        return Page([{"id": f"ch_{i}", "created": top - i} for i in range(1, 101)], has_more=self.calls < 10)


def test_progress_on_a_terminal_shows_pages_objects_rate_and_eta():
    ticks = iter(range(100))   # one tick when a page is asked for, one when it arrives
    screen = FakeTerminal()
    progress = Progress(screen, clock=lambda: float(next(ticks)), interval=0)
    client = ProgressClient(FakeStripe(), progress)
    for _ in range(10):
        client.raw_request("get", "/v1/charges", created={"gte": 0, "lt": 1000}, limit=100)
    lines = screen.getvalue().split("\r\x1b[K")
    # After 2 pages (3 ticks) the oldest object is 200 s into the 1000 s window: 20% done, 12 ticks to go.
    assert "/v1/charges: 2 pages, 200 objects, 67/s, 20% of the window from 1970-01-01 00:00, ETA 0:12" in lines[2]
    assert lines[-1] == "/v1/charges: 10 pages, 1,000 objects, 53/s, done\n"


def test_progress_is_silent_when_stderr_is_not_a_terminal():
    assert Progress.for_stream(io.StringIO()) is None


def test_history_pages():
    doc = {"_id": "20261118T120000Z-abc123", "invocation": "20261118T120000Z-abc123", "status": "completed",
           "dry_run": False, "started": int(T.timestamp()), "finished": int(T.timestamp()) + 12,
           "window": {"since": int((T - timedelta(hours=1)).timestamp()), "until": int(T.timestamp())},
           "part": {"index": 1, "of": 1}, "exit_code": 1, "needs_attention": 2, "open_items": 3, "repaired": 1,
           "counts": {"ok": 5, "paid_without_charge": 2}, "totals": {"jpy": {"charge_count": 2, "gross": 4980, "refunds": 0,
           "disputes": 0, "fees": 0, "net": 4980}},
           "email": {"status": "failed", "attempts": 2, "error": "down", "subject": "[reconcile] x"},
           "started_by": {"trigger": "cron-hourly", "user": "shop", "host": "web1", "pid": 7, "command": "reconcile"}}
    (header, line) = history.table([doc])
    assert line.split()[:2] == ["20261118T120000Z-abc123", "11-18"] and "cron-hourly shop@web1" in line
    page = "\n".join(history.details(doc))
    assert "took 12s" in page and "ok 5, paid_without_charge 2" in page
    assert "totals JPY    2 charges, gross 4,980 JPY" in page
    assert "email         failed after 2 attempt(s): [reconcile] x; last error: down (the next run resends it)" in page


def test_a_long_open_item_list_is_cut_but_counted():
    docs = [{"_id": f"k{i}", "kind": "orphan_charge", "first_seen": 0, "age_days": 1, "bucket": "0-1 day", "is_new": False} for i in range(period.OPEN_ROWS + 7)]
    result = items.ItemsResult(open=docs, buckets={b: 0 for b in items.BUCKETS} | {"0-1 day": len(docs)})
    top, bottom = period.render(run_id="r", now=T, findings=[], items=result, trend=[], dashboard_url="https://d", dry_run=False)
    assert f">{len(docs)}</span></h2>" in bottom and "and 7 more open items" in bottom
    assert bottom.count("<code>orphan_charge</code>") == period.OPEN_ROWS
