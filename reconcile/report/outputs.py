"""Where a run writes its files, checked before it changes anything.

A report directory that is a file, or a summary path under one, is a configuration problem: found
at the start it is exit 2 with one line and nothing changed; found after the repairs it was a crash
(exit 70) with the changes made and no report listing them.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from reconcile.errors import ConfigError


def check_writable_dir(path: Path, name: str) -> None:
    """`path` is a directory (created now if missing, owner-only as the report writer makes it) in which
    a file can be created: a real file is made and removed, so permissions, read-only mounts and full
    inode tables all show, for root too. `name` is the key or option the path came from."""
    tmp = None
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path, prefix=".reconcile-check.", suffix=".tmp")
        os.close(fd)
    except OSError as exc:
        raise ConfigError(
            f"{name}: {path} is not a directory the job can write in ({exc.strerror or type(exc).__name__}); "
            "nothing was changed"
        ) from None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def check_outputs(report_dir: Path, report_dir_name: str, summary_json: Path | None) -> None:
    """Every file a run writes can be written: the report directory, and the summary's directory."""
    check_writable_dir(report_dir, report_dir_name)
    if summary_json is not None:
        check_writable_dir(summary_json.parent, f"--summary-json {summary_json}")
