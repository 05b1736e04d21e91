"""The Flax NNX twins, one module per tutorial family. Importing registers them all."""

from jaxnets.models.first_network import CustomNeuralNetwork, SimpleNeuralNetwork
from jaxnets.models.lenet import LeNet
from jaxnets.models.nn_module import BatchNormMLP, MyNetwork, Net, NeuralNetwork
from jaxnets.models.regressors import AdvancedNN, SimpleNN
from jaxnets.models.xor import MLP, MLPConfig, XORNet

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
