"""Hand memory the run has freed back to the system between its big steps (peak RSS at a million).

glibc keeps what a process frees in its heaps (one per thread that allocated: the pull's workers
each have one) for reuse, so after the pull and the order load the process holds hundreds of MB it
no longer uses, and the join then grows on top of them. `malloc_trim(0)` returns the free pages of
every heap. Elsewhere (another C library, no ctypes) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    trim = getattr(libc, "malloc_trim", None)
    if trim is None:
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim  # type: ignore[no-any-return]


_TRIM = _malloc_trim()


def trim() -> bool:
    """Return freed heap memory to the system; whether any was returned (False: nothing to do, or no glibc)."""
    return bool(_TRIM(0)) if _TRIM is not None else False
