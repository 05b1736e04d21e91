"""torch's ``Net`` (models.py) as a Flax NNX twin, written by ``jaxnets port``.

torch input (N, 784).
Load torch's weights with ``jaxnets.convert.load_state_dict(twin, state_dict)``.
"""

from __future__ import annotations

from typing import Any

import jax
from flax import nnx

from jaxnets import nn


class Net(nnx.Module):
    """torch's ``Net`` (models.py) in Flax NNX."""

    def __init__(self, *, rngs: nnx.Rngs, dtype: Any = None, param_dtype: Any = None) -> None:
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        # Define the layers of the neural network
        self.layer1 = nn.Linear(784, 128, **kw)
        self.layer2 = nn.Linear(128, 10, **kw)
        self.relu = jax.nn.relu

    def __call__(self, x: jax.Array) -> jax.Array:
        """Forward pass: (N, 784) -> (N, 10)."""
        # Define the forward pass of the network
        out = self.layer1(x)  # (N, 128)
        out = self.relu(out)  # (N, 128)
        out = self.layer2(out)  # (N, 10)
        return out
