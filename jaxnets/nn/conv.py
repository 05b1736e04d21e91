"""``torch.nn.Conv2d`` as an ``nnx.Conv`` on NHWC input, with torch's initialisation and padding."""

from __future__ import annotations

from typing import Any, Literal

import jax.numpy as jnp
from flax import nnx

from jaxnets import fast
from jaxnets.nn._common import Dtype
from jaxnets.nn.linear import torch_uniform_init

__all__ = ["Conv2d", "ConvImpl"]

ConvImpl = Literal["auto", "im2col", "xla"]


def Conv2d(  # noqa: N802 - mirrors torch.nn.Conv2d
    in_channels: int,
    out_channels: int,
    kernel_size: int | tuple[int, int],
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] | Literal["same", "valid"] = 0,
    dilation: int | tuple[int, int] = 1,
    groups: int = 1,
    bias: bool = True,
    *,
    rngs: nnx.Rngs,
    dtype: Dtype | None = None,
    param_dtype: Dtype | None = None,
    impl: ConvImpl = "auto",
) -> nnx.Conv:
    """``torch.nn.Conv2d`` as an ``nnx.Conv`` on NHWC input, with torch's init and padding.

    Input ``(N, H, W, in_channels)``, output ``(N, H', W', out_channels)`` with
    ``H' = (H + 2*padding - dilation*(kernel-1) - 1) // stride + 1``. ``kernel_size`` is
    always passed to ``nnx.Conv`` as a pair (an int there would make a 1-D kernel) and the
    padding is torch's explicit zero padding (``nnx.Conv`` defaults to ``'SAME'``), or
    torch's ``'same'`` (stride 1 only, as in torch; ``dilation*(kernel-1)`` zeros, the odd
    one after, which is XLA's ``'SAME'``) or ``'valid'`` (none). ``groups`` splits the
    channels as torch's does (kernel ``[kH, kW, in/groups, out]``, torch's
    ``[out, in/groups, kH, kW]`` transposed; both channel counts must divide by it).

    ``impl`` chooses how the convolution is computed; the parameters (``kernel``
    ``[kH, kW, I, O]``, ``bias``) and the result are the same either way (within rounding):
    ``'xla'`` (``lax.conv_general_dilated``), ``'im2col'``
    (:func:`jaxnets.fast.conv2d_im2col`: shifted slices and one matmul), or ``'auto'`` (the
    default), which lets :mod:`jaxnets.fast` pick the faster form for the backend while it
    is enabled.
    """
    if impl not in ("auto", "im2col", "xla"):
        raise ValueError(f"Conv2d impl must be 'auto', 'im2col' or 'xla', got {impl!r}")
    kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    dh, dw = (dilation, dilation) if isinstance(dilation, int) else dilation
    if isinstance(padding, str):
        if padding not in ("same", "valid"):
            raise ValueError(
                f"Conv2d padding must be an int, a pair, 'same' or 'valid', got {padding!r}"
            )
        if padding == "same" and (sh, sw) != (1, 1):
            raise ValueError(  # torch refuses it too
                "Conv2d padding='same' is not supported for strided convolutions (as in "
                "torch); give the padding as an int or a pair"
            )
        pad: Any = padding.upper()  # torch's 'same' is XLA's 'SAME' at stride 1
    else:
        ph, pw = (padding, padding) if isinstance(padding, int) else padding
        pad = ((ph, ph), (pw, pw))
    if groups < 1 or in_channels % groups or out_channels % groups:
        raise ValueError(
            f"Conv2d groups={groups} must be a positive divisor of in_channels={in_channels} "
            f"and out_channels={out_channels} (as in torch)"
        )
    init = torch_uniform_init(in_channels // groups * kh * kw)
    param_dtype = jnp.float32 if param_dtype is None else param_dtype
    return nnx.Conv(
        in_channels,
        out_channels,
        kernel_size=(kh, kw),
        strides=(sh, sw),
        padding=pad,
        kernel_dilation=(dh, dw),
        feature_group_count=groups,
        use_bias=bias,
        kernel_init=init,
        bias_init=init,
        dtype=dtype,
        param_dtype=param_dtype,
        conv_general_dilated=fast.conv_general_dilated(impl),
        rngs=rngs,
    )
