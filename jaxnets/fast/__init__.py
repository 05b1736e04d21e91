"""Faster forms of jaxnets' torch-semantics layers on XLA:CPU, behind one switch.

The layers in :mod:`jaxnets.nn` say what is computed (torch's contract); this package holds
how it is computed fast where XLA's plain form is slow: a convolution as im2col and one
matrix product, a convolution fused with the max-pooling after it, a tiny Linear product as
a broadcast multiply and a sum, and the :class:`jaxnets.Trainer`'s automatic options
(:mod:`jaxnets.fast.training`). Every form gives the plain form's values within rounding,
and the parity suite checks them against torch like any other.

The switch::

    jaxnets.fast.enabled()          # True by default
    with jaxnets.fast.disabled():   # trace or call the model inside: plain XLA forms
        y = model(x)

What each form gained, and the commands that measure it again: docs/investigation.md.
"""

from jaxnets.fast._switch import ProductInfo, disabled, enabled, product_info
from jaxnets.fast.conv import conv2d_im2col, conv2d_max_pool2d, conv_general_dilated, is_im2col
from jaxnets.fast.products import ELEMENTWISE_DOT_MAX, dot_elementwise, linear_dot_general

__all__ = [
    "ELEMENTWISE_DOT_MAX",
    "ProductInfo",
    "conv2d_im2col",
    "conv2d_max_pool2d",
    "conv_general_dilated",
    "disabled",
    "dot_elementwise",
    "enabled",
    "is_im2col",
    "linear_dot_general",
    "product_info",
]
