"""The Flax NNX twins, one module per kind of model. Importing registers them all."""

from jaxnets.models.lenet import LeNet
from jaxnets.models.mlp import MLP, MLPConfig
from jaxnets.models.mnist_mlps import CustomNeuralNetwork, SimpleNeuralNetwork
from jaxnets.models.regressors import AdvancedNN, SimpleNN
from jaxnets.models.sized_mlps import BatchNormMLP, MyNetwork, Net, NeuralNetwork
from jaxnets.models.xor import XORNet

__all__ = [
    "MLP",
    "AdvancedNN",
    "BatchNormMLP",
    "CustomNeuralNetwork",
    "LeNet",
    "MLPConfig",
    "MyNetwork",
    "Net",
    "NeuralNetwork",
    "SimpleNN",
    "SimpleNeuralNetwork",
    "XORNet",
]
