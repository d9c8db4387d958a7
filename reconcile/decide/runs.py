"""A run as the run history records it: one document of the runs collection (typed records).

store/runs.py writes and reads them (keys as stored: these stay dicts for pymongo); decide/trend.py
draws the trend from them; report/history.py shows them. Times are integer unix seconds.
"""

from __future__ import annotations

from typing import TypedDict

from reconcile.decide.totals import Totals


class StartedBy(TypedDict, total=False):
    """Who and what started a run (no secrets; every key set by store/runs.started_by)."""

    trigger: str
    user: str
    host: str
    pid: int
    command: str


class WindowSpan(TypedDict, total=False):
    since: int
    until: int


class RunPart(TypedDict, total=False):
    index: int  # this window's place among its invocation's windows, from 1
    of: int


class EmailFields(TypedDict, total=False):
    """What a run's email record says besides its status (store/runs.set_email's keywords)."""

    policy: str
    subject: str
    text: str  # kept while unsent: the next run resends it as it was
    group: str  # the invocation whose one message holds this run's report
    order: int  # its place in that message
    to: list[str]
    sent_at: int
    resent: bool
    error: str
    at: int


class EmailRecord(EmailFields, total=False):
    """What happened to a run's email (store/runs.set_email)."""

    status: str  # EMAIL_SENT, EMAIL_FAILED, EMAIL_SKIPPED, EMAIL_LOST
    attempts: int  # every try to send it


class RunDoc(TypedDict, total=False):
    """One run (a window of an invocation, or an invocation that ended at once)."""

    _id: str
    invocation: str
    status: str  # store/runs.py: RUNNING, COMPLETED, FAILED, ...
    dry_run: bool
    at: int  # the run's `now`
    started: int
    finished: int | None
    window: WindowSpan | None
    counted_from: int | None
    part: RunPart
    source: str | None  # how the window was chosen: watermark, lookback, or options (--since/--until)
    started_by: StartedBy
    email: EmailRecord | None
    changes_reported: bool
    changes_reported_by: str
    abandoned_by: str
    # How it ended.
    exit_code: int
    error: str
    counts: dict[str, int]
    needs_attention: int
    repaired: int
    marked_failed: int
    repaired_ids: list[str]
    marked_failed_ids: list[str]
    charge_count: int
    totals: Totals
    open_items: int
    new_items: int
    resolved_items: int
    movements: int
    report: dict[str, str]  # the report's files: html, csv
