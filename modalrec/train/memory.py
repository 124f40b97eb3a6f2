"""Keep freed memory in the process, so that large tensors are not page-faulted in again at every step.

glibc's ``malloc`` serves blocks over 32 MiB with ``mmap`` and unmaps them on ``free``; the next block of
that size is then zero-filled by the kernel one 4 KiB page at a time. A training step at Amazon-Elec scale
makes dozens of such temporaries (propagations, Adam's step, embedding gradients), and re-faulting them
takes a large share of the step's CPU time. Serving every block from the heap and never trimming it makes a
freed block's pages reusable at once (figures in docs/benchmarks/notes.md).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
M_MMAP_MAX = -4
_applied = False


def keep_freed_memory() -> bool:
    """Tell glibc's allocator to keep freed memory for reuse; returns whether it applied (glibc on Linux).

    Process-wide and idempotent. The costs: memory freed by the process is not given back to the system
    until it exits, so the resident size stays at its peak; and a loop that keeps small results while it
    frees large temporaries can fragment the heap, each freed block being split by the small ones (the
    chunked kNN build grew by its similarity block per chunk until it reused one buffer). The peak can fall
    (LightGCN) or rise a lot (FREEDOM at Amazon-Elec scale, whose kept results interleave with its
    temporaries). Hence opt-in, where the peak can afford it: ``train.keep_freed_memory`` makes the Trainer
    call it.
    """
    global _applied
    if _applied:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _applied = bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, 2**31 - 1))
    return _applied
