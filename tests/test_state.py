"""The window plan (pure) and the watermark (on the wire-protocol MongoDB): no gaps, never backwards."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from reconcile.errors import ConfigError
from reconcile.run import plan as window_plan
from reconcile.store import runs as state
from reconcile.timeutil import Window

T = datetime(2026, 11, 18, 12, 0, tzinfo=UTC)
H = timedelta(hours=1)
DEFAULTS = dict(lookback=24 * H, overlap=H, max_span=24 * H)


def plan(**kw):
    return window_plan.plan_windows(**{"since": None, "until": None, "watermark": None, **DEFAULTS, **kw})


def test_first_run_uses_the_lookback():
    p = plan(now=T)
    assert p.source == "lookback"
    assert [(w.since, w.until, w.counted_from) for w in p.windows] == [(T - 24 * H, T, None)]


def test_next_run_starts_at_the_watermark_minus_the_overlap_and_counts_money_from_the_watermark():
    p = plan(now=T, watermark=T - H)
    assert p.source == "watermark"
    assert [(w.since, w.until, w.counted_from) for w in p.windows] == [(T - 2 * H, T, T - H)]


def test_catch_up_after_days_runs_in_sub_windows_without_gaps():
    p = plan(now=T, watermark=T - timedelta(days=3))
    assert len(p.windows) == 4
    assert p.windows[0].since == T - timedelta(days=3) - H and p.windows[-1].until == T
    for before, after in zip(p.windows, p.windows[1:], strict=False):
        assert before.until == after.since and before.until - before.since <= 24 * H
    assert p.windows[0].counted_from == T - timedelta(days=3)
    assert all(w.counted_from is None for w in p.windows[1:])


def test_options_override_the_watermark_and_count_the_whole_window():
    p = plan(now=T, watermark=T - H, since=T - 6 * H, until=T - 5 * H)
    assert p.source == "options"
    assert [(w.since, w.until, w.counted_from) for w in p.windows] == [(T - 6 * H, T - 5 * H, None)]


def test_until_before_the_watermark_falls_back_to_the_lookback():
    p = plan(now=T, watermark=T, until=T - 10 * H)
    assert p.source == "lookback" and p.windows[0].until == T - 10 * H


def test_until_in_the_future_is_cut_at_now_and_an_empty_window_is_an_error():
    assert plan(now=T, until=T + H).windows[-1].until == T
    with pytest.raises(ConfigError, match="is not before"):
        plan(now=T, since=T + H)


def test_watermark_moves_forward_only_and_never_skips_a_gap(db):
    stash = db["reconcile_state"]
    assert state.read_watermark(stash) is None
    assert not state.advance_watermark(stash, T - 6 * H, T - 5 * H, "backfill", may_create=False)
    assert state.read_watermark(stash) is None  # a backfill does not start it
    assert state.advance_watermark(stash, T - 24 * H, T, "first", may_create=True)
    assert state.read_watermark(stash) == T
    assert not state.advance_watermark(stash, T - 10 * H, T - 5 * H, "old backfill", may_create=True)
    assert state.read_watermark(stash) == T  # never backwards
    assert not state.advance_watermark(stash, T + 2 * H, T + 3 * H, "after a gap", may_create=True)
    assert state.read_watermark(stash) == T  # the gap [T, T+2h) stays uncovered
    assert state.advance_watermark(stash, T - H, T + H, "next", may_create=True)
    assert state.read_watermark(stash) == T + H
    assert stash.find_one({"_id": state.WATERMARK_ID})["run_id"] == "next"


def test_run_history_records_and_finds_runs(db):
    runs = db["reconcile_runs"]
    who = state.started_by("cron-hourly")
    w = Window(T - H, T)
    state.record_start(runs, "20261118T120000Z-aaaaaa", "20261118T120000Z-aaaaaa", w, T, who, dry_run=False)
    state.record_finish(runs, "20261118T120000Z-aaaaaa", state.COMPLETED, T, exit_code=1, counts={"ok": 3})
    state.record_start(runs, "20261118T130000Z-bbbbbb", "inv-killed", w, T + H, who, dry_run=False, started=T + H)
    assert state.find_run(runs, "20261118T1200")["exit_code"] == 1  # a unique prefix
    assert state.find_run(runs, "20261118T") is None  # ambiguous
    assert [d["_id"] for d in state.recent(runs)] == ["20261118T130000Z-bbbbbb", "20261118T120000Z-aaaaaa"]
    assert state.mark_abandoned(runs, "inv-killed", "next") == 1
    assert runs.find_one({"_id": "20261118T130000Z-bbbbbb"})["status"] == state.ABANDONED
    state.set_email(runs, "20261118T120000Z-aaaaaa", state.EMAIL_FAILED, error="down")
    assert [d["_id"] for d in state.unsent(runs)] == ["20261118T120000Z-aaaaaa"]
    state.set_email(runs, "20261118T120000Z-aaaaaa", state.EMAIL_SENT)
    assert state.unsent(runs) == []
    assert runs.find_one({"_id": "20261118T120000Z-aaaaaa"})["email"]["attempts"] == 2
