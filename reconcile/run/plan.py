"""The window plan of one invocation: where it starts (watermark, lookback or options) and its sub-windows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from reconcile.errors import ConfigError
from reconcile.timeutil import Window, fmt


@dataclass(frozen=True)
class Plan:
    windows: tuple[Window, ...]
    source: str  # "watermark", "lookback" or "options"
    watermark: datetime | None  # as read before the run


def plan_windows(
    *,
    since: datetime | None,
    until: datetime | None,
    now: datetime,
    watermark: datetime | None,
    lookback: timedelta,
    overlap: timedelta,
    max_span: timedelta,
) -> Plan:
    """The window(s) of this invocation, split into sub-windows of at most `max_span`.

    Without `since`, the window starts at the watermark minus `overlap` (late data is seen twice,
    nothing falls between runs), or at `until - lookback` when there is no usable watermark.
    """
    end = min(until or now, now)  # nothing exists after now; a future end would only mislabel the report
    counted_from = None
    if since is not None:
        start, source = since, "options"
    elif watermark is not None and watermark - overlap < end:
        start, source = watermark - overlap, "watermark"
        counted_from = watermark if start < watermark < end else None
    else:
        start, source = end - lookback, "lookback"
    if start >= end:
        raise ConfigError(f"--since {fmt(start)} is not before --until {fmt(end)}")
    windows = []
    cursor = start
    while cursor < end:
        windows.append(Window(cursor, min(cursor + max_span, end)))
        cursor = windows[-1].until
    return Plan(tuple(_counted(windows, counted_from)), source, watermark)


def _counted(windows: list[Window], counted_from: datetime | None) -> list[Window]:
    """Attach `counted_from` to the sub-window it falls in; earlier ones were counted already."""
    if counted_from is None:
        return windows
    out = []
    for w in windows:
        if w.until <= counted_from:
            out.append(Window(w.since, w.until, w.until))  # entirely counted before: count nothing
        elif w.since < counted_from:
            out.append(Window(w.since, w.until, counted_from))
        else:
            out.append(Window(w.since, w.until, None))
    return out
