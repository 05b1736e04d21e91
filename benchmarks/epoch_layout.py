"""The scan-fused epoch with ``nnx.Linear`` kernels carried as the model holds them or
transposed, side by side in one run.

    PYTHONPATH=. .venv/bin/python benchmarks/epoch_layout.py --model mlp --batch-size 64 1024

For each model and batch size, two :class:`jaxnets.Trainer` differ only in
``epoch_kernel_layout`` (``'in_out'``: ``(in, out)`` kernels, ``x @ W``; ``'out_in'``:
torch's ``(out, in)``, ``x @ W.T``). Their ``jax_scan`` epochs
(:func:`jaxnets.app.bench.jax_train_variants`, ``SGD(lr=0.01)`` on the same synthetic batches,
each trainer's own XLA options) are timed in the same interleaved rounds
(:func:`jaxnets.app.bench.time_interleaved`). Each line gives both medians per step and the
speed of ``out_in`` relative to ``in_out`` (median of per-round ratios; above 1: faster).
A pair whose first loss differs beyond the float32 tolerance is reported and left out.
"""

from __future__ import annotations

import argparse
import fnmatch
import sys

import jax
import numpy as np

from jaxnets import optim
from jaxnets.app import host
from jaxnets.app.bench import (
    Variant,
    ab_lines,
    default_batch_sizes,
    default_steps,
    scan_pair,
    time_interleaved,
)
from jaxnets.registry import create_model, get_model_spec, list_models
from jaxnets.training.trainer import Trainer

LAYOUTS = ("in_out", "out_in")


def main(argv: list[str] | None = None) -> int:
    """Time both layouts for every model and batch size; 1 when a pair was left out."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="*", help="registry name or glob (default: all)")
    parser.add_argument("--batch-size", type=int, nargs="+", help="default: as jaxnets bench")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    models = [m for m in list_models() if fnmatch.fnmatch(m, args.model)]
    if not models:
        parser.error(f"no model matches {args.model!r}; choose from {list_models()}")
    if args.repeats < 1 or any(b < 1 for b in args.batch_size or ()):
        parser.error("--batch-size and --repeats must be positive")

    jax.config.update("jax_cpu_enable_async_dispatch", False)  # as jaxnets bench runs
    if jax.default_backend() == "cpu":
        host.retain_freed_memory()
    print(f"jax {jax.__version__} ({jax.default_backend()}), {args.repeats} repeats")
    pairs: list[tuple[str, list[Variant]]] = []
    left_out = 0
    for name in models:
        spec = get_model_spec(name)
        for batch in args.batch_size or default_batch_sizes(name):
            steps = default_steps(name, batch)
            x, y = spec.example_batch(steps * batch, np.random.default_rng(0))
            x = spec.to_flax_layout(x)
            trainers = [
                (layout, Trainer(create_model(name), optim.sgd(lr=0.01), spec.loss,
                                 epoch_kernel_layout=layout))
                for layout in LAYOUTS
            ]  # fmt: skip
            scans = scan_pair(f"{name}/{batch}", trainers, x, y, batch, steps)
            if isinstance(scans, str):
                print(f"{name} batch {batch}: {scans}")
                left_out += 1
                continue
            pairs.append((f"{name} batch {batch}", scans))

    times = time_interleaved([v for _, vs in pairs for v in vs], args.repeats)
    lines, failed = ab_lines([(label, a, b) for label, (a, b) in pairs], times, LAYOUTS)
    print("\n".join(lines))
    left_out += failed
    return 1 if left_out else 0


if __name__ == "__main__":
    sys.exit(main())
