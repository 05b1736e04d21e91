"""torch's ``NeuralNetwork`` (models.py) as a Flax NNX twin, written by ``jaxnets port``.

torch input (N, 784).
Load torch's weights with ``jaxnets.convert.load_state_dict(twin, state_dict)``.
"""

from __future__ import annotations

from typing import Any

import jax
from flax import nnx

from jaxnets import nn


class NeuralNetwork(nnx.Module):
    """torch's ``NeuralNetwork`` (models.py) in Flax NNX."""

    def __init__(self, *, rngs: nnx.Rngs, dtype: Any = None, param_dtype: Any = None) -> None:
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        # Define your layers here
        self.fc1 = nn.Linear(784, 128, **kw)
        self.activation1 = jax.nn.relu
        self.fc2 = nn.Linear(128, 64, **kw)
        self.activation2 = jax.nn.relu
        self.fc3 = nn.Linear(64, 10, **kw)

    def __call__(self, x: jax.Array) -> jax.Array:
        """Forward pass: (N, 784) -> (N, 10)."""
        # Define the forward pass of your network
        x = self.fc1(x)  # (N, 128)
        x = self.activation1(x)  # (N, 128)
        x = self.fc2(x)  # (N, 64)
        x = self.activation2(x)  # (N, 64)
        x = self.fc3(x)  # (N, 10)
        return x
