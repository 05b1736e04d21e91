"""Tutorial 001, "defining a neural network with nn.Module": four networks with symbolic sizes.

torch originals (``torchref.models``): ``NeuralNetwork(in_features, hidden_size1,
hidden_size2, output_size)``, ``MyNetwork(input_dim, hidden_dim, output_dim)`` (the MSE
regression loop), ``Net(input_size, hidden_size, output_size)`` and ``BatchNormMLP``, the
tutorial's batch-normalisation section made concrete: a BatchNorm1d after each hidden Linear,
before its activation, with learnable scale/shift and running statistics.

Sizes are the tutorial's argument names; the registry defaults are MNIST-sized classifiers
(784 inputs, 10 classes) except ``my_network``, a small regressor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
from flax import nnx

from jaxnets.models._common import check_batch_of_features, check_features, validate_config
from jaxnets.nn import BatchNorm1d, Linear
from jaxnets.registry import register_model


@dataclass(frozen=True)
class NeuralNetworkConfig:
    """Sizes of ``NeuralNetwork`` and ``BatchNormMLP`` (the tutorial's argument names)."""

    in_features: int = 784
    hidden_size1: int = 128
    hidden_size2: int = 64
    output_size: int = 10

    def __post_init__(self) -> None:
        validate_config(self)


@dataclass(frozen=True)
class MyNetworkConfig:
    """Sizes of ``MyNetwork`` (a regressor in the tutorial's MSE loop)."""

    input_dim: int = 10
    hidden_dim: int = 32
    output_dim: int = 1

    def __post_init__(self) -> None:
        validate_config(self)


@dataclass(frozen=True)
class NetConfig:
    """Sizes of the tutorial's two-layer ``Net``."""

    input_size: int = 784
    hidden_size: int = 128
    output_size: int = 10

    def __post_init__(self) -> None:
        validate_config(self)


@register_model(
    "neural_network",
    config=NeuralNetworkConfig,
    tutorial="001",
    description="fc1, activation1 (ReLU module), fc2, activation2, fc3",
    input_shape=lambda c: (c.in_features,),
    output_size=lambda c: c.output_size,
)
class NeuralNetwork(nnx.Module):
    """``NeuralNetwork``: ``(N, in_features) -> (N, output_size)``."""

    def __init__(
        self,
        in_features: int = 784,
        hidden_size1: int = 128,
        hidden_size2: int = 64,
        output_size: int = 10,
        *,
        rngs: nnx.Rngs,
        dtype: Any = None,
        param_dtype: Any = None,
    ) -> None:
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        self.in_features = in_features
        self.fc1 = Linear(in_features, hidden_size1, **kw)
        self.activation1 = jax.nn.relu  # nn.ReLU() module in torch
        self.fc2 = Linear(hidden_size1, hidden_size2, **kw)
        self.activation2 = jax.nn.relu
        self.fc3 = Linear(hidden_size2, output_size, **kw)

    def __call__(self, x: jax.Array) -> jax.Array:
        """Forward pass: ``(N, in_features) -> (N, output_size)``."""
        check_features(x, self.in_features, type(self).__name__)
        x = self.fc1(x)
        x = self.activation1(x)
        x = self.fc2(x)
        x = self.activation2(x)
        return self.fc3(x)


@register_model(
    "my_network",
    config=MyNetworkConfig,
    tutorial="001",
    description="layer1, torch.relu, layer2 (the MSE regression loop)",
    input_shape=lambda c: (c.input_dim,),
    output_size=lambda c: c.output_dim,
    loss="mse",
)
class MyNetwork(nnx.Module):
    """``MyNetwork``: ``(N, input_dim) -> (N, output_dim)``."""

    def __init__(
        self,
        input_dim: int = 10,
        hidden_dim: int = 32,
        output_dim: int = 1,
        *,
        rngs: nnx.Rngs,
        dtype: Any = None,
        param_dtype: Any = None,
    ) -> None:
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        self.input_dim = input_dim
        self.layer1 = Linear(input_dim, hidden_dim, **kw)
        self.layer2 = Linear(hidden_dim, output_dim, **kw)

    def __call__(self, x: jax.Array) -> jax.Array:
        """Forward pass: ``(N, input_dim) -> (N, output_dim)``."""
        check_features(x, self.input_dim, type(self).__name__)
        x = jax.nn.relu(self.layer1(x))
        return self.layer2(x)


@register_model(
    "two_layer_net",
    config=NetConfig,
    tutorial="001",
    description="Net: layer1, self.relu (ReLU module), layer2",
    input_shape=lambda c: (c.input_size,),
    output_size=lambda c: c.output_size,
)
class Net(nnx.Module):
    """The tutorial's two-layer ``Net``: ``(N, input_size) -> (N, output_size)``."""

    def __init__(
        self,
        input_size: int = 784,
        hidden_size: int = 128,
        output_size: int = 10,
        *,
        rngs: nnx.Rngs,
        dtype: Any = None,
        param_dtype: Any = None,
    ) -> None:
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        self.input_size = input_size
        self.layer1 = Linear(input_size, hidden_size, **kw)
        self.layer2 = Linear(hidden_size, output_size, **kw)
        self.relu = jax.nn.relu  # nn.ReLU() module in torch

    def __call__(self, x: jax.Array) -> jax.Array:
        """Forward pass: ``(N, input_size) -> (N, output_size)``."""
        check_features(x, self.input_size, type(self).__name__)
        out = self.layer1(x)
        out = self.relu(out)
        return self.layer2(out)


@register_model(
    "batchnorm_mlp",
    config=NeuralNetworkConfig,
    tutorial="001",
    description="fc1, bn1, relu, fc2, bn2, relu, fc3 (BatchNorm1d before each activation)",
    input_shape=lambda c: (c.in_features,),
    output_size=lambda c: c.output_size,
)
class BatchNormMLP(nnx.Module):
    """``NeuralNetwork`` with a BatchNorm1d after each hidden Linear, before the activation.

    ``(N, in_features) -> (N, output_size)``. ``model.train()`` normalises with batch
    statistics and updates the running ones (torch semantics, see
    :class:`jaxnets.nn.BatchNorm1d`); ``model.eval()`` uses the running statistics.
    """

    def __init__(
        self,
        in_features: int = 784,
        hidden_size1: int = 128,
        hidden_size2: int = 64,
        output_size: int = 10,
        *,
        rngs: nnx.Rngs,
        dtype: Any = None,
        param_dtype: Any = None,
    ) -> None:
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        self.in_features = in_features
        self.fc1 = Linear(in_features, hidden_size1, **kw)
        self.bn1 = BatchNorm1d(hidden_size1, **kw)
        self.activation1 = jax.nn.relu
        self.fc2 = Linear(hidden_size1, hidden_size2, **kw)
        self.bn2 = BatchNorm1d(hidden_size2, **kw)
        self.activation2 = jax.nn.relu
        self.fc3 = Linear(hidden_size2, output_size, **kw)

    def __call__(self, x: jax.Array) -> jax.Array:
        """Forward pass: ``(N, in_features) -> (N, output_size)``; 2-D input only."""
        check_batch_of_features(x, self.in_features, type(self).__name__)
        x = self.activation1(self.bn1(self.fc1(x)))
        x = self.activation2(self.bn2(self.fc2(x)))
        return self.fc3(x)
