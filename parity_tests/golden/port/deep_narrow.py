"""torch's ``DeepNarrow`` (port_models.py) as a Flax NNX twin, written by ``jaxnets port``.

torch input (N, 8).
Load torch's weights with ``jaxnets.convert.load_state_dict(twin, state_dict)``.
"""

from __future__ import annotations

from typing import Any

import jax
from flax import nnx

from jaxnets import nn


class DeepNarrow(nnx.Module):
    """torch's ``DeepNarrow`` (port_models.py) in Flax NNX."""

    def __init__(self, *, rngs: nnx.Rngs, dtype: Any = None, param_dtype: Any = None) -> None:
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        self.layers = nnx.List(
            [
                nn.Linear(8, 16, **kw),
                nn.Linear(16, 16, **kw),
                nn.Linear(16, 16, **kw),
                nn.Linear(16, 4, **kw),
            ]
        )
        self.norms = nnx.List(
            [nn.BatchNorm1d(16, **kw), nn.BatchNorm1d(16, **kw), nn.BatchNorm1d(16, **kw)]
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        """Forward pass: (N, 8) -> (N, 4)."""
        x = jax.nn.relu(self.norms[0](self.layers[0](x)))  # (N, 16)
        x = x + jax.nn.relu(self.norms[1](self.layers[1](x)))  # (N, 16)  residual
        x = x + jax.nn.relu(self.norms[2](self.layers[2](x)))  # (N, 16)
        return self.layers[3](x)
