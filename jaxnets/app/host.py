"""Host memory settings that XLA:CPU's speed depends on.

XLA:CPU allocates the temporaries of each call of a compiled function as one block of host
memory and frees it when the call returns. glibc's ``malloc`` serves a block that large
(above ``M_MMAP_THRESHOLD``: 128 KiB at start, raised as blocks are freed, to at most
32 MiB on 64-bit Linux) with fresh pages from ``mmap`` and gives them back with ``munmap``
at ``free``, so the next call touches every page again: one page fault, and the kernel
zeroing the page, per 4 KiB: a third of LeNet's training step at batch 256, whose
temporaries are 38 MB, went to page faults. :func:`retain_freed_memory` makes glibc keep
freed memory for reuse instead: no faults on most calls, under synchronous and asynchronous
dispatch alike (now and then a call still grows the heap by a fresh block, when a smaller
allocation has taken part of the free space the aligned block needs: 1 to 3 calls in 200
after the first few, seen here); steps too small to fault are unchanged (the figures, and
the command that measures them again: docs/investigation.md). Not covered: a single block
over 64 MiB allocated off the main thread (with JAX's asynchronous dispatch), which glibc's
per-thread arenas cannot hold.

``jaxnets bench``, ``jaxnets train`` and ``examples/mnist.py`` call it on the CPU; in your own
program, call it once at the start. No torch here.
"""

from __future__ import annotations

import ctypes
import ctypes.util

__all__ = ["retain_freed_memory", "retained"]

# mallopt parameter numbers from glibc's <malloc.h>
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

_applied: str | None = None


def retain_freed_memory(
    mmap_threshold: int = 1 << 30, trim_threshold: int = (1 << 31) - 1
) -> str | None:
    """Make glibc ``malloc`` keep freed memory for reuse (process-wide); returns what was set.

    Sets ``M_MMAP_THRESHOLD`` (blocks below it come from the heap, not from a fresh ``mmap``;
    default 1 GiB) and ``M_TRIM_THRESHOLD`` (free memory at the top of the heap is returned to
    the system only above it; default 2 GiB) with ``mallopt``. Every library in the process
    allocates through the same ``malloc`` (torch too), and the process keeps up to
    ``trim_threshold`` bytes of freed memory instead of returning it, which a long training
    run reuses on every step. Returns a one-line description, or ``None`` where the C library
    has no ``mallopt`` (not glibc: macOS, musl), where nothing is changed. Idempotent.
    """
    global _applied
    if mmap_threshold <= 0 or trim_threshold <= 0:
        raise ValueError(
            f"thresholds must be positive byte counts, got mmap_threshold={mmap_threshold}, "
            f"trim_threshold={trim_threshold}"
        )
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return None
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    if not (
        mallopt(_M_MMAP_THRESHOLD, mmap_threshold) and mallopt(_M_TRIM_THRESHOLD, trim_threshold)
    ):
        return None  # glibc refused a value (it caps the mmap threshold on some builds)
    _applied = (
        f"glibc malloc keeps freed memory (mallopt M_MMAP_THRESHOLD={mmap_threshold}, "
        f"M_TRIM_THRESHOLD={trim_threshold})"
    )
    return _applied


def retained() -> str | None:
    """What :func:`retain_freed_memory` set in this process, or ``None`` if it has not run
    (or could not)."""
    return _applied
