"""torch's ``MyNetwork`` (models.py) as a Flax NNX twin, written by ``jaxnets port``.

torch input (N, 10).
Load torch's weights with ``jaxnets.convert.load_state_dict(twin, state_dict)``.
"""

from __future__ import annotations

from typing import Any

import jax
from flax import nnx

from jaxnets import nn


class MyNetwork(nnx.Module):
    """torch's ``MyNetwork`` (models.py) in Flax NNX."""

    def __init__(self, *, rngs: nnx.Rngs, dtype: Any = None, param_dtype: Any = None) -> None:
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        # Define your network layers here
        self.layer1 = nn.Linear(10, 32, **kw)
        self.layer2 = nn.Linear(32, 1, **kw)

    def __call__(self, x: jax.Array) -> jax.Array:
        """Forward pass: (N, 10) -> (N, 1)."""
        # Define the forward pass of your network
        x = jax.nn.relu(self.layer1(x))  # (N, 32)
        x = self.layer2(x)  # (N, 1)
        return x
