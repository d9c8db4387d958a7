"""Where a run writes its files, checked before it changes anything.

A report directory that is a file, or a summary path under one, is a configuration problem: found
at the start it is exit 2 with one line and nothing changed; found after the repairs it was a crash
(exit 70) with the changes made and no report listing them.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from reconcile.errors import ConfigError


def check_writable_dir(path: Path, name: str) -> None:
    """`path` is a directory in which a file can be created, or can be created itself: a real file (or,
    for a missing directory, a directory in its nearest existing parent) is made and removed at once,
    so permissions, read-only mounts and full disks all show, for root too, and nothing is left behind.
    `name` is the key or option the path came from."""
    existing = path
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    try:
        if not existing.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(existing))
        if existing == path:
            fd, tmp = tempfile.mkstemp(dir=path, prefix=".reconcile-check.", suffix=".tmp")
            os.close(fd)
            os.unlink(tmp)
        else:
            os.rmdir(tempfile.mkdtemp(dir=existing, prefix=".reconcile-check."))
    except OSError as exc:
        raise ConfigError(
            f"{name}: {path} is not a directory the job can write in ({exc.strerror or type(exc).__name__}); "
            "nothing was changed"
        ) from None


def check_outputs(report_dir: Path, report_dir_name: str, summary_json: Path | None) -> None:
    """Every file a run writes can be written: the report directory, and the summary's directory."""
    check_writable_dir(report_dir, report_dir_name)
    if summary_json is not None:
        check_writable_dir(summary_json.parent, f"--summary-json {summary_json}")
