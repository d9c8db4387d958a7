"""The CI skip guard (tests/skipguard.py), run on a small pytest session of its own (pytester)."""

from __future__ import annotations

from pathlib import Path

import pytest

SUITE = """
import pytest

def test_runs():
    assert True

def test_skips():
    pytest.skip("no widget here")
"""


@pytest.fixture(autouse=True)
def guard_importable(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent))


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest('pytest_plugins = ["skipguard"]')
    pytester.makepyfile(test_some=SUITE)
    return pytester


def test_a_skip_fails_the_run_in_ci_and_is_named_with_its_reason(suite, monkeypatch):
    monkeypatch.setenv("CI", "true")
    result = suite.runpytest_subprocess()
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        ["NOT ALLOWED in CI: test_some.py::test_skips: no widget here", "*1 skip(s) not listed*"]
    )


def test_outside_ci_a_skip_is_listed_and_the_run_passes(suite, monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    result = suite.runpytest_subprocess()
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["skipped (would fail the run with CI=true): test_some.py::test_skips: no widget here"])


def test_an_allowed_skip_passes_in_ci_and_prints_why(suite, monkeypatch):
    monkeypatch.setenv("CI", "true")
    suite.makeconftest(
        'import skipguard\npytest_plugins = ["skipguard"]\n'
        'skipguard.ALLOWED_SKIPS["test_some.py::test_skips"] = "widgets are optional"\n'
    )
    result = suite.runpytest_subprocess()
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["allowed skip: test_some.py::test_skips: no widget here (allowed because: widgets*"])


def test_a_failing_run_stays_failed_and_a_clean_one_says_no_skip(pytester, monkeypatch):
    monkeypatch.setenv("CI", "true")
    pytester.makeconftest('pytest_plugins = ["skipguard"]')
    pytester.makepyfile(test_one="def test_ok():\n    assert True\n")
    result = pytester.runpytest_subprocess()
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["no test skipped"])


def test_a_hung_test_names_itself_and_its_stack(pytester, monkeypatch):
    """The per-test timeout as pyproject.toml sets it (method and all), shortened: a deadlock ends the run
    with the stuck test's name and where it waits."""
    import tomllib

    options = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["tool"]["pytest"]
    ini = options["ini_options"]
    assert int(ini["timeout"]) > 0
    pytester.makeini(f"[pytest]\ntimeout_method = {ini['timeout_method']}\n")
    pytester.makepyfile(test_stuck="import threading\n\ndef test_waits_forever():\n    threading.Event().wait()\n")
    result = pytester.runpytest_subprocess("-o", "timeout=3", timeout=120)
    assert result.ret != pytest.ExitCode.OK
    output = result.stdout.str() + result.stderr.str()
    assert "Timeout" in output and "test_waits_forever" in output and "threading.Event().wait()" in output
