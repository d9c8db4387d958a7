"""The trend over recent runs: per UTC day, charges counted and open items (report/period.py draws it)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import TypedDict

from reconcile.decide.runs import RunDoc
from reconcile.timeutil import from_unix


def _day(unix: int) -> str:
    return from_unix(unix).strftime("%Y-%m-%d")


class TrendPoint(TypedDict):
    """One UTC day (or, compacted, the week or month starting that day) of the trend."""

    day: str
    charges: int
    open: int | None  # open items after its last run; None: no run in it


def trend_points(runs: Iterable[RunDoc], current: RunDoc | None, now: datetime, days: int) -> list[TrendPoint]:
    """Per UTC day of the last `days`: charges counted by the runs whose window ended that day,
    and the open items after that day's last run (None: no run that day).

    Charges come only from the runs that continue the watermark (or start it): their money
    spans do not overlap. A run with explicit --since/--until (a sweep, a backfill) counts its
    whole window again, so it adds no charges here."""
    first = (now - timedelta(days=days - 1)).astimezone(UTC).date()
    points: dict[str, TrendPoint] = {
        (first + timedelta(days=i)).isoformat(): {
            "day": (first + timedelta(days=i)).isoformat(),
            "charges": 0,
            "open": None,
        }
        for i in range(days)
    }
    last = dict.fromkeys(points, -1)  # by day: the end of the latest window seen
    for run in [*runs, *([current] if current else [])]:
        until = (run.get("window") or {}).get("until")
        if not isinstance(until, int):
            continue
        day = _day(until)
        point = points.get(day)
        if point is None:
            continue
        if run.get("source") != "options":
            point["charges"] += int(run.get("charge_count") or 0)
        open_items = run.get("open_items")
        if until >= last[day] and open_items is not None:
            last[day], point["open"] = until, int(open_items)
    return list(points.values())
