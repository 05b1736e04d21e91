"""torch's ``ChannelMixer`` (port_models.py) as a Flax NNX twin, written by ``jaxnets port``.

torch input (N, 6, 5, 5) NCHW; here NHWC (images are channels last in Flax).
Load torch's weights with ``jaxnets.convert.load_state_dict(twin, state_dict)``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from jaxnets import convert, nn


class ChannelMixer(nnx.Module):
    """torch's ``ChannelMixer`` (port_models.py) in Flax NNX."""

    def __init__(self, *, rngs: nnx.Rngs, dtype: Any = None, param_dtype: Any = None) -> None:
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        self.gamma = nnx.Param(jnp.full((6,), 0.01, param_dtype or jnp.float32))
        self.dwconv = nn.Conv2d(6, 6, 3, padding="same", groups=6, **kw)
        self.norm = nn.LayerNorm(6, eps=1e-06, **kw)
        self.pwconv = nn.Linear(6, 12, **kw)
        self.act = nn.GELU(approximate="tanh")
        self.pwconv2 = nn.Linear(12, 6, **kw)

    def __call__(self, x: jax.Array) -> jax.Array:
        """Forward pass: NHWC (N, 5, 5, 6) -> NHWC (N, 5, 5, 6)."""
        x_1 = self.dwconv(x)  # (N, 5, 5, 6)
        # torch: x = x.permute(0, 2, 3, 1); this array is already in that order, nothing moves
        x_1 = self.pwconv2(self.act(self.pwconv(self.norm(x_1))))  # (N, 5, 5, 6)
        x_1 = self.gamma[...] * x_1  # (N, 5, 5, 6)
        # torch: x = x.permute(0, 3, 1, 2); images stay channels last here, nothing moves
        return x + x_1


# The nn.Parameter attributes above keep torch's names and layout.
convert.register_rule(ChannelMixer, (convert.Rule("gamma", "gamma"),))
