"""torch's ``TinyResNet`` (port_models.py) as a Flax NNX twin, written by ``jaxnets port``.

torch input (N, 1, 8, 8) NCHW; here NHWC (images are channels last in Flax).
Load torch's weights with ``jaxnets.convert.load_state_dict(twin, state_dict)``.
"""

from __future__ import annotations

from typing import Any

import jax
from flax import nnx

from jaxnets import nn


class BasicBlock(nnx.Module):
    """torch's ``BasicBlock`` (port_models.py) in Flax NNX."""

    def __init__(self, *, rngs: nnx.Rngs, dtype: Any = None, param_dtype: Any = None) -> None:
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        self.conv1 = nn.Conv2d(8, 8, 3, padding=1, bias=False, **kw)
        self.bn1 = nn.BatchNorm2d(8, **kw)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1, bias=False, **kw)
        self.bn2 = nn.BatchNorm2d(8, **kw)

    def __call__(self, x: jax.Array) -> jax.Array:
        """Forward pass: NHWC (N, 4, 4, 8) -> NHWC (N, 4, 4, 8)."""
        out = jax.nn.relu(self.bn1(self.conv1(x)))  # (N, 4, 4, 8)
        out = self.bn2(self.conv2(out))  # (N, 4, 4, 8)
        out = out + x  # (N, 4, 4, 8)
        return jax.nn.relu(out)


class TinyResNet(nnx.Module):
    """torch's ``TinyResNet`` (port_models.py) in Flax NNX."""

    def __init__(self, *, rngs: nnx.Rngs, dtype: Any = None, param_dtype: Any = None) -> None:
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        self.stem = nn.Conv2d(1, 8, 3, stride=2, padding=1, **kw)
        self.layer1 = nnx.List([BasicBlock(**kw), BasicBlock(**kw)])
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(8, 5, **kw)

    def __call__(self, x: jax.Array) -> jax.Array:
        """Forward pass: NHWC (N, 8, 8, 1) -> (N, 5)."""
        x = jax.nn.relu(self.stem(x))  # (N, 4, 4, 8)
        for layer in self.layer1:  # (N, 4, 4, 8)
            x = layer(x)
        # NHWC -> NCHW before flattening, so the features come in torch's (C, H, W) order
        x = self.flatten(self.pool(x).transpose(0, 3, 1, 2))  # (N, 8)
        return self.fc(x)
