"""reconcile/runtime/memory.py: freed heap memory goes back to the system (glibc; skipped elsewhere)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from reconcile.runtime import memory

PROBE = """
import sys
from reconcile.runtime import memory

def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20

memory.tune()
blocks = [bytes(64 * 1024) for _ in range(3200)]  # 200 MB in heap-sized pieces
keep = blocks[::10]  # every tenth stays: the holes between them cannot shrink the heap's top
del blocks
before = rss_mb()
returned = memory.trim()
print(returned, round(before - rss_mb()))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim and /proc")
def test_trim_gives_freed_heap_memory_back():
    if memory._TRIM is None:
        pytest.skip("no malloc_trim in this C library")
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=120
    ).stdout.split()
    returned, dropped_mb = out[0] == "True", int(out[1])
    assert returned and dropped_mb > 100, out
