"""Training speed of the twins ``jaxnets port`` writes against the hand-written ones, in one
interleaved run.

    PYTHONPATH=. .venv/bin/python benchmarks/port_speed.py --model lenet mlp

For each model and batch size (``jaxnets bench``'s defaults), the hand-written twin
(``jaxnets.create_model``) and the generated one (``torchref.port.port_source`` on the torch
original in ``torchref/models.py``) are loaded with the same torch weights and trained by a
:class:`jaxnets.Trainer` each (``SGD(lr=0.01)``, the model's loss, each trainer's automatic
options) on the same synthetic batches. Their scan-fused epochs
(:func:`jaxnets.app.bench.jax_train_variants`) are timed in the same interleaved rounds
(:func:`jaxnets.app.bench.time_interleaved`). Each line gives both medians per step and the
generated twin's speed relative to the hand-written one (median of per-round ratios; 1: the
same). A pair whose first losses differ beyond the float32 tolerance is left out.
"""

from __future__ import annotations

import argparse
import sys

import jax
import numpy as np
import torch
from flax import nnx

import torchref.models as torch_models
from jaxnets import convert, optim
from jaxnets.app import host
from jaxnets.app.bench import (
    Variant,
    ab_lines,
    default_batch_sizes,
    default_steps,
    scan_pair,
    time_interleaved,
)
from jaxnets.registry import create_model, get_model_spec
from jaxnets.training.trainer import Trainer
from torchref.port import port_source
from torchref.port.proof import load_twin


def _twins(name: str) -> tuple[nnx.Module, nnx.Module]:
    """The hand-written and the generated twin of ``name``, both holding the same weights."""
    torch.manual_seed(0)
    original = torch_models.create_model(name)
    spec = get_model_spec(name)
    x = np.random.default_rng(0).standard_normal(spec.torch_input_shape(4)).astype(np.float32)
    cls = load_twin(port_source(original, x), type(original).__name__)
    weights = {k: v.numpy() for k, v in original.state_dict().items()}
    hand, generated = create_model(name), cls(rngs=nnx.Rngs(0))
    for twin in (hand, generated):
        convert.load_state_dict(twin, weights)
    return hand, generated


def main(argv: list[str] | None = None) -> int:
    """Time both twins for every model and batch size; 1 when a pair was left out."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", nargs="+", default=["lenet", "mlp"])
    parser.add_argument("--batch-size", type=int, nargs="+", help="default: as jaxnets bench")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)

    jax.config.update("jax_cpu_enable_async_dispatch", False)  # as jaxnets bench runs
    if jax.default_backend() == "cpu":
        host.retain_freed_memory()
    print(f"jax {jax.__version__} ({jax.default_backend()}), {args.repeats} repeats")
    pairs: list[tuple[str, list[Variant]]] = []
    left_out = 0
    for name in args.model:
        spec = get_model_spec(name)
        for batch in args.batch_size or default_batch_sizes(name):
            steps = default_steps(name, batch)
            x, y = spec.example_batch(steps * batch, np.random.default_rng(0))
            x = spec.to_flax_layout(x)
            trainers = [
                (label, Trainer(twin, optim.sgd(lr=0.01), spec.loss))
                for label, twin in zip(("hand", "port"), _twins(name), strict=True)
            ]
            scans = scan_pair(f"{name}/{batch}", trainers, x, y, batch, steps)
            if isinstance(scans, str):
                print(f"{name} batch {batch}: {scans}")
                left_out += 1
                continue
            pairs.append((f"{name} batch {batch}", scans))

    times = time_interleaved([v for _, vs in pairs for v in vs], args.repeats)
    lines, failed = ab_lines([(label, a, b) for label, (a, b) in pairs], times, ("hand", "port"))
    print("\n".join(lines))
    left_out += failed
    return 1 if left_out else 0


if __name__ == "__main__":
    sys.exit(main())
