"""Fingerprints of the programs a Trainer compiles, to show that a change of code shape left
them alone.

    PYTHONPATH=TREE .venv/bin/python benchmarks/program_hash.py [MODEL ...]

Prints, per model, a hash of the StableHLO of the jitted training step and of the
scan-fused epoch (``SGD(lr=0.01)``, the registry's loss, batch 64; xor_net batch 4), without
source locations. Run it from two checkouts: equal hashes mean XLA compiles the same
programs, so only Python's per-call work can differ between them.
"""

from __future__ import annotations

import hashlib
import re
import sys

import jax.numpy as jnp
import numpy as np

import jaxnets
from jaxnets import optim

try:
    from jaxnets import Trainer
except ImportError:  # a checkout from before jaxnets.Trainer
    from jaxnets.train import Trainer  # type: ignore[no-redef]


def _hash(lowered: object) -> str:
    text = re.sub(r"loc\(.*?\)", "", lowered.as_text(debug_info=False))  # type: ignore[attr-defined]
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def fingerprints(name: str) -> tuple[str, str]:
    """``(step hash, epoch hash)`` of ``name``'s Trainer programs."""
    spec = jaxnets.get_model_spec(name)
    batch = 4 if name == "xor_net" else 64
    trainer = Trainer(jaxnets.create_model(name), optim.sgd(lr=0.01), spec.loss)
    state = trainer.init()
    x, y = spec.example_batch(batch, np.random.default_rng(0))
    if spec.layout == "image":
        x = x.transpose(0, 2, 3, 1)
    x, y = jnp.asarray(x), jnp.asarray(y)
    idx = jnp.tile(jnp.arange(batch), (10, 1))
    step = getattr(trainer, "jit_step", None) or trainer.step
    return _hash(step.lower(state, x, y)), _hash(trainer.jit_epoch.lower(state, x, y, idx))


def main(argv: list[str]) -> int:
    """Print the fingerprints of the models named (default: lenet, custom_neural_network,
    xor_net)."""
    for name in argv or ["lenet", "custom_neural_network", "xor_net"]:
        step, epoch = fingerprints(name)
        print(f"{name:24} step {step}  epoch {epoch}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
