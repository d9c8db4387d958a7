"""JSON-lines logging on stderr: one line per step, with the run id; never secrets or card data."""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
from collections.abc import Iterator
from datetime import UTC, datetime

from reconcile.redact import scrub

_run_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("run_id", default=None)
_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonLinesFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "level": record.levelname.lower(),
            "step": record.getMessage(),
        }
        if _run_id.get():
            line["run_id"] = _run_id.get()
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_"):
                line[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            # The exception's type only: messages from drivers can carry URIs with credentials.
            line["exception"] = record.exc_info[0].__name__
        # Last net: whatever a field holds, a secret read from the environment never leaves as text.
        return scrub(json.dumps(line, default=str, ensure_ascii=False))


def setup_logging(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLinesFormatter())
    root = logging.getLogger("reconcile")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


@contextlib.contextmanager
def run_context(run_id: str) -> Iterator[None]:
    """Every log line inside carries this run id."""
    token = _run_id.set(run_id)
    try:
        yield
    finally:
        _run_id.reset(token)
