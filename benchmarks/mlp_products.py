"""The MLP's two large matrix products, timed alone in JAX and in torch: the floor under its
training step, and how the two frameworks' matrix libraries compare on this machine.

    PYTHONPATH=. .venv/bin/python benchmarks/mlp_products.py [--batch-size 64] [--repeats 9]

The MLP (784-256-128-10) spends 51 of its 64 MFLOP per step at batch 64 in two products of
its first layer: the forward ``x @ W`` ``(B, 784) @ (784, 256)`` and the weight gradient
``x^T @ g`` ``(784, B) @ (B, 256)``, contracted over the batch. Each is compiled alone (as
``Trainer`` compiles the MLP: XLA's default options) and timed by
:func:`jaxnets.app.bench.time_interleaved` (``--repeats`` rounds, medians); the output says which
library XLA:CPU gave each (YNNPACK or Eigen) and the GFLOP/s. Their sum is a lower bound on
the step whatever else is done, the number docs/investigation.md compares with torch's
step time.

When torch is installed, the same two products as torch's ``nn.Linear`` computes them
(``F.linear(x, W)`` with ``W`` as ``(256, 784)``, and the weight gradient ``g^T @ x`` as its
autograd does) run in the same rounds, at torch's default thread count, and each line ends
with JAX's time over torch's (median of per-round ratios; above 1: JAX's product is slower).
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxnets.app.bench import Variant, time_interleaved

CALLS = 50


def _variant(name: str, fn: Callable[..., jax.Array], args: tuple[jax.Array, ...]) -> Variant:
    def block() -> None:
        out = None
        for _ in range(CALLS):
            out = fn(*args)
        jax.block_until_ready(out)

    return Variant(name, "train", CALLS, lambda: jax.block_until_ready(fn(*args)), block, 1)


def _torch_variants(
    x: np.ndarray, w: np.ndarray, g: np.ndarray
) -> tuple[dict[str, Variant], str] | None:
    """torch's forward and weight-gradient products on the same numbers, or ``None``
    without torch. ``w`` is ``(784, 256)`` as the Flax kernel; torch gets its transpose."""
    try:
        import torch
    except ImportError:
        return None
    xt, gt = torch.from_numpy(x), torch.from_numpy(g)
    wt = torch.from_numpy(np.ascontiguousarray(w.T))  # nn.Linear's (out, in) weight
    products: dict[str, tuple[Callable[..., Any], tuple[Any, ...]]] = {
        "forward x @ W": (torch.nn.functional.linear, (xt, wt)),
        "weight gradient x^T @ g": (lambda g, x: g.t().mm(x), (gt, xt)),
    }
    variants = {}
    for name, (fn, operands) in products.items():

        def run(n: int, fn: Callable[..., Any] = fn, operands: tuple[Any, ...] = operands) -> None:
            with torch.no_grad():
                for _ in range(n):
                    fn(*operands)

        # one call first, as the JAX side's first (first_units=1), then blocks of CALLS
        variants[name] = Variant(
            f"torch {name}",
            "train",
            CALLS,
            functools.partial(run, 1),
            functools.partial(run, CALLS),
            1,
        )
    return variants, f"torch {torch.__version__} ({torch.get_num_threads()} threads)"


def main(argv: list[str] | None = None) -> int:
    """Time the products and print one line each, then their sum."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--no-torch", action="store_true", help="time JAX's products only")
    args = parser.parse_args(argv)
    b, n_in, n_out = args.batch_size, 784, 256
    rng = np.random.default_rng(0)
    xn = rng.standard_normal((b, n_in), np.float32)
    wn = rng.standard_normal((n_in, n_out), np.float32)
    gn = rng.standard_normal((b, n_out), np.float32)
    x, w, g = jnp.asarray(xn), jnp.asarray(wn), jnp.asarray(gn)
    flops = 2 * b * n_in * n_out
    products = {
        "forward x @ W": (lambda x, w: x @ w, (x, w)),
        "weight gradient x^T @ g": (
            lambda x, g: lax.dot_general(x, g, (((0,), (0,)), ((), ()))),
            (x, g),
        ),
    }
    torch_side = None if args.no_torch else _torch_variants(xn, wn, gn)
    header = f"batch {b}, {args.repeats} repeats, jax {jax.__version__} ({jax.default_backend()})"
    print(header + (f", {torch_side[1]}" if torch_side else ""))
    variants, libraries = [], {}
    for name, (fn, operands) in products.items():
        jitted = jax.jit(fn)
        hlo = jitted.lower(*operands).compile().as_text()
        libraries[name] = "YNNPACK" if "__ynn_fusion" in hlo else "XLA/Eigen"
        variants.append(_variant(name, jitted, operands))
    if torch_side:
        variants += torch_side[0].values()
    times = time_interleaved(variants, args.repeats)  # seconds per call, round by round
    total = torch_total = 0.0
    for name, library in libraries.items():
        us = statistics.median(times[name]) * 1e6
        total += us
        line = f"{name:26s} {us:9.1f} us  {flops / us / 1e3:6.1f} GFLOP/s  {f'({library})':11s}"
        if torch_side:
            theirs = times[f"torch {name}"]
            t_us = statistics.median(theirs) * 1e6
            torch_total += t_us
            ratio = statistics.median(j / t for j, t in zip(times[name], theirs, strict=True))
            line += f"  torch {t_us:9.1f} us  {flops / t_us / 1e3:6.1f} GFLOP/s"
            line += f"  JAX/torch {ratio:.2f}"
        print(line.rstrip())
    both = f"{'both':26s} {total:9.1f} us"
    print(both + (f"{'':31s}torch {torch_total:9.1f} us" if torch_side else ""))
    return 0


if __name__ == "__main__":
    jax.config.update("jax_cpu_enable_async_dispatch", False)  # as jaxnets bench runs
    sys.exit(main())
