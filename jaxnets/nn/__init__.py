"""Flax NNX layers with PyTorch's constructors, defaults and semantics, channels last inside.

A ported model is built from these, with torch's class and argument names::

    from jaxnets import nn
    from jaxnets.nn import functional as F

    self.conv1 = nn.Conv2d(3, 16, 3, padding=1, padding_mode="reflect", rngs=rngs)
    self.bn1 = nn.BatchNorm2d(16, momentum=None, rngs=rngs)
    self.pool = nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True)
    ...
    x = F.gelu(self.bn1(self.conv1(x)))          # exact GELU, torch's default

Images are ``(N, H, W, C)`` inside (torch: ``(N, C, H, W)``), sequences ``(N, L, C)``
(torch: ``(N, C, L)``); a ``dim`` argument is torch's, applied to the array as given.
Parameter-bearing layers take ``*, rngs: nnx.Rngs, dtype=None, param_dtype=None`` and draw
their initial values from torch's distributions; ``model.train()`` / ``model.eval()`` switch
BatchNorm and Dropout as torch's ``train()``/``eval()`` do. Values torch refuses raise a
``ValueError`` (or ``TypeError``) saying what is wrong.

* :func:`Linear` returns an ``nnx.Linear`` with torch's init; :class:`Conv1d`/:class:`Conv2d`
  are ``nnx.Conv`` layers with torch's init, padding (zeros, ``'same'``, ``'valid'``) and
  padding modes.
* :class:`BatchNorm1d`/:class:`BatchNorm2d` are ``nnx.BatchNorm`` with torch's momentum
  convention, unbiased running-variance update, ``num_batches_tracked``, ``affine``,
  ``track_running_stats``; :class:`LayerNorm` has torch's eps and multi-axis shapes.
* Pools (:class:`MaxPool2d`, :class:`AvgPool2d`, the adaptive ones), :class:`Embedding`,
  :class:`Dropout`/:class:`Dropout2d`, :class:`Flatten`, :class:`Identity` and the
  activations, each also in :mod:`jaxnets.nn.functional`.

How a product or a convolution is computed on a given backend is not these layers' concern:
:mod:`jaxnets.fast` holds the faster forms (same values within rounding) behind one switch.
"""

from jaxnets.nn import functional
from jaxnets.nn.activation import (
    ACTIVATIONS,
    ELU,
    GELU,
    LeakyReLU,
    LogSoftmax,
    ReLU,
    Sigmoid,
    SiLU,
    Softmax,
    Tanh,
    get_activation,
)
from jaxnets.nn.conv import Conv1d, Conv2d
from jaxnets.nn.dropout import Dropout, Dropout2d
from jaxnets.nn.embedding import Embedding
from jaxnets.nn.flatten import Flatten
from jaxnets.nn.linear import Identity, Linear, torch_uniform_init
from jaxnets.nn.normalization import BatchNorm1d, BatchNorm2d, LayerNorm
from jaxnets.nn.pooling import (
    AdaptiveAvgPool2d,
    AdaptiveMaxPool2d,
    AvgPool2d,
    MaxPool2d,
    max_pool2d,
)

__all__ = [
    "ACTIVATIONS",
    "ELU",
    "GELU",
    "AdaptiveAvgPool2d",
    "AdaptiveMaxPool2d",
    "AvgPool2d",
    "BatchNorm1d",
    "BatchNorm2d",
    "Conv1d",
    "Conv2d",
    "Dropout",
    "Dropout2d",
    "Embedding",
    "Flatten",
    "Identity",
    "LayerNorm",
    "LeakyReLU",
    "Linear",
    "LogSoftmax",
    "MaxPool2d",
    "ReLU",
    "SiLU",
    "Sigmoid",
    "Softmax",
    "Tanh",
    "functional",
    "get_activation",
    "max_pool2d",
    "torch_uniform_init",
]
