"""Exit codes, in one place: cron and monitoring read them (documented in the README)."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0  # nothing needs a person
    DISCREPANCIES = 1  # the report lists items that need a person
    BAD_CONFIG = 2  # bad usage, bad config, bad or insufficient Stripe key
    UNAVAILABLE = 3  # Stripe or MongoDB unavailable; finished repairs stay, nothing half-done
    LEASE_HELD = 4  # another run holds the lease (or took it over): this one did nothing more
    EMAIL_FAILED = 5  # the report is on disk but could not be emailed; the next run resends it
    INTERNAL_ERROR = 70  # a bug: the run stopped; finished compare-and-set repairs stay (EX_SOFTWARE)
    INTERRUPTED = 130  # stopped by Ctrl-C (SIGINT) between batches; finished repairs stay, audited (128 + 2)
    TERMINATED = 143  # stopped by SIGTERM between batches; finished repairs stay, audited (128 + 15)


# When one invocation has several results (sub-windows, email), the most severe is the exit code.
SEVERITY = (
    ExitCode.OK,
    ExitCode.DISCREPANCIES,
    ExitCode.EMAIL_FAILED,
    ExitCode.LEASE_HELD,
    ExitCode.UNAVAILABLE,
    ExitCode.INTERRUPTED,
    ExitCode.TERMINATED,
    ExitCode.BAD_CONFIG,
    ExitCode.INTERNAL_ERROR,
)


def worst(*codes: ExitCode) -> ExitCode:
    """The most severe of several exit codes (OK when none)."""
    return max(codes, key=SEVERITY.index, default=ExitCode.OK)
