"""torch's ``PoolZoo`` (port_models.py) as a Flax NNX twin, written by ``jaxnets port``.

torch input (N, 2, 12, 12) NCHW; here NHWC (images are channels last in Flax).
Load torch's weights with ``jaxnets.convert.load_state_dict(twin, state_dict)``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from jaxnets import nn
from jaxnets.nn import functional as F


class PoolZoo(nnx.Module):
    """torch's ``PoolZoo`` (port_models.py) in Flax NNX."""

    def __init__(self, *, rngs: nnx.Rngs, dtype: Any = None, param_dtype: Any = None) -> None:
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        self.conv = nn.Conv2d(2, 4, 3, padding=1, **kw)
        self.drop2d = nn.Dropout2d(0.25, rngs=rngs)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.avgpool = nn.AvgPool2d(2)
        self.adaptive = nn.AdaptiveMaxPool2d(2)
        self.fc = nn.Linear(20, 2, **kw)
        self.dropout = nn.Dropout(0.1, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        """Forward pass: NHWC (N, 12, 12, 2) -> (N, 2)."""
        x = self.drop2d(jax.nn.relu(self.conv(x)))  # (N, 12, 12, 4)  torch: (N, 4, 12, 12)
        a = self.avgpool(self.maxpool(x))  # (N, 3, 3, 4)  torch: (N, 4, 3, 3)
        b = F.max_pool2d(x, 2)  # (N, 6, 6, 4)  torch: (N, 4, 6, 6)
        b = self.adaptive(b)  # (N, 2, 2, 4)  torch: (N, 4, 2, 2)
        # NHWC -> NCHW before flattening, so the features come in torch's (C, H, W) order
        a = F.adaptive_avg_pool2d(a, 1).transpose(0, 3, 1, 2).reshape(-1, 4)  # (N, 4)
        # NHWC -> NCHW before flattening, so the features come in torch's (C, H, W) order
        x = b.transpose(0, 3, 1, 2).reshape(b.shape[0], -1)  # (N, 16)
        x = jnp.concatenate([x, a], axis=1)  # (N, 20)
        # F.dropout in torch; self.dropout follows model.train() / model.eval()
        x = self.dropout(x)  # (N, 20)
        return self.fc(x)
