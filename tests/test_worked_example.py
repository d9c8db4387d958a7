"""The worked example of docs/items-and-undo.md, typed as a reader would: line by line, each a new process,
from a fresh directory, after `reconcile demo`; each line exits as the doc says."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
DOC = ROOT / "docs" / "items-and-undo.md"
HEADING = "## Worked example"
RUN_ID = "20261118T0907"  # the doc's stand-in for the demo's run id, which `reconcile runs` prints


def worked_example(text: str) -> list[tuple[str, int]]:
    """(command, exit code) per line of the section's sh block: 0 unless its comment says `exit N`;
    a comment continued on the lines below (`    # ...`) belongs to the command above it."""
    section = text[text.index(HEADING) :]
    block = re.search(r"^```sh\n(.*?)^```", section, re.MULTILINE | re.DOTALL)
    assert block, f"no sh block under {HEADING!r} in {DOC.name}"
    lines: list[list[str]] = []
    for line in block.group(1).splitlines():
        if line.lstrip().startswith("#"):
            lines[-1].append(line)
        elif line.strip():
            lines.append([line])
    example = []
    for command, *more in lines:
        comment = " ".join([command.partition("#")[2], *more])
        code = re.search(r"\bexit (\d+)", comment)
        example.append((command, int(code.group(1)) if code else 0))
    return example


def demo_run_id(runs_output: str) -> str:
    """The run `reconcile runs` lists as started by the demo, as a reader picks it out of the table."""
    (row,) = [row for row in runs_output.splitlines()[1:] if " demo " in f" {row} "]
    return row.split()[0]


def test_the_doc_lists_the_loop_with_exit_codes():
    example = worked_example(DOC.read_text(encoding="utf-8"))
    assert shlex.split(example[0][0], comments=True) == ["reconcile", "demo"] and example[0][1] == 0
    assert [code for line, code in example if line.startswith("reconcile --since")] == [1]
    assert sum(RUN_ID in line for line, _ in example) == 3


@pytest.fixture
def new_shell(tmp_path) -> dict[str, str]:
    """A reader's environment: no config named, no demo servers, no Stripe or MongoDB variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RECONCILE_", "STRIPE_", "MONGODB_"))}
    return dict(env, PYTHONPATH=str(ROOT))


def test_the_worked_example_works_as_written_after_the_demo(tmp_path, new_shell):
    run_id = None
    for line, expected in worked_example(DOC.read_text(encoding="utf-8")):
        if RUN_ID in line:
            assert run_id, f"`{line}` comes before `reconcile runs` printed the demo's run"
            line = line.replace(RUN_ID, run_id)
        words = shlex.split(line, comments=True)
        assert words[0] == "reconcile", line
        done = subprocess.run(
            [sys.executable, "-m", "reconcile.cli", *words[1:]],
            cwd=tmp_path,
            env=new_shell,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == expected, f"`{line}` exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
        if words[1:] == ["runs"]:
            run_id = demo_run_id(done.stdout)
        if words[1:3] == ["undo", run_id] and len(words) == 3:
            assert "already undone" in done.stdout, done.stdout
    assert run_id, "the example never listed the runs"
    assert not (tmp_path / "reconcile-demo" / "stripe.json.part").exists()
