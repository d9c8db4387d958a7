"""Run `python -m reconcile.cli ARGS` and SIGKILL it at a precise point, without touching the job's code.

    python killpoint.py EVENT PATTERN NTH -- ARGS...

A Python audit hook (sys.addaudithook, PEP 578) watches the interpreter's own events; at the
NTH event named EVENT whose arguments match the regular expression PATTERN (e.g. `open` of the
report's temporary HTML file), the process kills itself with SIGKILL: no cleanup, no finally
blocks, as a crash.

With KILLPOINT_RAISE=ENOSPC in the environment it does not kill: the matching event fails with
OSError(ENOSPC) instead, as a full disk would (NTH 0: every matching event, a disk that stays full).
"""

from __future__ import annotations

import errno
import os
import re
import runpy
import signal
import sys


def main() -> None:
    split = sys.argv.index("--")
    event, pattern, nth = sys.argv[1], re.compile(sys.argv[2]), int(sys.argv[3])
    seen = 0
    full_disk = os.environ.get("KILLPOINT_RAISE") == "ENOSPC"

    def hook(name: str, args: tuple) -> None:
        nonlocal seen
        if name == event and pattern.search(repr(args)):
            seen += 1
            if full_disk and nth in (0, seen):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            if seen == nth:
                os.kill(os.getpid(), signal.SIGKILL)

    sys.argv = ["reconcile", *sys.argv[split + 1 :]]
    sys.addaudithook(hook)
    runpy.run_module("reconcile.cli", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
