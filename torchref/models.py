"""The tutorial models as the tutorials write them (``shared/seeds``), registered by name.

Architecture, attribute names, layer order and defaults are the tutorials' own. Sizes that a
tutorial leaves symbolic come from the config dataclass the Flax twin registers, so both
sides are built from the same numbers.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import itertools
from collections.abc import Callable
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from jaxnets.registry import UnknownModelError, get_model_spec
from jaxnets.registry import list_models as _flax_models

__all__ = [
    "MLP",
    "AdvancedNN",
    "BatchNormMLP",
    "CustomNeuralNetwork",
    "LeNet",
    "MyNetwork",
    "Net",
    "NeuralNetwork",
    "SimpleNN",
    "SimpleNeuralNetwork",
    "XORNet",
    "config_of",
    "create_model",
    "list_models",
    "register_model",
]

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


_CONFIG_ATTR = "_registry_config"


def register_model(name: str) -> Callable[[type], type]:
    """Class decorator registering a torch reference under the twin's registry ``name``.

    Each instance remembers the arguments it was built with (:func:`config_of`), so the twin
    of a model built with other sizes can be built from the registry too."""

    def decorate(cls: type) -> type:
        if name in _REGISTRY:
            raise ValueError(f"torch model {name!r} is already registered")
        init = cls.__init__
        signature = inspect.signature(init)

        @functools.wraps(init)
        def __init__(self: nn.Module, *args: Any, **kwargs: Any) -> None:  # noqa: N807
            init(self, *args, **kwargs)
            bound = signature.bind(self, *args, **kwargs)
            bound.apply_defaults()
            config = dict(list(bound.arguments.items())[1:])  # less self
            self.__dict__[_CONFIG_ATTR] = (name, config)

        cls.__init__ = __init__
        _REGISTRY[name] = cls
        return cls

    return decorate


def config_of(model: nn.Module) -> tuple[str, dict[str, Any]] | None:
    """``(registry name, config arguments)`` of a registered torch model, as it was built
    (``BatchNormMLP(20, 8)`` gives ``('batchnorm_mlp', {'in_features': 20, 'hidden_size1':
    8, ...})``), for ``jaxnets.create_model(name, **config)``; None for a model whose class
    is not registered (a subclass of a registered class is not: it may change the layers)."""
    entry = model.__dict__.get(_CONFIG_ATTR)
    if entry is None or _REGISTRY.get(entry[0]) is not type(model):
        return None
    return entry[0], dict(entry[1])


def list_models() -> list[str]:
    """Sorted names of every registered torch reference (equal to ``jaxnets.list_models()``)."""
    return sorted(_REGISTRY)


def create_model(name: str, *, dtype: torch.dtype | None = None, **config: Any) -> nn.Module:
    """Build the torch reference registered as ``name`` with the twin's config arguments.

    ``dtype=torch.float64`` gives a double-precision model (``.to(dtype)``).
    """
    if name not in _REGISTRY:
        known = ", ".join(list_models())
        raise UnknownModelError(f"unknown model {name!r}; known models: {known}")
    cfg = get_model_spec(name).make_config(**config)
    model = _REGISTRY[name](**dataclasses.asdict(cfg))
    return model.to(dtype) if dtype is not None else model


# --- tutorial 000 -------------------------------------------------------------------------


@register_model("simple_neural_network")
class SimpleNeuralNetwork(nn.Module):
    def __init__(self):
        super().__init__()
        # Define layers
        self.fc1 = nn.Linear(784, 128)  # Input layer to hidden layer
        self.fc2 = nn.Linear(128, 64)  # Hidden layer to another hidden layer
        self.fc3 = nn.Linear(64, 10)  # Hidden layer to output layer

    def forward(self, x):
        # Define forward pass
        x = F.relu(self.fc1(x))  # Apply ReLU activation function
        x = F.relu(self.fc2(x))  # Apply ReLU activation function
        x = self.fc3(x)  # Output layer
        return x


@register_model("custom_neural_network")
class CustomNeuralNetwork(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 256)
        self.fc2 = nn.Linear(256, 128)
        self.fc3 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        x = self.fc3(x)
        return x


# --- tutorial 001 -------------------------------------------------------------------------


@register_model("neural_network")
class NeuralNetwork(nn.Module):
    def __init__(self, in_features=784, hidden_size1=128, hidden_size2=64, output_size=10):
        super().__init__()
        # Define your layers here
        self.fc1 = nn.Linear(in_features, hidden_size1)
        self.activation1 = nn.ReLU()
        self.fc2 = nn.Linear(hidden_size1, hidden_size2)
        self.activation2 = nn.ReLU()
        self.fc3 = nn.Linear(hidden_size2, output_size)

    def forward(self, x):
        # Define the forward pass of your network
        x = self.fc1(x)
        x = self.activation1(x)
        x = self.fc2(x)
        x = self.activation2(x)
        x = self.fc3(x)
        return x


@register_model("my_network")
class MyNetwork(nn.Module):
    def __init__(self, input_dim=10, hidden_dim=32, output_dim=1):
        super().__init__()
        # Define your network layers here
        self.layer1 = nn.Linear(input_dim, hidden_dim)
        self.layer2 = nn.Linear(hidden_dim, output_dim)

    def forward(self, x):
        # Define the forward pass of your network
        x = torch.relu(self.layer1(x))
        x = self.layer2(x)
        return x


@register_model("two_layer_net")
class Net(nn.Module):
    def __init__(self, input_size=784, hidden_size=128, output_size=10):
        super().__init__()
        # Define the layers of the neural network
        self.layer1 = nn.Linear(input_size, hidden_size)
        self.layer2 = nn.Linear(hidden_size, output_size)
        self.relu = nn.ReLU()

    def forward(self, x):
        # Define the forward pass of the network
        out = self.layer1(x)
        out = self.relu(out)
        out = self.layer2(out)
        return out


@register_model("batchnorm_mlp")
class BatchNormMLP(nn.Module):
    """The batch-normalisation section of tutorial 001 made concrete: ``NeuralNetwork`` with a
    BatchNorm1d after each hidden Linear, before the activation."""

    def __init__(self, in_features=784, hidden_size1=128, hidden_size2=64, output_size=10):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_size1)
        self.bn1 = nn.BatchNorm1d(hidden_size1)
        self.activation1 = nn.ReLU()
        self.fc2 = nn.Linear(hidden_size1, hidden_size2)
        self.bn2 = nn.BatchNorm1d(hidden_size2)
        self.activation2 = nn.ReLU()
        self.fc3 = nn.Linear(hidden_size2, output_size)

    def forward(self, x):
        x = self.activation1(self.bn1(self.fc1(x)))
        x = self.activation2(self.bn2(self.fc2(x)))
        x = self.fc3(x)
        return x


# --- tutorial 002 -------------------------------------------------------------------------


@register_model("simple_nn")
class SimpleNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(10, 50)  # First fully connected layer
        self.fc2 = nn.Linear(50, 1)  # Second fully connected layer

    def forward(self, x):
        x = torch.relu(self.fc1(x))  # Apply ReLU activation function
        x = self.fc2(x)  # Output layer
        return x


@register_model("advanced_nn")
class AdvancedNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(10, 50)
        self.fc2 = nn.Linear(50, 50)
        self.fc3 = nn.Linear(50, 1)

    def forward(self, x):
        x = torch.relu(self.fc1(x))  # ReLU activation after first layer
        x = torch.sigmoid(self.fc2(x))  # Sigmoid activation after second layer
        x = self.fc3(x)  # Output layer
        return x


# --- tutorial 003 -------------------------------------------------------------------------


@register_model("lenet")
class LeNet(nn.Module):
    """The tutorial's ``Net`` (LeNet-style CNN of the PyTorch blitz); input ``(N, 1, 32, 32)``."""

    def __init__(self):
        super().__init__()
        # Kernel
        self.conv1 = nn.Conv2d(1, 6, 3)
        self.conv2 = nn.Conv2d(6, 16, 3)
        # Affine operation
        self.fc1 = nn.Linear(16 * 6 * 6, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        # Max pooling
        x = F.max_pool2d(F.relu(self.conv1(x)), (2, 2))
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = x.view(-1, self.num_flat_features(x))
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        x = self.fc3(x)
        return x

    def num_flat_features(self, x):
        size = x.size()[1:]
        num_features = 1
        for s in size:
            num_features *= s
        return num_features


# --- tutorial 004 -------------------------------------------------------------------------


@register_model("xor_net")
class XORNet(nn.Module):
    """Tutorial 004's ``SimpleNN`` for the XOR problem."""

    def __init__(self):
        super().__init__()
        self.layer1 = nn.Linear(2, 5)
        self.layer2 = nn.Linear(5, 1)

    def forward(self, x):
        x = torch.relu(self.layer1(x))
        x = self.layer2(x)
        return x


_ACTIVATIONS = {"relu": torch.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh}


@register_model("mlp")
class MLP(nn.Module):
    """The challenge of tutorial 004: more layers, more neurons, sigmoid or tanh."""

    def __init__(
        self, in_features=784, hidden_sizes=(256, 128), out_features=10, activation="relu"
    ):
        super().__init__()
        sizes = [in_features, *hidden_sizes, out_features]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(sizes))
        self.activation = _ACTIVATIONS[activation]

    def forward(self, x):
        for layer in self.layers[:-1]:
            x = self.activation(layer(x))
        return self.layers[-1](x)


_missing = sorted(set(_flax_models()) ^ set(_REGISTRY))
assert not _missing, f"torch and Flax registries differ: {_missing}"
