"""``jaxnets.app.host.retain_freed_memory``: XLA:CPU's large per-call temporaries stop being
page-faulted in again on every call. Page faults are counted (``getrusage``), not timed."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from jaxnets.app import host

# A jitted function whose one large temporary (sin(x), 64 MiB, the operand of a matrix
# product) is allocated and freed by every call; prints the median call's minor page faults
# (a call now and then still grows the heap while its free blocks settle).
# Synchronous dispatch, as jaxnets bench runs, so the block is allocated on the calling
# thread (glibc's per-thread arenas cannot hold a block of 64 MiB).
_FAULTS = textwrap.dedent(
    """
    import resource, sys
    import jax, jax.numpy as jnp
    from jaxnets.app import host
    jax.config.update("jax_cpu_enable_async_dispatch", False)  # as jaxnets bench runs
    if sys.argv[1] == "retain":
        if host.retain_freed_memory() is None:
            print("unsupported"); sys.exit(0)
    f = jax.jit(lambda x, w: jnp.sin(x) @ w)
    x = jnp.ones((4096, 4096), jnp.float32)
    w = jnp.ones((4096, 8), jnp.float32)
    faults = []
    for _ in range(12):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        f(x, w).block_until_ready()
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    print(sorted(faults[2:])[len(faults[2:]) // 2])  # the median call after two warm-ups
    """
)


def _faults_per_call(mode: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", _FAULTS, mode], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_retained_memory_is_not_faulted_in_again() -> None:
    retained = _faults_per_call("retain")
    if retained == "unsupported":
        pytest.skip("the C library has no mallopt (not glibc): retain_freed_memory is a no-op")
    default = float(_faults_per_call("default"))
    # glibc's default maps the 64 MiB temporary afresh on every call: thousands of faults
    # (16,384 pages of 4 KiB); with freed memory kept, next to none.
    assert default > 1000, default
    assert float(retained) < default / 20, (retained, default)


def test_retain_freed_memory_checks_its_arguments() -> None:
    with pytest.raises(ValueError, match="positive byte counts"):
        host.retain_freed_memory(mmap_threshold=0)
    with pytest.raises(ValueError, match="positive byte counts"):
        host.retain_freed_memory(trim_threshold=-1)
