"""Flax NNX layers with PyTorch's defaults and semantics.

The twins are built from these so that a freshly created Flax model is initialised from the
same distributions as its torch original, and behaves like it in train and eval mode:

* :func:`Linear` and :func:`Conv2d` return plain ``nnx.Linear`` / ``nnx.Conv`` layers with
  torch's default initialisation (``kaiming_uniform_(a=sqrt(5))`` for the weight, which is
  ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``, and the same bound for the bias) and torch's
  padding default (0, where ``nnx.Conv`` defaults to ``'SAME'``). On CPU the convolution
  is computed as im2col and one matmul (:func:`conv2d_im2col`), which XLA:CPU runs faster
  than its own convolution, above all inside ``lax.scan``; a tiny Linear product (at most
  :data:`ELEMENTWISE_DOT_MAX` multiply-adds) as a broadcast multiply and a sum
  (:func:`dot_elementwise`), which XLA fuses with its neighbours instead of calling a
  matrix-product routine. Parameters are unchanged either way.
* :class:`BatchNorm1d` is an ``nnx.BatchNorm`` with torch's momentum convention, torch's
  unbiased running-variance update and ``num_batches_tracked``.
* :func:`max_pool2d` is ``F.max_pool2d`` with ``stride == kernel_size`` and floor semantics,
  written as reshape-then-max (exact, and faster than ``reduce_window`` on XLA:CPU).

Images are NHWC inside Flax.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any, Literal

import jax
import jax.numpy as jnp
from flax import nnx
from jax import lax

from jaxnets import intercept

__all__ = [
    "ACTIVATIONS",
    "ELEMENTWISE_DOT_MAX",
    "BatchNorm1d",
    "BatchNorm2d",
    "Conv2d",
    "Linear",
    "conv2d_im2col",
    "conv2d_max_pool2d",
    "dot_elementwise",
    "get_activation",
    "max_pool2d",
    "torch_uniform_init",
]

Dtype = Any

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": jax.nn.relu,
    "sigmoid": jax.nn.sigmoid,
    "tanh": jnp.tanh,
}


def get_activation(name: str) -> Callable[[jax.Array], jax.Array]:
    """Return the activation function called ``name`` (``'relu'``, ``'sigmoid'``, ``'tanh'``)."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(
            f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}"
        ) from None


def torch_uniform_init(fan_in: int) -> Callable[..., jax.Array]:
    """Initializer drawing ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``, torch's Linear/Conv default.

    torch initialises weights with ``kaiming_uniform_(a=sqrt(5))``: gain ``sqrt(2/(1+a^2))``
    times ``sqrt(3/fan_in)`` equals ``1/sqrt(fan_in)``; biases use the same bound
    (``torch/nn/modules/linear.py``, ``reset_parameters``).
    """
    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0

    def init(key: jax.Array, shape: tuple[int, ...], dtype: Dtype = jnp.float32) -> jax.Array:
        return jax.random.uniform(key, shape, dtype, minval=-bound, maxval=bound)

    return init


LinearImpl = Literal["auto", "dot", "elementwise"]


def Linear(  # noqa: N802 - mirrors torch.nn.Linear
    in_features: int,
    out_features: int,
    bias: bool = True,
    *,
    rngs: nnx.Rngs,
    dtype: Dtype | None = None,
    param_dtype: Dtype | None = None,
    impl: LinearImpl = "auto",
) -> nnx.Linear:
    """``torch.nn.Linear(in_features, out_features)`` as an ``nnx.Linear`` with torch's init.

    Input ``(..., in_features)``, output ``(..., out_features)``. The kernel is stored
    ``[in, out]`` (torch's weight is ``[out, in]``; :mod:`jaxnets.convert` transposes).

    ``impl`` chooses how the product is computed; the parameters and the result are the
    same either way: ``'dot'`` (``lax.dot_general``), ``'elementwise'``
    (:func:`dot_elementwise`: a broadcast multiply and a sum over ``in_features``), or
    ``'auto'`` (the default): elementwise on CPU when the call has at most
    :data:`ELEMENTWISE_DOT_MAX` multiply-adds (``batch * in * out``), ``lax.dot_general``
    otherwise. The size is the one the layer is traced with: under ``jax.vmap`` that is one
    example's, so a vmapped call over many examples (per-example gradients, say) can end up
    elementwise at a size where the matmul is faster; pass ``impl='dot'`` there.
    """
    if impl not in ("auto", "dot", "elementwise"):
        raise ValueError(f"Linear impl must be 'auto', 'dot' or 'elementwise', got {impl!r}")
    init = torch_uniform_init(in_features)
    param_dtype = jnp.float32 if param_dtype is None else param_dtype
    return nnx.Linear(
        in_features,
        out_features,
        use_bias=bias,
        kernel_init=init,
        bias_init=init,
        dtype=dtype,
        param_dtype=param_dtype,
        dot_general={"auto": _dot_auto, "dot": lax.dot_general, "elementwise": dot_elementwise}[
            impl
        ],
        rngs=rngs,
    )


# XLA:CPU runs every matrix product that is not fused into a YNNPACK call as its own
# step (a call into Eigen) and cannot fuse it with the bias add, the activation or the
# optimizer update around it; each such step costs about a microsecond whatever its size.
# A product this small is cheaper as a broadcast multiply and a sum, which XLA fuses with
# its neighbours: xor_net's training step (2->5->1 at batch 4, inside lax.scan, jax 0.10.2,
# 2-core Zen 1) went from 3.4-3.8 to 1.5-1.9 us. Larger products lose: XLA:CPU hands
# bigger sums to YNNPACK, which is slow for them (my_network's 10->32 layer at batch 16,
# 5,120 multiply-adds, took 48 us a step instead of 7.5), and from a few thousand
# multiply-adds a blocked matrix product wins anyway. 1,024 stays below every such case
# measured (1,280 was still faster elementwise).
ELEMENTWISE_DOT_MAX = 1024
"""The most multiply-adds (``batch * in * out``) a ``Linear(impl='auto')`` computes
elementwise on CPU."""


def _is_linear_product(
    lhs: jax.Array,
    rhs: jax.Array,
    dimension_numbers: Any,
    preferred_element_type: Any,
    out_sharding: Any,
) -> bool:
    """``lhs (..., K) @ rhs (K, O)`` in float32/float64 with nothing else asked: the product
    ``nnx.Linear`` computes, which :func:`dot_elementwise` can take."""
    dtype = jnp.result_type(lhs)
    return (
        rhs.ndim == 2
        and lhs.ndim >= 1
        and _dims_tuple(dimension_numbers) == (((lhs.ndim - 1,), (0,)), ((), ()))
        and jnp.result_type(rhs) == dtype
        and dtype in (jnp.float32, jnp.float64)
        and (preferred_element_type is None or jnp.dtype(preferred_element_type) == dtype)
        and out_sharding is None
    )


def _dims_tuple(dimension_numbers: Any) -> Any:
    try:
        return tuple(tuple(tuple(int(d) for d in ds) for ds in pair) for pair in dimension_numbers)
    except TypeError:
        return None


@jax.jit
def _elementwise_dot(lhs: jax.Array, rhs: jax.Array) -> jax.Array:
    # Its own jit only to carry a name: jaxnets.bench.matmul_flops finds these products (and
    # their gradients, jvp(...)/transpose(...) of the name) by it. XLA inlines the call.
    return jnp.sum(lhs[..., :, None] * rhs, axis=-2)


def _linear_dot(
    lhs: jax.Array,
    rhs: jax.Array,
    dimension_numbers: Any,
    precision: Any,
    preferred_element_type: Any,
    out_sharding: Any,
    max_products: float,
) -> jax.Array:
    """:func:`_elementwise_dot` for Linear's product of at most ``max_products``
    multiply-adds, ``lax.dot_general`` for anything else."""
    if (
        _is_linear_product(lhs, rhs, dimension_numbers, preferred_element_type, out_sharding)
        and lhs.size * rhs.shape[1] <= max_products
    ):
        return _elementwise_dot(lhs, rhs)
    return lax.dot_general(
        lhs,
        rhs,
        dimension_numbers,
        precision=precision,
        preferred_element_type=preferred_element_type,
        out_sharding=out_sharding,
    )


def dot_elementwise(
    lhs: jax.Array,
    rhs: jax.Array,
    dimension_numbers: Any,
    precision: Any = None,
    preferred_element_type: Any = None,
    out_sharding: Any = None,
) -> jax.Array:
    """``lax.dot_general`` for a Linear layer's product as a broadcast multiply and a sum.

    ``lhs (..., K)`` and ``rhs (K, O)`` (contracting ``lhs``'s last axis with ``rhs``'s
    first) give ``(..., O)``: ``sum(lhs[..., :, None] * rhs, axis=-2)``, the same products
    as the matrix product, summed over ``K`` in a different order. Its gradients are
    multiplies and sums too. Fast only for tiny products (see :data:`ELEMENTWISE_DOT_MAX`).
    Any other contraction, dtype or option goes to ``lax.dot_general`` unchanged. Same
    signature, so it can be passed as ``nnx.Linear(dot_general=...)``.
    """
    return _linear_dot(
        lhs, rhs, dimension_numbers, precision, preferred_element_type, out_sharding, math.inf
    )


def _dot_auto(
    lhs: jax.Array,
    rhs: jax.Array,
    dimension_numbers: Any,
    precision: Any = None,
    preferred_element_type: Any = None,
    out_sharding: Any = None,
) -> jax.Array:
    """:func:`dot_elementwise` on CPU for at most :data:`ELEMENTWISE_DOT_MAX` multiply-adds,
    ``lax.dot_general`` otherwise."""
    limit = ELEMENTWISE_DOT_MAX if jax.default_backend() == "cpu" else -1
    return _linear_dot(
        lhs, rhs, dimension_numbers, precision, preferred_element_type, out_sharding, limit
    )


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
    ``[kH, kW, I, O]``, ``bias``) and the result are the same either way: ``'im2col'``
    (:func:`conv2d_im2col`: shifted slices and one matmul), ``'xla'``
    (``lax.conv_general_dilated``), or ``'auto'`` (the default): im2col on CPU, where XLA's
    convolutions are slow (and slower still inside ``lax.scan``), ``lax.conv`` elsewhere.
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
    conv = {"auto": _conv_auto, "im2col": conv2d_im2col, "xla": _conv_xla}[impl]
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
        conv_general_dilated=conv,
        rngs=rngs,
    )


def _is_nhwc_hwio(dimension_numbers: Any, lhs: jax.Array, rhs: jax.Array) -> bool:
    if dimension_numbers is None or lhs.ndim != 4 or rhs.ndim != 4:
        return False
    nhwc = lax.conv_dimension_numbers(lhs.shape, rhs.shape, ("NHWC", "HWIO", "NHWC"))
    given = lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
    return given == nhwc


# how a channel check says that 4-D input is in torch's layout, not Flax's
_NCHW_HINT = "it looks like torch's NCHW layout: transpose it with x.transpose(0, 2, 3, 1)"


def _check_conv_channels(lhs: jax.Array, rhs: jax.Array, groups: int, fn: str) -> None:
    """``ValueError`` unless NHWC ``lhs`` has the channels HWIO ``rhs`` (with ``groups``)
    expects; says when the input looks like torch's NCHW layout."""
    c, want = lhs.shape[3], rhs.shape[2] * groups
    if c == want:
        return
    nchw = lhs.shape[1] == want
    raise ValueError(
        f"{fn}: the input {tuple(lhs.shape)} has {c} channels (last axis, NHWC), the "
        f"convolution takes {want}"
        + (f"; {_NCHW_HINT}" if nchw else f"; give it NHWC input with {want} channels")
    )


def _check_pool_size(k: Any, fn: str) -> None:
    """``ValueError`` unless the pooling size ``k`` is a positive int."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(
            f"{fn}: kernel_size must be a positive int (the pooling window and stride), got {k!r}"
        )


def _windows(
    x: jax.Array, kh: int, kw: int, strides: tuple[int, int], ho: int, wo: int
) -> list[list[jax.Array]]:
    """The ``kh x kw`` shifted, strided windows of NHWC ``x``: ``windows[i][j]`` is
    ``x[:, i::sh, j::sw, :]`` cropped to ``(N, ho, wo, C)``, the input each kernel tap
    ``(i, j)`` of a convolution with these strides reads."""
    n, _, _, c = x.shape
    sh, sw = strides
    return [
        [
            lax.slice(x, (0, i, j, 0), (n, i + (ho - 1) * sh + 1, j + (wo - 1) * sw + 1, c),
                      (1, sh, sw, 1))
            for j in range(kw)
        ]
        for i in range(kh)
    ]  # fmt: skip


# The windows are joined one kernel row at a time, then the rows: XLA:CPU fuses a
# concatenate of at most 8 operands with the slices that feed it into one loop
# (kMaxConcatenateArguments in its cpu_instruction_fusion.cc), where a 3x3 kernel's 9
# windows in one concatenate were 9 slice kernels and a copy. LeNet's batch-1 inference
# (in-process A/B, jax 0.10.2): 31-32 -> 27-28 us; its jitted step at batch 64 3.2 ->
# 2.9 ms. Same values in the same order, so the output is bit for bit the same.


def _taps_major_patches(windows: list[list[jax.Array]]) -> jax.Array:
    """:func:`_windows` stacked on leading axes: ``(kh, kw, N, ho, wo, C)``."""
    return jnp.stack([jnp.stack(row) for row in windows])


def _channels_last_patches(windows: list[list[jax.Array]]) -> jax.Array:
    """:func:`_windows` joined along the channels a row at a time, the rows then stacked on
    a new axis (not one more concatenate, which XLA would merge with the rows' into one
    again): ``(N, ho, wo, kh, kw*C)``, taps in ``(i, j, c)`` order once flattened."""
    return jnp.stack([jnp.concatenate(row, axis=-1) for row in windows], axis=3)


def conv2d_im2col(
    lhs: jax.Array,
    rhs: jax.Array,
    window_strides: Sequence[int],
    padding: str | Sequence[tuple[int, int]],
    lhs_dilation: Sequence[int] | None = None,
    rhs_dilation: Sequence[int] | None = None,
    dimension_numbers: Any = None,
    feature_group_count: int = 1,
    batch_group_count: int = 1,
    precision: Any = None,
    preferred_element_type: Any = None,
    out_sharding: Any = None,
) -> jax.Array:
    """``lax.conv_general_dilated`` for NHWC input and HWIO kernel, as im2col: one matmul.

    ``lhs (N, H, W, C)`` and ``rhs (kH, kW, C, O)`` give ``(N, H', W', O)``. The input is
    zero-padded, the ``kH*kW`` shifted (strided) windows are concatenated along channels into
    ``(N, H', W', kH*kW*C)`` in ``(i, j, c)`` order, which is the row order of
    ``rhs.reshape(kH*kW*C, O)``, and one ``dot_general`` contracts them (with one input
    channel the windows are stacked as ``(kH*kW, N*H'*W')`` rows and the product taken as
    ``W^T @ patches``, a layout XLA:CPU assembles and differentiates faster). Same products and
    sums as the convolution, in a different summation order. Its gradient is slices, pads
    and matmuls, which XLA:CPU runs fast inside ``lax.scan`` too, where the gradient of
    ``lax.conv`` misses XLA's fast path (jax-ml/jax#12868).

    Anything else (dilation, groups, string padding, other layouts, sharding) goes to
    ``lax.conv_general_dilated`` unchanged. Same signature, so it can be passed as
    ``nnx.Conv(conv_general_dilated=...)``.
    """
    nhwc = _is_nhwc_hwio(dimension_numbers, lhs, rhs)
    if nhwc:
        _check_conv_channels(lhs, rhs, feature_group_count, "Conv2d")
        if isinstance(padding, str) and all(d == 1 for d in (rhs_dilation or (1, 1))):
            # 'SAME'/'VALID' as the explicit pairs XLA would use, for the im2col path
            padding = lax.padtype_to_pads(lhs.shape[1:3], rhs.shape[:2], window_strides, padding)
    plain = (
        nhwc
        and not isinstance(padding, str)
        and all(d == 1 for d in (lhs_dilation or (1, 1)))
        and all(d == 1 for d in (rhs_dilation or (1, 1)))
        and feature_group_count == 1
        and batch_group_count == 1
        and out_sharding is None
    )
    if not plain:
        return lax.conv_general_dilated(
            lhs,
            rhs,
            window_strides,
            padding,
            lhs_dilation=lhs_dilation,
            rhs_dilation=rhs_dilation,
            dimension_numbers=dimension_numbers,
            feature_group_count=feature_group_count,
            batch_group_count=batch_group_count,
            precision=precision,
            preferred_element_type=preferred_element_type,
            out_sharding=out_sharding,
        )
    (pt, pb), (pl, pr) = padding
    if pt or pb or pl or pr:
        lhs = jnp.pad(lhs, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    n, h, w, c = lhs.shape
    kh, kw, _, o = rhs.shape
    sh, sw = window_strides
    ho, wo = (h - kh) // sh + 1, (w - kw) // sw + 1
    if ho <= 0 or wo <= 0:
        raise ValueError(
            f"Conv2d: the {kh}x{kw} kernel does not fit the padded input of size {h}x{w}; "
            "use a larger input or more padding"
        )
    windows = _windows(lhs, kh, kw, (sh, sw), ho, wo)
    if c == 1:
        # One input channel (LeNet's conv1): the windows stacked on leading axes make
        # patches (kH*kW, N*H'*W') and W^T @ patches gives (O, N*H'*W'), moved to NHWC by a
        # transpose that XLA fuses into the consumer (the activation and pooling). XLA:CPU
        # joins the windows as whole blocks here, where the channels-last patches (a minor
        # axis of kH*kW) are interleaved value by value, and its weight-gradient product on
        # this layout was faster too (jax.profiler: 0.74 vs 0.90 ms at batch 64). LeNet's
        # step (in-process A/B, jax 0.10.2) ran 7.0 -> 6.2 ms at batch 64, 26.6 -> 24.1 ms at
        # batch 256, batch-1 inference 122 -> 108 us. With more channels (conv2) the same
        # layout gained nothing (6.94 vs 6.96 ms).
        patches = _taps_major_patches(windows)
        out = lax.dot_general(
            rhs.reshape(kh * kw, o),
            patches.reshape(kh * kw, n * ho * wo),
            (((0,), (0,)), ((), ())),
            precision=precision,
            preferred_element_type=preferred_element_type,
        )
        return out.reshape(o, n, ho, wo).transpose(1, 2, 3, 0)
    patches = _channels_last_patches(windows).reshape(n, ho, wo, kh * kw * c)
    return lax.dot_general(
        patches,
        rhs.reshape(kh * kw * c, o),
        (((3,), (0,)), ((), ())),
        precision=precision,
        preferred_element_type=preferred_element_type,
    )


def _conv_auto(lhs: jax.Array, rhs: jax.Array, *args: Any, **kwargs: Any) -> jax.Array:
    """:func:`conv2d_im2col` on CPU, :func:`_conv_xla` on other backends."""
    conv = conv2d_im2col if jax.default_backend() == "cpu" else _conv_xla
    return conv(lhs, rhs, *args, **kwargs)


def _conv_xla(lhs: jax.Array, rhs: jax.Array, *args: Any, **kwargs: Any) -> jax.Array:
    """``lax.conv_general_dilated``, after :func:`conv2d_im2col`'s check of the input's
    channels (which names torch's NCHW layout when the input looks like it)."""
    dims = kwargs.get("dimension_numbers", args[4] if len(args) > 4 else None)
    if _is_nhwc_hwio(dims, lhs, rhs):
        groups = kwargs.get("feature_group_count", args[5] if len(args) > 5 else 1)
        _check_conv_channels(lhs, rhs, groups, "Conv2d")
    return lax.conv_general_dilated(lhs, rhs, *args, **kwargs)


def max_pool2d(x: jax.Array, kernel_size: int = 2) -> jax.Array:
    """``F.max_pool2d(x, kernel_size)`` on NHWC input: stride = kernel, no padding, floor mode.

    ``(N, H, W, C) -> (N, H // k, W // k, C)``. Written as crop, reshape and max, which is
    exact and avoids ``reduce_window`` (slow on XLA:CPU, especially its gradient).

    The gradient differs from torch's where a window holds its maximum more than once: JAX
    splits the window's gradient equally among the tied values, torch gives it all to the
    first. After a ReLU, ties at zero get a gradient the ReLU zeroes either way. Positive
    ties come from uniform regions (a flat background, MNIST's padded border), where the
    tied convolution outputs read identical input patches: the parameters' gradients are the
    same either way, only the gradient with respect to the input differs.
    """
    k = kernel_size
    _check_pool_size(k, "max_pool2d")
    if x.ndim != 4:
        raise ValueError(f"max_pool2d: expects NHWC input (N, H, W, C), got shape {x.shape}")
    n, h, w, c = x.shape
    ho, wo = h // k, w // k
    if ho == 0 or wo == 0:  # torch: "Output size is too small"
        raise ValueError(
            f"max_pool2d: the {k}x{k} window does not fit the input's {h}x{w} spatial size "
            f"(input {x.shape}, NHWC); use a smaller kernel_size or a larger input"
        )
    x = x[:, : ho * k, : wo * k, :]
    return x.reshape(n, ho, k, wo, k, c).max(axis=(2, 4))


class BatchNorm1d(nnx.BatchNorm):
    """``torch.nn.BatchNorm1d`` semantics on ``(N, C)`` input (features last, as in Flax).

    Differences from a plain ``nnx.BatchNorm`` that this class removes:

    * ``momentum`` is torch's (weight of the NEW batch statistic, default 0.1); Flax's
      momentum is the weight of the OLD running value, so ``nnx.BatchNorm`` gets ``1 - m``.
      ``momentum=None`` is torch's cumulative moving average (``1 / num_batches_tracked``).
    * In training, torch normalises with the biased batch variance but updates the running
      variance with the UNBIASED one (``var * n / (n - 1)``); Flax uses the biased one for
      both. This class updates with the unbiased variance.
    * ``num_batches_tracked`` counts training batches, as torch's buffer does.
    * ``eps`` defaults to 1e-5 (torch) and training on one value per channel is an error,
      as in torch.

    ``model.train()`` / ``model.eval()`` switch between batch and running statistics.
    """

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        *,
        rngs: nnx.Rngs,
        dtype: Dtype | None = None,
        param_dtype: Dtype | None = None,
    ) -> None:
        if momentum is not None and not 0.0 <= momentum <= 1.0:
            raise ValueError(f"BatchNorm1d momentum must be in [0, 1] or None, got {momentum}")
        super().__init__(
            num_features,
            momentum=0.0 if momentum is None else 1.0 - momentum,
            epsilon=eps,
            use_bias=affine,
            use_scale=affine,
            dtype=dtype,
            param_dtype=jnp.float32 if param_dtype is None else param_dtype,
            rngs=rngs,
        )
        self.torch_momentum = momentum
        # nnx.BatchNorm keeps running statistics in float32 whatever param_dtype says; torch
        # keeps them in the module's dtype, so a float64 twin needs float64 statistics.
        stat_dtype = jnp.float32 if param_dtype is None else param_dtype
        self.mean = nnx.BatchStat(jnp.zeros((num_features,), stat_dtype))
        self.var = nnx.BatchStat(jnp.ones((num_features,), stat_dtype))
        counter_dtype = jnp.int64 if jax.config.read("jax_enable_x64") else jnp.int32
        self.num_batches_tracked = nnx.BatchStat(jnp.zeros((), counter_dtype))

    _axes: tuple[str, ...] = ("N", "C")  # the input this class takes, channels last

    def _check_input(self, x: jax.Array) -> None:
        c = self.num_features
        if x.ndim != len(self._axes) or x.shape[-1] != c:
            name = f"{type(self).__name__}({c})"
            shape = f"({', '.join(self._axes[:-1])}, {c})"
            hint = ""
            if x.ndim == 4 and x.shape[1] == c and x.shape[-1] != c:
                hint = f"; {_NCHW_HINT}"
            elif x.ndim == 4 and len(self._axes) == 2:
                hint = "; for images (N, H, W, C) use jaxnets.layers.BatchNorm2d"
            raise ValueError(f"{name} expects input of shape {shape}, got {tuple(x.shape)}{hint}")

    def __call__(  # type: ignore[override]
        self, x: jax.Array, use_running_average: bool | None = None, *, mask: None = None
    ) -> jax.Array:
        """Normalise ``x`` of shape ``(N, C)`` (``BatchNorm2d``: ``(N, H, W, C)``) per channel;
        in training also update the running statistics."""
        del mask
        self._check_input(x)
        use_running = (
            self.use_running_average if use_running_average is None else use_running_average
        )
        if use_running:
            mean, var = self.mean[...], self.var[...]
        else:
            axes = tuple(range(x.ndim - 1))  # every axis but the channels
            n = math.prod(x.shape[:-1])
            if n < 2:
                raise ValueError(
                    f"{type(self).__name__} in training mode needs more than 1 value per "
                    f"channel, got input of shape {tuple(x.shape)}; use a batch of 2 or more, "
                    f"or call model.eval() to use the running statistics"
                )
            stat_dtype = jnp.promote_types(x.dtype, jnp.float32)
            xs = x.astype(stat_dtype)
            mean = xs.mean(axis=axes)
            var = jnp.square(xs - mean).mean(axis=axes)  # biased: used to normalise, as torch
            count = self.num_batches_tracked[...] + 1
            if self.torch_momentum is None:
                m = 1.0 / count.astype(stat_dtype)
            else:
                m = self.torch_momentum
            unbiased = var * (n / (n - 1))
            self.mean[...] = ((1 - m) * self.mean[...] + m * mean).astype(self.mean.dtype)
            self.var[...] = ((1 - m) * self.var[...] + m * unbiased).astype(self.var.dtype)
            self.num_batches_tracked[...] = count
        y = (x - mean) * jax.lax.rsqrt(var + self.epsilon)
        if self.scale is not None:
            y = y * self.scale[...]
        if self.bias is not None:
            y = y + self.bias[...]
        dtype = self.dtype if self.dtype is not None else jnp.result_type(x.dtype, self.param_dtype)
        return y.astype(dtype)


class BatchNorm2d(BatchNorm1d):
    """``torch.nn.BatchNorm2d`` on NHWC input ``(N, H, W, C)``: :class:`BatchNorm1d`'s torch
    semantics (momentum convention, unbiased running variance over ``N*H*W`` values per
    channel, ``num_batches_tracked``, ``eps``), with statistics over the batch and both
    spatial axes. Same parameters and buffers, so the converter maps torch's
    ``bn.weight``/``bias``/``running_mean``/``running_var``/``num_batches_tracked`` to it as
    to :class:`BatchNorm1d`."""

    _axes = ("N", "H", "W", "C")


def _pair(v: Any) -> tuple[int, int] | None:
    """``v`` as a pair of ints (an int is both), or None if it is neither."""
    if v is None:
        return (1, 1)
    if isinstance(v, int):
        return (v, v)
    try:
        a, b = v
    except (TypeError, ValueError):
        return None
    return (a, b) if isinstance(a, int) and isinstance(b, int) else None


def _explicit_padding(padding: Any) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """``nnx.Conv``'s padding as ``((top, bottom), (left, right))``, or None for the modes
    (``'SAME'``, ``'CIRCULAR'``, ...) the fused path leaves to ``nnx.Conv``."""
    if isinstance(padding, str):
        return ((0, 0), (0, 0)) if padding.upper() == "VALID" else None
    if isinstance(padding, int):
        return ((padding, padding), (padding, padding))
    try:
        pairs = tuple(_pair(p) for p in padding)
    except TypeError:
        return None
    if len(pairs) != 2 or any(p is None for p in pairs):
        return None
    return pairs  # type: ignore[return-value]


def _fusable_conv_pool(conv: nnx.Module, x: jax.Array, k: int) -> bool:
    """Whether :func:`conv2d_max_pool2d` can compute ``max_pool2d(conv(x), k)`` as one
    product: a stride-1 2-D ``nnx.Conv`` computed by im2col on NHWC input, with nothing
    (dilation, groups, a mask, another output dtype) that the im2col product does not do."""
    if not isinstance(conv, nnx.Conv) or len(conv.kernel_size) != 2 or x.ndim != 4:
        return False
    if intercept.is_intercepted(conv):  # jaxnets.explain records the convolution's output
        return False
    im2col = conv.conv_general_dilated is conv2d_im2col or (
        conv.conv_general_dilated is _conv_auto and jax.default_backend() == "cpu"
    )
    pad = _explicit_padding(conv.padding)
    if not im2col or pad is None:
        return False
    (pt, pb), (pl, pr) = pad
    kh, kw = conv.kernel_size
    return (
        all(_pair(v) == (1, 1) for v in (conv.strides, conv.input_dilation, conv.kernel_dilation))
        and conv.feature_group_count == 1
        and conv.mask is None
        and getattr(conv, "preferred_element_type", None) is None
        and x.shape[-1] == conv.in_features
        and x.shape[1] + pt + pb - kh + 1 >= k
        and x.shape[2] + pl + pr - kw + 1 >= k
    )


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3, 4, 5))
def _pool_windows(x: jax.Array, k: int, wa: int, wb: int, ho: int, wo: int) -> jax.Array:
    """The ``wa x wb`` windows of NHWC ``x`` at stride ``k``: ``(N, ho, wo, wa, wb, C)``.

    Window ``(p, q)`` holds ``x[:, k*p : k*p + wa, k*q : k*q + wb, :]``: the channels-last
    im2col patches of a ``wa x wb`` kernel at stride ``k`` (:func:`_channels_last_patches`).
    It has a gradient of its own: JAX's is a sum of ``wa*wb`` slices padded with ``k - 1`` zeros
    between values, one loop in XLA:CPU that took 0.84 ms of LeNet's 5.9 ms step at batch
    256 (``benchmarks/step_profile.py --scan``). This one splits the input's rows and
    columns by their remainder mod ``k``: each remainder class is a sum of
    ``ceil(wa/k) * ceil(wb/k)`` blocks of the window gradient, shifted (padded at the
    edges only), and the classes are then interleaved: 0.25 ms there, and LeNet's step
    1.09-1.13x as fast at batch 64 and 256 (in-process A/B). The same sums, so the same
    gradient up to the order of the additions.
    """
    n, c = x.shape[0], x.shape[-1]
    windows = _windows(x, wa, wb, (k, k), ho, wo)
    return _channels_last_patches(windows).reshape(n, ho, wo, wa, wb, c)


def _pool_windows_fwd(
    x: jax.Array, k: int, wa: int, wb: int, ho: int, wo: int
) -> tuple[jax.Array, tuple[int, ...]]:
    return _pool_windows(x, k, wa, wb, ho, wo), x.shape


def _pool_windows_bwd(
    k: int, wa: int, wb: int, ho: int, wo: int, shape: tuple[int, ...], g: jax.Array
) -> tuple[jax.Array]:
    n, h, w, c = shape
    a2, b2 = -(-wa // k), -(-wb // k)  # window rows = a2 blocks of k (zeros past wa)
    g = jnp.pad(g, ((0, 0), (0, 0), (0, 0), (0, a2 * k - wa), (0, b2 * k - wb), (0, 0)))
    g = g.reshape(n, ho, wo, a2, k, b2, k, c)
    # Input row k*p' + r gets window row k*s + r of window p = p' - s: block s, shifted by s.
    blocks = [
        jnp.pad(g[:, :, :, s, :, t], ((0, 0), (s, a2 - 1 - s), (t, b2 - 1 - t), *[(0, 0)] * 3))
        for s in range(a2)
        for t in range(b2)
    ]
    dx = functools.reduce(jnp.add, blocks)  # (N, ho + a2 - 1, wo + b2 - 1, k, k, C)
    hh, ww = (ho + a2 - 1) * k, (wo + b2 - 1) * k
    dx = dx.transpose(0, 1, 3, 2, 4, 5).reshape(n, hh, ww, c)[:, :h, :w]
    return (jnp.pad(dx, ((0, 0), (0, h - dx.shape[1]), (0, w - dx.shape[2]), (0, 0))),)


_pool_windows.defvjp(_pool_windows_fwd, _pool_windows_bwd)


_POOLED_CONV_DOT = "_pooled_conv_dot"


@functools.cache
def _pooled_conv_dot(
    nominal: int, computed: int, channels_first: bool, precision: Any
) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """The product of :func:`conv2d_max_pool2d`, jitted under a name that carries
    ``nominal / computed``: the multiply-adds of the plain convolution (all its output
    positions, each over the kernel's taps) over those of this product (the positions the
    pooling keeps, each over the window's taps, the kernel's and the zeros around them).
    :func:`jaxnets.bench.matmul_flops` scales the products it finds under this name (and
    their gradients) by that ratio, so the work counted is the model's, whatever the
    formulation. XLA inlines the call."""

    def product(patches: jax.Array, weights: jax.Array) -> jax.Array:
        if channels_first:  # weights (K, O'), patches (K, M) -> (O', M)
            dims = (((0,), (0,)), ((), ()))
            return lax.dot_general(weights, patches, dims, precision=precision)
        dims = (((1,), (0,)), ((), ()))  # patches (M, K), weights (K, O') -> (M, O')
        return lax.dot_general(patches, weights, dims, precision=precision)

    product.__name__ = f"{_POOLED_CONV_DOT}_{nominal}_{computed}"
    return jax.jit(product)


def conv2d_max_pool2d(conv: nnx.Module, x: jax.Array, kernel_size: int = 2) -> jax.Array:
    """``max_pool2d(conv(x), kernel_size)`` for an ``nnx.Conv`` from :func:`Conv2d`, computed
    as one matrix product whose output holds each pooling window's convolution outputs.

    ``x (N, H, W, C)`` gives ``(N, H' // k, W' // k, O)``, ``H' x W'`` being the
    convolution's output size. Each output is the sum of the same products as in the
    composition, taps in the same order, with products by zero weights in between (which
    change no sum); the gradients are the same sums in another order. Values and gradients
    agree within rounding (the parity suite checks LeNet against torch).

    How: a ``k x k`` pooling window covers ``k x k`` convolution outputs, which together read
    a ``(kH + k - 1) x (kW + k - 1)`` window of the input. Those windows (stride ``k``) are
    the patches, one row per pooled output (only the convolution outputs the floor-mode
    pooling keeps are computed), and the weights are the kernel placed at each of the
    ``k x k`` offsets of the window, zeros elsewhere: ``(window, k*k*O)``. The product gives
    the ``k*k`` convolution outputs of each pooling window side by side, and the pooling is
    an elementwise maximum over ``k*k`` contiguous blocks. For LeNet's conv1 (3x3, pooled
    2x2) that is 16 taps instead of 9, but patches of a quarter as many positions (a 16-row
    matrix instead of a 9-row one four times as long), no reshuffling of the output for the
    pooling and a gradient that is an elementwise select, no scatter: with the patches' own
    gradient (``_pool_windows``) XLA:CPU ran LeNet's training step 1.54x as fast at batch 64
    and 1.65x at batch 256 (``benchmarks/conv_pool.py``).
    The bias is added after the maximum (the same value: adding a constant does not change
    which element is largest, and rounding is monotone).

    Gradients: where a window holds its maximum more than once, JAX splits the gradient
    among the tied values (as :func:`max_pool2d`). Since ``relu`` and ``max`` commute,
    ``relu(conv2d_max_pool2d(conv, x))`` is ``max_pool2d(relu(conv(x)))``.

    Falls back to ``max_pool2d(conv(x), kernel_size)`` where the fused form does not apply:
    a convolution that is not im2col (``impl='xla'``, or ``'auto'`` off the CPU), a stride,
    dilation, groups, a mask, string padding other than ``'VALID'``, input that is not
    4-D NHWC, or a convolution being recorded by :func:`jaxnets.intercept.intercept` (as
    ``jaxnets explain`` does, which then sees the convolution's own output).
    """
    k = kernel_size
    _check_pool_size(k, "conv2d_max_pool2d")
    if not _fusable_conv_pool(conv, x, k):
        return max_pool2d(conv(x), k)
    kernel = conv.kernel[...]
    bias = conv.bias[...] if conv.bias is not None else None
    dtype = conv.dtype or jnp.result_type(x, kernel, *(() if bias is None else (bias,)))
    x, kernel = x.astype(dtype), kernel.astype(dtype)
    (pt, pb), (pl, pr) = _explicit_padding(conv.padding)  # type: ignore[misc]
    if pt or pb or pl or pr:
        x = jnp.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    n, h, w, c = x.shape
    kh, kw, _, o = kernel.shape
    hf, wf = h - kh + 1, w - kw + 1  # the convolution's output size
    ho, wo = hf // k, wf // k
    wa, wb = kh + k - 1, kw + k - 1  # the input window under one pooling window
    m = n * ho * wo
    # The kernel at each offset (di, dj) of the pooling window: (wa, wb, C, k*k, O).
    weights = jnp.stack(
        [
            jnp.pad(kernel, ((di, k - 1 - di), (dj, k - 1 - dj), (0, 0), (0, 0)))
            for di in range(k)
            for dj in range(k)
        ],
        axis=3,
    ).reshape(wa * wb * c, k * k * o)
    product = _pooled_conv_dot(
        n * hf * wf * kh * kw * c * o, m * wa * wb * c * k * k * o, c == 1, conv.precision
    )

    if c == 1:
        # One input channel, as in conv2d_im2col: taps as rows, (wa*wb, M), and the product
        # (k*k*O, M), whose k*k blocks of O rows are the offsets; the result is moved to NHWC
        # by a transpose that XLA fuses into the consumer.
        patches = _taps_major_patches(_windows(x, wa, wb, (k, k), ho, wo))
        z = product(patches.reshape(wa * wb, m), weights).reshape(k * k, o, m)
        y = z.max(axis=0)
        if bias is not None:
            y = y + bias.astype(dtype)[:, None]
        return y.reshape(o, n, ho, wo).transpose(1, 2, 3, 0)
    patches = _pool_windows(x, k, wa, wb, ho, wo).reshape(m, wa * wb * c)  # (a, b, c) order
    y = product(patches, weights).reshape(m, k * k, o).max(axis=1)
    if bias is not None:
        y = y + bias.astype(dtype)
    return y.reshape(n, ho, wo, o)
