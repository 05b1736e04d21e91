"""torch's ``MLP`` (models.py) as a Flax NNX twin, written by ``jaxnets port``.

torch input (N, 784).
Load torch's weights with ``jaxnets.convert.load_state_dict(twin, state_dict)``.
"""

from __future__ import annotations

from typing import Any

import jax
from flax import nnx

from jaxnets import nn


class MLP(nnx.Module):
    """torch's ``MLP`` (models.py) in Flax NNX."""

    def __init__(self, *, rngs: nnx.Rngs, dtype: Any = None, param_dtype: Any = None) -> None:
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        self.layers = nnx.List(
            [nn.Linear(784, 256, **kw), nn.Linear(256, 128, **kw), nn.Linear(128, 10, **kw)]
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        """Forward pass: (N, 784) -> (N, 10)."""
        x = jax.nn.relu(self.layers[0](x))  # (N, 256)
        x = jax.nn.relu(self.layers[1](x))  # (N, 128)
        return self.layers[2](x)
