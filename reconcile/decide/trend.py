"""The trend over recent runs: per UTC day, charges counted and open items (report/period.py draws it)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from reconcile.timeutil import from_unix


def _day(unix: int) -> str:
    return from_unix(unix).strftime("%Y-%m-%d")


def trend_points(
    runs: Iterable[dict[str, Any]], current: dict[str, Any] | None, now: datetime, days: int
) -> list[dict[str, Any]]:
    """Per UTC day of the last `days`: charges counted by the runs whose window ended that day,
    and the open items after that day's last run (None: no run that day).

    Charges come only from the runs that continue the watermark (or start it): their money
    spans do not overlap. A run with explicit --since/--until (a sweep, a backfill) counts its
    whole window again, so it adds no charges here."""
    first = (now - timedelta(days=days - 1)).astimezone(UTC).date()
    points: dict[str, dict[str, Any]] = {
        (first + timedelta(days=i)).isoformat(): {
            "day": (first + timedelta(days=i)).isoformat(),
            "charges": 0,
            "open": None,
            "_last": -1,
        }
        for i in range(days)
    }
    for run in [*runs, *([current] if current else [])]:
        window = run.get("window") or {}
        if not isinstance(window.get("until"), int):
            continue
        point = points.get(_day(window["until"]))
        if point is None:
            continue
        if run.get("source") != "options":
            point["charges"] += int(run.get("charge_count") or 0)
        if window["until"] >= point["_last"] and run.get("open_items") is not None:
            point["_last"], point["open"] = window["until"], int(run["open_items"])
    return [{k: v for k, v in p.items() if k != "_last"} for p in points.values()]
