"""LeNet's training step with each convolution and its max-pool as one product (the default,
:func:`jaxnets.fast.conv2d_max_pool2d`) and as the plain composition, side by side in one
run.

    PYTHONPATH=. .venv/bin/python benchmarks/conv_pool.py --batch-size 64 256

The two models hold the same weights and differ only in their forward pass: ``fused`` is
:class:`jaxnets.models.lenet.LeNet`, ``composed`` computes ``max_pool2d(relu(conv(x)), 2)``
as torch writes it. Each is trained by its own :class:`jaxnets.Trainer`
(``SGD(lr=0.01)``, LeNet's loss and XLA options) on the same synthetic batches, as
``jaxnets bench`` times it (:func:`jaxnets.app.bench.jax_train_variants`: ``jax_jit`` steps and
the ``jax_scan`` epoch), all four in the same interleaved rounds
(:func:`jaxnets.app.bench.time_interleaved`). Each line gives both medians per step and the speed
of ``fused`` relative to ``composed`` (median of per-round ratios; above 1: faster). A pair
whose first loss differs beyond the float32 tolerance is reported and left out (exit 1).
"""

from __future__ import annotations

import argparse
import statistics
import sys

import jax
import numpy as np
from flax import nnx

from jaxnets import optim
from jaxnets.app import host
from jaxnets.app.bench import (
    Variant,
    default_steps,
    jax_train_variants,
    same_computation,
    time_interleaved,
)
from jaxnets.models.lenet import LeNet, _check_nhwc
from jaxnets.nn import max_pool2d
from jaxnets.registry import get_model_spec
from jaxnets.training.trainer import Trainer


class ComposedLeNet(LeNet):
    """LeNet with torch's order of operations: each convolution, its ReLU, then its pool."""

    def __call__(self, x: jax.Array) -> jax.Array:
        """Forward pass: NHWC ``(N, 32, 32, 1) -> (N, 10)`` logits."""
        _check_nhwc(x, (32, 32), 1, type(self).__name__)
        x = max_pool2d(jax.nn.relu(self.conv1(x)), 2)
        x = max_pool2d(jax.nn.relu(self.conv2(x)), 2)
        x = x.transpose(0, 3, 1, 2).reshape(x.shape[0], -1)
        x = jax.nn.relu(self.fc1(x))
        x = jax.nn.relu(self.fc2(x))
        return self.fc3(x)


def main(argv: list[str] | None = None) -> int:
    """Time both forms at every batch size; 1 when a pair was left out."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--steps", type=int, help="steps per timed block (default: per batch)")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    if args.repeats < 1 or any(b < 1 for b in args.batch_size) or (args.steps or 1) < 1:
        parser.error("--batch-size, --steps and --repeats must be positive")

    jax.config.update("jax_cpu_enable_async_dispatch", False)  # as jaxnets bench runs
    if jax.default_backend() == "cpu":
        host.retain_freed_memory()
    print(f"jax {jax.__version__} ({jax.default_backend()}), {args.repeats} repeats")
    spec = get_model_spec("lenet")
    pairs: list[tuple[int, dict[str, list[Variant]]]] = []
    left_out = 0
    for batch in args.batch_size:
        steps = args.steps or default_steps("lenet", batch)
        x, y = spec.example_batch(steps * batch, np.random.default_rng(0))
        x = spec.to_flax_layout(x)
        forms: dict[str, list[Variant]] = {}
        losses = []
        for form, cls in (("composed", ComposedLeNet), ("fused", LeNet)):
            trainer = Trainer(cls(rngs=nnx.Rngs(0)), optim.sgd(lr=0.01), spec.loss)
            variants, info = jax_train_variants(trainer, x, y, batch, steps)
            for v in variants:
                v.name = f"{batch}/{form}/{v.name}"
            forms[form] = variants
            losses.append(info["first_loss"])
        if not same_computation(*losses):
            print(f"batch {batch}: left out, first losses {losses} differ")
            left_out += 1
            continue
        pairs.append((batch, forms))

    every = [v for _, forms in pairs for vs in forms.values() for v in vs]
    times = time_interleaved(every, args.repeats)
    print(f"{'composed us':>12} {'fused us':>10} {'speed':>7}  batch, variant")
    for batch, forms in pairs:
        for a, b in zip(forms["composed"], forms["fused"], strict=True):
            label = f"{batch}, {a.name.rsplit('/', 1)[1]}"
            if a.error or b.error:
                print(f"{label}: left out, {a.error or b.error}")
                left_out += 1
                continue
            ratio = statistics.median(
                r / t for r, t in zip(times[a.name], times[b.name], strict=True)
            )
            a_us, b_us = (statistics.median(times[v.name]) * 1e6 for v in (a, b))
            print(f"{a_us:12.1f} {b_us:10.1f} {ratio:7.3f}  {label}")
    return 1 if left_out else 0


if __name__ == "__main__":
    sys.exit(main())
