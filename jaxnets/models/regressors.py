"""Tutorial 002, "introduction to neural networks": two small regressors on 10 features.

torch originals (``torchref.models``): ``SimpleNN`` (fc1 10->50, relu, fc2 50->1) and
``AdvancedNN`` (fc1 10->50 relu, fc2 50->50 sigmoid, fc3 50->1). Input ``(N, 10)``, output
``(N, 1)``; the default loss is MSE.
"""

from __future__ import annotations

from typing import Any

import jax
from flax import nnx

from jaxnets.models._common import FixedConfig, check_features, constant
from jaxnets.nn import Linear
from jaxnets.registry import register_model


@register_model(
    "simple_nn",
    config=FixedConfig,
    tutorial="002",
    description="fc1 10->50, fc2 50->1; relu",
    input_shape=constant((10,)),
    output_size=constant(1),
    loss="mse",
)
class SimpleNN(nnx.Module):
    """Tutorial 002's ``SimpleNN``: ``(N, 10) -> (N, 1)``."""

    def __init__(self, *, rngs: nnx.Rngs, dtype: Any = None, param_dtype: Any = None) -> None:
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        self.fc1 = Linear(10, 50, **kw)  # First fully connected layer
        self.fc2 = Linear(50, 1, **kw)  # Second fully connected layer

    def __call__(self, x: jax.Array) -> jax.Array:
        """Forward pass: ``(N, 10) -> (N, 1)``."""
        check_features(x, 10, type(self).__name__)
        x = jax.nn.relu(self.fc1(x))
        return self.fc2(x)


@register_model(
    "advanced_nn",
    config=FixedConfig,
    tutorial="002",
    description="fc1 10->50, fc2 50->50, fc3 50->1; relu after fc1, sigmoid after fc2",
    input_shape=constant((10,)),
    output_size=constant(1),
    loss="mse",
)
class AdvancedNN(nnx.Module):
    """Tutorial 002's ``AdvancedNN``: ``(N, 10) -> (N, 1)``."""

    def __init__(self, *, rngs: nnx.Rngs, dtype: Any = None, param_dtype: Any = None) -> None:
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        self.fc1 = Linear(10, 50, **kw)
        self.fc2 = Linear(50, 50, **kw)
        self.fc3 = Linear(50, 1, **kw)

    def __call__(self, x: jax.Array) -> jax.Array:
        """Forward pass: ``(N, 10) -> (N, 1)``."""
        check_features(x, 10, type(self).__name__)
        x = jax.nn.relu(self.fc1(x))  # ReLU activation after first layer
        x = jax.nn.sigmoid(self.fc2(x))  # Sigmoid activation after second layer
        return self.fc3(x)
