"""Keep freed memory in the training process instead of handing it back to the OS.

Every training step allocates and frees the same tensors: batches sampled from a replay
buffer, activations and gradients of an update. glibc's malloc serves blocks over its mmap
threshold (128 KiB to start, moved by what was freed last) with fresh mmap()s and gives
free heap tops back (trim), so the next step faults the same pages in again and the kernel
zeroes them: on a 2-vCPU VM, 500-3,800 page faults per QMIX step on fulfillment, 7-23 % of
a step's CPU time, more or less from one process to the next as the moving threshold landed.
Fixed thresholds keep blocks up to 32 MiB in the heap and the heap's free top in the process:
after warm-up a step faults a few pages in at most (benchmarks/allocator.py), and the
resident size stays at the run's peak, which bounded buffers keep flat (benchmarks/memory.py).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

# mallopt parameters (malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's largest on 64-bit; larger blocks are always mmap()ed
TRIM_THRESHOLD = 1024 * 1024 * 1024  # free heap top kept before any is given back

_done = False


def keep_freed_memory() -> bool:
    """Fix glibc malloc's thresholds for this process (and processes it forks). True if set;
    False where the C library is not glibc (macOS, musl), which is left as it is."""
    global _done
    if _done:
        return True
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    # mallopt returns 1 on success
    _done = bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _done
