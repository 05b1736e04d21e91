"""torch's ``XORNet`` (models.py) as a Flax NNX twin, written by ``jaxnets port``.

torch input (N, 2).
Load torch's weights with ``jaxnets.convert.load_state_dict(twin, state_dict)``.
"""

from __future__ import annotations

from typing import Any

import jax
from flax import nnx

from jaxnets import nn


class XORNet(nnx.Module):
    """torch's ``XORNet`` (models.py) in Flax NNX."""

    def __init__(self, *, rngs: nnx.Rngs, dtype: Any = None, param_dtype: Any = None) -> None:
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        self.layer1 = nn.Linear(2, 5, **kw)
        self.layer2 = nn.Linear(5, 1, **kw)

    def __call__(self, x: jax.Array) -> jax.Array:
        """Forward pass: (N, 2) -> (N, 1)."""
        x = jax.nn.relu(self.layer1(x))  # (N, 5)
        x = self.layer2(x)  # (N, 1)
        return x
