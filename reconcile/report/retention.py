"""Retention: reports older than `report.keep_days` are pruned (never one still waiting to be emailed)."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger(__name__)

# Only the job's own report files: never anything else someone keeps in the directory.
REPORT_FILE = re.compile(r"^(reconcile|payouts)-[0-9]{8}T[0-9]{6}Z-[0-9a-f]+\.(html|csv)$")


def prune(report_dir: Path, keep_days: int, now: float | None = None, keep: Iterable[Path] = ()) -> list[Path]:
    """Delete report files older than `keep_days` (by modification time), except those in `keep`.

    `keep_days` 0 keeps everything. Returns the deleted paths.
    """
    if keep_days <= 0 or not report_dir.is_dir():
        return []
    cutoff = (time.time() if now is None else now) - keep_days * 86400
    protected = {p.resolve() for p in keep}
    # A report's payouts CSV (report/payouts.py) goes with its email: kept while the report is.
    protected |= {p.with_name("payouts-" + p.name.removeprefix("reconcile-")) for p in protected if p.suffix == ".csv"}
    removed = []
    for path in sorted(report_dir.iterdir()):
        if not REPORT_FILE.match(path.name) or path.resolve() in protected:
            continue
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
                removed.append(path)
        except FileNotFoundError:
            continue
        except OSError as exc:
            log.warning("retention.not_removed", extra={"file": path.name, "error": exc.strerror})
    if removed:
        log.info("retention.pruned", extra={"files": len(removed), "keep_days": keep_days})
    return removed
