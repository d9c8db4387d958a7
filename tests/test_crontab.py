"""crontab.example works as written: each line, run by /bin/sh with cron's bare environment, from a
copy of /opt/reconcile laid out as its comments say (config.example.toml filled in where a deployer
fills it in), against the Stripe stand-in, nx-27017 and a real SMTP server, exits as its comment says
and prints nothing (so cron mails nothing) when the exit code is 0."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from conftest import API_KEY

from reconcile.decide import classify as c

ROOT = Path(__file__).parent.parent
CRONTAB = (ROOT / "crontab.example").read_text(encoding="utf-8")
EXAMPLE = (ROOT / "config.example.toml").read_text(encoding="utf-8")
SCHEDULE = re.compile(r"^(?:\S+\s+){5}(.+)$")


def cron_lines() -> dict[str, tuple[str, str]]:
    """{trigger: (command, the comment above it)} for every job line of crontab.example."""
    lines: dict[str, tuple[str, str]] = {}
    comment: list[str] = []
    for line in CRONTAB.splitlines():
        if line.startswith("#"):
            comment.append(line)
            continue
        match = SCHEDULE.match(line)
        if match and "reconcile" in line:
            trigger = re.search(r"--trigger (\S+)", line)
            assert trigger, f"a crontab line without --trigger: {line}"
            lines[trigger.group(1)] = (match.group(1), "\n".join(comment))
        comment = []
    return lines


def deployed(tmp_path: Path, api_base: str, db_name: str, mongo_uri: str, smtp_port: int) -> Path:
    """/opt/reconcile as the crontab's comments describe it: the venv, reconcile.toml, reconcile.env."""
    home = tmp_path / "opt-reconcile"
    (home / ".venv" / "bin").mkdir(parents=True)
    script = Path(sys.executable).parent / "reconcile"
    assert script.exists(), "the reconcile command is not installed in this venv (pip install -e .)"
    (home / ".venv" / "bin" / "reconcile").symlink_to(script)
    config = EXAMPLE
    for old, new in (  # what a deployer fills in: where Stripe (here the stand-in), MongoDB and the mail server are
        ('# api_base = "http://127.0.0.1:12111"', f'api_base = "{api_base}"'),
        ('database = "shop"', f'database = "{db_name}"'),
        ('host = "smtp.example.com"', 'host = "127.0.0.1"'),
        ("# port = 587", f"port = {smtp_port}"),
        ('# security = "starttls"', 'security = "none"'),
    ):
        assert old in config, f"config.example.toml no longer has {old!r}"
        config = config.replace(old, new, 1)
    (home / "reconcile.toml").write_text(config)
    env_file = home / "reconcile.env"
    env_file.write_text(f"export STRIPE_API_KEY={API_KEY}\nexport MONGODB_URI='{mongo_uri}'\n")
    env_file.chmod(0o600)
    return home


def run_line(command: str, home: Path) -> subprocess.CompletedProcess[str]:
    # cron: /bin/sh, a bare environment (no secrets, no venv on PATH), the user's home.
    return subprocess.run(
        ["/bin/sh", "-c", command.replace("/opt/reconcile", str(home))],
        env={"PATH": "/usr/bin:/bin", "HOME": str(home.parent), "LANG": "C.UTF-8"},
        cwd=home.parent,
        capture_output=True,
        text=True,
        timeout=300,
    )


def documented_codes(comment: str) -> tuple[int, int]:
    match = re.search(r"Exits (\d+) when nothing needs a person.*?, (\d+) when something does", comment, re.S)
    assert match, f"the comment does not say what the line exits with:\n{comment}"
    return int(match.group(1)), int(match.group(2))


def test_each_crontab_line_runs_as_written_and_exits_as_documented(
    tmp_path, stripe_server, shop, db, mongo_server, smtp_sink
):
    jobs = cron_lines()
    assert set(jobs) == {"cron-hourly", "cron-daily"}
    for command, _ in jobs.values():  # lines a person can read: no shell beyond `cd`, `.` and `&&`
        assert len(command) < 200 and not re.search(r"[|;$`>]|\b(set|mktemp|grep|umask)\b", command), command
    home = deployed(tmp_path, stripe_server.url, db.name, mongo_server.uri, smtp_sink.port)
    oid = shop.order(c.REPAIRED)
    shop.charge(oid)

    # A healthy shop: both lines exit 0 and print nothing (no cron mail); the stuck order is repaired.
    for trigger in ("cron-daily", "cron-hourly"):
        command, comment = jobs[trigger]
        clean, _ = documented_codes(comment)
        done = run_line(command, home)
        assert done.returncode == clean, (trigger, done.stdout, done.stderr)  # was 2: --email without [email]
        assert done.stdout == done.stderr == "", (trigger, done.stdout, done.stderr)
    assert db["orders"].find_one({"_id": oid})["status"] == "accepted"
    assert len(smtp_sink.messages) == 1  # the daily report (--email always); the hourly had nothing to send
    log = home / "logs" / "reconcile.log"  # a folder nothing else creates
    steps = [json.loads(line)["step"] for line in log.read_text().splitlines()]
    assert steps.count("lease.acquired") == 2 and "run.done" in steps  # one invocation per line
    daily = json.loads((home / "reports" / "daily.json").read_text())
    assert daily["exit_code"] == 0

    # Something for a person: each line exits 1, cron mails the summary and the exit code, finance gets the report.
    shop.charge(None, amount=990, age=timedelta(minutes=20))  # an orphan charge
    for trigger in ("cron-hourly", "cron-daily"):
        command, comment = jobs[trigger]
        _, found = documented_codes(comment)
        sent = len(smtp_sink.messages)
        done = run_line(command, home)
        assert done.returncode == found, (trigger, done.stdout, done.stderr)
        assert "needs attention: 1" in done.stdout and done.stderr.endswith(f"(exit {found})\n"), done
        assert len(smtp_sink.messages) == sent + 1, trigger
    assert not any(line.startswith("{") for line in (done.stdout + done.stderr).splitlines())


@pytest.mark.parametrize("trigger", ["cron-hourly", "cron-daily"])
def test_crontab_lines_name_options_the_cli_has(trigger):
    from click.testing import CliRunner

    from reconcile.cli import main

    command, _ = cron_lines()[trigger]
    args = command.split(".venv/bin/reconcile", 1)[1].split()
    # --help after the options: click parses (and rejects an unknown option or value) before it helps.
    result = CliRunner().invoke(main, [*args, "--help"])
    assert result.exit_code == 0, result.output
