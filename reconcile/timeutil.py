"""Parsing of WHEN values and durations; every datetime the job handles is aware UTC."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from dateutil import parser as date_parser

_UNITS = {"ms": "milliseconds", "s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_DURATION = re.compile(r"^\s*(?:(\d+)\s*(ms|[smhdw])\s*)+$")
_PART = re.compile(r"(\d+)\s*(ms|[smhdw])")
# The longest duration (and the furthest back a WHEN may reach) the job accepts: ten years. Stripe
# holds nothing older, and past a few thousand years datetime arithmetic overflows somewhere.
MAX_DURATION = timedelta(days=3660)
MAX_DURATION_TEXT = "3660d (ten years)"


@dataclass(frozen=True)
class Window:
    """A run's time window, [since, until)."""

    since: datetime
    until: datetime
    # Money is counted from here: the part of the window before it (the overlap) was counted
    # by the previous run. None: the whole window.
    counted_from: datetime | None = None


def parse_duration(text: str) -> timedelta:
    """'90m', '6h', '3d', '1h30m', '250ms' -> timedelta. Raises ValueError with the reason."""
    if isinstance(text, str) and text.strip().startswith("-") and _DURATION.match(text.strip()[1:].lower()):
        raise ValueError(f"{text!r} is negative: a duration must be zero or more")
    if not isinstance(text, str) or not _DURATION.match(text.lower()):
        raise ValueError(f"{text!r} is not a duration like 250ms, 90s, 15m, 6h, 3d or 1h30m")
    total = timedelta()
    try:
        for number, unit in _PART.findall(text.lower()):
            total += timedelta(**{_UNITS[unit]: int(number)})
    except (OverflowError, ValueError):  # beyond timedelta's range, or more digits than int() reads
        total = timedelta.max
    if total > MAX_DURATION:
        raise ValueError(f"{text[:40]!r} is too long: a duration is at most {MAX_DURATION_TEXT}")
    return total


def as_utc(value: datetime) -> datetime:
    """Naive means UTC (as pymongo returns dates); aware is converted."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def parse_when(text: str, now: datetime) -> datetime:
    """ISO-8601 (naive means UTC) or a span back from now ('90m', '6h', '3d')."""
    if isinstance(text, str) and _DURATION.match(text.lower().lstrip(" -")):
        return now - parse_duration(text)  # a span: its own error (negative, too long) says what is wrong
    try:
        return as_utc(date_parser.isoparse(text.strip()))
    except (ValueError, OverflowError):
        raise ValueError(
            f"{text!r} is neither an ISO-8601 time (2026-11-18T09:00) nor a span back from now (90m, 6h, 3d)"
        ) from None


def to_unix(value: datetime) -> int:
    return int(as_utc(value).timestamp())


def from_unix(seconds: int) -> datetime:
    return datetime.fromtimestamp(int(seconds), tz=UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def fmt(value: datetime | None) -> str:
    """Compact ISO form for reports and logs."""
    if value is None:
        return ""
    return as_utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")
