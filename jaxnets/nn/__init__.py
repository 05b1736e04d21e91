"""Flax NNX layers with PyTorch's defaults and semantics, channels last inside.

The twins are built from these so that a freshly created Flax model is initialised from the
same distributions as its torch original, and behaves like it in train and eval mode:

* :func:`Linear` and :func:`Conv2d` return plain ``nnx.Linear`` / ``nnx.Conv`` layers with
  torch's default initialisation (``kaiming_uniform_(a=sqrt(5))`` for the weight, which is
  ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``, and the same bound for the bias) and torch's
  padding default (0, where ``nnx.Conv`` defaults to ``'SAME'``).
* :class:`BatchNorm1d` / :class:`BatchNorm2d` are ``nnx.BatchNorm`` with torch's momentum
  convention, torch's unbiased running-variance update and ``num_batches_tracked``.
* :func:`max_pool2d` is ``F.max_pool2d`` with ``stride == kernel_size`` and floor semantics.

How a product or a convolution is computed on a given backend is not these layers' concern:
:mod:`jaxnets.fast` holds the faster forms (same values within rounding) behind one switch.
Images are NHWC inside Flax.
"""

from jaxnets.nn.activation import ACTIVATIONS, get_activation
from jaxnets.nn.conv import Conv2d
from jaxnets.nn.linear import Linear, torch_uniform_init
from jaxnets.nn.normalization import BatchNorm1d, BatchNorm2d
from jaxnets.nn.pooling import max_pool2d

__all__ = [
    "ACTIVATIONS",
    "BatchNorm1d",
    "BatchNorm2d",
    "Conv2d",
    "Linear",
    "get_activation",
    "max_pool2d",
    "torch_uniform_init",
]
