"""torch's ``TensorOps`` (port_models.py) as a Flax NNX twin, written by ``jaxnets port``.

torch input (N, 2, 8).
Load torch's weights with ``jaxnets.convert.load_state_dict(twin, state_dict)``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from jaxnets import convert, nn


class TensorOps(nnx.Module):
    """torch's ``TensorOps`` (port_models.py) in Flax NNX."""

    def __init__(self, *, rngs: nnx.Rngs, dtype: Any = None, param_dtype: Any = None) -> None:
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        # an nn.Parameter drawn in torch's __init__: load torch's state dict for its values
        self.weight = nnx.Param(
            jax.random.normal(rngs.params(), (6, 8), param_dtype or jnp.float32)
        )
        self.bias = nnx.Param(jnp.zeros((6,), param_dtype or jnp.float32))
        self.mix = nn.Linear(6, 6, **kw)

    def __call__(self, x: jax.Array) -> jax.Array:
        """Forward pass: (N, 2, 8) -> (N, 6)."""
        h = x @ self.weight[...].T + self.bias[...]  # (N, 2, 6)
        h = jax.nn.relu6(h) - jnp.square(h) * 0.5 + 1 / (jnp.abs(h) + 1)  # (N, 2, 6)
        h = 1 - jax.nn.sigmoid(-h)  # (N, 2, 6)
        g = h @ h.transpose(0, 2, 1)  # (N, 2, 2)
        h = g @ h / 3  # (N, 2, 6)
        first = h[:, 0]  # (N, 6)
        h = h.reshape(2 * h.shape[0], 6)  # (2 * N, 6)
        h = self.mix(h).reshape(x.shape[0], 2, 6).sum(axis=1)  # (N, 6)
        return h + jax.lax.stop_gradient(jnp.squeeze(jnp.expand_dims(first, 1), 1)) * 0 + first


# The nn.Parameter attributes above keep torch's names and layout.
convert.register_rule(TensorOps, (convert.Rule("weight", "weight"), convert.Rule("bias", "bias")))
