"""Progress of long pulls on stderr (pages, objects, rate, ETA), only when stderr is a terminal.

It watches list pages as they come back through the Stripe client (a thin wrapper around it,
so the pulling code is unchanged) and estimates how far through the window a pull is from
the `created` time of the oldest object so far: Stripe lists newest first.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone
from typing import Any, Callable, TextIO


def _clock_text(seconds: float) -> str:
    seconds = int(max(0, seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class Progress:
    """Writes one updating line per pull (endpoint and window) to a terminal."""

    def __init__(self, stream: TextIO, clock: Callable[[], float] = time.monotonic, interval: float = 0.25):
        self.stream, self.clock, self.interval = stream, clock, interval
        self._lock = threading.Lock()
        self._key: tuple[Any, ...] | None = None
        self._state: dict[str, Any] = {}
        self._last_write = float("-inf")
        self._open_line = False

    @classmethod
    def for_stream(cls, stream: TextIO) -> "Progress | None":
        """A Progress when `stream` is a terminal; None under cron, pipes and files."""
        try:
            return cls(stream) if stream.isatty() else None
        except (AttributeError, ValueError):
            return None

    def page(self, path: str, params: dict[str, Any], data: list[dict[str, Any]], has_more: bool,
             requested_at: float | None = None) -> None:
        """One list page came back (`requested_at`: when it was asked for, by this clock)."""
        created = params.get("created") if isinstance(params.get("created"), dict) else {}
        key = (path, created.get("gte"), created.get("lt"))
        with self._lock:
            now = self.clock()
            if key != self._key:
                self._finish_line()
                self._key = key
                started = requested_at if requested_at is not None else now
                self._state = {"pages": 0, "objects": 0, "started": started, "oldest": None}
            s = self._state
            s["pages"] += 1
            s["objects"] += len(data)
            if data and isinstance(data[-1].get("created"), int):
                s["oldest"] = data[-1]["created"]
            if not has_more or now - self._last_write >= self.interval:
                self._write(self._line(path, created, now, done=not has_more))
                self._last_write = now
            if not has_more:
                self._finish_line()
                self._key = None

    def _line(self, path: str, created: dict[str, Any], now: float, done: bool) -> str:
        s = self._state
        elapsed = max(now - s["started"], 1e-6)
        rate = s["objects"] / elapsed
        text = f"{path}: {s['pages']} page{'s' if s['pages'] != 1 else ''}, {s['objects']:,} objects, {rate:,.0f}/s"
        gte, lt = created.get("gte"), created.get("lt")
        if done:
            return text + ", done"
        if isinstance(gte, int) and isinstance(lt, int) and lt > gte and s["oldest"] is not None:
            fraction = min(1.0, max(0.0, (lt - s["oldest"]) / (lt - gte)))
            day = datetime.fromtimestamp(gte, timezone.utc).strftime("%Y-%m-%d %H:%M")
            text += f", {fraction:.0%} of the window from {day}"
            if fraction > 0.01:
                text += f", ETA {_clock_text(elapsed * (1 - fraction) / fraction)}"
        return text

    def _write(self, line: str) -> None:
        self.stream.write("\r\x1b[K" + line)
        self.stream.flush()
        self._open_line = True

    def _finish_line(self) -> None:
        if self._open_line:
            self.stream.write("\n")
            self.stream.flush()
            self._open_line = False

    def close(self) -> None:
        with self._lock:
            self._finish_line()


class ProgressClient:
    """Wraps a StripeClient: list pages are reported to a Progress; everything else passes through."""

    def __init__(self, client: Any, progress: Progress):
        self._client, self._progress = client, progress

    def raw_request(self, method_: str, url_: str, **params: Any) -> Any:
        requested_at = self._progress.clock()
        response = self._client.raw_request(method_, url_, **params)
        data = getattr(response, "data", None)
        if isinstance(data, dict) and data.get("object") == "list" and isinstance(data.get("data"), list):
            self._progress.page(url_, params, data["data"], bool(data.get("has_more")), requested_at)
        return response

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)
