"""torch's ``LeNet`` (models.py) as a Flax NNX twin, written by ``jaxnets port``.

torch input (N, 1, 32, 32) NCHW; here NHWC (images are channels last in Flax).
Load torch's weights with ``jaxnets.convert.load_state_dict(twin, state_dict)``.
"""

from __future__ import annotations

from typing import Any

import jax
from flax import nnx

from jaxnets import fast, nn


class LeNet(nnx.Module):
    """torch's ``LeNet`` (models.py) in Flax NNX."""

    def __init__(self, *, rngs: nnx.Rngs, dtype: Any = None, param_dtype: Any = None) -> None:
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        # Kernel
        self.conv1 = nn.Conv2d(1, 6, 3, **kw)
        self.conv2 = nn.Conv2d(6, 16, 3, **kw)
        # Affine operation
        self.fc1 = nn.Linear(576, 120, **kw)
        self.fc2 = nn.Linear(120, 84, **kw)
        self.fc3 = nn.Linear(84, 10, **kw)

    def __call__(self, x: jax.Array) -> jax.Array:
        """Forward pass: NHWC (N, 32, 32, 1) -> (N, 10)."""
        # Max pooling
        x = jax.nn.relu(fast.conv2d_max_pool2d(self.conv1, x, 2))  # (N, 15, 15, 6)
        x = jax.nn.relu(fast.conv2d_max_pool2d(self.conv2, x, 2))  # (N, 6, 6, 16)
        # NHWC -> NCHW before flattening, so the features come in torch's (C, H, W) order
        x = x.transpose(0, 3, 1, 2).reshape(-1, 576)  # (N, 576)
        x = jax.nn.relu(self.fc1(x))  # (N, 120)
        x = jax.nn.relu(self.fc2(x))  # (N, 84)
        x = self.fc3(x)  # (N, 10)
        return x
