"""Tutorial 000, "creating a simple neural network": the 784-128-64-10 MLP and its exercise.

torch originals: ``SimpleNeuralNetwork`` and ``CustomNeuralNetwork`` (``torchref.models``).
Input ``(N, 784)``, output logits ``(N, 10)``; trained with CrossEntropyLoss and SGD(lr=0.01).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from jaxnets.nn import Linear
from jaxnets.registry import register_model


@dataclass(frozen=True)
class FixedConfig:
    """Models whose tutorial fixes every size take no config arguments."""


def _flat_784(_: Any) -> tuple[int, ...]:
    return (784,)


def _ten(_: Any) -> int:
    return 10


def _check_float_input(x: jax.Array, model: str) -> None:
    """Refuse input that is not an array (torch wants a Tensor too) and integer/bool input
    (torch refuses it; jnp would silently promote it)."""
    if not hasattr(x, "dtype") or not hasattr(x, "shape"):
        raise TypeError(
            f"{model} expects an array, got {type(x).__name__}; convert it first with "
            f"jnp.asarray(x, dtype=jnp.float32)"
        )
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(
            f"{model} expects floating-point input, got dtype {x.dtype}; convert it first: "
            f"raw MNIST pixels with jaxnets.data.normalize_mnist(images), other data with "
            f"x.astype(jnp.float32)"
        )


def _check_features(x: jax.Array, in_features: int, model: str) -> None:
    """Refuse input whose last dimension is not ``in_features``.

    Leading dimensions are free, as with torch's ``nn.Linear`` (``(*, in_features)``): the
    plain-Linear twins map ``(..., in_features) -> (..., out)`` exactly as torch does, and the
    message says so. Models that need exactly ``(N, in_features)`` check that themselves.
    """
    _check_float_input(x, model)
    if x.ndim < 1 or x.shape[-1] != in_features:
        raise ValueError(
            f"{model} expects input of shape (N, {in_features}), got {tuple(x.shape)}: the "
            f"last dimension must be {in_features} (leading dimensions are free, (..., "
            f"{in_features}), as with torch's nn.Linear); flatten images first, e.g. "
            f"x.reshape(len(x), -1)"
        )


@register_model(
    "simple_neural_network",
    config=FixedConfig,
    tutorial="000",
    description="fc1 784->128, fc2 128->64, fc3 64->10; F.relu after fc1, fc2",
    input_shape=_flat_784,
    output_size=_ten,
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
        _check_features(x, 784, type(self).__name__)
        x = jax.nn.relu(self.fc1(x))
        x = jax.nn.relu(self.fc2(x))
        return self.fc3(x)


@register_model(
    "custom_neural_network",
    config=FixedConfig,
    tutorial="000",
    description="exercise: fc1 784->256, fc2 256->128, fc3 128->10; relu",
    input_shape=_flat_784,
    output_size=_ten,
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
        _check_features(x, 784, type(self).__name__)
        x = jax.nn.relu(self.fc1(x))
        x = jax.nn.relu(self.fc2(x))
        return self.fc3(x)
