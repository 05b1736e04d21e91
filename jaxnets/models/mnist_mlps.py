"""Tutorial 000, "creating a simple neural network": the 784-128-64-10 MLP and its exercise.

torch originals: ``SimpleNeuralNetwork`` and ``CustomNeuralNetwork`` (``torchref.models``).
Input ``(N, 784)``, output logits ``(N, 10)``; trained with CrossEntropyLoss and SGD(lr=0.01).
"""

from __future__ import annotations

from typing import Any

import jax
from flax import nnx

from jaxnets.models._common import FixedConfig, check_features, constant
from jaxnets.nn import Linear
from jaxnets.registry import register_model


@register_model(
    "simple_neural_network",
    config=FixedConfig,
    tutorial="000",
    description="fc1 784->128, fc2 128->64, fc3 64->10; F.relu after fc1, fc2",
    input_shape=constant((784,)),
    output_size=constant(10),
)
class SimpleNeuralNetwork(nnx.Module):
    """Tutorial 000's ``SimpleNeuralNetwork``: ``(N, 784) -> (N, 10)`` logits."""

    def __init__(self, *, rngs: nnx.Rngs, dtype: Any = None, param_dtype: Any = None) -> None:
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        self.fc1 = Linear(784, 128, **kw)  # Input layer to hidden layer
        self.fc2 = Linear(128, 64, **kw)  # Hidden layer to another hidden layer
        self.fc3 = Linear(64, 10, **kw)  # Hidden layer to output layer

    def __call__(self, x: jax.Array) -> jax.Array:
        """Forward pass, as torch's ``forward``: ``(N, 784) -> (N, 10)``."""
        check_features(x, 784, type(self).__name__)
        x = jax.nn.relu(self.fc1(x))
        x = jax.nn.relu(self.fc2(x))
        return self.fc3(x)


@register_model(
    "custom_neural_network",
    config=FixedConfig,
    tutorial="000",
    description="exercise: fc1 784->256, fc2 256->128, fc3 128->10; relu",
    input_shape=constant((784,)),
    output_size=constant(10),
)
class CustomNeuralNetwork(nnx.Module):
    """Tutorial 000's exercise ``CustomNeuralNetwork``: ``(N, 784) -> (N, 10)`` logits."""

    def __init__(self, *, rngs: nnx.Rngs, dtype: Any = None, param_dtype: Any = None) -> None:
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        self.fc1 = Linear(784, 256, **kw)
        self.fc2 = Linear(256, 128, **kw)
        self.fc3 = Linear(128, 10, **kw)

    def __call__(self, x: jax.Array) -> jax.Array:
        """Forward pass: ``(N, 784) -> (N, 10)``."""
        check_features(x, 784, type(self).__name__)
        x = jax.nn.relu(self.fc1(x))
        x = jax.nn.relu(self.fc2(x))
        return self.fc3(x)
