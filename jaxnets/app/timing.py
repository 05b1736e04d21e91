"""Time per training step on each side, for ``jaxnets compare``.

One step is the tutorials' loop body: torch ``optimizer.zero_grad(); loss =
criterion(model(x), y); loss.backward(); optimizer.step()`` with ``torch.optim.SGD(lr=0.01)``,
against the twin's jitted ``Trainer.step`` with ``jaxnets.optim.sgd(lr=0.01)`` on the same
batch. JAX is timed after compilation (the first call) and to completion
(``block_until_ready``); torch at its default thread count. The figure is the median over
``repeats`` rounds of ``steps`` steps, so one noisy round on a shared machine does not
decide it. This is a quick indication; ``jaxnets bench`` is the measurement harness.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import torch

import jaxnets
import torchref
from jaxnets import optim
from jaxnets.training.trainer import Trainer
from torchref.bridge import torch_to_flax
from torchref.parity import TORCH_LOSSES

__all__ = ["StepTime", "step_times"]


class StepTime(NamedTuple):
    """Median milliseconds per training step on each side."""

    torch_ms: float
    jax_ms: float


def _median_ms(run_steps: Callable[[int], None], steps: int, repeats: int) -> float:
    rounds = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run_steps(steps)
        rounds.append((time.perf_counter() - t0) * 1e3 / steps)
    return statistics.median(rounds)


def step_times(
    name: str,
    *,
    batch_size: int = 64,
    dtype: str = "float32",
    seed: int = 0,
    steps: int = 20,
    repeats: int = 5,
) -> StepTime:
    """Milliseconds per training step of model ``name`` in torch and in JAX.

    Both sides start from the same weights and train on the same random batch of
    ``batch_size`` (torch layout for torch, the twin's layout for JAX), in ``dtype``.
    """
    if steps < 1 or repeats < 1:
        raise ValueError(f"steps and repeats must be >= 1, got {steps}, {repeats}")
    spec = jaxnets.get_model_spec(name)
    tdtype = {"float32": torch.float32, "float64": torch.float64}[dtype]
    torch.manual_seed(seed)
    t = torchref.create_model(name, dtype=tdtype).train()
    f = jaxnets.create_model(name, param_dtype=jnp.dtype(dtype))
    torch_to_flax(t, f)
    f.train()
    x, y = spec.example_batch(batch_size, np.random.default_rng(seed), dtype=np.dtype(dtype))

    # torch
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    opt = torch.optim.SGD(t.parameters(), lr=0.01)
    criterion = TORCH_LOSSES[spec.loss]

    def torch_steps(n: int) -> None:
        for _ in range(n):
            opt.zero_grad()
            criterion(t(xt), yt).backward()
            opt.step()

    # JAX
    trainer = Trainer(f, optim.sgd(lr=0.01), spec.loss)
    box = [trainer.init()]
    xj = jnp.asarray(spec.to_flax_layout(x))
    if y.dtype.kind == "i" and not jax.config.read("jax_enable_x64"):
        y = y.astype(np.int32)  # class indices; int64 needs x64
    yj = jnp.asarray(y)

    def jax_steps(n: int) -> None:
        state = box[0]
        for _ in range(n):
            state, loss = trainer.step(state, xj, yj)
        jax.block_until_ready(loss)
        box[0] = state

    torch_steps(2)  # warm-up: allocator, oneDNN primitive cache
    jax_steps(2)  # compilation
    return StepTime(
        torch_ms=_median_ms(torch_steps, steps, repeats),
        jax_ms=_median_ms(jax_steps, steps, repeats),
    )
