"""Tutorial 004, "PyTorch basics": the XOR network and the challenge's configurable MLP.

torch originals (``torchref.models``): ``XORNet`` (the tutorial's ``SimpleNN``: layer1 2->5,
relu, layer2 5->1, trained with MSELoss and SGD(lr=0.01) for 1000 epochs) and ``MLP`` (the
challenge: more layers, more neurons, sigmoid or tanh instead of ReLU).
"""

from __future__ import annotations

from typing import Any

import jax
from flax import nnx

from jaxnets.models._common import FixedConfig, check_features
from jaxnets.nn import Linear
from jaxnets.registry import register_model


@register_model(
    "xor_net",
    config=FixedConfig,
    tutorial="004",
    description="layer1 2->5, layer2 5->1; relu (the XOR problem, MSELoss)",
    input_shape=lambda _: (2,),
    output_size=lambda _: 1,
    loss="mse",
)
class XORNet(nnx.Module):
    """Tutorial 004's ``SimpleNN`` for XOR: ``(N, 2) -> (N, 1)``."""

    def __init__(self, *, rngs: nnx.Rngs, dtype: Any = None, param_dtype: Any = None) -> None:
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        self.layer1 = Linear(2, 5, **kw)
        self.layer2 = Linear(5, 1, **kw)

    def __call__(self, x: jax.Array) -> jax.Array:
        """Forward pass: ``(N, 2) -> (N, 1)``."""
        check_features(x, 2, type(self).__name__)
        x = jax.nn.relu(self.layer1(x))
        return self.layer2(x)
