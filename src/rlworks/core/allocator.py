"""Keep freed memory in the process between gradient steps (glibc only).

An update allocates and frees the same few megabytes of activations and gradients every step. With
glibc's defaults the heap above the live data is handed back to the kernel whenever more than a
dynamic threshold of it is free, so the next step faults those pages back in and zeroes them: about
90 minor page faults per SAC update on Pendulum (256×256 critics, batch 256), about 5 % of its time
(measured with ``getrusage``, docs/off-policy.md). ``retain_freed_memory`` fixes both thresholds once
for the process: blocks under 32 MB come from the heap (32 MB is the largest value glibc's own
adaptive threshold reaches), and up to 64 MB of free heap top is kept instead of trimmed. Larger
blocks (a replay buffer) are still mapped and unmapped on their own, so peak memory is unchanged.
Fixing the values turns off glibc's adaptive threshold for the rest of the process; nothing else
changes. Not glibc (macOS, musl, Windows): a no-op.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # <malloc.h>
MMAP_THRESHOLD = 32 * 1024 * 1024
TRIM_THRESHOLD = 64 * 1024 * 1024

_done: bool | None = None


def retain_freed_memory() -> bool:
    """Set the thresholds (once per process); True where they are set (Linux with glibc)."""
    global _done
    if _done is None:
        _done = False
        if sys.platform.startswith("linux"):
            try:
                libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
                mallopt = libc.mallopt
            except (OSError, AttributeError):
                return False
            mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
            _done = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _done
