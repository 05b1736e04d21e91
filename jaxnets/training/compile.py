"""Did my step recompile, and how long did compiling take: one counter of JAX's compile events.

JAX reports every trace, lowering and XLA compilation it performs as a ``jax.monitoring``
duration event; :func:`count_compiles` listens to them while a block runs, from any function
in the process::

    state, _ = trainer.step(state, x, y)          # compiles
    with count_compiles() as c:
        state, _ = trainer.step(state, x, y)      # same shapes and dtypes
    assert c.compiles == 0, c

A recompile on the second call means an argument changed shape, dtype, weak type or a static
value between calls. ``c.seconds`` is the time spent tracing, lowering and compiling in the
block (what ``jaxnets train`` reports as a run's compile time).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import jax

__all__ = ["CompileCounter", "count_compiles"]

_COMPILE = "/jax/core/compile/backend_compile_duration"
_TRACE = "/jax/core/compile/jaxpr_trace_duration"
_LOWER = "/jax/core/compile/jaxpr_to_mlir_module_duration"


@dataclass
class CompileCounter:
    """What :func:`count_compiles` saw: XLA compilations and jaxpr traces (in ``events``, in
    order), and the seconds spent tracing, lowering to MLIR and compiling."""

    compiles: int = 0
    traces: int = 0
    seconds: float = 0.0
    events: list[str] = field(default_factory=list)


@contextlib.contextmanager
def count_compiles() -> Iterator[CompileCounter]:
    """Count the XLA compilations and traces JAX performs inside the block, and their time."""
    counter = CompileCounter()

    def listener(event: str, duration: float, **kwargs: Any) -> None:
        del kwargs
        if event not in (_COMPILE, _TRACE, _LOWER):
            return
        counter.seconds += duration
        if event == _COMPILE:
            counter.compiles += 1
            counter.events.append(event)
        elif event == _TRACE:
            counter.traces += 1
            counter.events.append(event)

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield counter
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
