"""torch's ``ChannelAttention`` (port_models.py) as a Flax NNX twin, written by ``jaxnets port``.

torch input (N, 3, 7, 7) NCHW; here NHWC (images are channels last in Flax).
Load torch's weights with ``jaxnets.convert.load_state_dict(twin, state_dict)``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from jaxnets import nn


class ChannelAttention(nnx.Module):
    """torch's ``ChannelAttention`` (port_models.py) in Flax NNX."""

    def __init__(self, *, rngs: nnx.Rngs, dtype: Any = None, param_dtype: Any = None) -> None:
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        self.conv = nn.Conv2d(3, 5, 3, **kw)
        self.score = nn.Conv2d(5, 5, 1, **kw)

    def __call__(self, x: jax.Array) -> jax.Array:
        """Forward pass: NHWC (N, 7, 7, 3) -> (N, 4)."""
        x = jnp.tanh(self.conv(x))  # (N, 5, 5, 5)
        attn = jax.nn.softmax(self.score(x), axis=3)  # (N, 5, 5, 5)  torch: over channels
        x = (x * attn).sum(axis=(1, 2), keepdims=True)  # (N, 1, 1, 5)  torch: (N, 5, 1, 1)
        x = jnp.squeeze(jnp.squeeze(x, 2), 1)  # (N, 5)
        return jax.nn.log_softmax(x[:, 1:], axis=1)
