"""torch's ``SmallConvNet`` (port_models.py) as a Flax NNX twin, written by ``jaxnets port``.

torch input (N, 3, 8, 8) NCHW; here NHWC (images are channels last in Flax).
Load torch's weights with ``jaxnets.convert.load_state_dict(twin, state_dict)``.
"""

from __future__ import annotations

from typing import Any

import jax
from flax import nnx

from jaxnets import nn


class SmallConvNet(nnx.Module):
    """torch's ``SmallConvNet`` (port_models.py) in Flax NNX."""

    def __init__(self, *, rngs: nnx.Rngs, dtype: Any = None, param_dtype: Any = None) -> None:
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        self.features = nnx.List(
            [
                nn.Conv2d(3, 8, 3, padding=1, **kw),
                nn.BatchNorm2d(8, **kw),
                jax.nn.relu,
                nn.MaxPool2d(2),
                nn.Conv2d(8, 16, 3, padding=1, bias=False, **kw),
                nn.BatchNorm2d(16, **kw),
                jax.nn.relu,
                nn.MaxPool2d(2),
            ]
        )
        self.classifier = nnx.List(
            [
                nn.Dropout(0.5, rngs=rngs),
                nn.Linear(64, 32, **kw),
                jax.nn.relu,
                nn.Linear(32, 10, **kw),
            ]
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        """Forward pass: NHWC (N, 8, 8, 3) -> (N, 10)."""
        for layer in self.features:  # (N, 2, 2, 16)
            x = layer(x)
        # NHWC -> NCHW before flattening, so the features come in torch's (C, H, W) order
        x = x.transpose(0, 3, 1, 2).reshape(x.shape[0], -1)  # (N, 64)  (C, H, W) order
        for layer in self.classifier:  # (N, 10)
            x = layer(x)
        return x
