"""Exit codes, in one place: cron and monitoring read them (documented in the README)."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0                 # nothing needs a person
    DISCREPANCIES = 1      # the report lists items that need a person
    BAD_CONFIG = 2         # bad usage, bad config, bad or insufficient Stripe key
    UNAVAILABLE = 3        # Stripe or MongoDB unavailable; finished repairs stay, nothing half-done
    INTERNAL_ERROR = 70    # a bug: the run stopped; finished compare-and-set repairs stay (EX_SOFTWARE)
    INTERRUPTED = 130      # stopped by Ctrl-C (SIGINT) between batches; finished repairs stay, audited (128 + 2)
    TERMINATED = 143       # stopped by SIGTERM between batches; finished repairs stay, audited (128 + 15)
