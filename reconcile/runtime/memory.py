"""Hand memory the run has freed back to the system (peak RSS at a million charges).

glibc keeps what a process frees in its heaps for reuse: one heap per thread that allocated, up to
8 per core (the pull's workers each get one), and a buffer once freed from its own mapping (a page's
body, a few hundred KB) raises the size below which later buffers come from a heap instead. So a
pull leaves hundreds of MB held that nothing uses, and the order load and the join grow on top.

- `tune()`, at the start of a run: two heaps at most, and buffers of 128 KB or more always in their
  own mapping (given back when freed). An operator's own MALLOC_ARENA_MAX or
  MALLOC_MMAP_THRESHOLD_ wins.
- `trim()`, between the big steps: the free pages of every heap go back (`malloc_trim(0)`).

Elsewhere (another C library, no ctypes) both do nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from typing import Any

# mallopt parameters (glibc's malloc.h).
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
ARENAS = 2
MMAP_THRESHOLD = 128 * 1024


def _libc_function(name: str, args: list[Any]) -> Any:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    function = getattr(libc, name, None)
    if function is not None:
        function.argtypes, function.restype = args, ctypes.c_int
    return function


_TRIM = _libc_function("malloc_trim", [ctypes.c_size_t])
_MALLOPT = _libc_function("mallopt", [ctypes.c_int, ctypes.c_int])


def tune() -> None:
    """Fewer heaps and big buffers in their own mappings (see the module's docstring)."""
    if _MALLOPT is None:
        return
    if "MALLOC_ARENA_MAX" not in os.environ:
        _MALLOPT(M_ARENA_MAX, ARENAS)
    if "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        _MALLOPT(M_MMAP_THRESHOLD, MMAP_THRESHOLD)


def trim() -> bool:
    """Return freed heap memory to the system; whether any was returned (False: nothing to do, or no glibc)."""
    return bool(_TRIM(0)) if _TRIM is not None else False
