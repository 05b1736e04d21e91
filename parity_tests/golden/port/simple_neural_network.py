"""torch's ``SimpleNeuralNetwork`` (models.py) as a Flax NNX twin, written by ``jaxnets port``.

torch input (N, 784).
Load torch's weights with ``jaxnets.convert.load_state_dict(twin, state_dict)``.
"""

from __future__ import annotations

from typing import Any

import jax
from flax import nnx

from jaxnets import nn


class SimpleNeuralNetwork(nnx.Module):
    """torch's ``SimpleNeuralNetwork`` (models.py) in Flax NNX."""

    def __init__(self, *, rngs: nnx.Rngs, dtype: Any = None, param_dtype: Any = None) -> None:
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        # Define layers
        self.fc1 = nn.Linear(784, 128, **kw)  # Input layer to hidden layer
        self.fc2 = nn.Linear(128, 64, **kw)  # Hidden layer to another hidden layer
        self.fc3 = nn.Linear(64, 10, **kw)  # Hidden layer to output layer

    def __call__(self, x: jax.Array) -> jax.Array:
        """Forward pass: (N, 784) -> (N, 10)."""
        # Define forward pass
        x = jax.nn.relu(self.fc1(x))  # (N, 128)  Apply ReLU activation function
        x = jax.nn.relu(self.fc2(x))  # (N, 64)  Apply ReLU activation function
        x = self.fc3(x)  # (N, 10)  Output layer
        return x
