"""Process-wide settings that make training faster, in one opt-in context that restores them.

``tuned(...)`` sets torch's CPU thread count, flush-to-zero for denormal floats and the float32
matmul precision, and puts each back as it found it on exit. The CLI and ``rlworks bench`` enter it
around a whole command; ``rlworks.train`` enters it with ``retain_freed_memory=False`` so that a
library call leaves the process as it found it (CONVENTIONS rule 11).

Why each setting (measurements in docs/benchmarks.md):
* threads: one thread is fastest for the small MLPs of classic control; extra threads spin-wait on a
  loaded machine;
* flush-to-zero: Adam's second-moment estimates decay into the denormal range, where x86 float
  arithmetic is 10–100× slower; flushing is deterministic;
* ``retain_freed_memory`` (glibc): an update allocates and frees the same few megabytes every step;
  with glibc's defaults the heap above the live data is handed back to the kernel and faulted back in
  on the next step (about 90 minor page faults per SAC update on Pendulum, ~5 % of its time). Fixing
  the thresholds (blocks under 32 MB from the heap, up to 64 MB of free heap top kept) stops that;
  larger blocks (a replay buffer) are still mapped on their own, so peak memory is unchanged. glibc
  has no way to read or restore these thresholds (and fixing them turns off its adaptive threshold),
  so only a caller that owns the process (the CLI, the benchmarks) turns it on. Not glibc: a no-op.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from ..config import MATMUL_PRECISIONS, ConfigError, check_choice


def flush_denormal_enabled() -> bool:
    """Whether denormal float32 results are flushed to zero right now (torch has no getter: compute one)."""
    tiny = torch.tensor([1e-39], dtype=torch.float32)  # a denormal float32
    return bool((tiny * 1.0).item() == 0.0)


@contextmanager
def tuned(num_threads: int | None = 1, *, flush_denormal: bool = True, matmul_precision: str | None = None,
          retain_freed_memory: bool = False) -> Iterator[None]:
    """Enter rlworks' training settings; every one of them is restored on exit except
    ``retain_freed_memory`` (process-lifetime, for callers that own the process)."""
    if num_threads is not None and int(num_threads) < 1:
        raise ConfigError(f"num_threads={num_threads} is out of range: allowed [1, inf)")
    if matmul_precision is not None:
        check_choice("matmul_precision", matmul_precision, MATMUL_PRECISIONS)
    threads, precision, ftz = torch.get_num_threads(), torch.get_float32_matmul_precision(), flush_denormal_enabled()
    try:
        if num_threads is not None:
            torch.set_num_threads(int(num_threads))
        if matmul_precision is not None:
            torch.set_float32_matmul_precision(matmul_precision)
        if flush_denormal:
            torch.set_flush_denormal(True)
        if retain_freed_memory:
            retain_freed_memory_for_process()
        yield
    finally:
        torch.set_num_threads(threads)
        torch.set_float32_matmul_precision(precision)
        torch.set_flush_denormal(ftz)


def bf16_products(device: torch.device) -> torch.autocast:
    """Within it, matrix products take bfloat16 inputs (float32 accumulation) when the run allows it: on CPU with
    ``matmul_precision="medium"`` ("bfloat16 products where the CPU has them"); otherwise it changes nothing. For
    the wide, sampled batches whose values are estimates anyway (CQL's 3·N actions per state), where oneDNN's
    bfloat16 kernels run about 2.5x faster than float32 on CPUs with AVX512-BF16 or AMX."""
    on = device.type == "cpu" and torch.get_float32_matmul_precision() == "medium"
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=on)


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # <malloc.h>
MMAP_THRESHOLD = 32 * 1024 * 1024  # the largest value glibc's own adaptive threshold reaches
TRIM_THRESHOLD = 64 * 1024 * 1024
_retained: bool | None = None


def retain_freed_memory_for_process() -> bool:
    """Fix glibc's mmap and trim thresholds (once per process; see the module docstring); True where set."""
    global _retained
    if _retained is None:
        _retained = False
        if sys.platform.startswith("linux"):
            try:
                mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
            except (OSError, AttributeError):
                return False
            mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
            _retained = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD,
                                                                                          TRIM_THRESHOLD))
    return _retained
