"""torch's ``GatedMLP`` (port_models.py) as a Flax NNX twin, written by ``jaxnets port``.

torch input (N, 3, 4).
Load torch's weights with ``jaxnets.convert.load_state_dict(twin, state_dict)``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from jaxnets import convert, nn


class GatedMLP(nnx.Module):
    """torch's ``GatedMLP`` (port_models.py) in Flax NNX."""

    def __init__(self, *, rngs: nnx.Rngs, dtype: Any = None, param_dtype: Any = None) -> None:
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        # an nn.Parameter drawn in torch's __init__: load torch's state dict for its values
        self.proj = nnx.Param(
            jax.random.normal(rngs.params(), (12, 16), param_dtype or jnp.float32)
        )
        self.bias = nnx.Param(jnp.zeros((16,), param_dtype or jnp.float32))
        self.gate = nn.Linear(12, 16, **kw)
        self.out = nn.Linear(16, 3, **kw)

    def __call__(self, x: jax.Array) -> jax.Array:
        """Forward pass: (N, 3, 4) -> (N, 3)."""
        x = x.reshape(x.shape[0], -1)  # (N, 3, 4) -> (N, 12)
        h = x @ self.proj[...] + self.bias[...]  # (N, 16)
        h = h * jax.nn.sigmoid(self.gate(x))  # (N, 16)
        h = jnp.tanh(h) - h * 0.5 / 2  # (N, 16)
        return self.out(h)


# The nn.Parameter attributes above keep torch's names and layout.
convert.register_rule(GatedMLP, (convert.Rule("proj", "proj"), convert.Rule("bias", "bias")))
