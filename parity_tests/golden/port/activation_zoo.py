"""torch's ``ActivationZoo`` (port_models.py) as a Flax NNX twin, written by ``jaxnets port``.

torch input (N, 10).
Load torch's weights with ``jaxnets.convert.load_state_dict(twin, state_dict)``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from jaxnets import nn


class ActivationZoo(nnx.Module):
    """torch's ``ActivationZoo`` (port_models.py) in Flax NNX."""

    def __init__(self, *, rngs: nnx.Rngs, dtype: Any = None, param_dtype: Any = None) -> None:
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        self.layers = nnx.List(
            [
                nn.Linear(10, 10, **kw),
                nn.Linear(10, 10, **kw),
                nn.Linear(10, 10, **kw),
                nn.Linear(10, 10, **kw),
                nn.Linear(10, 10, **kw),
                nn.Linear(10, 10, **kw),
            ]
        )
        self.acts = nnx.List(
            [
                nn.LeakyReLU(negative_slope=0.2),
                nn.ELU(),
                jax.nn.silu,
                jnp.tanh,
                jax.nn.sigmoid,
                nn.Identity(),
            ]
        )
        self.softmax = nn.Softmax(dim=-1)

    def __call__(self, x: jax.Array) -> jax.Array:
        """Forward pass: (N, 10) -> (N, 10)."""
        x = self.acts[0](self.layers[0](x))  # (N, 10)
        x = self.acts[1](self.layers[1](x))  # (N, 10)
        x = self.acts[2](self.layers[2](x))  # (N, 10)
        x = self.acts[3](self.layers[3](x))  # (N, 10)
        x = self.acts[4](self.layers[4](x))  # (N, 10)
        x = self.layers[5](x)  # (N, 10)
        x = (
            jax.nn.leaky_relu(x)
            + jax.nn.silu(x)
            + jax.nn.gelu(x, approximate=False)
            + jax.nn.relu(x)
            + jax.nn.elu(x, alpha=2.0)
        )  # (N, 10)
        return self.softmax(x)
