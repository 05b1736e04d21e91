"""Tutorial 004, "PyTorch basics": the XOR network and the challenge's configurable MLP.

torch originals (``torchref.models``): ``XORNet`` (the tutorial's ``SimpleNN``: layer1 2->5,
relu, layer2 5->1, trained with MSELoss and SGD(lr=0.01) for 1000 epochs) and ``MLP`` (the
challenge: more layers, more neurons, sigmoid or tanh instead of ReLU).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import jax
from flax import nnx

from jaxnets.models._config import validate_config
from jaxnets.models.first_network import FixedConfig, _check_features
from jaxnets.nn import ACTIVATIONS, Linear, get_activation
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
        _check_features(x, 2, type(self).__name__)
        x = jax.nn.relu(self.layer1(x))
        return self.layer2(x)


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
        _check_features(x, self.in_features, type(self).__name__)
        *hidden, last = self.layers
        for layer in hidden:
            x = self.activation(layer(x))
        return last(x)
