"""The MLP's two large matrix products, timed alone: the floor under its training step.

    PYTHONPATH=. .venv/bin/python benchmarks/mlp_products.py [--batch-size 64] [--repeats 9]

The MLP (784-256-128-10) spends 51 of its 64 MFLOP per step at batch 64 in two products of
its first layer: the forward ``x @ W`` ``(B, 784) @ (784, 256)`` and the weight gradient
``x^T @ g`` ``(784, B) @ (B, 256)``, contracted over the batch. Each is compiled alone (as
``Trainer`` compiles the MLP: XLA's default options) and timed by
:func:`jaxnets.bench.time_interleaved` (the two alternate, ``--repeats`` rounds, medians);
the output says which library XLA:CPU gave each (YNNPACK or Eigen) and the GFLOP/s.
Their sum is a lower bound on the step whatever else is done, the number the README's Speed
section compares with torch's step time.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxnets.bench import Variant, time_interleaved


def _variant(name: str, fn: Callable[..., jax.Array], args: tuple[jax.Array, ...]) -> Variant:
    calls = 50

    def block() -> None:
        out = None
        for _ in range(calls):
            out = fn(*args)
        jax.block_until_ready(out)

    return Variant(name, "train", calls, lambda: jax.block_until_ready(fn(*args)), block, 1)


def main(argv: list[str] | None = None) -> int:
    """Time the products and print one line each, then their sum."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args(argv)
    b, n_in, n_out = args.batch_size, 784, 256
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((b, n_in), np.float32))
    w = jnp.asarray(rng.standard_normal((n_in, n_out), np.float32))
    g = jnp.asarray(rng.standard_normal((b, n_out), np.float32))
    flops = 2 * b * n_in * n_out
    products = {
        "forward x @ W": (lambda x, w: x @ w, (x, w)),
        "weight gradient x^T @ g": (
            lambda x, g: lax.dot_general(x, g, (((0,), (0,)), ((), ()))),
            (x, g),
        ),
    }
    print(f"batch {b}, {args.repeats} repeats, jax {jax.__version__} ({jax.default_backend()})")
    variants, libraries = [], {}
    for name, (fn, operands) in products.items():
        jitted = jax.jit(fn)
        hlo = jitted.lower(*operands).compile().as_text()
        libraries[name] = "YNNPACK" if "__ynn_fusion" in hlo else "XLA/Eigen"
        variants.append(_variant(name, jitted, operands))
    times = time_interleaved(variants, args.repeats)  # seconds per call, round by round
    total = 0.0
    for name, library in libraries.items():
        us = statistics.median(times[name]) * 1e6
        total += us
        print(f"{name:26s} {us:9.1f} us  {flops / us / 1e3:6.1f} GFLOP/s  ({library})")
    print(f"{'both':26s} {total:9.1f} us")
    return 0


if __name__ == "__main__":
    jax.config.update("jax_cpu_enable_async_dispatch", False)  # as jaxnets bench runs
    sys.exit(main())
