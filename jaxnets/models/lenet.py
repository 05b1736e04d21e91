"""Tutorial 003, "introduction of neural networks": the LeNet-style CNN of the PyTorch blitz.

torch original (``torchref.models.LeNet``): conv1 Conv2d(1, 6, 3), conv2 Conv2d(6, 16, 3),
fc1 576->120, fc2 120->84, fc3 84->10; relu and a 2x2 max pool after each convolution.
Input: torch ``(N, 1, 32, 32)``; the Flax twin takes NHWC ``(N, 32, 32, 1)``.
"""

from __future__ import annotations

from typing import Any

import jax
from flax import nnx

from jaxnets.fast import conv2d_max_pool2d
from jaxnets.models._common import FixedConfig, check_nhwc
from jaxnets.nn import Conv2d, Linear
from jaxnets.registry import register_model


@register_model(
    "lenet",
    config=FixedConfig,
    tutorial="003",
    description="conv1 1->6 3x3, conv2 6->16 3x3, fc 576->120->84->10; relu + 2x2 max pool",
    input_shape=lambda _: (1, 32, 32),
    output_size=lambda _: 10,
    layout="image",
)
class LeNet(nnx.Module):
    """The tutorial's ``Net`` (LeNet-style): NHWC ``(N, 32, 32, 1) -> (N, 10)``."""

    def __init__(self, *, rngs: nnx.Rngs, dtype: Any = None, param_dtype: Any = None) -> None:
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        # Kernel
        self.conv1 = Conv2d(1, 6, 3, **kw)
        self.conv2 = Conv2d(6, 16, 3, **kw)
        # Affine operation
        self.fc1 = Linear(16 * 6 * 6, 120, **kw)
        self.fc2 = Linear(120, 84, **kw)
        self.fc3 = Linear(84, 10, **kw)

    def __call__(self, x: jax.Array) -> jax.Array:
        """Forward pass: NHWC ``(N, 32, 32, 1) -> (N, 10)`` logits."""
        check_nhwc(x, (32, 32), 1, type(self).__name__)
        # torch: max_pool2d(relu(conv(x)), 2). relu and max commute, and the convolution
        # and its pooling are one product on CPU (conv2d_max_pool2d, faster to train);
        # elsewhere this is max_pool2d(conv(x), 2).
        x = jax.nn.relu(conv2d_max_pool2d(self.conv1, x, 2))  # (N, 15, 15, 6)
        x = jax.nn.relu(conv2d_max_pool2d(self.conv2, x, 2))  # (N, 6, 6, 16)
        # NHWC -> NCHW before flattening, so the features come in torch's (C, H, W) order
        # and fc1's weight is torch's weight, transposed like any other Linear.
        x = x.transpose(0, 3, 1, 2).reshape(x.shape[0], -1)  # (N, 576)
        x = jax.nn.relu(self.fc1(x))
        x = jax.nn.relu(self.fc2(x))
        return self.fc3(x)
