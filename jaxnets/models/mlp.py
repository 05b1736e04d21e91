"""Tutorial 004's challenge: a configurable MLP (more layers, more neurons, sigmoid or tanh
instead of ReLU).

torch original: ``torchref.models.MLP``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import jax
from flax import nnx

from jaxnets.models._common import check_features, validate_config
from jaxnets.nn import ACTIVATIONS, Linear, get_activation
from jaxnets.registry import register_model


@dataclass(frozen=True)
class MLPConfig:
    """``mlp(in_features, hidden_sizes, out_features, activation)``."""

    in_features: int = 784
    hidden_sizes: tuple[int, ...] = (256, 128)  # any sequence of ints; stored as a tuple
    out_features: int = 10
    activation: str = field(default="relu", metadata={"choices": tuple(ACTIVATIONS)})

    def __post_init__(self) -> None:
        validate_config(self)


@register_model(
    "mlp",
    config=MLPConfig,
    tutorial="004",
    description="challenge: layers.0..k Linear, relu|sigmoid|tanh between them",
    input_shape=lambda c: (c.in_features,),
    output_size=lambda c: c.out_features,
)
class MLP(nnx.Module):
    """Configurable MLP: ``(N, in_features) -> (N, out_features)``.

    ``layers`` holds ``len(hidden_sizes) + 1`` Linear layers (torch: an ``nn.ModuleList``
    named ``layers``, keys ``layers.0.weight`` ...); ``activation`` follows every layer but
    the last.
    """

    def __init__(
        self,
        in_features: int = 784,
        hidden_sizes: tuple[int, ...] = (256, 128),
        out_features: int = 10,
        activation: str = "relu",
        *,
        rngs: nnx.Rngs,
        dtype: Any = None,
        param_dtype: Any = None,
    ) -> None:
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        sizes = [in_features, *hidden_sizes, out_features]
        self.in_features = in_features
        self.activation_name = activation
        self.activation = get_activation(activation)
        self.layers = nnx.List([Linear(a, b, **kw) for a, b in itertools.pairwise(sizes)])

    def __call__(self, x: jax.Array) -> jax.Array:
        """Forward pass: ``(N, in_features) -> (N, out_features)``."""
        check_features(x, self.in_features, type(self).__name__)
        *hidden, last = self.layers
        for layer in hidden:
            x = self.activation(layer(x))
        return last(x)
