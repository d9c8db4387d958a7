"""A pytest plugin: with CI=true, a skipped test fails the run unless ALLOWED_SKIPS names it with a reason.

Every skip is listed at the end of the run with its reason (and, for an allowed one, why it is allowed), so a
guard cannot quietly stop guarding: a missing browser or a server that will not start fails CI instead of
turning its tests into skips.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

# The only skips CI accepts: {test id, or its start: why it may skip there}.
ALLOWED_SKIPS: dict[str, str] = {}

_skips: list[tuple[str, str]] = []


def in_ci() -> bool:
    return os.environ.get("CI") == "true"


def allowed(nodeid: str, allowlist: dict[str, str] | None = None) -> str | None:
    """Why this test may skip in CI, or None when it may not."""
    table = ALLOWED_SKIPS if allowlist is None else allowlist
    return next((why for prefix, why in table.items() if nodeid.startswith(prefix)), None)


def _reason(report: Any) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def _not_allowed() -> list[tuple[str, str]]:
    return [(nodeid, reason) for nodeid, reason in _skips if allowed(nodeid) is None]


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        _skips.append((report.nodeid, _reason(report)))


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if report.skipped:
        _skips.append((report.nodeid, _reason(report)))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if in_ci() and _not_allowed() and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any) -> None:
    terminalreporter.section("skips")
    if not _skips:
        terminalreporter.line("no test skipped")
        return
    for nodeid, reason in _skips:
        why = allowed(nodeid)
        if why is not None:
            terminalreporter.line(f"allowed skip: {nodeid}: {reason} (allowed because: {why})")
        elif in_ci():
            terminalreporter.line(f"NOT ALLOWED in CI: {nodeid}: {reason}", red=True)
        else:
            terminalreporter.line(f"skipped (would fail the run with CI=true): {nodeid}: {reason}")
    if in_ci() and _not_allowed():
        terminalreporter.line(
            f"{len(_not_allowed())} skip(s) not listed in tests/skipguard.py ALLOWED_SKIPS: the run fails", red=True
        )
