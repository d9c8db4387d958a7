"""What a person sees on a terminal: the CLI on a real pseudo-terminal, its output replayed in a terminal emulator.

The job runs as its own process with a pty as stdin, stdout and stderr (80 or 160 columns); what it
wrote is fed to pyte (a VT100 emulator) and the screen, scrollback included, is read row by row.
The run is frozen mid-pull by the stand-in (a page that hangs until released), so the progress line
is on screen when the test looks, without any timing assumption.
"""

from __future__ import annotations

import fcntl
import io
import json
import os
import pty
import re
import signal
import struct
import subprocess
import sys
import termios
import threading
from datetime import timedelta
from pathlib import Path

import pyte
import pytest
from conftest import API_KEY, at, write_config
from faultkit import FAST, ROOT, wait_for
from test_faults_process import hang_second_charges_page, seed_two_pages

from reconcile.decide import classify as c
from reconcile.runtime import progress
from reconcile.runtime.progress import Progress

ROWS = 40
H = timedelta(hours=1)
DAY = timedelta(days=1)
TIME = re.compile(r"^\d\d:\d\d:\d\d ")
# Text only the progress line has: a row holding any of it after the run is a stale progress row.
PROGRESS_TEXT = ("of the window", "ETA ", " objects, ", " object, ", "/s, ")
# A finished pull's final figures, left above the line on purpose (not a stale progress row).
FINISHED = re.compile(r"^/v1/[a-z_/]+: [\d,]+ pages?, [\d,]+ objects?, [\d,]+/s, done$")


class Terminal:
    """A process on a pseudo-terminal of `columns` columns; everything it writes, kept as bytes."""

    def __init__(self, args: list[str], columns: int, cwd: Path, env: dict[str, str]):
        self.columns = columns
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, columns, 0, 0))
        env = {k: v for k, v in env.items() if k not in ("COLUMNS", "LINES", "NO_COLOR", "FORCE_COLOR")}
        env.update(TERM="xterm-256color", PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, cwd=cwd, env=env)
        os.close(slave)
        self.master = master
        self.output = b""
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:  # EIO once the process and every copy of the slave are gone
                return
            if not data:
                return
            with self._lock:
                self.output += data

    def rows(self) -> list[str]:
        """Every row the terminal shows or scrolled past, right-trimmed, empty rows dropped."""
        screen = pyte.HistoryScreen(self.columns, ROWS, history=10_000)
        with self._lock:
            pyte.ByteStream(screen).feed(self.output)
        history = ["".join(line[x].data for x in range(self.columns)) for line in screen.history.top]
        return [row.rstrip() for row in history + screen.display if row.strip()]

    def wait(self, timeout: float = 60) -> int:
        code = self.process.wait(timeout=timeout)
        self._reader.join(timeout=10)
        os.close(self.master)
        return code


def _env(uri: str) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), STRIPE_API_KEY=API_KEY, MONGODB_URI=uri)
    return env


@pytest.mark.parametrize("columns", [80, 160])
def test_progress_on_a_terminal_is_one_cut_line_under_human_log_lines_and_ctrl_c_leaves_a_clean_line(
    tmp_path, stripe_server, shop, db, mongo_server, columns
):
    seed_two_pages(shop)
    shop.charge(shop.order(c.REPAIRED))
    release = hang_second_charges_page(stripe_server)
    config = write_config(
        tmp_path / "reconcile.toml", stripe_server.url, db.name, stripe=dict(FAST["stripe"], timeout="60s")
    )
    term = Terminal(
        [sys.executable, "-m", "reconcile.cli", "--config", str(config)], columns, tmp_path, _env(mongo_server.uri)
    )
    try:
        wait_for(lambda: stripe_server.faults_served == 1, what="the second charges page to hang")

        def progress_shown() -> tuple[list[str], list[str]] | None:
            rows = term.rows()  # one snapshot: the line is redrawn a few times a second
            shown = [row for row in rows if "/v1/charges: " in row]
            return (rows, shown) if shown else None

        rows, on_screen = wait_for(progress_shown, what="the progress line to show")
        # One row, the last one, holding every pull in flight, cut to the width with an ellipsis.
        assert len(on_screen) == 1 and rows[-1] == on_screen[0], rows
        assert not any(row.startswith("{") for row in rows), rows  # human lines, not JSON
        assert any(TIME.match(row) and "run start" in row for row in rows), rows
        if columns == 80:
            assert on_screen[0].endswith("…") and len(on_screen[0]) <= columns, on_screen
        term.process.send_signal(signal.SIGINT)  # Ctrl-C
        wait_for(lambda: any("run stop requested" in row for row in term.rows()), what="the stop to be logged")
    finally:
        release.set()
    assert term.wait() == 130
    rows = term.rows()
    stale = [row for row in rows if any(text in row for text in PROGRESS_TEXT) and not FINISHED.match(row)]
    assert not stale, "progress rows left behind:\n" + "\n".join(rows)
    # Each log line (or a finished pull's figures) on rows of its own (never glued to the progress line),
    # the error line last.
    [end] = [at for at, row in enumerate(rows) if row.startswith("reconcile: error: ")]
    assert all(TIME.match(row) or row.startswith("    ") or FINISHED.match(row) for row in rows[:end]), "\n".join(rows)
    assert "".join(rows[end:]).startswith("reconcile: error: interrupted by SIGINT during pull; the write"), rows


def test_the_demo_on_a_terminal_ends_with_each_pulls_final_figures_a_short_human_summary_and_no_warnings(tmp_path):
    term = Terminal([sys.executable, "-m", "reconcile.cli", "demo"], 80, tmp_path, _env("unused"))
    assert term.wait(timeout=300) == 0
    rows = term.rows()
    text = "\n".join(rows)
    assert not [row for row in rows if row.startswith("{")], text  # no JSON on a terminal
    assert not [row for row in rows if "warning" in row or "reconcile init" in row], text
    assert len(rows) < 45, text
    assert rows[-1] == "demo: every outcome matches the seeded mix", text
    assert any(row.startswith("demo: a shop of ") for row in rows), text
    assert any(row.startswith("report: ") for row in rows), text

    # The progress line shows the counts a pull reached and each pull ends on its final figures, left on
    # screen (was: "/v1/charges: 0 pages, 0 objects, 0/s, 0% of the window" through the whole pull, then
    # erased: a window of one page never reported its page, and a finished pull left nothing).
    [pulled] = re.findall(r" pull done: charges ([\d,]+)", text)  # the run's own count of the window's charges
    assert int(pulled.replace(",", "")) > 0, text
    finished = [row for row in rows if row.startswith("/v1/charges: ")]
    assert finished and all(FINISHED.match(row) for row in finished), text
    assert finished[0].startswith(f"/v1/charges: 1 page, {pulled} objects, "), text  # under 100: one page


def test_log_file_gets_json_lines_whatever_the_terminal(tmp_path, stripe_server, shop, db, mongo_server):
    shop.charge(shop.order(c.REPAIRED))
    config = write_config(tmp_path / "reconcile.toml", stripe_server.url, db.name, **FAST)
    log = tmp_path / "logs" / "reconcile.log"  # the folder does not exist yet: the job creates it
    term = Terminal(
        [sys.executable, "-m", "reconcile.cli", "--config", str(config), "--log-file", str(log)],
        160,
        tmp_path,
        _env(mongo_server.uri),
    )
    assert term.wait() == 0
    assert not any(row.startswith("{") for row in term.rows())
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert {"run.start", "repair.done", "run.done"} <= {line["step"] for line in lines}
    assert os.stat(log).st_mode & 0o077 == 0  # it names orders and charges: this user only
    # --log-format json: JSON on the terminal too.
    term = Terminal(
        [sys.executable, "-m", "reconcile.cli", "--config", str(config), "--log-format", "json"],
        160,
        tmp_path,
        _env(mongo_server.uri),
    )
    assert term.wait() == 0
    assert any(row.startswith('{"ts": ') for row in term.rows())


class StepLog(Progress):
    """A display that remembers every step reported to it (the terminal's line is built from these)."""

    def __init__(self) -> None:
        super().__init__(None)
        self.steps: list[tuple[str, int, int | None]] = []

    def step(self, name: str, done: int, total: int | None = None) -> None:
        self.steps.append((name, done, total))
        super().step(name, done, total)


def test_every_long_step_reports_progress_the_recheck_of_open_items_included(cli, db, seed, t0):
    order = seed.order(None, status="accepted", amount=5000, age=3 * H)
    seed.charge(order, amount=4500, age=3 * H)  # an amount mismatch: an item that later runs re-check
    stuck = seed.order(c.REPAIRED, age=2 * H)
    seed.charge(stuck, age=2 * H)
    assert cli("--now", at(t0)).exit_code == 1
    shown = StepLog()
    progress.install(shown)  # as the CLI does on a terminal
    later = cli("--now", at(t0 + 9 * DAY), "--since", at(t0 + 9 * DAY - 6 * H))
    assert later.exit_code == 0, later.output  # the item is open, but from an earlier window
    assert progress.current() is None  # the CLI takes the display down on its way out
    names = [name for name, _, _ in shown.steps]
    for step in ("load orders", "re-check open items", "charges by id", "report"):
        assert step in names, names
    recheck = [(done, total) for name, done, total in shown.steps if name == "re-check open items"]
    assert recheck[0] == (0, 1) and recheck[-1] == (1, 1)  # from none to all of the one open item
    assert shown.status_line() == ""  # every step ended


def test_repairs_report_their_progress(cli, seed, t0):
    for i in range(3):
        seed.charge(seed.order(c.REPAIRED, amount=100 + i, age=2 * H), amount=100 + i, age=2 * H)
    cli.configure(mongodb={"repair_batch_size": 2})
    shown = StepLog()
    progress.install(shown)
    assert cli("--now", at(t0)).exit_code == 0
    assert [s for s in shown.steps if s[0] == "repair"] == [("repair", 0, 3), ("repair", 2, 3), ("repair", 3, 3)]


def test_a_step_shows_done_of_total_with_an_eta_on_the_line():
    screen = io.StringIO()
    ticks = iter([0.0, 10.0])  # one tick per report
    shown = Progress(screen, clock=lambda: next(ticks), interval=0)
    shown.step("re-check open items", 0, 40)
    shown.step("re-check open items", 10, 40)
    assert screen.getvalue().split("\r\x1b[K")[-1] == "re-check open items: 10/40, ETA 0:30"


def test_a_pull_of_one_page_reports_that_page_before_it_ends():
    """A window of one page (the demo's 41 charges) is reported as it is walked, not only when the pull
    ends (was: only pages that said there was more were reported, so the line read 0 pages, 0 objects)."""
    from reconcile.stripe.slices import pull_window

    told: list[tuple[int, int, float, bool]] = []
    page = {"data": [{"id": f"ch_{n:04d}", "created": 999 - n} for n in range(41)], "has_more": False}
    pull_window(lambda params: page, 0, 1000, len, progress=lambda *report: told.append(report))
    assert told == [(1, 41, 1.0, False), (1, 41, 1.0, True)]
