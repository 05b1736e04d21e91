"""torch's ``AdvancedNN`` (models.py) as a Flax NNX twin, written by ``jaxnets port``.

torch input (N, 10).
Load torch's weights with ``jaxnets.convert.load_state_dict(twin, state_dict)``.
"""

from __future__ import annotations

from typing import Any

import jax
from flax import nnx

from jaxnets import nn


class AdvancedNN(nnx.Module):
    """torch's ``AdvancedNN`` (models.py) in Flax NNX."""

    def __init__(self, *, rngs: nnx.Rngs, dtype: Any = None, param_dtype: Any = None) -> None:
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        self.fc1 = nn.Linear(10, 50, **kw)
        self.fc2 = nn.Linear(50, 50, **kw)
        self.fc3 = nn.Linear(50, 1, **kw)

    def __call__(self, x: jax.Array) -> jax.Array:
        """Forward pass: (N, 10) -> (N, 1)."""
        x = jax.nn.relu(self.fc1(x))  # (N, 50)  ReLU activation after first layer
        x = jax.nn.sigmoid(self.fc2(x))  # (N, 50)  Sigmoid activation after second layer
        x = self.fc3(x)  # (N, 1)  Output layer
        return x
