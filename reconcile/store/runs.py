"""The job's memory between runs: the watermark and the run history.

Times the job compares later are stored as integer unix seconds: a `$set` datetime does not
round-trip on every MongoDB-compatible server (nx-27017 stores a string), integers do everywhere.
"""

from __future__ import annotations

import getpass
import logging
import os
import shlex
import socket
import sys
from datetime import datetime
from typing import TYPE_CHECKING, Any, Unpack

import pymongo
import pymongo.errors
from pymongo.collection import Collection

from reconcile.decide.runs import EmailFields, EmailRecord, RunDoc, StartedBy
from reconcile.store.mongo import mongo_errors
from reconcile.timeutil import fmt, from_unix, to_unix

if TYPE_CHECKING:
    from reconcile.timeutil import Window

log = logging.getLogger(__name__)

WATERMARK_ID = "watermark"

# Run statuses in the history.
RUNNING = "running"
COMPLETED = "completed"
FAILED = "failed"
INTERRUPTED = "interrupted"  # stopped by SIGTERM / Ctrl-C at a checkpoint, between writes
LEASE_HELD = "lease_held"
LEASE_LOST = "lease_lost"  # its lease was taken over while it was paused: it stopped writing
ABANDONED = "abandoned"  # its process died holding the lease; a later run took over

# Email statuses of a run's report.
EMAIL_SENT = "sent"
EMAIL_FAILED = "failed"  # the next run resends it
EMAIL_SKIPPED = "skipped"  # the policy said not to send (never / on_discrepancy with nothing)
EMAIL_LOST = "lost"  # the report files vanished before it could be resent


# --------------------------------------------------------------------------- the watermark


def read_watermark(state: Collection) -> datetime | None:
    """The end of the span covered without gaps by completed runs, or None before the first."""
    with mongo_errors("reading the watermark"):
        doc = state.find_one({"_id": WATERMARK_ID})
    return from_unix(doc["until"]) if doc and isinstance(doc.get("until"), int) else None


def advance_watermark(state: Collection, since: datetime, until: datetime, run_id: str, *, may_create: bool) -> bool:
    """Move the watermark to `until` if this window continues the covered span; never backwards.

    One atomic update whose filter requires `since <= watermark < until`: a backfill of old
    days cannot move it back, and a window that starts after a gap cannot skip the gap.
    `may_create`: no watermark yet, and this window reaches the present (not a backfill).
    """
    new, start = to_unix(until), to_unix(since)
    fields = {"until": new, "run_id": run_id, "until_text": fmt(until)}
    with mongo_errors("advancing the watermark"):
        for _ in range(2):
            moved = state.update_one({"_id": WATERMARK_ID, "until": {"$gte": start, "$lt": new}}, {"$set": fields})
            if moved.matched_count:
                log.info("watermark.advanced", extra={"until": fmt(until)})
                return True
            current = state.find_one({"_id": WATERMARK_ID})
            if current is not None:
                reason = "already past" if current.get("until", 0) >= new else "gap before this window"
                log.info("watermark.kept", extra={"watermark": current.get("until_text"), "reason": reason})
                return False
            if not may_create:
                log.info("watermark.not_created", extra={"reason": "a backfill does not start the watermark"})
                return False
            try:
                state.insert_one({"_id": WATERMARK_ID, **fields})
                log.info("watermark.created", extra={"until": fmt(until)})
                return True
            except pymongo.errors.DuplicateKeyError:
                continue  # another run created it meanwhile: apply the rule to its value
    return False


# --------------------------------------------------------------------------- run history


def started_by(trigger: str | None) -> StartedBy:
    """Who and what started this run (no secrets: those live only in the environment)."""
    try:
        user = getpass.getuser()
    except Exception:  # no passwd entry in some containers
        user = str(os.getuid())
    try:
        interactive = bool(sys.stdin and sys.stdin.isatty())
    except (ValueError, OSError):  # stdin closed
        interactive = False
    return {
        "trigger": trigger or ("terminal" if interactive else "non-interactive"),
        "user": user,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "command": shlex.join(["reconcile", *sys.argv[1:]])[:500],
    }


def record_start(
    runs: Collection,
    run_id: str,
    invocation: str,
    window: Window | None,
    now: datetime,
    who: StartedBy,
    *,
    dry_run: bool,
    part: tuple[int, int] = (1, 1),
    status: str = RUNNING,
    started: datetime | None = None,
    source: str | None = None,
) -> None:
    doc: RunDoc = {
        "_id": run_id,
        "invocation": invocation,
        "status": status,
        "dry_run": dry_run,
        "at": to_unix(now),
        "started": to_unix(started or now),
        "finished": None,
        "window": {"since": to_unix(window.since), "until": to_unix(window.until)} if window else None,
        "counted_from": to_unix(window.counted_from) if window and window.counted_from else None,
        "part": {"index": part[0], "of": part[1]},
        "source": source,  # how the window was chosen: watermark, lookback, or options (--since/--until)
        "started_by": who,
        "email": None,
        # False until a report lists the orders this run changed; a run that never gets there (killed,
        # MongoDB lost) has its changes reported by the next run (`unreported`, `mark_reported`).
        "changes_reported": dry_run or status != RUNNING,
    }
    with mongo_errors("recording the run"):
        runs.insert_one(doc)


def record_finish(runs: Collection, run_id: str, status: str, finished: datetime, **fields: Any) -> None:
    with mongo_errors("recording the run"):
        runs.update_one({"_id": run_id}, {"$set": {"status": status, "finished": to_unix(finished), **fields}})


def mark_reported(runs: Collection, run_ids: list[str], by: str) -> None:
    """These runs' changes are listed in a report (run `by`'s)."""
    with mongo_errors("recording the run"):
        runs.update_many({"_id": {"$in": run_ids}}, {"$set": {"changes_reported": True, "changes_reported_by": by}})


def unreported(runs: Collection, limit: int, but: str | None = None) -> list[str]:
    """Runs whose changes no report lists yet (killed, or cut off from MongoDB after a change), oldest first.
    Runs recorded before this field existed have no `changes_reported` and are not listed."""
    with mongo_errors("reading the run history"):
        docs = runs.find({"changes_reported": False}, {"_id": 1}).sort("started", pymongo.ASCENDING).limit(limit + 1)
        return [str(d["_id"]) for d in docs if d["_id"] != but][:limit]


def set_email(runs: Collection, run_id: str, status: str, **fields: Unpack[EmailFields]) -> None:
    """Record what happened to a run's email (`attempts` counts every try)."""
    with mongo_errors("recording the email status"):
        doc: RunDoc | None = runs.find_one({"_id": run_id})
        before = (doc or {}).get("email") or {}
        tries = int(before.get("attempts") or 0) + (status in (EMAIL_SENT, EMAIL_FAILED))
        email: EmailRecord = {**before, **fields, "status": status, "attempts": tries}
        runs.update_one({"_id": run_id}, {"$set": {"email": email}})


def unsent(runs: Collection, limit: int = 20) -> list[RunDoc]:
    """Runs whose report could not be emailed yet, oldest first."""
    with mongo_errors("reading unsent reports"):
        return list(runs.find({"email.status": EMAIL_FAILED}).sort("started", pymongo.ASCENDING).limit(limit))


def mark_abandoned(runs: Collection, invocation: str, by: str) -> int:
    """Runs of a killed invocation (its lease expired and was taken over) are no longer running."""
    with mongo_errors("recording the run"):
        return runs.update_many(
            {"invocation": invocation, "status": RUNNING}, {"$set": {"status": ABANDONED, "abandoned_by": by}}
        ).modified_count


def recent(runs: Collection, limit: int = 20) -> list[RunDoc]:
    """The newest runs first; the sub-windows of one invocation (same second) newest window first."""
    with mongo_errors("reading the run history"):
        docs: list[RunDoc] = list(
            runs.find().sort([("started", pymongo.DESCENDING), ("_id", pymongo.DESCENDING)]).limit(limit)
        )
    return sorted(docs, key=lambda d: (d.get("started") or 0, (d.get("window") or {}).get("since") or 0), reverse=True)


def find_run(runs: Collection, run_id: str) -> RunDoc | None:
    """A run by its id, or by a prefix that names exactly one run."""
    doc, _ = match_run(runs, run_id)
    return doc


def match_run(runs: Collection, run_id: str) -> tuple[RunDoc | None, int]:
    """(the run, 1) for its id or any prefix naming exactly one run; (None, how many runs match) otherwise."""
    with mongo_errors("reading the run history"):
        doc: RunDoc | None = runs.find_one({"_id": run_id})
        if doc is not None:
            return doc, 1
        # Run ids are ASCII: every id starting with the prefix sorts between it and it + U+FFFF.
        matching = {"_id": {"$gte": run_id, "$lt": run_id + "\uffff"}}
        matches: list[RunDoc] = list(runs.find(matching).limit(2))
        if len(matches) == 1:
            return matches[0], 1
        return None, len(matches) if len(matches) < 2 else runs.count_documents(matching)


def invocation_runs(runs: Collection, invocation: str) -> list[RunDoc]:
    """The window runs of invocation `invocation` (its id as the summary names it), newest window first;
    [] for an id that names no invocation (a window's run id, an undo's)."""
    with mongo_errors("reading the run history"):
        docs: list[RunDoc] = list(runs.find({"invocation": invocation}))
    return sorted(docs, key=lambda d: (d.get("part") or {}).get("index") or 0, reverse=True)


def completed_since(runs: Collection, since: datetime) -> list[RunDoc]:
    """Completed real (not dry) runs whose `now` is at or after `since`, oldest first (for the trend)."""
    with mongo_errors("reading the run history"):
        docs: list[RunDoc] = list(
            runs.find({"status": COMPLETED, "at": {"$gte": to_unix(since)}}).sort("at", pymongo.ASCENDING)
        )
        return [d for d in docs if not d.get("dry_run")]
