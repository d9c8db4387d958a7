"""Issue 11's localized cases, end to end: the `reconcile` command against the Stripe stand-in (HTTP,
official SDK) and nx-27017. Each test here failed on the code before its fix.

- every duration and WHEN ends in exit 2 naming the key or option, overflow included;
- outputs (report directory, summary path) are checked before the first write: exit 2, nothing changed;
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import fields
from pathlib import Path

import pytest

from reconcile.config import SECTIONS
from reconcile.decide import classify as c


def snapshot(db) -> dict:
    return {name: sorted(map(repr, db[name].find())) for name in ("orders", "reconcile_audit")}


# --------------------------------------------------------------------------- durations and WHEN

DURATION_KEYS = [
    f"{section}.{f.name}" for section, cls in SECTIONS.items() for f in fields(cls) if "timedelta" in str(f.type)
]


@pytest.mark.parametrize("value", ["9999999999d", "999999999d", "9" * 5000 + "ms"])
@pytest.mark.parametrize("key", DURATION_KEYS)
def test_every_config_duration_out_of_range_exits_2_naming_its_key(cli, stripe_server, shop, db, key, value):
    shop.charge(shop.order(c.REPAIRED))
    before = snapshot(db)
    section, name = key.split(".")
    cli.configure(**{section: {name: value}})
    result = cli()
    assert result.exit_code == 2, result.output
    [line] = result.stderr.splitlines()
    assert line.startswith("reconcile: error: ") and f"{key}: " in line and "is too long" in line, line
    assert stripe_server.request_log == [] and snapshot(db) == before and result.summary is None


@pytest.mark.parametrize(
    "args, option, expected",
    [
        (["--since", "99999999h"], "--since", "is too long: a duration is at most 3660d"),
        (["--until", "99999999h"], "--until", "is too long"),
        (["--since", "9" * 5000 + "d"], "--since", "is too long"),
        (["--wait", "9999999999d"], "--wait", "is too long"),
        (["--wait", "999999999d"], "--wait", "is too long"),
        (["--since", "0001-01-01T00:00"], "--since", "is more than 3660d (ten years) before now"),
        (["--since", "9999-12-31T23:59:59-14:00"], "--since", "is neither an ISO-8601 time"),
    ],
)
def test_every_when_and_wait_out_of_range_exits_2_naming_the_option(
    cli, stripe_server, shop, db, args, option, expected
):
    shop.charge(shop.order(c.REPAIRED))
    before = snapshot(db)
    result = cli(*args)
    assert result.exit_code == 2, result.output
    assert option in result.stderr and expected in result.stderr, result.stderr
    assert "Traceback" not in result.output
    assert stripe_server.request_log == [] and snapshot(db) == before and result.summary is None


# --------------------------------------------------------------------------- outputs before the first write


def _unwritable_dir(tmp_path: Path) -> Path:
    """A directory in which no file can be created: owner-only read-only, or, for root (who ignores
    permissions), /sys (a kernel file system that refuses new files)."""
    path = Path("/sys") if os.geteuid() == 0 else tmp_path / "read-only"
    if path != Path("/sys"):
        path.mkdir(mode=0o500)
    try:
        fd, name = tempfile.mkstemp(dir=path)
    except OSError:
        return path
    os.close(fd)
    os.unlink(name)
    pytest.skip(f"{path} is writable here")


@pytest.mark.parametrize(
    "case, named",
    [
        ("report.dir is a file", "report.dir: "),
        ("report.dir is read-only", "report.dir: "),
        ("--report-dir under a file", "--report-dir: "),
        ("--summary-json under a file", "--summary-json "),
    ],
)
def test_unwritable_outputs_exit_2_before_anything_changes(cli, stripe_server, shop, db, tmp_path, case, named):
    for _ in range(3):
        shop.charge(shop.order(c.REPAIRED))
    before = snapshot(db)
    a_file = tmp_path / "a-file"
    a_file.write_text("not a directory\n")
    args: list[str] = []
    if case == "report.dir is a file":
        cli.configure(report={"dir": str(a_file)})
    elif case == "report.dir is read-only":
        cli.configure(report={"dir": str(_unwritable_dir(tmp_path))})
    elif case == "--report-dir under a file":
        args = ["--report-dir", str(a_file / "reports")]
    else:
        args = ["--summary-json", str(a_file / "summary.json")]
    result = cli(*args)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("reconcile: error: ") and named in line, line
    assert "is not a directory the job can write in" in line and line.endswith("nothing was changed"), line
    assert stripe_server.request_log == [] and snapshot(db) == before
    assert db["reconcile_state"].count_documents({}) == 0 and db["reconcile_runs"].count_documents({}) == 0
    assert result.summary is None and a_file.read_text() == "not a directory\n"
