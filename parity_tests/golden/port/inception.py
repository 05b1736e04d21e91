"""torch's ``Inception`` (port_models.py) as a Flax NNX twin, written by ``jaxnets port``.

torch input (N, 3, 6, 6) NCHW; here NHWC (images are channels last in Flax).
Load torch's weights with ``jaxnets.convert.load_state_dict(twin, state_dict)``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from jaxnets import nn
from jaxnets.nn import functional as F


class Inception(nnx.Module):
    """torch's ``Inception`` (port_models.py) in Flax NNX."""

    def __init__(self, *, rngs: nnx.Rngs, dtype: Any = None, param_dtype: Any = None) -> None:
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        self.branch1 = nn.Conv2d(3, 4, 1, **kw)
        self.branch3 = nnx.List(
            [nn.Conv2d(3, 4, 1, **kw), jax.nn.relu, nn.Conv2d(4, 6, 3, padding=1, **kw)]
        )
        self.branch_pool = nn.Conv2d(3, 2, 1, **kw)
        self.head = nn.Linear(12, 3, **kw)

    def __call__(self, x: jax.Array) -> jax.Array:
        """Forward pass: NHWC (N, 6, 6, 3) -> (N, 3)."""
        b1 = jax.nn.relu(self.branch1(x))  # (N, 6, 6, 4)
        b3 = x
        for layer in self.branch3:  # (N, 6, 6, 6)
            b3 = layer(b3)
        b3 = jax.nn.relu(b3)  # (N, 6, 6, 6)
        bp = jax.nn.relu(self.branch_pool(F.avg_pool2d(x, 3, stride=1, padding=1)))  # (N, 6, 6, 2)
        x = jnp.concatenate([b1, b3, bp], axis=3)  # (N, 6, 6, 12)  torch: channels
        x = x.mean(axis=(1, 2))  # (N, 12)  over space
        return self.head(x)
